package phase1

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/internal/writes"
)

// keyTable sorts identity keys so that the accounts sharing one are
// adjacent.
type keyTable struct{ t table }

func (k *keyTable) add(ctx context.Context, keys []keyDoc) error {
	docs := make([]any, len(keys))
	for i := range keys {
		docs[i] = keys[i]
	}
	// One account listing the same identity twice gives one key document.
	if err := k.t.insert(ctx, docs); err != nil {
		return fmt.Errorf("write identity keys: %w", err)
	}
	return nil
}

// runs calls fn for every key shared by two or more accounts.
func (k *keyTable) runs(ctx context.Context, fn func([]keyDoc) error) error {
	var run []keyDoc
	emit := func() error {
		if len(run) < 2 {
			return nil
		}
		return fn(run)
	}
	err := each(ctx, k.t, "identity keys", func(raw bson.Raw) error {
		var kd keyDoc
		if err := bson.Unmarshal(raw, &kd); err != nil {
			return fmt.Errorf("read identity keys: %w", err)
		}
		a, ok := model.IDFromKey(kd.ID[hashLen:])
		if !ok {
			return fmt.Errorf("read identity keys: a key without an account")
		}
		kd.A = a
		if len(run) > 0 && run[0].ID[:hashLen] != kd.ID[:hashLen] {
			if err := emit(); err != nil {
				return err
			}
			run = run[:0]
		}
		run = append(run, kd)
		return nil
	})
	if err != nil {
		return err
	}
	return emit()
}

// each calls fn with every document of t in order. Its own read errors
// say they read what; fn's come back as they are.
func each(ctx context.Context, t table, what string, fn func(bson.Raw) error) error {
	r, err := t.open(ctx)
	if err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	defer r.Close(ctx)
	for {
		raw, ok := r.Next(ctx)
		if !ok {
			if err := r.Err(); err != nil {
				return fmt.Errorf("read %s: %w", what, err)
			}
			return nil
		}
		if err := fn(raw); err != nil {
			return err
		}
	}
}

// groupTable brings the accounts of each group together.
type groupTable struct{ t table }

func (g *groupTable) put(ctx context.Context, docs []groupDoc) error {
	if len(docs) == 0 {
		return nil
	}
	out := make([]any, len(docs))
	for i := range docs {
		out[i] = docs[i]
	}
	if err := g.t.insert(ctx, out); err != nil {
		return fmt.Errorf("write group members: %w", err)
	}
	return nil
}

// groups calls fn with the accounts of each group, in group-key order.
func (g *groupTable) groups(ctx context.Context, fn func([]groupDoc) error) error {
	var group []groupDoc
	err := each(ctx, g.t, "group members", func(raw bson.Raw) error {
		var gd groupDoc
		if err := bson.Unmarshal(raw, &gd); err != nil {
			return fmt.Errorf("read group members: %w", err)
		}
		gd.Doc = append(bson.Raw(nil), gd.Doc...)
		if len(group) > 0 && group[0].G != gd.G {
			if err := fn(group); err != nil {
				return err
			}
			group = nil
		}
		group = append(group, gd)
		return nil
	})
	if err != nil {
		return err
	}
	if len(group) > 0 {
		return fn(group)
	}
	return nil
}

// writer batches phase 1's writes. Order within a flush: tenant accounts,
// then superseded tenant accounts, then links, so that a link never points
// at a tenant account not yet written, and the survivor's link (holding the
// hash of its tenant account) is written last.
type writer struct {
	cfg        Config
	rep        *Report
	inserts    []any
	compare    map[model.ID]bson.Raw
	supersedes []model.ID
	newLinks   []any
	oldLinks   []model.Link
}

func newWriter(cfg Config, rep *Report) *writer {
	return &writer{cfg: cfg, rep: rep, compare: map[model.ID]bson.Raw{}}
}

func (w *writer) pending() int {
	return len(w.inserts) + len(w.compare) + len(w.supersedes) + len(w.newLinks) + len(w.oldLinks)
}

func (w *writer) insertTenant(raw bson.Raw)               { w.inserts = append(w.inserts, raw) }
func (w *writer) compareTenant(id model.ID, raw bson.Raw) { w.compare[id] = raw }
func (w *writer) supersede(id model.ID)                   { w.supersedes = append(w.supersedes, id) }

func (w *writer) link(l model.Link, exists bool) {
	if exists {
		w.oldLinks = append(w.oldLinks, l)
	} else {
		w.newLinks = append(w.newLinks, l)
	}
}

func (w *writer) flush(ctx context.Context) error {
	tenants := w.cfg.DB.Collection(w.cfg.TenantsAccounts)
	links := w.cfg.DB.Collection(w.cfg.Links)
	dry := w.cfg.DryRun
	rp := &w.cfg.Retry // every write below is idempotent: keyed, or a replace

	if len(w.compare) > 0 {
		ids := make([]model.ID, 0, len(w.compare))
		for id := range w.compare {
			ids = append(ids, id)
		}
		slices.SortFunc(ids, model.ID.Compare)
		existing, err := findIDs(ctx, rp, tenants, ids, nil, "read tenant accounts")
		if err != nil {
			return err
		}
		var models []mongo.WriteModel
		for _, id := range ids {
			if bytes.Equal(existing[id], w.compare[id]) {
				w.rep.TenantsSame++
				continue
			}
			w.rep.TenantsReplaced++
			models = append(models, mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: id}}).SetReplacement(w.compare[id]).SetUpsert(true))
		}
		if len(models) > 0 && !dry {
			if _, err := writes.BulkWrite(ctx, rp, tenants, models); err != nil {
				return fmt.Errorf("replace tenant accounts: %w", err)
			}
		}
	}
	if len(w.inserts) > 0 {
		w.rep.TenantsInserted += len(w.inserts)
		if !dry {
			if err := writes.InsertMany(ctx, rp, tenants, w.inserts); err != nil {
				return fmt.Errorf("insert tenant accounts: %w", err)
			}
		}
	}
	if len(w.supersedes) > 0 {
		w.rep.Superseded += len(w.supersedes)
		if !dry {
			if _, err := writes.DeleteIDs(ctx, rp, tenants, w.supersedes); err != nil {
				return fmt.Errorf("delete superseded tenant accounts: %w", err)
			}
		}
	}
	if len(w.oldLinks) > 0 {
		w.rep.LinksWritten += len(w.oldLinks)
		if !dry {
			models := make([]mongo.WriteModel, len(w.oldLinks))
			for i, l := range w.oldLinks {
				models[i] = mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: l.LegacyID}}).SetReplacement(l).SetUpsert(true)
			}
			if _, err := writes.BulkWrite(ctx, rp, links, models); err != nil {
				return fmt.Errorf("replace links: %w", err)
			}
		}
	}
	if len(w.newLinks) > 0 {
		w.rep.LinksWritten += len(w.newLinks)
		if !dry {
			if err := writes.InsertMany(ctx, rp, links, w.newLinks); err != nil {
				return fmt.Errorf("insert links: %w", err)
			}
		}
	}
	w.inserts, w.supersedes, w.newLinks, w.oldLinks = nil, nil, nil, nil
	w.compare = map[model.ID]bson.Raw{}
	return nil
}
