// Package writes holds the one insert every step uses for documents whose
// _id is deterministic.
package writes

import (
	"context"
	"errors"

	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// InsertMany inserts docs unordered and treats duplicate keys as done: the
// documents are keyed by deterministic ids, so a duplicate is the same
// document written by an earlier (possibly killed, still in-flight) run.
// Any other error is returned.
func InsertMany(ctx context.Context, coll *mongo.Collection, docs []any) error {
	if len(docs) == 0 {
		return nil
	}
	_, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil || onlyDuplicates(err) {
		return nil
	}
	return err
}

func onlyDuplicates(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return false
		}
	}
	return true
}
