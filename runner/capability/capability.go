// Package capability names the connected server, for reports, and says
// whether it enforces unique indexes over array fields (FerretDB 1 does
// not). What a server accepts of $merge is never read from here: a
// version string says nothing of it (FerretDB 2 calls itself MongoDB 7 and
// refuses a pipeline in whenMatched), so phase 2 probes it (phase2.Probe).
package capability

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
)

// Server is the kind of server, as buildInfo gives it away.
type Server string

// The kinds of server told apart.
const (
	MongoDB  Server = "mongodb"  // or an engine that reports itself as MongoDB (FerretDB 2)
	FerretDB Server = "ferretdb" // FerretDB 1
)

// Caps describe the server.
type Caps struct {
	Server  Server `json:"server"`
	Version string `json:"version"`
	// UniqueArrayIndexes: a unique index over an array field rejects a
	// second document holding the same element.
	UniqueArrayIndexes bool `json:"unique_array_indexes"`
}

type buildInfo struct {
	Version          string    `bson:"version"`
	FerretDBVersion  *string   `bson:"ferretdbVersion"`
	FerretDBFeatures *bson.Raw `bson:"ferretdbFeatures"`
}

// Detect asks the server. FerretDB 1 reports a MongoDB 7 version; its own
// buildInfo fields give it away.
func Detect(ctx context.Context, db *mongo.Database) (Caps, error) {
	var bi buildInfo
	if err := db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&bi); err != nil {
		return Caps{}, fmt.Errorf("detect server capabilities: %w", err)
	}
	if bi.FerretDBVersion != nil || bi.FerretDBFeatures != nil {
		c := Caps{Server: FerretDB, Version: bi.Version}
		if bi.FerretDBVersion != nil {
			c.Version = *bi.FerretDBVersion
		}
		return c, nil
	}
	return Caps{Server: MongoDB, Version: bi.Version, UniqueArrayIndexes: true}, nil
}
