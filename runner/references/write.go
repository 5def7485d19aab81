package references

// The conditional writes of a batch, and reading back what they left.

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/runner/internal/servererr"
	"github.com/tenantmigrate/runner/runner/lease"
	"github.com/tenantmigrate/runner/runner/retry"
)

// write updates each document if its fields still hold what was read.
func (c *collection) write(ctx context.Context, plans []*plan) error {
	models := make([]mongo.WriteModel, 0, len(plans))
	for _, p := range plans {
		filter := bson.D{{Key: "_id", Value: p.id}}
		filter = append(filter, p.before...)
		models = append(models, mongo.NewUpdateOneModel().SetFilter(filter).SetUpdate(bson.D{{Key: "$set", Value: p.after}}))
	}
	refused := map[int]bool{}
	_, err := bulk(ctx, &c.cfg.Retry, c.coll, models)
	var bwe mongo.BulkWriteException
	switch {
	case err == nil:
	case errors.As(err, &bwe) && bwe.WriteConcernError == nil && onlyUnique(bwe):
		for _, we := range bwe.WriteErrors {
			refused[we.Index] = true
		}
	case servererr.IsDuplicateKey(err):
		// The engine failed the whole command for one document (FerretDB
		// 1): one at a time, to know which.
		now, err := c.current(ctx, plans)
		if err != nil {
			return err
		}
		for i, p := range plans {
			if cur, ok := now[idKey(p.id)]; ok && holds(cur, p.after) {
				continue
			}
			err := c.cfg.Retry.Do(ctx, "rewrite "+c.coll.Name(), func(ctx context.Context) error {
				return lease.Do(ctx, func(ctx context.Context) error {
					_, err := c.coll.UpdateOne(ctx, models[i].(*mongo.UpdateOneModel).Filter, models[i].(*mongo.UpdateOneModel).Update)
					return err
				})
			})
			switch {
			case err == nil:
			case servererr.IsDuplicateKey(err):
				refused[i] = true
			default:
				return retry.Wrap("rewrite "+c.coll.Name(), err)
			}
		}
	default:
		return retry.Wrap("rewrite "+c.coll.Name(), err)
	}
	if c.cfg.stop == stopAfterWrite {
		return errStopped
	}
	// What each document holds now tells written from refused from
	// changed meanwhile, whatever retries and earlier runs did.
	now, err := c.current(ctx, plans)
	if err != nil {
		return err
	}
	written := map[*plan]bool{}
	for i, p := range plans {
		cur, ok := now[idKey(p.id)]
		switch {
		case ok && holds(cur, p.after):
			c.done(p)
			written[p] = true
		case refused[i]:
			c.conflict(p, ReasonUnique)
		default:
			c.rep.Changed++
		}
	}
	return c.settle(ctx, plans, written, refused)
}

// settle confirms the records once the documents are read back: a
// written one's Pending becomes its Written; a refused or changed one
// keeps its Written, a refused one says why.
func (c *collection) settle(ctx context.Context, plans []*plan, written map[*plan]bool, refused map[int]bool) error {
	models := make([]mongo.WriteModel, 0, len(plans))
	for i, p := range plans {
		update := bson.D{{Key: "$unset", Value: bson.D{{Key: "pending", Value: ""}}}}
		switch {
		case written[p]:
			update = append(update, bson.E{Key: "$set", Value: bson.D{{Key: "written", Value: p.pending}}})
		case refused[i]:
			update = append(update, bson.E{Key: "$set", Value: bson.D{{Key: "conflict", Value: ReasonUnique}}})
		}
		models = append(models, mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: recordKey(c.coll.Name(), p.id)}}).SetUpdate(update))
	}
	if _, err := bulk(ctx, &c.cfg.Retry, c.cfg.DB.Collection(c.cfg.records()), models); err != nil {
		return fmt.Errorf("write %s: %w", c.cfg.records(), err)
	}
	return nil
}

// current reads back the changed fields of the planned documents.
func (c *collection) current(ctx context.Context, plans []*plan) (map[string]bson.D, error) {
	return c.currentFields(ctx, plans, c.tops())
}

func (c *collection) currentFields(ctx context.Context, plans []*plan, fields []string) (map[string]bson.D, error) {
	ids := make(bson.A, 0, len(plans))
	for _, p := range plans {
		ids = append(ids, p.id)
	}
	proj := bson.D{}
	for _, t := range fields {
		proj = append(proj, bson.E{Key: t, Value: 1})
	}
	out := map[string]bson.D{}
	err := c.cfg.Retry.Do(ctx, "read back "+c.coll.Name(), func(ctx context.Context) error {
		cur, err := c.coll.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, options.Find().SetProjection(proj))
		if err != nil {
			return err
		}
		defer cur.Close(ctx)
		clear(out)
		for cur.Next(ctx) {
			var d bson.D
			if err := cur.Decode(&d); err != nil {
				return err
			}
			out[idKey(docValue(d, "_id"))] = d
		}
		return cur.Err()
	})
	if err != nil {
		return nil, retry.Wrap("read back "+c.coll.Name(), err)
	}
	return out, nil
}

func onlyUnique(bwe mongo.BulkWriteException) bool {
	for _, we := range bwe.WriteErrors {
		if !servererr.DuplicateKey(int32(we.Code), we.Message) {
			return false
		}
	}
	return len(bwe.WriteErrors) > 0
}
