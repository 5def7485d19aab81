package phase1

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/internal/join"
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
	keys, err := stream(ctx, k.t, join.Spec[keyDoc, string]{
		What: "identity keys",
		Decode: func(raw bson.Raw) (keyDoc, error) {
			var kd keyDoc
			if err := bson.Unmarshal(raw, &kd); err != nil {
				return kd, err
			}
			a, ok := model.IDFromKey(kd.ID[hashLen:])
			if !ok {
				return kd, errors.New("a key without an account")
			}
			kd.A = a
			return kd, nil
		},
		Key:     func(kd keyDoc) string { return kd.ID[:hashLen] },
		Compare: strings.Compare,
	})
	if err != nil {
		return err
	}
	defer keys.Close(ctx)
	return keys.Groups(ctx, func(run []keyDoc) error {
		if len(run) < 2 {
			return nil
		}
		return fn(run)
	})
}

// stream reads table t as spec says.
func stream[T, K any](ctx context.Context, t table, spec join.Spec[T, K]) (*join.Stream[T, K], error) {
	r, err := t.open(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", spec.What, err)
	}
	return join.New(r, spec), nil
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
	members, err := stream(ctx, g.t, join.Spec[groupDoc, model.ID]{
		What: "group members",
		Decode: func(raw bson.Raw) (groupDoc, error) {
			var gd groupDoc
			err := bson.Unmarshal(raw, &gd)
			gd.Doc = append(bson.Raw(nil), gd.Doc...) // held past the next read
			return gd, err
		},
		Key:     func(gd groupDoc) model.ID { return gd.G },
		Compare: model.ID.Compare,
	})
	if err != nil {
		return err
	}
	defer members.Close(ctx)
	return members.Groups(ctx, fn)
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

// flush counts the batch and, unless the run is dry, writes it.
func (w *writer) flush(ctx context.Context) error {
	replaces, err := w.changedTenants(ctx)
	if err != nil {
		return err
	}
	w.rep.TenantsInserted += len(w.inserts)
	w.rep.Superseded += len(w.supersedes)
	w.rep.LinksWritten += len(w.oldLinks) + len(w.newLinks)
	if !w.cfg.DryRun {
		if err := w.write(ctx, replaces); err != nil {
			return err
		}
	}
	w.inserts, w.supersedes, w.newLinks, w.oldLinks = nil, nil, nil, nil
	w.compare = map[model.ID]bson.Raw{}
	return nil
}

// changedTenants reads the tenant accounts to compare, counts those that
// are the same, and returns the replaces of the others.
func (w *writer) changedTenants(ctx context.Context) ([]mongo.WriteModel, error) {
	if len(w.compare) == 0 {
		return nil, nil
	}
	ids := make([]model.ID, 0, len(w.compare))
	for id := range w.compare {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, model.ID.Compare)
	existing, err := findIDs(ctx, &w.cfg.Retry, w.cfg.DB.Collection(w.cfg.TenantsAccounts), ids, nil, "read tenant accounts")
	if err != nil {
		return nil, err
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
	return models, nil
}

// write writes the batch in the writer's order. Every write is idempotent:
// keyed, or a replace.
func (w *writer) write(ctx context.Context, replaces []mongo.WriteModel) error {
	tenants := w.cfg.DB.Collection(w.cfg.TenantsAccounts)
	links := w.cfg.DB.Collection(w.cfg.Links)
	rp := &w.cfg.Retry
	if len(replaces) > 0 {
		if _, err := writes.BulkWrite(ctx, rp, tenants, replaces); err != nil {
			return fmt.Errorf("replace tenant accounts: %w", err)
		}
	}
	if err := writes.InsertMany(ctx, rp, tenants, w.inserts); err != nil {
		return fmt.Errorf("insert tenant accounts: %w", err)
	}
	if _, err := writes.DeleteIDs(ctx, rp, tenants, w.supersedes); err != nil {
		return fmt.Errorf("delete superseded tenant accounts: %w", err)
	}
	if len(w.oldLinks) > 0 {
		models := make([]mongo.WriteModel, len(w.oldLinks))
		for i, l := range w.oldLinks {
			models[i] = mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: l.LegacyID}}).SetReplacement(l).SetUpsert(true)
		}
		if _, err := writes.BulkWrite(ctx, rp, links, models); err != nil {
			return fmt.Errorf("replace links: %w", err)
		}
	}
	if err := writes.InsertMany(ctx, rp, links, w.newLinks); err != nil {
		return fmt.Errorf("insert links: %w", err)
	}
	return nil
}
