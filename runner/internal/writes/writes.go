// Package writes holds the writes every step shares: inserts of documents
// whose _id is deterministic, idempotent bulk writes and deletes by _id,
// each retried within the step's budget.
package writes

import (
	"context"
	"errors"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/internal/servererr"
	"github.com/tenantmigrate/runner/runner/lease"
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
	return do(ctx, p, "insert into "+coll.Name(), insert)
}

// BulkWrite runs models unordered, retried within p (nil: tried once).
// Every model must be idempotent (keyed, or conditional): a retry repeats
// what an attempt cut off after it wrote. The result is the last
// attempt's.
func BulkWrite(ctx context.Context, p *retry.Policy, coll *mongo.Collection, models []mongo.WriteModel) (*mongo.BulkWriteResult, error) {
	var res *mongo.BulkWriteResult
	err := do(ctx, p, "write "+coll.Name(), func(ctx context.Context) (err error) {
		res, err = coll.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
		return err
	})
	return res, err
}

// DeleteIDs deletes the documents of coll with these _ids, retried within
// p, and returns how many the attempts deleted.
func DeleteIDs(ctx context.Context, p *retry.Policy, coll *mongo.Collection, ids []model.ID) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	var n int64
	err := do(ctx, p, "delete from "+coll.Name(), func(ctx context.Context) error {
		res, err := coll.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
		if err == nil {
			n += res.DeletedCount
		}
		return err
	})
	return n, err
}

// do runs fn within p's budget, each attempt under the lease ctx carries
// (lease.Do): a runner whose lease is gone sends no write.
func do(ctx context.Context, p *retry.Policy, what string, fn func(context.Context) error) error {
	attempt := func(ctx context.Context) error { return lease.Do(ctx, fn) }
	if p == nil {
		return attempt(ctx)
	}
	return p.Do(ctx, what, attempt)
}

func onlyDuplicates(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if !servererr.DuplicateKey(int32(we.Code), we.Message) {
			return false
		}
	}
	return true
}
