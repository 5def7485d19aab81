package phase2

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
	"github.com/tenantmigrate/runner/runner/internal/join"
	"github.com/tenantmigrate/runner/runner/internal/sorted"
	"github.com/tenantmigrate/runner/runner/internal/writes"
)

// runFallback is the path for servers without $merge: the same transform in
// Go over one merge join, legacy accounts ⋈ links ⋈ tenant accounts by _id,
// from the checkpoint `after` on. Memory holds one batch.
//
// It checks every account it reads, and counts the invalid ones when Run
// did not (countInScan). Unless they are skipped, the first one it meets
// ends the writes: the batch in hand is dropped, the checkpoint stays before
// it, and the scan goes on only to list the others for the error. Only an
// account that turned bad after the last full check (this run's phase 1, or
// Run's scan) can get there: what was written before it is correct, and a
// run after the fix resumes from the checkpoint.
func runFallback(ctx context.Context, cfg Config, orgOf map[string]string, after model.ID, rep *Report, countInScan bool) error {
	var filter bson.D
	if cfg.Scope != nil {
		filter = cfg.scope().MigratedIDs()
	}
	if !after.IsZero() {
		rep.Resumed = after.String()
		// Resumed, the accounts before the checkpoint were done, and Run
		// counted the bad ones.
		filter = (&pipelines.Range{After: after}).MigratedIDs()
	}
	f, err := openFallback(ctx, cfg, orgOf, filter, rep)
	if err != nil {
		return err
	}
	defer f.close(ctx)
	task := cfg.Progress.Start("phase 2: copy", cfg.Total)
	defer task.Done()
	read := 0
	err = sorted.Each(ctx, cfg.DB.Collection(cfg.Names.Accounts), filter, nil, cfg.read(), func(raw bson.Raw) error {
		read++
		task.Add(1)
		done, err := f.account(ctx, raw)
		if err != nil || !done {
			return err
		}
		if read%cfg.Batch == 0 || f.w.pending() >= cfg.Batch {
			return f.w.flush(ctx)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if countInScan || f.w.stopped {
		rep.Invalid = max(rep.Invalid, f.seen.Invalid)
		if len(rep.FirstBad) == 0 || f.w.stopped {
			rep.FirstBad = f.seen.FirstBad
		}
	}
	if f.w.stopped {
		return invalidError(rep, "writing stopped at the first of them (the tenant accounts written before it are complete)")
	}
	if err := f.w.flush(ctx); err != nil {
		return err
	}
	if cfg.DryRun || cfg.Scope != nil {
		return nil
	}
	return clearCheckpoint(ctx, cfg)
}

// fallback is the join of runFallback: the links and the tenant accounts
// beside the legacy scan, and what it has seen and has to write.
type fallback struct {
	cfg     Config
	orgOf   map[string]string
	links   *join.Stream[join.Doc, model.ID]
	tenants *join.Stream[join.Doc, model.ID]
	w       *batchWriter
	// seen counts what this scan meets; it is the report's count when Run
	// did not count, and the error's when an account turned bad since.
	seen *Report
}

func openFallback(ctx context.Context, cfg Config, orgOf map[string]string, filter bson.D, rep *Report) (*fallback, error) {
	links, err := sorted.Open(ctx, cfg.DB.Collection(cfg.Names.Links), filter, bson.D{{Key: "_id", Value: 1}}, cfg.read())
	if err != nil {
		return nil, fmt.Errorf("read links: %w", err)
	}
	tenants, err := sorted.Open(ctx, cfg.DB.Collection(cfg.Names.TenantsAccounts), filter, bson.D{{Key: model.FieldOrgID, Value: 1}, {Key: model.FieldDateUpdated, Value: 1}}, cfg.read())
	if err != nil {
		links.Close(ctx)
		return nil, fmt.Errorf("read tenant accounts: %w", err)
	}
	return &fallback{
		cfg: cfg, orgOf: orgOf,
		links:   join.ByID(links, "links"),
		tenants: join.ByID(tenants, "tenant accounts"),
		w:       &batchWriter{cfg: cfg, rep: rep},
		seen:    &Report{},
	}, nil
}

func (f *fallback) close(ctx context.Context) {
	f.links.Close(ctx)
	f.tenants.Close(ctx)
}

// bad counts an invalid account; unless they are skipped, it ends the
// writes.
func (f *fallback) bad(id bson.RawValue, reason string) {
	noteInvalid(f.seen, id, reason)
	if !f.cfg.SkipInvalid && !f.cfg.DryRun {
		f.w.stop()
	}
}

// account checks one legacy account and queues its tenant account: an
// insert, a refresh of one that is out of date, or nothing. done: the
// account is this path's and the checkpoint may move past it (not an
// invalid account, nor one phase 1 merged, nor any once writing stopped).
func (f *fallback) account(ctx context.Context, raw bson.Raw) (done bool, err error) {
	rep := f.w.rep
	id, ok := model.IDOf(raw.Lookup("_id"))
	if !ok {
		f.bad(raw.Lookup("_id"), pipelines.ReasonID)
		return false, nil
	}
	var legacy bson.D
	if err := bson.Unmarshal(raw, &legacy); err != nil {
		return false, fmt.Errorf("decode account %s: %w", id, err)
	}
	if reason := pipelines.Invalid(legacy, f.orgOf); reason != "" {
		f.bad(raw.Lookup("_id"), reason)
		return false, nil
	}
	if f.w.stopped {
		return false, nil
	}
	if _, merged, err := f.links.SkipTo(ctx, id); err != nil || merged {
		if merged {
			rep.Merged++
		}
		return false, err
	}
	existing, exists, err := f.tenants.SkipTo(ctx, id)
	if err != nil {
		return false, err
	}
	ao, _ := raw.Lookup(model.FieldAppOrgID).StringValueOK()
	tenant, err := pipelines.OneToOne(legacy, f.orgOf[ao])
	if err != nil {
		return false, fmt.Errorf("account %s: %w", id, err)
	}
	switch {
	case !exists:
		rep.Inserted++
		f.w.inserts = append(f.w.inserts, tenant)
	default:
		var old bson.D
		if err := bson.Unmarshal(existing.Raw, &old); err != nil {
			return false, fmt.Errorf("decode tenant %s: %w", id, err)
		}
		if pipelines.Refresh(old, tenant) {
			rep.Refreshed++
			// A copy: raw lives only until the legacy cursor moves.
			filter := pipelines.SameDateFilter(f.w.cfg.ShardKey, own(raw.Lookup(model.FieldID)), own(existing.Raw.Lookup(model.FieldOrgID)), own(existing.Raw.Lookup(model.FieldDateUpdated)))
			f.w.replaces = append(f.w.replaces, mongo.NewReplaceOneModel().SetFilter(filter).SetReplacement(tenant))
		} else {
			rep.Unchanged++
		}
	}
	f.w.last = id
	return true, nil
}

// batchWriter writes one batch, then records how far the run got: every
// account up to last is done.
type batchWriter struct {
	cfg      Config
	rep      *Report
	inserts  []any
	replaces []mongo.WriteModel
	last     model.ID
	// stopped: an invalid account was met; nothing more is written.
	stopped bool
}

// pending is how many writes the batch holds.
func (w *batchWriter) pending() int { return len(w.inserts) + len(w.replaces) }

func (w *batchWriter) stop() {
	if w.stopped {
		return
	}
	w.stopped = true
	w.rep.Inserted -= int64(len(w.inserts))
	w.rep.Refreshed -= int64(len(w.replaces))
	w.inserts, w.replaces, w.last = nil, nil, model.ID{}
}

func (w *batchWriter) flush(ctx context.Context) error {
	if w.cfg.DryRun || w.stopped {
		w.inserts, w.replaces = nil, nil
		return nil
	}
	tenants := w.cfg.DB.Collection(w.cfg.Names.TenantsAccounts)
	if len(w.inserts) > 0 {
		if err := writes.InsertMany(ctx, &w.cfg.Retry, tenants, w.inserts); err != nil {
			return fmt.Errorf("insert tenant accounts: %w", err)
		}
	}
	if len(w.replaces) > 0 {
		if w.cfg.beforeRefresh != nil {
			w.cfg.beforeRefresh()
		}
		res, err := writes.BulkWrite(ctx, &w.cfg.Retry, tenants, w.replaces)
		if err != nil {
			return fmt.Errorf("refresh tenant accounts: %w", err)
		}
		// A tenant whose date changed since it was read is kept.
		kept := int64(len(w.replaces)) - res.MatchedCount
		w.rep.Refreshed -= kept
		w.rep.Unchanged += kept
	}
	w.inserts, w.replaces = nil, nil
	if w.last.IsZero() || w.cfg.Scope != nil {
		return nil
	}
	return saveCheckpoint(ctx, w.cfg, w.last)
}

// own copies a value out of a cursor's buffer.
func own(v bson.RawValue) bson.RawValue {
	v.Value = append([]byte(nil), v.Value...)
	return v
}
