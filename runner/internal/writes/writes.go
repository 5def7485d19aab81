// Package writes holds the writes every step shares: inserts of documents
// whose _id is deterministic, idempotent bulk writes and deletes by _id,
// each retried within the step's budget.
package writes

import (
	"context"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"
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
// attempt's, summed over the halves of a batch that was split (halves).
func BulkWrite(ctx context.Context, p *retry.Policy, coll *mongo.Collection, models []mongo.WriteModel) (*mongo.BulkWriteResult, error) {
	res := &mongo.BulkWriteResult{}
	err := halves(ctx, p, "write "+coll.Name(), models, func(ctx context.Context, part []mongo.WriteModel) (func(), error) {
		r, err := coll.BulkWrite(ctx, part, options.BulkWrite().SetOrdered(false))
		return func() {
			res.InsertedCount += r.InsertedCount
			res.MatchedCount += r.MatchedCount
			res.ModifiedCount += r.ModifiedCount
			res.DeletedCount += r.DeletedCount
			res.UpsertedCount += r.UpsertedCount
		}, err
	})
	return res, err
}

// DeleteIDs deletes the documents of coll with these _ids, retried within
// p, and returns how many the attempts deleted.
func DeleteIDs(ctx context.Context, p *retry.Policy, coll *mongo.Collection, ids []model.ID) (int64, error) {
	return deleteMany(ctx, p, coll, ids, func(part []model.ID) bson.D {
		return bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: part}}}}
	})
}

// DeleteTenants deletes the tenant accounts refs, their shard key (key) in
// the filter, retried within p, and returns how many the attempts deleted.
func DeleteTenants(ctx context.Context, p *retry.Policy, coll *mongo.Collection, key model.ShardKey, refs []model.TenantRef) (int64, error) {
	return deleteMany(ctx, p, coll, refs, key.FilterIDs)
}

// deleteMany deletes the documents filter selects of items, in halves
// where the lease cuts a batch. Every attempt's deletions count: an
// attempt cut after it deleted leaves the next one less to delete.
func deleteMany[T any](ctx context.Context, p *retry.Policy, coll *mongo.Collection, items []T, filter func([]T) bson.D) (int64, error) {
	var n int64
	err := halves(ctx, p, "delete from "+coll.Name(), items, func(ctx context.Context, part []T) (func(), error) {
		res, err := coll.DeleteMany(ctx, filter(part))
		if err != nil {
			return nil, err
		}
		n += res.DeletedCount
		return func() {}, nil
	})
	return n, err
}

// halves writes batch with write within p. A batch that the end of the
// lease cuts (lease.ErrCut: too slow a server for this many at once,
// though the lease is held) is not tried again whole: each half is
// written in turn the same way, down to one document, which is retried
// as any transient error is. write's first result, if not nil, is called
// once the part it wrote is done.
func halves[T any](ctx context.Context, p *retry.Policy, what string, batch []T, write func(context.Context, []T) (func(), error)) error {
	if len(batch) == 0 {
		return nil
	}
	var done func()
	attempt := func(ctx context.Context) error {
		// The cut is named by lease.Do, around the write.
		err := lease.Do(ctx, func(ctx context.Context) error {
			d, err := write(ctx, batch)
			if err == nil {
				done = d
			}
			return err
		})
		if err != nil && len(batch) > 1 && errors.Is(err, lease.ErrCut) {
			return &tooLong{err}
		}
		return err
	}
	var err error
	if p == nil {
		err = attempt(ctx)
	} else {
		err = p.Do(ctx, what, attempt)
	}
	var cut *tooLong
	if !errors.As(err, &cut) {
		if err == nil && done != nil {
			done()
		}
		if len(batch) == 1 && errors.Is(err, lease.ErrCut) {
			// Nothing left to split: the server is slower than the lease.
			return fmt.Errorf("%w (one write outlasts the lease on this server: raise lock.lease)", err)
		}
		return err
	}
	if p != nil && p.Log != nil {
		p.Log.WithFields(logrus.Fields{"what": what, "batch": len(batch)}).Warn("a batch ran past the end of the lease; writing it in halves")
	}
	h := len(batch) / 2
	if err := halves(ctx, p, what, batch[:h], write); err != nil {
		return err
	}
	return halves(ctx, p, what, batch[h:], write)
}

// tooLong stops the retries of a batch cut by the end of the lease; it
// hides the cut (transient) from the retry policy on purpose.
type tooLong struct{ err error }

func (e *tooLong) Error() string { return e.err.Error() }

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
