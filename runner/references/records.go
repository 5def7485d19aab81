package references

// The records of what the step changed, written before each change, for
// its down and for a run killed in between.

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/model"
)

// record is a document's entry in Records: the originals of the fields the
// runner changed, kept from the first change on, and what it wrote last.
type record struct {
	// ID is recordKey(Collection, Document): a string, which every engine
	// finds by its _id index (FerretDB 1 scans for a document _id).
	ID         string `bson:"_id"`
	Collection string `bson:"c"`
	Document   any    `bson:"d"`
	// Original are the changed fields as they were before the runner
	// first changed them; Written as the runner last wrote them and saw
	// them written (equal to Original: nothing written).
	Original bson.D `bson:"original"`
	Written  bson.D `bson:"written"`
	// Pending are the fields as the runner is about to write them: a run
	// killed between its write and its read-back leaves the document
	// holding either Written or Pending, and Down restores from both.
	Pending  bson.D `bson:"pending,omitempty"`
	Conflict string `bson:"conflict,omitempty"`
}

// recordKey keys the record of a document of coll by its _id's BSON bytes.
func recordKey(coll string, id any) string { return coll + ":" + hex.EncodeToString(encoded(id)) }

// records reads the records of the plans' documents (those matching more
// too), by the document's idKey.
func (c *collection) records(ctx context.Context, plans []*plan, more ...bson.E) (map[string]record, error) {
	ids := make(bson.A, 0, len(plans))
	for _, p := range plans {
		ids = append(ids, recordKey(c.coll.Name(), p.id))
	}
	filter := append(bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, more...)
	out := map[string]record{}
	err := c.cfg.Retry.Do(ctx, "read references records", func(ctx context.Context) error {
		cur, err := c.cfg.DB.Collection(c.cfg.records()).Find(ctx, filter)
		if err != nil {
			return err
		}
		defer cur.Close(ctx)
		clear(out)
		for cur.Next(ctx) {
			var r record
			if err := cur.Decode(&r); err != nil {
				return err
			}
			out[idKey(r.Document)] = r
		}
		return cur.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", c.cfg.records(), err)
	}
	return out, nil
}

// record writes the records of plans before their documents are written:
// a run killed in between leaves records whose document does not hold
// what they say was written, which Down leaves alone.
func (c *collection) record(ctx context.Context, plans []*plan) error {
	existing, err := c.records(ctx, plans)
	if err != nil {
		return err
	}
	records := c.cfg.DB.Collection(c.cfg.records())
	models := make([]mongo.WriteModel, 0, len(plans))
	for _, p := range plans {
		old, had := existing[idKey(p.id)]
		r := record{ID: recordKey(c.coll.Name(), p.id), Collection: c.coll.Name(), Document: p.id}
		if had {
			r.Original, r.Written = slices.Clone(old.Original), slices.Clone(old.Written)
		}
		for _, e := range p.before {
			ours := false
			if had {
				if _, ok := model.Get(old.Original, e.Key); ok {
					w, _ := model.Get(old.Written, e.Key)
					pv, pending := model.Get(old.Pending, e.Key)
					switch {
					case pending && sameValue(pv, e.Value):
						// A killed run's write went through: it is ours.
						ours = true
						r.Written = model.Set(r.Written, e.Key, e.Value)
					case sameValue(w, e.Value):
						ours = true
					}
				}
			}
			if !ours {
				// Nothing of the runner's is in the field (never written, or
				// the service wrote it since): its original is what was read.
				r.Original = model.Set(r.Original, e.Key, e.Value)
				r.Written = model.Set(r.Written, e.Key, e.Value)
			}
		}
		r.Pending = slices.Clone(r.Written)
		for _, e := range p.after {
			r.Pending = model.Set(r.Pending, e.Key, e.Value)
		}
		p.pending = r.Pending
		models = append(models, mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: r.ID}}).SetReplacement(r).SetUpsert(true))
	}
	if _, err := bulk(ctx, &c.cfg.Retry, records, models); err != nil {
		return fmt.Errorf("write %s: %w", c.cfg.records(), err)
	}
	return nil
}

// recordConflicts keeps, in Records, why documents were left as they are
// (for verify); a record's earlier original stays.
func (c *collection) recordConflicts(ctx context.Context, plans []*plan) error {
	if len(plans) == 0 {
		return nil
	}
	models := make([]mongo.WriteModel, 0, len(plans))
	for _, p := range plans {
		models = append(models, mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: recordKey(c.coll.Name(), p.id)}}).
			SetUpdate(bson.D{
				{Key: "$set", Value: bson.D{{Key: "conflict", Value: p.conflict}}},
				{Key: "$setOnInsert", Value: bson.D{{Key: "c", Value: c.coll.Name()}, {Key: "d", Value: p.id}, {Key: "original", Value: p.before}, {Key: "written", Value: p.before}}},
			}).SetUpsert(true))
	}
	if _, err := bulk(ctx, &c.cfg.Retry, c.cfg.DB.Collection(c.cfg.records()), models); err != nil {
		return fmt.Errorf("write %s: %w", c.cfg.records(), err)
	}
	return nil
}
