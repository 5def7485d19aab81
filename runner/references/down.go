package references

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/internal/sorted"
	"github.com/tenantmigrate/runner/runner/internal/writes"
	"github.com/tenantmigrate/runner/runner/lease"
)

// DownReport is what Down did.
type DownReport struct {
	// Restored are documents given back their original fields.
	Restored int64 `json:"restored"`
	// Changed are documents that no longer hold what the runner wrote
	// (the service changed them since): left as they are.
	Changed int64 `json:"changed_since"`
}

// Counts are the report as the down's counts.
func (r *DownReport) Counts() count.Counts {
	return count.Counts{count.Restored: r.Restored, count.ChangedSince: r.Changed}
}

// Notes are the report in a step's summary.
func (r *DownReport) Notes() []string {
	return []string{fmt.Sprintf("restored %d documents to their originals; %d the service changed since the rewrite, left as they are", r.Restored, r.Changed)}
}

// maxDownPasses bounds Down's passes over the records: each deletes what
// it read, so a second pass finds at most what a cursor missed.
const maxDownPasses = 10

// Down undoes Run: every recorded document that still holds what Run
// wrote gets its original fields back; then its record goes. Records go
// as their documents are done, so a killed Down is finished by running it
// again. cfg needs DB, Store, Batch.
func Down(ctx context.Context, cfg Config) (*DownReport, error) {
	cfg.Env = cfg.Env.WithDefaults()
	rep := &DownReport{}
	batch := writes.Batch[record]{Size: cfg.Batch, Flush: func(ctx context.Context, rs []record) error {
		return restore(ctx, cfg, rs, rep)
	}}
	// Natural order: the records are keyed by documents, and each is
	// deleted once done, so a run again resumes by itself. Passes go on
	// until one finds no record left: a down on FerretDB 2 that finished
	// without error once left 3 of 5,048 records unread (a cursor in
	// natural order over a collection it deletes from need not see them
	// all).
	for pass := 1; ; pass++ {
		if pass > maxDownPasses {
			return rep, fmt.Errorf("references down: records still left after %d passes over %s", maxDownPasses, cfg.records())
		}
		read := 0
		err := sorted.EachBy(ctx, cfg.DB.Collection(cfg.records()), nil, nil, nil, cfg.read(), func(raw bson.Raw) error {
			var r record
			if err := bson.Unmarshal(raw, &r); err != nil {
				return fmt.Errorf("read %s: %w", cfg.records(), err)
			}
			read++
			return batch.Add(ctx, r)
		})
		if err == nil {
			err = batch.Close(ctx)
		}
		if err != nil {
			return rep, fmt.Errorf("references down: %w", err)
		}
		if read == 0 {
			break
		}
	}
	return rep, clearCheckpoint(ctx, cfg)
}

func restore(ctx context.Context, cfg Config, batch []record, rep *DownReport) error {
	byColl := map[string][]record{}
	var colls []string
	for _, r := range batch {
		if byColl[r.Collection] == nil {
			colls = append(colls, r.Collection)
		}
		byColl[r.Collection] = append(byColl[r.Collection], r)
	}
	for _, name := range colls {
		coll := cfg.DB.Collection(name)
		var models []mongo.WriteModel
		for _, r := range byColl[name] {
			// The document holds what the runner wrote last, or what a
			// killed run was writing: either way the originals go back.
			for _, w := range []bson.D{r.Written, r.Pending} {
				if len(w) == 0 || holds(w, r.Original) {
					continue
				}
				models = append(models, mongo.NewUpdateOneModel().
					SetFilter(append(bson.D{{Key: "_id", Value: r.Document}}, w...)).
					SetUpdate(bson.D{{Key: "$set", Value: r.Original}}))
			}
		}
		if len(models) == 0 {
			continue
		}
		n, err := bulk(ctx, &cfg.Retry, coll, models)
		if err != nil {
			return fmt.Errorf("restore %s: %w", name, err)
		}
		rep.Restored += n
		// A document the runner wrote that does not hold its originals now
		// was changed by the service since: left as it is.
		c := &collection{cfg: cfg, coll: coll}
		var plans []*plan
		for _, r := range byColl[name] {
			if !holds(r.Written, r.Original) {
				plans = append(plans, &plan{id: r.Document})
			}
		}
		if len(plans) == 0 {
			continue
		}
		now, err := c.currentFields(ctx, plans, fieldsOf(byColl[name]))
		if err != nil {
			return err
		}
		for _, r := range byColl[name] {
			if cur, ok := now[idKey(r.Document)]; !holds(r.Written, r.Original) && (!ok || !holds(cur, r.Original)) {
				rep.Changed++
			}
		}
	}
	ids := make(bson.A, 0, len(batch))
	for _, r := range batch {
		ids = append(ids, r.ID)
	}
	return cfg.Retry.Do(ctx, "delete references records", func(ctx context.Context) error {
		return lease.Do(ctx, func(ctx context.Context) error {
			_, err := cfg.DB.Collection(cfg.records()).DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
			return err
		})
	})
}

// fieldsOf are the top-level fields the records changed.
func fieldsOf(rs []record) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range rs {
		for _, e := range r.Original {
			if !seen[e.Key] {
				seen[e.Key] = true
				out = append(out, e.Key)
			}
		}
	}
	return out
}
