// Package scratch names and drops the runner's scratch collections: each
// run's are named <prefix><name>_<run id>, so a killed run's writes still
// in flight on the server land in its own, never in the next run's.
package scratch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
)

// RunID is a new run's id.
func RunID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Drop drops the collections named prefix...suffix: one run's with "_" and
// its run id, every run's with "".
func Drop(ctx context.Context, db *mongo.Database, prefix, suffix string) error {
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("list scratch collections: %w", err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, prefix) && strings.HasSuffix(n, suffix) {
			if err := db.Collection(n).Drop(ctx); err != nil {
				return fmt.Errorf("drop scratch %s: %w", n, err)
			}
		}
	}
	return nil
}
