package phase2

import (
	"context"
	"fmt"
	"sort"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
	"github.com/tenantmigrate/runner/runner/internal/refusal"
	"github.com/tenantmigrate/runner/runner/internal/scratch"
	"github.com/tenantmigrate/runner/runner/internal/servererr"
	"github.com/tenantmigrate/runner/runner/progress"
	"github.com/tenantmigrate/runner/runner/step"
)

// Probe finds the best path the server takes, as Run does before it writes
// (see probe). cfg needs DB and may set ScratchPrefix and ExactCounts.
func Probe(ctx context.Context, cfg Config) (*ProbeReport, error) {
	return probe(ctx, cfg.withDefaults())
}

// probe finds the best path the server takes, by running each server-side
// path's own code (the very pipelines and writes of a real run) over a few
// accounts in scratch collections of its own, best path first, and checking
// that the tenant accounts it leaves are the ones the Go transform expects.
// A version string says nothing of this: FerretDB 2 calls itself MongoDB 7
// and refuses a pipeline in whenMatched. The legacy collections are never
// touched; the scratch collections are dropped afterwards.
//
// A refusal is any answer of the server (an error, or a wrong result); a
// network error or a cancelled context is no answer and fails the run.
func probe(ctx context.Context, cfg Config) (*ProbeReport, error) {
	start := time.Now()
	prefix := cfg.ScratchPrefix + "_p2probe_"
	if err := scratch.Drop(ctx, cfg.DB, prefix, ""); err != nil { // a killed probe's
		return nil, fmt.Errorf("probe: %w", err)
	}
	id := scratch.RunID()
	pc := cfg
	pc.Names = model.Names{
		Accounts:                  prefix + "accounts_" + id,
		TenantsAccounts:           prefix + "tenants_" + id,
		ApplicationsOrganizations: prefix + "app_orgs_" + id,
		Links:                     prefix + "links_" + id,
	}
	pc.Store = &step.MemoryStore{Prefix: prefix + "records_" + id + "_"} // never the real checkpoint
	pc.RangeSize, pc.DryRun, pc.Progress, pc.Total = 0, false, progress.Discard{}, 0
	pc.Scope = nil // the probe's own accounts, not a catch-up's
	defer func() { _ = scratch.Drop(context.WithoutCancel(ctx), cfg.DB, prefix, "_"+id) }()

	w := newProbeWorld()
	rep := &ProbeReport{Chose: PathStream}
	for _, path := range []Path{PathMerge, PathSplit} {
		if err := w.seed(ctx, pc); err != nil {
			return nil, fmt.Errorf("probe: %w", err)
		}
		err := runServer(ctx, pc, path, w.valid, model.ID{}, &Report{Path: path, Exact: path == PathSplit || cfg.ExactCounts})
		if err == nil {
			err = w.check(ctx, pc)
		}
		if err == nil {
			rep.Chose = path
			break
		}
		if servererr.NoAnswer(ctx, err) {
			return nil, fmt.Errorf("probe of path %s: %w", path, err)
		}
		rep.Refused = append(rep.Refused, Refusal{Path: path, Error: refusal.OneLine(err.Error())})
	}
	rep.Took = time.Since(start).Round(time.Millisecond).String()
	return rep, nil
}

// probeWorld is the probe's data: one account of each kind the paths treat
// apart, with the values that matter to them (dates, a null, a nested
// document, a missing app-level field, an ObjectId _id, whose membership id
// needs $toString).
type probeWorld struct {
	appOrgs, links, accounts, tenants []bson.D
	valid                             []string
	want                              map[model.ID]bson.D // tenant accounts after the run, by _id
}

func newProbeWorld() *probeWorld {
	t0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	older, newer := t0, t0.Add(time.Hour)
	account := func(id any, updated time.Time) bson.D {
		return bson.D{
			{Key: model.FieldID, Value: id},
			{Key: model.FieldAppOrgID, Value: "probe_ao"},
			{Key: model.FieldPermissions, Value: bson.A{bson.D{{Key: "name", Value: "read"}}}},
			{Key: model.FieldPreferences, Value: nil},
			{Key: model.FieldAuthTypes, Value: bson.A{bson.D{{Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: fmt.Sprint(id) + "@probe"}}}},
			{Key: "profile", Value: bson.D{{Key: "first_name", Value: "probe"}}},
			{Key: model.FieldDateCreated, Value: older},
			{Key: model.FieldDateUpdated, Value: updated},
		}
	}
	w := &probeWorld{
		appOrgs: []bson.D{{{Key: "_id", Value: "probe_ao"}, {Key: model.FieldOrgID, Value: "probe_org"}}},
		links:   []bson.D{{{Key: "_id", Value: "p-linked"}, {Key: "tenant_id", Value: "p-linked"}}},
		valid:   []string{"probe_ao"},
		want:    map[model.ID]bson.D{},
	}
	// Every tenant account holds its org_id, the shard key of a sharded
	// target, which the writes' filters and $merge's `on` then carry.
	kept := bson.D{{Key: "_id", Value: "p-fresh"}, {Key: model.FieldOrgID, Value: "probe_org"}, {Key: "username", Value: "edited by the service"}, {Key: model.FieldDateUpdated, Value: newer.Add(time.Hour)}}
	phase1 := bson.D{{Key: "_id", Value: "p-linked"}, {Key: model.FieldOrgID, Value: "probe_org"}, {Key: "username", Value: "phase 1"}}
	w.tenants = []bson.D{
		{{Key: "_id", Value: "p-stale"}, {Key: model.FieldOrgID, Value: "probe_org"}, {Key: "username", Value: "before the legacy edit"}, {Key: model.FieldDateUpdated, Value: older}},
		kept, phase1,
	}
	oid := primitive.ObjectID{0x65, 0x70, 0x72, 0x6f, 0x62, 0x65, 0, 0, 0, 0, 0, 1}
	for _, a := range []bson.D{account("p-new", newer), account(oid, newer), account("p-stale", newer), account("p-fresh", newer), account("p-linked", newer)} {
		w.accounts = append(w.accounts, a)
	}
	for _, a := range w.accounts[:3] { // inserted, inserted, refreshed
		tn, _ := pipelines.OneToOne(a, "probe_org")
		id, _ := model.IDOfValue(a[0].Value)
		w.want[id] = tn
	}
	w.want[model.StringID("p-fresh")], w.want[model.StringID("p-linked")] = kept, phase1
	return w
}

// seed (re)writes the probe's collections, the tenant accounts with the
// unique index a shard key calls for (what step 1 makes), so that $merge
// is tried `on` what a real run's will be.
func (w *probeWorld) seed(ctx context.Context, cfg Config) error {
	n := cfg.Names
	for name, docs := range map[string][]bson.D{n.ApplicationsOrganizations: w.appOrgs, n.Links: w.links, n.Accounts: w.accounts, n.TenantsAccounts: w.tenants} {
		coll := cfg.DB.Collection(name)
		if err := coll.Drop(ctx); err != nil {
			return err
		}
		if key := cfg.ShardKey.UniqueKey(); key != nil && name == n.TenantsAccounts {
			if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: key, Options: options.Index().SetUnique(true)}); err != nil {
				return fmt.Errorf("the shard key's unique index: %w", err)
			}
		}
		rows := make([]any, len(docs))
		for i := range docs {
			rows[i] = docs[i]
		}
		if _, err := coll.InsertMany(ctx, rows); err != nil {
			return err
		}
	}
	return nil
}

// check compares the tenant accounts with what the transform expects,
// field order aside (an engine may keep fields in another order; every path
// writes whole documents the same way).
func (w *probeWorld) check(ctx context.Context, cfg Config) error {
	cur, err := cfg.DB.Collection(cfg.Names.TenantsAccounts).Find(ctx, bson.D{})
	if err != nil {
		return err
	}
	var got []bson.Raw
	if err := cur.All(ctx, &got); err != nil {
		return err
	}
	seen := map[model.ID]bool{}
	for _, raw := range got {
		id, _ := model.IDOf(raw.Lookup("_id"))
		var g bson.D
		if err := bson.Unmarshal(raw, &g); err != nil {
			return err
		}
		want, ok := w.want[id]
		if !ok {
			return fmt.Errorf("the server accepted the path but wrote an unexpected tenant account %s", id)
		}
		if a, b := canonical(g), canonical(want); a != b {
			return fmt.Errorf("the server accepted the path but wrote tenant account %s as %s, not %s", id, a, b)
		}
		seen[id] = true
	}
	if len(seen) != len(w.want) {
		return fmt.Errorf("the server accepted the path but left %d tenant accounts, not %d", len(seen), len(w.want))
	}
	return nil
}

// canonical renders a document as Extended JSON with its keys sorted.
func canonical(doc bson.D) string {
	b, err := bson.MarshalExtJSON(sortKeys(doc), true, false)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return string(b)
}

func sortKeys(v any) any {
	switch x := v.(type) {
	case bson.D:
		out := make(bson.D, len(x))
		for i, e := range x {
			out[i] = bson.E{Key: e.Key, Value: sortKeys(e.Value)}
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].Key < out[j].Key })
		return out
	case bson.A:
		out := make(bson.A, len(x))
		for i, e := range x {
			out[i] = sortKeys(e)
		}
		return out
	}
	return v
}
