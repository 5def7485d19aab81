package runner_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

// repoint is the test's own reading of the references contract: every id
// at path (through subdocuments and arrays) that links maps elsewhere
// becomes its tenant id.
func repoint(v any, path []string, links map[model.ID]model.ID) any {
	switch x := v.(type) {
	case bson.A:
		out := bson.A{}
		for _, e := range x {
			out = append(out, repoint(e, path, links))
		}
		return out
	case bson.D:
		if len(path) == 0 {
			return x
		}
		out := bson.D{}
		for _, e := range x {
			if e.Key == path[0] {
				e.Value = repoint(e.Value, path[1:], links)
			}
			out = append(out, e)
		}
		return out
	}
	if id, ok := model.IDOfValue(v); ok && len(path) == 0 {
		if t, ok := links[id]; ok {
			return t.Value()
		}
	}
	return v
}

// On the fixture's referencing collections, as at boot: every document is
// either re-pointed exactly as the contract says or, for the conflicts the
// step counts, left as it was; verify is clean; down restores every
// referencing collection byte for byte; a run after down gives the same.
func TestReferencesOnFixture(t *testing.T) {
	ctx := context.Background()
	cfg, db := testConfig(t)
	// FerretDB 1 finds a document by _id only when the filter is _id alone:
	// each conditional write scans the collection there, so the embedded
	// server gets a smaller fixture.
	opts := gen.Options{Accounts: 600, Seed: 23}
	if env.Real() {
		opts.Accounts = 20000
	}
	env.Load(t, db, opts)
	counts, err := gen.LoadReferences(ctx, db, opts)
	if err != nil {
		t.Fatal(err)
	}
	cfg.References = gen.ReferenceFields()
	before := map[string][]bson.D{}
	dumps := map[string]map[string]string{}
	for _, c := range gen.ReferenceCollections() {
		before[c] = testenv.ReadAll[bson.D](t, db.Collection(c))
		dumps[c] = testenv.Dump(t, db.Collection(c))
	}
	r := newRunner(t, cfg)
	res, err := r.Up(ctx)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	if res.Verify == nil || !res.Verify.OK() || res.Verify.StaleReferences.Count != 0 {
		t.Fatalf("verify: %+v", res.Verify)
	}
	var step count.Counts
	for _, s := range res.Steps {
		if s.Name == "references" {
			step = s.Counts
		}
	}
	if step == nil {
		t.Fatalf("no references step among %+v", res.Steps)
	}

	links := map[model.ID]model.ID{}
	for _, d := range testenv.ReadAll[bson.D](t, db.Collection(names.Links)) {
		var l model.Link
		raw, _ := bson.Marshal(d)
		if err := bson.Unmarshal(raw, &l); err != nil {
			t.Fatal(err)
		}
		if !l.TenantID.IsZero() && l.TenantID != l.LegacyID {
			links[l.LegacyID] = l.TenantID
		}
	}
	paths := map[string][][]string{}
	for _, f := range gen.ReferenceFields() {
		coll, path, _ := strings.Cut(f, ":")
		paths[coll] = append(paths[coll], strings.Split(path, "."))
	}
	var rewritten, left int64
	for _, c := range gen.ReferenceCollections() {
		after := map[string]string{}
		for _, d := range testenv.ReadAll[bson.D](t, db.Collection(c)) {
			after[fmt.Sprint(d[0].Value)] = fmt.Sprint(d)
		}
		for _, d := range before[c] {
			want := d
			for _, p := range paths[c] {
				for i := range want {
					if want[i].Key == p[0] {
						want = append(bson.D(nil), want...)
						want[i].Value = repoint(want[i].Value, p[1:], links)
					}
				}
			}
			got := after[fmt.Sprint(d[0].Value)]
			switch {
			case fmt.Sprint(want) == fmt.Sprint(d):
				if got != fmt.Sprint(d) {
					t.Fatalf("%s %v: changed with nothing to re-point:\n%s\n%s", c, d[0].Value, d, got)
				}
			case got == fmt.Sprint(want):
				rewritten++
			case got == fmt.Sprint(d):
				left++
			default:
				t.Fatalf("%s %v: neither re-pointed nor left:\nbefore %s\nwant   %s\ngot    %s", c, d[0].Value, d, want, got)
			}
		}
	}
	t.Logf("%d accounts merged away; referencing documents %v; %d re-pointed, %d left as conflicts", len(links), counts, rewritten, left)
	if rewritten == 0 || left == 0 {
		t.Errorf("the fixture proves little: %d re-pointed, %d left", rewritten, left)
	}
	if step["documents_rewritten"] != rewritten || step["conflicts"] != left {
		t.Errorf("step counts %v, the test counted %d re-pointed and %d left", step, rewritten, left)
	}
	// A session the service writes afterwards with a merged-away id: verify
	// finds it.
	var stale model.ID
	for id := range links {
		stale = id
		break
	}
	if _, err := db.Collection(gen.CollSessions).InsertOne(ctx, bson.D{{Key: "_id", Value: "late"}, {Key: "account_id", Value: stale.Value()}, {Key: "device_id", Value: "late"}}); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.StaleReferences.Count != 1 || rep.ReferencesStale[gen.CollSessions] != 1 {
		t.Errorf("verify after a late stale session: ok %v, %+v, %v", rep.OK(), rep.StaleReferences, rep.ReferencesStale)
	}
	if _, err := db.Collection(gen.CollSessions).DeleteOne(ctx, bson.D{{Key: "_id", Value: "late"}}); err != nil {
		t.Fatal(err)
	}
	afterDumps := map[string]map[string]string{}
	for _, c := range gen.ReferenceCollections() {
		afterDumps[c] = testenv.Dump(t, db.Collection(c))
	}

	// The lookup indexes' step, then the references step.
	for range 2 {
		if _, err := r.Down(ctx); err != nil {
			t.Fatalf("down: %v", err)
		}
	}
	for _, c := range gen.ReferenceCollections() {
		if fmt.Sprint(testenv.Dump(t, db.Collection(c))) != fmt.Sprint(dumps[c]) {
			t.Errorf("down did not restore %s exactly", c)
		}
	}
	if n, _ := db.Collection("migrations_references").CountDocuments(ctx, bson.D{}); n != 0 {
		t.Errorf("%d records after down", n)
	}
	if _, err := r.References(ctx); err != nil {
		t.Fatalf("runner --references after down: %v", err)
	}
	for _, c := range gen.ReferenceCollections() {
		if fmt.Sprint(testenv.Dump(t, db.Collection(c))) != fmt.Sprint(afterDumps[c]) {
			t.Errorf("%s after down and a run again differs from the first run", c)
		}
	}
}
