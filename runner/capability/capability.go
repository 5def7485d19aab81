// Package capability says what the connected server can do, detected from
// the server itself rather than configured: FerretDB (the embedded test
// server) and MongoDB before 4.2 have no $merge, and FerretDB does not
// enforce unique indexes over array fields.
package capability

import (
	"context"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
)

// Caps are the detected capabilities.
type Caps struct {
	Server  string `json:"server"` // "mongodb" or "ferretdb"
	Version string `json:"version"`
	// Merge: the server runs aggregation pipelines ending in $merge.
	Merge bool `json:"merge"`
	// UniqueArrayIndexes: a unique index over an array field rejects a
	// second document holding the same element.
	UniqueArrayIndexes bool `json:"unique_array_indexes"`
}

type buildInfo struct {
	Version          string  `bson:"version"`
	VersionArray     []int32 `bson:"versionArray"`
	FerretDBVersion  *string `bson:"ferretdbVersion"`
	FerretDBFeatures *struct {
		AggregationStages []string `bson:"aggregationStages"`
	} `bson:"ferretdbFeatures"`
}

// Detect asks the server. FerretDB reports a MongoDB 7 version; its own
// buildInfo fields give it away.
func Detect(ctx context.Context, db *mongo.Database) (Caps, error) {
	var bi buildInfo
	if err := db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&bi); err != nil {
		return Caps{}, fmt.Errorf("detect server capabilities: %w", err)
	}
	if bi.FerretDBVersion != nil || bi.FerretDBFeatures != nil {
		c := Caps{Server: "ferretdb", Version: bi.Version}
		if bi.FerretDBVersion != nil {
			c.Version = *bi.FerretDBVersion
		}
		if bi.FerretDBFeatures != nil {
			c.Merge = slices.Contains(bi.FerretDBFeatures.AggregationStages, "$merge")
		}
		return c, nil
	}
	c := Caps{Server: "mongodb", Version: bi.Version, UniqueArrayIndexes: true}
	if len(bi.VersionArray) >= 2 {
		major, minor := bi.VersionArray[0], bi.VersionArray[1]
		c.Merge = major > 4 || major == 4 && minor >= 2
	}
	return c, nil
}
