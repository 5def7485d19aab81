package phase1

import (
	"bytes"
	"context"
	"fmt"
	"sort"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/internal/sorted"
	"github.com/tenantmigrate/runner/runner/internal/writes"
)

// scan reads coll in _id order, batch documents per round trip.
func scan(ctx context.Context, coll *mongo.Collection, batch int, proj bson.D, fn func(bson.Raw) error) error {
	return sorted.Each(ctx, coll, nil, proj, batch, fn)
}

// scanNatural reads coll in the order the server keeps it, for a pass that
// joins nothing: a server that cannot sort from an index (FerretDB) would
// otherwise read and sort the whole collection before the first document.
func scanNatural(ctx context.Context, coll *mongo.Collection, batch int, proj bson.D, fn func(bson.Raw) error) error {
	opts := options.Find().SetBatchSize(int32(batch))
	if proj != nil {
		opts.SetProjection(proj)
	}
	cur, err := coll.Find(ctx, bson.D{}, opts)
	if err != nil {
		return err
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		if err := fn(cur.Current); err != nil {
			return err
		}
	}
	return cur.Err()
}

// keyIndex sorts identity keys so that accounts sharing one are adjacent:
// a scratch collection for real runs, memory for dry runs (which write
// nothing, at the cost of memory that grows with the number of identities).
type keyIndex interface {
	add(ctx context.Context, keys []keyDoc) error
	// runs calls fn for every key shared by two or more accounts.
	runs(ctx context.Context, fn func([]keyDoc) error) error
	drop(ctx context.Context) error
}

type collKeys struct{ coll *mongo.Collection }

func (k *collKeys) add(ctx context.Context, keys []keyDoc) error {
	if len(keys) == 0 {
		return nil
	}
	docs := make([]any, len(keys))
	for i := range keys {
		docs[i] = keys[i]
	}
	// One account listing the same identity twice gives one key document.
	if err := writes.InsertMany(ctx, k.coll, docs); err != nil {
		return fmt.Errorf("write identity keys: %w", err)
	}
	return nil
}

func (k *collKeys) runs(ctx context.Context, fn func([]keyDoc) error) error {
	var run []keyDoc
	emit := func() error {
		if len(run) < 2 {
			return nil
		}
		return fn(run)
	}
	err := scan(ctx, k.coll, 1000, nil, func(raw bson.Raw) error {
		var kd keyDoc
		if err := bson.Unmarshal(raw, &kd); err != nil {
			return err
		}
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
		return fmt.Errorf("read identity keys: %w", err)
	}
	return emit()
}

func (k *collKeys) drop(ctx context.Context) error { return k.coll.Drop(ctx) }

type memKeys struct{ m map[string][]keyDoc }

func (k *memKeys) add(_ context.Context, keys []keyDoc) error {
	if k.m == nil {
		k.m = map[string][]keyDoc{}
	}
	for _, kd := range keys {
		h := kd.ID[:hashLen]
		if run := k.m[h]; len(run) == 0 || run[len(run)-1].A != kd.A {
			k.m[h] = append(run, kd)
		}
	}
	return nil
}

func (k *memKeys) runs(_ context.Context, fn func([]keyDoc) error) error {
	hashes := make([]string, 0, len(k.m))
	for h, run := range k.m {
		if len(run) > 1 {
			hashes = append(hashes, h)
		}
	}
	sort.Strings(hashes)
	for _, h := range hashes {
		if err := fn(k.m[h]); err != nil {
			return err
		}
	}
	return nil
}

func (k *memKeys) drop(context.Context) error { k.m = nil; return nil }

// groupStore brings the accounts of each group together.
type groupStore interface {
	put(ctx context.Context, docs []groupDoc) error
	// groups calls fn with the accounts of each group, in group-key order.
	groups(ctx context.Context, fn func([]groupDoc) error) error
	drop(ctx context.Context) error
}

type collGroups struct{ coll *mongo.Collection }

func (g *collGroups) put(ctx context.Context, docs []groupDoc) error {
	if len(docs) == 0 {
		return nil
	}
	out := make([]any, len(docs))
	for i := range docs {
		out[i] = docs[i]
	}
	if err := writes.InsertMany(ctx, g.coll, out); err != nil {
		return fmt.Errorf("write group members: %w", err)
	}
	return nil
}

func (g *collGroups) groups(ctx context.Context, fn func([]groupDoc) error) error {
	cur, err := g.coll.Find(ctx, bson.D{}, options.Find().
		SetSort(bson.D{{Key: "g", Value: 1}, {Key: "_id", Value: 1}}).SetAllowDiskUse(true).SetBatchSize(1000))
	if err != nil {
		return fmt.Errorf("read group members: %w", err)
	}
	defer cur.Close(ctx)
	var group []groupDoc
	for cur.Next(ctx) {
		var gd groupDoc
		if err := cur.Decode(&gd); err != nil {
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
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("read group members: %w", err)
	}
	if len(group) > 0 {
		return fn(group)
	}
	return nil
}

func (g *collGroups) drop(ctx context.Context) error { return g.coll.Drop(ctx) }

type memGroups struct{ m map[string][]groupDoc }

func (g *memGroups) put(_ context.Context, docs []groupDoc) error {
	if g.m == nil {
		g.m = map[string][]groupDoc{}
	}
	for _, d := range docs {
		g.m[d.G] = append(g.m[d.G], d)
	}
	return nil
}

func (g *memGroups) groups(_ context.Context, fn func([]groupDoc) error) error {
	keys := make([]string, 0, len(g.m))
	for k := range g.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := fn(g.m[k]); err != nil {
			return err
		}
	}
	return nil
}

func (g *memGroups) drop(context.Context) error { g.m = nil; return nil }

// writer batches phase 1's writes. Order within a flush: tenant accounts,
// then superseded tenant accounts, then links, so that a link never points
// at a tenant account not yet written, and the survivor's link (holding the
// hash of its tenant account) is written last.
type writer struct {
	cfg        Config
	rep        *Report
	inserts    []any
	compare    map[string]bson.Raw
	supersedes []string
	newLinks   []any
	oldLinks   []model.Link
}

func newWriter(cfg Config, rep *Report) *writer {
	return &writer{cfg: cfg, rep: rep, compare: map[string]bson.Raw{}}
}

func (w *writer) pending() int {
	return len(w.inserts) + len(w.compare) + len(w.supersedes) + len(w.newLinks) + len(w.oldLinks)
}

func (w *writer) insertTenant(raw bson.Raw)             { w.inserts = append(w.inserts, raw) }
func (w *writer) compareTenant(id string, raw bson.Raw) { w.compare[id] = raw }
func (w *writer) supersede(id string)                   { w.supersedes = append(w.supersedes, id) }

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

	if len(w.compare) > 0 {
		ids := make([]string, 0, len(w.compare))
		for id := range w.compare {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		cur, err := tenants.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
		if err != nil {
			return fmt.Errorf("read tenant accounts: %w", err)
		}
		existing := map[string]bson.Raw{}
		for cur.Next(ctx) {
			id, _ := cur.Current.Lookup("_id").StringValueOK()
			existing[id] = append(bson.Raw(nil), cur.Current...)
		}
		if err := cur.Err(); err != nil {
			return fmt.Errorf("read tenant accounts: %w", err)
		}
		cur.Close(ctx)
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
			if _, err := tenants.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
				return fmt.Errorf("replace tenant accounts: %w", err)
			}
		}
	}
	if len(w.inserts) > 0 {
		w.rep.TenantsInserted += len(w.inserts)
		if !dry {
			if err := writes.InsertMany(ctx, tenants, w.inserts); err != nil {
				return fmt.Errorf("insert tenant accounts: %w", err)
			}
		}
	}
	if len(w.supersedes) > 0 {
		w.rep.Superseded += len(w.supersedes)
		if !dry {
			if _, err := tenants.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: w.supersedes}}}}); err != nil {
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
			if _, err := links.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
				return fmt.Errorf("replace links: %w", err)
			}
		}
	}
	if len(w.newLinks) > 0 {
		w.rep.LinksWritten += len(w.newLinks)
		if !dry {
			if err := writes.InsertMany(ctx, links, w.newLinks); err != nil {
				return fmt.Errorf("insert links: %w", err)
			}
		}
	}
	w.inserts, w.supersedes, w.newLinks, w.oldLinks = nil, nil, nil, nil
	w.compare = map[string]bson.Raw{}
	return nil
}
