// Package writes holds the one insert every step uses for documents whose
// _id is deterministic.
package writes

import (
	"context"
	"errors"

	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/runner/retry"
)

// InsertMany inserts docs unordered and treats duplicate keys as done: the
// documents are keyed by deterministic ids, so a duplicate is the same
// document written by an earlier (possibly killed, still in-flight) run,
// or by this call's own attempt that failed after it wrote. A transient
// error is retried within p (nil: tried once); any other is returned.
func InsertMany(ctx context.Context, p *retry.Policy, coll *mongo.Collection, docs []any) error {
	if len(docs) == 0 {
		return nil
	}
	insert := func(ctx context.Context) error {
		_, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
		if err == nil || onlyDuplicates(err) {
			return nil
		}
		return err
	}
	if p == nil {
		return insert(ctx)
	}
	return p.Do(ctx, "insert into "+coll.Name(), insert)
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
