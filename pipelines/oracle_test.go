package pipelines_test

// The oracle test: mingo (npm, pipelines/oracle/eval.mjs) evaluates the exact
// pipeline Phase2 returns on a realistic data set, and the result must equal,
// document for document and field order included, what the Go twins
// (Invalid, OneToOne, Refresh) say the pipeline does. Needs node and the
// repo's node_modules (npm ci at the repo root); it fails, never skips,
// without them.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
)

var names = model.DefaultNames()

// ------------------------------------------------------------------ oracle

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("oracle: no go.mod above the test directory")
		}
		dir = parent
	}
}

// oracle returns the node binary and eval.mjs, or fails the test.
func oracle(t *testing.T) (node, script string) {
	t.Helper()
	root := repoRoot(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("oracle: node is not on PATH; install Node.js and run npm ci at the repo root; CI does")
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules", "mingo", "package.json")); err != nil {
		t.Fatalf("oracle: %s/node_modules/mingo is missing: run npm ci at the repo root; CI does", root)
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules", "bson", "package.json")); err != nil {
		t.Fatalf("oracle: %s/node_modules/bson is missing: run npm ci at the repo root; CI does", root)
	}
	return node, filepath.Join(root, "pipelines", "oracle", "eval.mjs")
}

// collections is an ordered name -> documents list, as eval.mjs reads it.
type collections []struct {
	name string
	docs []bson.D
}

// runOracle evaluates pipeline with mingo on collections[source] and returns
// the documents it prints: the $merge target, or the results.
func runOracle(t *testing.T, pipeline mongo.Pipeline, colls collections, source string) []bson.Raw {
	t.Helper()
	node, script := oracle(t)
	stages := make(bson.A, len(pipeline))
	for i, s := range pipeline {
		stages[i] = s
	}
	cs := bson.D{}
	for _, c := range colls {
		docs := make(bson.A, len(c.docs))
		for i, d := range c.docs {
			docs[i] = d
		}
		cs = append(cs, bson.E{Key: c.name, Value: docs})
	}
	in, err := bson.MarshalExtJSON(bson.D{{Key: "pipeline", Value: stages}, {Key: "collections", Value: cs}, {Key: "source", Value: source}}, true, false)
	if err != nil {
		t.Fatalf("oracle: encode input: %v", err)
	}
	if dump := os.Getenv("ORACLE_DUMP"); dump != "" { // to replay: node pipelines/oracle/eval.mjs < $ORACLE_DUMP
		if err := os.WriteFile(dump, in, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(node, script)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("oracle: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	t.Logf("oracle: %d bytes in, %d bytes out, node ran %v", len(in), stdout.Len(), time.Since(start).Round(time.Millisecond))
	var out struct {
		Docs []bson.Raw `bson:"docs"`
	}
	if err := bson.UnmarshalExtJSON(stdout.Bytes(), true, &out); err != nil {
		t.Fatalf("oracle: decode output: %v", err)
	}
	return out.Docs
}

// ------------------------------------------------------------------ data

func del(d bson.D, k string) bson.D {
	return slices.DeleteFunc(d, func(e bson.E) bool { return e.Key == k })
}

// clone deep-copies a document through BSON.
func clone(t tb, d bson.D) bson.D {
	t.Helper()
	raw, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var out bson.D
	if err := bson.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// idOf is the _id of d as an ID; zero for another type.
func idOf(d bson.D) model.ID {
	v, _ := model.Get(d, "_id")
	id, _ := model.IDOfValue(v)
	return id
}

// rawID is the _id of a raw document as an ID.
func rawID(raw bson.Raw) model.ID {
	id, _ := model.IDOf(raw.Lookup("_id"))
	return id
}

// Tenant cases: how a pre-existing tenant relates to its legacy source.
const (
	caseOlder    = "older"     // tenant date_updated before the source's: refreshed
	caseNewer    = "newer"     // after: kept
	caseEqual    = "equal"     // same: kept
	caseNoDate   = "no-date"   // tenant without date_updated, source with one: refreshed
	caseNullDate = "null-date" // tenant date_updated null, source with a date: refreshed
	caseBothNone = "both-none" // neither has date_updated: kept
	caseSrcNone  = "src-none"  // tenant with a date, source without: kept
	caseLinked   = "linked"    // the source was merged by phase 1: never touched
	caseInvalid  = "invalid"   // the source is not migratable: never touched
	caseOrphan   = "orphan"    // no source at all: never touched
	caseMarker   = "fixture_case"
)

type world struct {
	appOrgs, accounts, links, tenants []bson.D
	valid                             []string            // app-orgs with an org
	orgOf                             map[string]string   // every app-org -> its org_id ("" if none)
	cases                             map[model.ID]string // tenant _id -> case
}

func (w *world) collections(tenants []bson.D) collections {
	return collections{
		{names.Accounts, w.accounts},
		{names.ApplicationsOrganizations, w.appOrgs},
		{names.Links, w.links},
		{names.TenantsAccounts, tenants},
	}
}

var (
	worldOnce  sync.Once
	worldValue *world
	worldLog   string
	worldErr   string
)

// sharedWorld builds the data set once per test binary; tests only read it.
func sharedWorld(t *testing.T) *world {
	t.Helper()
	worldOnce.Do(func() {
		// buildWorld reports through a throwaway T so that a failure is
		// seen by every test that needs the world.
		rec := &recorder{}
		func() {
			defer func() {
				if r := recover(); r != nil && r != errStop {
					panic(r)
				}
			}()
			worldValue = buildWorld(rec)
		}()
		worldLog, worldErr = rec.log.String(), rec.err.String()
	})
	if worldErr != "" {
		t.Fatalf("building the data set: %s", worldErr)
	}
	t.Log(strings.TrimSpace(worldLog))
	return worldValue
}

var errStop = errors.New("stop")

// recorder is the part of testing.TB that buildWorld uses.
type recorder struct{ log, err strings.Builder }

func (r *recorder) Helper()                    {}
func (r *recorder) Logf(f string, args ...any) { fmt.Fprintf(&r.log, f+"\n", args...) }
func (r *recorder) Fatal(args ...any)          { fmt.Fprintln(&r.err, args...); panic(errStop) }
func (r *recorder) Fatalf(f string, args ...any) {
	fmt.Fprintf(&r.err, f+"\n", args...)
	panic(errStop)
}

// tb is what the data-building helpers need from a test.
type tb interface {
	Helper()
	Logf(string, ...any)
	Fatal(...any)
	Fatalf(string, ...any)
}

func buildWorld(t tb) *world {
	t.Helper()
	start := time.Now()
	w := &world{orgOf: map[string]string{}, cases: map[model.ID]string{}}
	enc := gen.NewEncoder()
	decode := func(v any) bson.D {
		d, err := enc.D(v)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	opts := gen.Options{Accounts: 2000, Seed: 7}
	for _, ao := range gen.AppOrgs(opts) {
		w.appOrgs = append(w.appOrgs, decode(ao))
	}
	const noOrg = "ao-without-org"
	w.appOrgs = append(w.appOrgs, bson.D{{Key: "_id", Value: noOrg}, {Key: "app_id", Value: "app-orphan"}})
	for _, ao := range w.appOrgs {
		org, _ := model.Get(ao, "org_id")
		s, _ := org.(string)
		w.orgOf[idOf(ao).Text()] = s
		if s != "" {
			w.valid = append(w.valid, idOf(ao).Text())
		}
	}

	err := gen.Accounts(opts, func(a model.LegacyAccount) error {
		w.accounts = append(w.accounts, decode(a))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Hand-made accounts, from a template with every person-level field.
	var tmpl bson.D
	for _, a := range w.accounts {
		if _, ok := model.Get(a, "date_updated"); ok && len(a) > len(tmpl) {
			tmpl = a
		}
	}
	aoOf := func(d bson.D) string { v, _ := model.Get(d, "app_org_id"); s, _ := v.(string); return s }
	made := func(id any, edit func(d bson.D) bson.D) {
		d := model.Set(clone(t, tmpl), "_id", id)
		w.accounts = append(w.accounts, edit(d))
	}
	email := func(kv ...bson.E) bson.A {
		return bson.A{append(bson.D{{Key: "auth_type_code", Value: "email"}}, kv...)}
	}
	made(int32(424242), func(d bson.D) bson.D { return d })
	made("zz-bad-dangling", func(d bson.D) bson.D { return model.Set(d, "app_org_id", "ao-dangling") })
	made("zz-bad-no-org", func(d bson.D) bson.D { return model.Set(d, "app_org_id", noOrg) })
	made("zz-bad-app-org-array", func(d bson.D) bson.D { return model.Set(d, "app_org_id", bson.A{aoOf(tmpl)}) })
	made("zz-bad-empty-auth", func(d bson.D) bson.D { return model.Set(d, "auth_types", bson.A{}) })
	made("zz-bad-no-auth", func(d bson.D) bson.D { return del(d, "auth_types") })
	made("zz-bad-no-identifier", func(d bson.D) bson.D { return model.Set(d, "auth_types", email()) })
	made("zz-bad-empty-identifier", func(d bson.D) bson.D {
		return model.Set(d, "auth_types", email(bson.E{Key: "identifier", Value: ""}))
	})
	made("zz-bad-array-identifier", func(d bson.D) bson.D {
		return model.Set(d, "auth_types", email(bson.E{Key: "identifier", Value: bson.A{"x@example.org"}}))
	})
	made("zz-bad-auth-not-doc", func(d bson.D) bson.D { return model.Set(d, "auth_types", bson.A{"email"}) })
	made("zz-bad-second-auth-no-code", func(d bson.D) bson.D {
		ats, _ := model.Get(d, "auth_types")
		return model.Set(d, "auth_types", append(slices.Clone(ats.(bson.A)), bson.D{{Key: "identifier", Value: "x"}}))
	})
	made("zz-edge-nulls", func(d bson.D) bson.D {
		d = model.Set(d, "permissions", nil)
		d = model.Set(d, "preferences", nil)
		d = del(d, "roles")
		d = del(d, "most_recent_client_version")
		return model.Set(d, "groups", bson.A{})
	})
	dec, _ := primitive.ParseDecimal128("12.50")
	made("zz-edge-org-fields", func(d bson.D) bson.D {
		d = slices.Insert(d, 1, bson.E{Key: "org_id", Value: "stale-org"})
		d = slices.Insert(d, 3, bson.E{Key: "org_apps_memberships", Value: "junk"})
		return append(d,
			bson.E{Key: "score", Value: 1.0}, bson.E{Key: "counter", Value: int64(1) << 40},
			bson.E{Key: "balance", Value: dec}, bson.E{Key: "ref", Value: primitive.NewObjectIDFromTimestamp(time.Unix(1700000000, 0))},
			bson.E{Key: "nested", Value: bson.D{{Key: "z", Value: int32(1)}, {Key: "a", Value: bson.A{nil, 2.5, "s"}}}})
	})
	made("zz-edge-null-date", func(d bson.D) bson.D { return model.Set(d, "date_updated", nil) })
	made("zz-edge-no-date", func(d bson.D) bson.D { return del(d, "date_updated") })
	// Entries whose unverified field is every kind a database may hold,
	// twice over on two app-orgs of one org: phase 1 links only the
	// verified ones (missing, null, false), on both of its paths.
	entry := func(code, ident string, unverified ...any) bson.D {
		e := bson.D{{Key: "auth_type_code", Value: code}, {Key: "identifier", Value: ident}}
		for _, u := range unverified {
			e = append(e, bson.E{Key: "unverified", Value: u})
		}
		return e
	}
	unverifiedKinds := bson.A{
		entry("email", "kinds-missing@example.org"), entry("email", "kinds-null@example.org", nil),
		entry("email", "kinds-false@example.org", false), entry("email", "kinds-true@example.org", true),
		entry("email", "kinds-string@example.org", "yes"), entry("phone", "+10000000001", int32(1)),
		entry("email", "Kinds-Case@example.org"),
	}
	var otherAppOrg string
	for _, ao := range w.valid {
		if ao != aoOf(tmpl) && w.orgOf[ao] == w.orgOf[aoOf(tmpl)] {
			otherAppOrg = ao
			break
		}
	}
	made("zz-edge-unverified-kinds", func(d bson.D) bson.D { return model.Set(d, "auth_types", unverifiedKinds) })
	made("zz-edge-unverified-peer", func(d bson.D) bson.D {
		d = model.Set(d, "app_org_id", otherAppOrg)
		return model.Set(d, "auth_types", bson.A{
			entry("email", "kinds-missing@example.org"), entry("email", "kinds-null@example.org"),
			entry("email", "kinds-false@example.org"), entry("email", "kinds-true@example.org"),
			entry("email", "kinds-string@example.org"), entry("phone", "+10000000001"),
			entry("email", "kinds-case@example.org"),
		})
	})

	// Links for every 20th valid account (phase 1 merged them).
	var validIDs []model.ID
	var linkedIDs []model.ID
	for _, a := range w.accounts {
		if pipelines.Invalid(a, w.orgOf) != "" {
			continue
		}
		validIDs = append(validIDs, idOf(a))
	}
	linked := map[model.ID]bool{}
	for i, a := range w.accounts {
		id := idOf(a)
		if pipelines.Invalid(a, w.orgOf) != "" || strings.HasPrefix(id.Text(), "zz-") || i%20 != 0 {
			continue
		}
		ao := aoOf(a)
		w.links = append(w.links, bson.D{
			{Key: "_id", Value: id}, {Key: "tenant_id", Value: id}, {Key: "org_id", Value: w.orgOf[ao]},
			{Key: "app_org_id", Value: ao}, {Key: "membership_id", Value: model.MembershipID(ao, id)},
		})
		linked[id] = true
		linkedIDs = append(linkedIDs, id)
	}

	// Pre-existing tenants.
	tenant := func(a bson.D, c string, date func(bson.D) bson.D) {
		tn, err := pipelines.OneToOne(clone(t, a), w.orgOf[aoOf(a)])
		if err != nil {
			t.Fatal(err)
		}
		tn = date(append(tn, bson.E{Key: caseMarker, Value: c}))
		w.tenants = append(w.tenants, tn)
		w.cases[idOf(tn)] = c
	}
	shift := func(a bson.D, by time.Duration) func(bson.D) bson.D {
		v, _ := model.Get(a, "date_updated")
		at := v.(primitive.DateTime).Time().Add(by)
		return func(tn bson.D) bson.D { return model.Set(tn, "date_updated", primitive.NewDateTimeFromTime(at)) }
	}
	withDated := []string{caseOlder, caseNewer, caseEqual, caseNoDate, caseNullDate}
	k := 0
	for i, a := range w.accounts {
		id := idOf(a)
		if i%40 != 3 || linked[id] || strings.HasPrefix(id.Text(), "zz-") || pipelines.Invalid(a, w.orgOf) != "" {
			continue
		}
		if _, dated := model.Get(a, "date_updated"); !dated {
			if k%2 == 0 {
				tenant(a, caseBothNone, func(tn bson.D) bson.D { return tn })
			} else {
				tenant(a, caseSrcNone, func(tn bson.D) bson.D { return model.Set(tn, "date_updated", primitive.DateTime(0)) })
			}
			k++
			continue
		}
		switch c := withDated[k%len(withDated)]; c {
		case caseOlder:
			tenant(a, c, shift(a, -time.Hour))
		case caseNewer:
			tenant(a, c, shift(a, time.Hour))
		case caseEqual:
			tenant(a, c, shift(a, 0))
		case caseNoDate:
			tenant(a, c, func(tn bson.D) bson.D { return del(tn, "date_updated") })
		case caseNullDate:
			tenant(a, c, func(tn bson.D) bson.D { return model.Set(tn, "date_updated", nil) })
		}
		k++
	}
	for _, id := range linkedIDs[:5] { // phase 1 survivors: older than their source, still untouched
		for _, a := range w.accounts {
			if idOf(a) == id {
				tenant(a, caseLinked, func(tn bson.D) bson.D { return model.Set(tn, "date_updated", primitive.DateTime(0)) })
			}
		}
	}
	for _, a := range w.accounts {
		if idOf(a) == model.StringID("zz-bad-dangling") {
			tn := model.Set(clone(t, a), caseMarker, caseInvalid)
			tn = model.Set(tn, "date_updated", primitive.DateTime(0))
			w.tenants = append(w.tenants, tn)
			w.cases[idOf(tn)] = caseInvalid
		}
		if idOf(a) == model.StringID("zz-edge-null-date") {
			tenant(a, caseNoDate, func(tn bson.D) bson.D { return del(tn, "date_updated") }) // null > missing: refreshed
		}
		if idOf(a) == model.StringID("zz-edge-no-date") {
			tenant(a, caseSrcNone, func(tn bson.D) bson.D { return model.Set(tn, "date_updated", primitive.DateTime(0)) })
		}
	}
	w.tenants = append(w.tenants, bson.D{{Key: "_id", Value: "phase1-survivor-orphan"}, {Key: "org_id", Value: "org-x"}, {Key: caseMarker, Value: caseOrphan}})
	w.cases[model.StringID("phase1-survivor-orphan")] = caseOrphan

	t.Logf("world: %d app-orgs (%d with an org), %d accounts (%d valid), %d links, %d tenants; built in %v",
		len(w.appOrgs), len(w.valid), len(w.accounts), len(validIDs), len(w.links), len(w.tenants), time.Since(start).Round(time.Millisecond))
	return w
}

// ------------------------------------------------------------ expectation

type outcome struct {
	docs   []bson.D // the target collection, in order
	counts map[string]int
	byCase map[string]map[string]int // case -> outcome -> count
}

func inRange(id model.ID, r *pipelines.Range) bool {
	return r == nil || ((r.After.IsZero() || r.After.Less(id)) && (r.Through.IsZero() || !r.Through.Less(id)))
}

// expect computes in Go what phase 2 leaves in the target: the initial
// tenants, then for every migratable, unlinked account in range: its
// one-to-one tenant, inserted if absent, replacing the existing one if
// Refresh says so.
func expect(t tb, w *world, r *pipelines.Range) outcome {
	t.Helper()
	linked := map[model.ID]bool{}
	for _, l := range w.links {
		linked[idOf(l)] = true
	}
	out := outcome{counts: map[string]int{}, byCase: map[string]map[string]int{}}
	index := map[model.ID]int{}
	for i, tn := range w.tenants {
		out.docs = append(out.docs, tn)
		index[idOf(tn)] = i
	}
	for _, a := range w.accounts {
		if pipelines.Invalid(a, w.orgOf) != "" {
			continue
		}
		id := idOf(a)
		if !inRange(id, r) || linked[id] {
			continue
		}
		ao, _ := model.Get(a, "app_org_id")
		tn, err := pipelines.OneToOne(a, w.orgOf[ao.(string)])
		if err != nil {
			t.Fatalf("OneToOne(%s): %v", id, err)
		}
		var o string
		if i, ok := index[id]; !ok {
			o = pipelines.OutcomeInsert
			index[id] = len(out.docs)
			out.docs = append(out.docs, tn)
		} else if pipelines.Refresh(out.docs[i], tn) {
			o = pipelines.OutcomeRefresh
			out.docs[i] = tn
		} else {
			o = pipelines.OutcomeUnchanged
		}
		out.counts[o]++
		if c, ok := w.cases[id]; ok {
			if out.byCase[c] == nil {
				out.byCase[c] = map[string]int{}
			}
			out.byCase[c][o]++
		}
	}
	return out
}

// ------------------------------------------------------------ comparison

func canonical(t *testing.T, v any) string {
	t.Helper()
	b, err := bson.MarshalExtJSON(v, true, false)
	if err != nil {
		t.Fatalf("canonical ext JSON: %v", err)
	}
	return string(b)
}

// sortedKeys rewrites every document with its keys sorted, for the
// order-insensitive diagnosis.
func sortedKeys(v any) any {
	switch x := v.(type) {
	case bson.D:
		out := make(bson.D, len(x))
		for i, e := range x {
			out[i] = bson.E{Key: e.Key, Value: sortedKeys(e.Value)}
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].Key < out[j].Key })
		return out
	case bson.A:
		out := make(bson.A, len(x))
		for i, e := range x {
			out[i] = sortedKeys(e)
		}
		return out
	}
	return v
}

// compareTarget asserts that mingo's docs equal want, document for document,
// field order included. It returns whether the document sequence matched too.
func compareTarget(t *testing.T, got []bson.Raw, want []bson.D) (sameSequence bool) {
	t.Helper()
	gotByID := map[string]bson.D{}
	var gotIDs []string
	for _, raw := range got {
		var d bson.D
		if err := bson.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		v, _ := model.Get(d, "_id")
		id := canonical(t, bson.D{{Key: "id", Value: v}})
		if _, dup := gotByID[id]; dup {
			t.Errorf("mingo target holds _id %s twice", id)
		}
		gotByID[id] = d
		gotIDs = append(gotIDs, id)
	}
	var wantIDs []string
	diffs, orderOnly := 0, 0
	for _, w := range want {
		v, _ := model.Get(w, "_id")
		id := canonical(t, bson.D{{Key: "id", Value: v}})
		wantIDs = append(wantIDs, id)
		g, ok := gotByID[id]
		if !ok {
			diffs++
			if diffs <= 5 {
				t.Errorf("_id %s: missing from mingo's target", id)
			}
			continue
		}
		delete(gotByID, id)
		gs, ws := canonical(t, g), canonical(t, w)
		if gs == ws {
			continue
		}
		diffs++
		if canonical(t, sortedKeys(g)) == canonical(t, sortedKeys(w)) {
			orderOnly++
		}
		if diffs <= 5 {
			t.Errorf("_id %s differs:\n mingo %s\n go    %s", id, gs, ws)
		}
	}
	for id := range gotByID {
		diffs++
		if diffs <= 5 {
			t.Errorf("_id %s: in mingo's target, not expected", id)
		}
	}
	if diffs > 0 {
		t.Errorf("%d of %d documents differ (%d only in field order)", diffs, len(want), orderOnly)
	}
	return slices.Equal(gotIDs, wantIDs)
}

// ------------------------------------------------------------------ tests

// shardKeys: every pipeline that writes runs unsharded and with the shard
// key (its $merge on org_id and _id, its filters carrying org_id), and
// must leave the same target.
var shardKeys = []model.ShardKey{model.Unsharded, model.ShardByOrg}

func TestOracleFullRun(t *testing.T) {
	t.Parallel()
	for _, key := range shardKeys {
		t.Run("shard_key="+string(key), func(t *testing.T) { oracleFullRun(t, key) })
	}
}

func oracleFullRun(t *testing.T, key model.ShardKey) {
	w := sharedWorld(t)
	want := expect(t, w, nil)
	p := pipelines.Phase2(names, key, w.valid, nil)
	got := runOracle(t, p, w.collections(w.tenants), names.Accounts)
	same := compareTarget(t, got, want.docs)
	if !t.Failed() {
		t.Logf("full run: %d target documents equal, field order included; outcomes %v; same document sequence: %v", len(want.docs), want.counts, same)
	}
	t.Logf("tenant cases: %v", want.byCase)

	// A second run over the result of the first writes nothing new.
	after := make([]bson.D, len(got))
	for i, raw := range got {
		if err := bson.Unmarshal(raw, &after[i]); err != nil {
			t.Fatal(err)
		}
	}
	again := runOracle(t, p, w.collections(after), names.Accounts)
	compareTarget(t, again, after)
	w2 := *w
	w2.tenants = after
	if c := expect(t, &w2, nil).counts; c[pipelines.OutcomeInsert] != 0 || c[pipelines.OutcomeRefresh] != 0 {
		t.Errorf("re-run outcomes %v, want only unchanged", c)
	}

	// The fixture exercises every outcome the merge rule has.
	for c, o := range map[string]string{
		caseOlder: pipelines.OutcomeRefresh, caseNoDate: pipelines.OutcomeRefresh, caseNullDate: pipelines.OutcomeRefresh,
		caseNewer: pipelines.OutcomeUnchanged, caseEqual: pipelines.OutcomeUnchanged,
		caseBothNone: pipelines.OutcomeUnchanged, caseSrcNone: pipelines.OutcomeUnchanged,
	} {
		if want.byCase[c][o] == 0 || len(want.byCase[c]) != 1 {
			t.Errorf("case %s: outcomes %v, want only %s", c, want.byCase[c], o)
		}
	}
	for _, c := range []string{caseLinked, caseInvalid, caseOrphan} {
		if len(want.byCase[c]) != 0 {
			t.Errorf("case %s: outcomes %v, want none (never touched)", c, want.byCase[c])
		}
	}
	if want.counts[pipelines.OutcomeInsert] < 1500 {
		t.Errorf("only %d inserts: the fixture lost its bulk", want.counts[pipelines.OutcomeInsert])
	}
}

func TestOracleRangedRun(t *testing.T) {
	t.Parallel()
	w := sharedWorld(t)
	var ids []model.ID
	for _, a := range w.accounts {
		if id := idOf(a); !id.IsZero() {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, model.ID.Compare)
	firstOID := slices.IndexFunc(ids, model.ID.IsObjectID)
	if firstOID < 10 || len(ids)-firstOID < 10 {
		t.Fatalf("%d of %d accounts have an ObjectId _id: the fixture lost its mix", len(ids)-firstOID, len(ids))
	}
	ranges := []pipelines.Range{
		{After: ids[len(ids)/3], Through: ids[2*len(ids)/3]},
		{Through: ids[len(ids)/4]},
		{After: ids[3*len(ids)/4]},
		// across the types: strings, then ObjectIds
		{After: ids[firstOID-5], Through: ids[firstOID+5]},
		{After: ids[firstOID+3]},
		{Through: ids[firstOID+3]},
	}
	full := expect(t, w, nil)
	for _, r := range ranges {
		t.Run(fmt.Sprintf("after=%s,through=%s", r.After, r.Through), func(t *testing.T) {
			want := expect(t, w, &r)
			got := runOracle(t, pipelines.Phase2(names, model.Unsharded, w.valid, &r), w.collections(w.tenants), names.Accounts)
			compareTarget(t, got, want.docs)
			if want.counts[pipelines.OutcomeInsert] == 0 || want.counts[pipelines.OutcomeInsert] >= full.counts[pipelines.OutcomeInsert] {
				t.Errorf("range inserts %d of %d: not a proper part", want.counts[pipelines.OutcomeInsert], full.counts[pipelines.OutcomeInsert])
			}
			t.Logf("range: outcomes %v (full run: %v)", want.counts, full.counts)
		})
	}

	// Ranges that tile the id space add up to the full run.
	first := expect(t, w, &pipelines.Range{Through: ids[len(ids)/2]})
	second := expect(t, w, &pipelines.Range{After: ids[len(ids)/2]})
	for _, o := range []string{pipelines.OutcomeInsert, pipelines.OutcomeRefresh, pipelines.OutcomeUnchanged} {
		if first.counts[o]+second.counts[o] != full.counts[o] {
			t.Errorf("%s: %d + %d != %d", o, first.counts[o], second.counts[o], full.counts[o])
		}
	}
}

// The preview pipeline counts exactly what the run does.
func TestOraclePreview(t *testing.T) {
	t.Parallel()
	w := sharedWorld(t)
	for _, r := range []*pipelines.Range{nil, {After: model.StringID("8")}} {
		want := expect(t, w, r)
		got := runOracle(t, pipelines.Phase2Preview(names, w.valid, r), w.collections(w.tenants), names.Accounts)
		counts := map[string]int{}
		for _, raw := range got {
			var g struct {
				ID string `bson:"_id"`
				N  int64  `bson:"n"`
			}
			if err := bson.Unmarshal(raw, &g); err != nil {
				t.Fatal(err)
			}
			counts[g.ID] = int(g.N)
		}
		if fmt.Sprint(counts) != fmt.Sprint(want.counts) {
			t.Errorf("range %+v: preview counts %v, want %v", r, counts, want.counts)
		}
		t.Logf("range %+v: preview %v", r, counts)
	}
}

// The oracle reports bad input as one line on stderr and exit status 1.
func TestOracleErrors(t *testing.T) {
	t.Parallel()
	node, script := oracle(t)
	for _, in := range []string{`not json`, `{"pipeline": 5}`, `{"pipeline": [{"$nope": {}}], "collections": {"a": []}, "source": "a"}`} {
		cmd := exec.Command(node, script)
		cmd.Stdin = strings.NewReader(in)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("input %q: err = %v, want exit status 1", in, err)
		}
		if msg := strings.TrimSpace(stderr.String()); msg == "" || strings.Contains(msg, "\n") {
			t.Errorf("input %q: stderr %q, want one line", in, msg)
		}
	}
}

// mingo's $merge matches `on` values by a 32-bit hash: "acct-2258" and
// "acct-334854" collide, and plain mingo replaces the first with the second.
// The oracle refuses such input rather than give a wrong answer.
func TestOracleRefusesMergeHashCollision(t *testing.T) {
	t.Parallel()
	node, script := oracle(t)
	in := `{"pipeline": [{"$merge": {"into": "t", "on": "_id", "whenMatched": "replace", "whenNotMatched": "insert"}}],
		"collections": {"s": [{"_id": "acct-334854"}], "t": [{"_id": "acct-2258"}]}, "source": "s"}`
	cmd := exec.Command(node, script)
	cmd.Stdin = strings.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr.String(), "hash") {
		t.Errorf("err = %v, stderr %q; want exit status 1 naming the hash collision", err, stderr.String())
	}
}

// The oracle's aggregation comparison (eval.mjs bsonCompare) and Refresh's
// (Go) are two implementations of MongoDB's BSON order: every pair of these
// values must get the same answer from both.
func TestOracleComparisonMatchesRefresh(t *testing.T) {
	t.Parallel()
	dec := func(s string) primitive.Decimal128 { x, _ := primitive.ParseDecimal128(s); return x }
	oid, _ := primitive.ObjectIDFromHex("5f1d7a2b9c3e4d5f6a7b8c9d")
	const missing = "\x00missing"
	values := []any{
		missing, nil, primitive.MinKey{}, primitive.MaxKey{},
		int32(-3), int32(7), int64(7), int64(1) << 60, 6.5, 7.0, dec("7.00"), dec("-1E+300"),
		"", "2023-05-01", "é",
		bson.D{}, bson.D{{Key: "a", Value: int32(1)}}, bson.D{{Key: "a", Value: "1"}}, bson.D{{Key: "b", Value: int32(0)}},
		bson.A{}, bson.A{int32(1)}, bson.A{int32(1), int32(2)}, bson.A{"x"},
		primitive.Binary{Data: []byte{1, 2}}, primitive.Binary{Subtype: 0x80, Data: []byte{1}},
		oid, false, true,
		primitive.DateTime(-1000), primitive.DateTime(0), primitive.DateTime(1700000000000),
		primitive.Timestamp{T: 5, I: 1}, primitive.Regex{Pattern: "^a", Options: "i"},
	}
	var docs []bson.D
	for i, a := range values {
		for j, b := range values {
			d := bson.D{{Key: "_id", Value: int32(i*len(values) + j)}}
			if a != missing {
				d = append(d, bson.E{Key: "date_updated", Value: a})
			}
			if b != missing {
				d = append(d, bson.E{Key: "b", Value: b})
			}
			docs = append(docs, d)
		}
	}
	p := mongo.Pipeline{{{Key: "$project", Value: bson.D{{Key: "gt", Value: bson.D{{Key: "$gt", Value: bson.A{"$date_updated", "$b"}}}}}}}}
	got := runOracle(t, p, collections{{"pairs", docs}}, "pairs")
	if len(got) != len(docs) {
		t.Fatalf("oracle returned %d results for %d pairs", len(got), len(docs))
	}
	bad := 0
	for k, raw := range got {
		var r struct {
			ID int32 `bson:"_id"`
			GT bool  `bson:"gt"`
		}
		if err := bson.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
		i, j := int(r.ID)/len(values), int(r.ID)%len(values)
		incoming := docs[k][:1]
		if v, ok := model.Get(docs[k], "date_updated"); ok {
			incoming = append(slices.Clone(incoming), bson.E{Key: "date_updated", Value: v})
		}
		existing := bson.D{{Key: "_id", Value: r.ID}}
		if v, ok := model.Get(docs[k], "b"); ok {
			existing = append(existing, bson.E{Key: "date_updated", Value: v})
		}
		if want := pipelines.Refresh(existing, incoming); want != r.GT {
			bad++
			if bad <= 10 {
				t.Errorf("$gt [%#v, %#v]: oracle %v, Refresh %v", values[i], values[j], r.GT, want)
			}
		}
	}
	t.Logf("%d pairs compared", len(docs))
}

// splitRun evaluates the split path with mingo as the runner runs it: the
// refresh pipeline on the tenants, each refresh written only where its
// conditional filter (RefreshFilter, evaluated by mingo too) still holds,
// then the insert pipeline. It returns the target and how many refreshes
// were written.
func splitRun(t *testing.T, w *world, key model.ShardKey, tenants []bson.D, r *pipelines.Range) ([]bson.Raw, int) {
	t.Helper()
	candidates := runOracle(t, pipelines.Phase2Refreshes(names, w.valid, r), w.collections(tenants), names.TenantsAccounts)
	target := make([]bson.D, len(tenants))
	copy(target, tenants)
	refreshed := 0
	if len(candidates) > 0 {
		var or bson.A
		byID := map[model.ID]bson.D{}
		for _, raw := range candidates {
			var c bson.D
			if err := bson.Unmarshal(raw, &c); err != nil {
				t.Fatal(err)
			}
			or = append(or, pipelines.RefreshFilter(key, raw.Lookup("_id"), raw.Lookup("org_id"), raw.Lookup("date_updated")))
			byID[idOf(c)] = c
		}
		matched := runOracle(t, mongo.Pipeline{{{Key: "$match", Value: bson.D{{Key: "$or", Value: or}}}}}, w.collections(target), names.TenantsAccounts)
		hit := map[model.ID]bool{}
		for _, m := range matched {
			hit[rawID(m)] = true
		}
		for i, tn := range target {
			if hit[idOf(tn)] {
				target[i] = byID[idOf(tn)]
				refreshed++
			}
		}
		if refreshed != len(candidates) {
			t.Errorf("%d refresh candidates, %d matched their own conditional filter", len(candidates), refreshed)
		}
	}
	return runOracle(t, pipelines.Phase2Inserts(names, key, w.valid, r), w.collections(target), names.Accounts), refreshed
}

// The split path (no pipeline in whenMatched) leaves exactly the target of
// the one pipeline, full and ranged (with the shard key full only: a range
// is the same $match either way), and a re-run writes nothing.
func TestOracleSplitRun(t *testing.T) {
	t.Parallel()
	for _, key := range shardKeys {
		t.Run("shard_key="+string(key), func(t *testing.T) { oracleSplitRun(t, key) })
	}
}

func oracleSplitRun(t *testing.T, key model.ShardKey) {
	w := sharedWorld(t)
	ranges := []*pipelines.Range{nil, {After: model.StringID("4"), Through: model.StringID("b")}, {After: model.StringID("f")}}
	if key.Sharded() {
		// A range is the same $match with or without the key: the key's
		// $merge and filters are proven over the whole collection.
		ranges = ranges[:1]
	}
	for _, r := range ranges {
		want := expect(t, w, r)
		got, refreshed := splitRun(t, w, key, w.tenants, r)
		compareTarget(t, got, want.docs)
		if refreshed != want.counts[pipelines.OutcomeRefresh] || refreshed == 0 {
			t.Errorf("range %+v: %d refreshed, the one pipeline refreshes %d", r, refreshed, want.counts[pipelines.OutcomeRefresh])
		}
		after := make([]bson.D, len(got))
		for i, raw := range got {
			if err := bson.Unmarshal(raw, &after[i]); err != nil {
				t.Fatal(err)
			}
		}
		again, n := splitRun(t, w, key, after, r)
		compareTarget(t, again, after)
		if n != 0 {
			t.Errorf("range %+v: a re-run refreshed %d", r, n)
		}
	}
}

// The conditional filters of the refreshes hold exactly where Refresh says
// a refresh is due, and no longer once the stored tenant changed.
func TestOracleConditionalFilters(t *testing.T) {
	t.Parallel()
	for _, key := range shardKeys {
		t.Run("shard_key="+string(key), func(t *testing.T) { oracleConditionalFilters(t, key) })
	}
}

func oracleConditionalFilters(t *testing.T, key model.ShardKey) {
	w := sharedWorld(t)
	legacy := map[model.ID]bson.D{}
	for _, a := range w.accounts {
		legacy[idOf(a)] = a
	}
	var refresh, same bson.A
	wantRefresh, checked := map[model.ID]bool{}, 0
	for _, tn := range w.tenants {
		id := idOf(tn)
		a, ok := legacy[id]
		if !ok || pipelines.Invalid(a, w.orgOf) != "" {
			continue
		}
		raw, err := bson.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		traw, err := bson.Marshal(tn)
		if err != nil {
			t.Fatal(err)
		}
		if date, err := bson.Raw(raw).LookupErr("date_updated"); err == nil {
			refresh = append(refresh, pipelines.RefreshFilter(key, bson.Raw(raw).Lookup("_id"), bson.Raw(traw).Lookup("org_id"), date))
			wantRefresh[id] = pipelines.Refresh(tn, a)
		}
		same = append(same, pipelines.SameDateFilter(key, bson.Raw(traw).Lookup("_id"), bson.Raw(traw).Lookup("org_id"), bson.Raw(traw).Lookup("date_updated")))
		checked++
	}
	match := func(or bson.A) map[model.ID]bool {
		out := map[model.ID]bool{}
		for _, m := range runOracle(t, mongo.Pipeline{{{Key: "$match", Value: bson.D{{Key: "$or", Value: or}}}}}, w.collections(w.tenants), names.TenantsAccounts) {
			out[rawID(m)] = true
		}
		return out
	}
	got := match(refresh)
	due := 0
	for id, want := range wantRefresh {
		if got[id] != want {
			t.Errorf("tenant %s: RefreshFilter matches %v, Refresh says %v", id, got[id], want)
		}
		if want {
			due++
		}
	}
	if due == 0 || due == len(wantRefresh) {
		t.Errorf("%d of %d refreshes due: the data does not tell the filter apart", due, len(wantRefresh))
	}
	if got := match(same); len(got) != checked {
		t.Errorf("SameDateFilter with each tenant's own date matched %d of %d", len(got), checked)
	}
	// Once the stored date changed, neither filter holds.
	moved := make([]bson.D, len(w.tenants))
	for i, tn := range w.tenants {
		moved[i] = model.Set(clone(t, tn), "date_updated", primitive.NewDateTimeFromTime(time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC)))
	}
	for name, or := range map[string]bson.A{"RefreshFilter": refresh, "SameDateFilter": same} {
		out := runOracle(t, mongo.Pipeline{{{Key: "$match", Value: bson.D{{Key: "$or", Value: or}}}}}, w.collections(moved), names.TenantsAccounts)
		if len(out) != 0 {
			t.Errorf("%s matched %d tenants written after the comparison", name, len(out))
		}
	}
}
