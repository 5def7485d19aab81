package runner_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/migrations"
	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner"
	"github.com/tenantmigrate/runner/runner/capability"
	"github.com/tenantmigrate/runner/runner/config"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/lease"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/phase1"
	"github.com/tenantmigrate/runner/runner/phase2"
	"github.com/tenantmigrate/runner/runner/progress"
	"github.com/tenantmigrate/runner/runner/step"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

var env *testenv.Env

// names are the collections of the default configuration the tests run.
var names = model.DefaultNames()

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

// testConfig is the default configuration on a fresh database of the test
// server, with short leases so lock tests finish quickly.
func testConfig(t *testing.T) (config.Config, *mongo.Database) {
	t.Helper()
	db := env.Database(t)
	cfg := config.Default()
	cfg.MongoDB.URI = env.URI
	cfg.MongoDB.Database = db.Name()
	cfg.Tenants.ShardKey = env.ShardKey // RUNNER_TENANTS_SHARD_KEY: the suite as for a sharded target
	// Short, yet long enough that a heartbeat waiting behind the embedded
	// server's writes (SQLite has one writer) with the rest of the suite
	// running beside it does not lose the lease (4 s did, once).
	cfg.Lock.Lease = 10 * time.Second
	cfg.Lock.Heartbeat = 2 * time.Second
	cfg.Lock.Wait = 20 * time.Second
	return cfg, db
}

func newRunner(t *testing.T, cfg config.Config, opts ...runner.Option) *runner.Runner {
	t.Helper()
	opts = append([]runner.Option{runner.WithLogger(testenv.Quiet())}, opts...)
	r, err := runner.New(context.Background(), cfg, opts...)
	if err != nil {
		t.Fatalf("runner.New: %v", err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

func indexNames(t *testing.T, coll *mongo.Collection) map[string]bool {
	t.Helper()
	cur, err := coll.Indexes().List(context.Background())
	if err != nil {
		var ce mongo.CommandError
		if errors.As(err, &ce) && ce.Code == 26 {
			return map[string]bool{}
		}
		t.Fatalf("list indexes: %v", err)
	}
	var specs []bson.M
	if err := cur.All(context.Background(), &specs); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, s := range specs {
		out[s["name"].(string)] = true
	}
	return out
}

func history(t *testing.T, db *mongo.Database, id string) mongomigrate.History {
	t.Helper()
	var h mongomigrate.History
	if err := db.Collection("migrations_history").FindOne(context.Background(), bson.D{{Key: "_id", Value: id}}).Decode(&h); err != nil {
		t.Fatalf("history %s: %v", id, err)
	}
	return h
}

// steps returns the embedded step files and the latest version.
func steps(t *testing.T) (fstest.MapFS, int) {
	t.Helper()
	files := fstest.MapFS{}
	latest := -1
	entries, err := fs.ReadDir(migrations.FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := fs.ReadFile(migrations.FS(), e.Name())
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = &fstest.MapFile{Data: b}
		var v int
		if _, err := fmt.Sscanf(e.Name(), "%d_", &v); err == nil && v > latest {
			latest = v
		}
	}
	return files, latest
}

// indexStepOnly is the embedded index step alone.
func indexStepOnly(t *testing.T) fstest.MapFS {
	files, _ := steps(t)
	out := fstest.MapFS{}
	for name, f := range files {
		if strings.HasPrefix(name, "1_") {
			out[name] = f
		}
	}
	return out
}

// The tenant accounts' indexes: step 1's, which the phases write under,
// and the service's lookups, which the last step builds.
var (
	wantIndexes   = []string{"org_apps_memberships_id_unique"}
	lookupIndexes = []string{"org_id_auth_type_identifier", "org_apps_memberships_app_org_id"}
)

// The phases write under the unique index alone; the service's lookup
// indexes come once the data is in, from the last step, and go with its
// down. A database whose step 1 made them (before this step existed) takes
// the step as a no-op. (The step creates one index per command: FerretDB 1
// drops the connection on a createIndexes of two indexes that both exist.)
func TestLookupIndexesComeAfterThePhases(t *testing.T) {
	for _, made := range []bool{false, true} {
		t.Run(fmt.Sprintf("made by an earlier step 1: %v", made), func(t *testing.T) {
			cfg, db := testConfig(t)
			env.Load(t, db, gen.Options{Accounts: 300, Seed: 5})
			ctx := context.Background()
			tenants := db.Collection(names.TenantsAccounts)
			if made {
				_, err := tenants.Indexes().CreateMany(ctx, []mongo.IndexModel{
					{Keys: bson.D{{Key: "org_id", Value: 1}, {Key: "auth_types.auth_type_id", Value: 1}, {Key: "auth_types.identifier", Value: 1}}, Options: options.Index().SetName(lookupIndexes[0])},
					{Keys: bson.D{{Key: "org_apps_memberships.app_org_id", Value: 1}}, Options: options.Index().SetName(lookupIndexes[1])},
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			r := newRunner(t, cfg)
			if _, err := r.Phase(ctx, 2); err != nil {
				t.Fatal(err)
			}
			idx := indexNames(t, tenants)
			for _, n := range lookupIndexes {
				if idx[n] != made {
					t.Errorf("after phase 2: index %s there: %v, want %v", n, idx[n], made)
				}
			}
			res, err := r.Up(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(res.Steps); n == 0 || res.Steps[n-1].Name != "tenants_accounts_lookup_indexes" {
				t.Errorf("steps run after phase 2: %+v; want the lookup indexes' last", res.Steps)
			}
			idx = indexNames(t, tenants)
			for _, n := range append(lookupIndexes, wantIndexes...) {
				if !idx[n] {
					t.Errorf("after every step: index %s missing; have %v", n, idx)
				}
			}
			if _, err := r.Down(ctx); err != nil {
				t.Fatal(err)
			}
			idx = indexNames(t, tenants)
			for _, n := range lookupIndexes {
				if idx[n] {
					t.Errorf("index %s still there after its step's down", n)
				}
			}
			if !idx[wantIndexes[0]] {
				t.Errorf("the down of the last step dropped %s", wantIndexes[0])
			}
		})
	}
}

func TestIndexStepAppliesOnceThenNoOp(t *testing.T) {
	cfg, db := testConfig(t)
	cfg.NewInstall = true // no legacy collection: these steps need none
	r := newRunner(t, cfg, runner.WithSteps(indexStepOnly(t), nil))
	ctx := context.Background()

	res, err := r.Up(ctx)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	if res.From != -1 || res.To != 1 || len(res.Steps) != 1 || res.Steps[0].Version != 1 {
		t.Fatalf("first Up = %+v, want step 1 applied from -1 to 1", res)
	}
	idx := indexNames(t, db.Collection(names.TenantsAccounts))
	for _, n := range wantIndexes {
		if !idx[n] {
			t.Errorf("index %s missing after Up; have %v", n, idx)
		}
	}
	h := history(t, db, "1.up")
	if h.State != mongomigrate.StateApplied || h.Attempts != 1 || h.Counts[count.Commands] != 1 || h.Host == "" || h.EndedAt == nil || h.Checksum == "" {
		t.Errorf("history after first Up = %+v", h)
	}

	res, err = r.Up(ctx)
	if err != nil {
		t.Fatalf("second Up: %v", err)
	}
	if len(res.Steps) != 0 || res.To != 1 {
		t.Fatalf("second Up = %+v, want no step", res)
	}
	if h := history(t, db, "1.up"); h.Attempts != 1 {
		t.Errorf("second Up ran the step again: attempts %d", h.Attempts)
	}

	st, err := r.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != 1 || st.Dirty || len(st.Steps) != 1 || st.Steps[0].State != runner.StepApplied ||
		st.Steps[0].Identifier != "tenants_accounts_indexes" || st.Steps[0].Up == nil || st.Steps[0].Changed {
		t.Errorf("status = %+v", st)
	}
	if st.Lock == nil || !st.Lock.Free {
		t.Errorf("lock after Up = %+v, want the last holder's lock, released", st.Lock)
	}
}

func TestUniqueMembershipIndexRejectsDuplicates(t *testing.T) {
	cfg, db := testConfig(t)
	cfg.NewInstall = true // no legacy collection: these steps need none
	caps, err := capability.Detect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if !caps.UniqueArrayIndexes {
		t.Skipf("%s does not enforce unique indexes over arrays; verify checks membership ids there", caps.Server)
	}
	if _, err := newRunner(t, cfg, runner.WithSteps(indexStepOnly(t), nil)).Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	coll := db.Collection(names.TenantsAccounts)
	ctx := context.Background()
	doc := func(id string) bson.D {
		return bson.D{{Key: "_id", Value: id}, {Key: "org_id", Value: "o"},
			{Key: "org_apps_memberships", Value: bson.A{bson.D{{Key: "id", Value: "ao_1"}, {Key: "app_org_id", Value: "ao"}}}}}
	}
	if _, err := coll.InsertOne(ctx, doc("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.InsertOne(ctx, doc("b")); !mongo.IsDuplicateKeyError(err) {
		t.Fatalf("second tenant with the same membership id: err = %v, want duplicate key", err)
	}
}

func TestDownUndoesIndexStep(t *testing.T) {
	cfg, db := testConfig(t)
	cfg.NewInstall = true // no legacy collection: these steps need none
	r := newRunner(t, cfg, runner.WithSteps(indexStepOnly(t), nil))
	ctx := context.Background()
	if _, err := r.Up(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := r.Down(ctx)
	if err != nil {
		t.Fatalf("Down: %v", err)
	}
	if res.To != -1 || len(res.Steps) != 1 || res.Steps[0].Direction != "down" {
		t.Fatalf("Down = %+v", res)
	}
	idx := indexNames(t, db.Collection(names.TenantsAccounts))
	for _, n := range wantIndexes {
		if idx[n] {
			t.Errorf("index %s still there after Down", n)
		}
	}
	// The step's history goes with what it wrote (a tombstone is left,
	// which fences a late write); the down keeps its own.
	if n, _ := db.Collection("migrations_history").CountDocuments(ctx, bson.D{{Key: "_id", Value: "1.up"}, {Key: "undone", Value: bson.D{{Key: "$ne", Value: true}}}}); n != 0 {
		t.Error("the up history of step 1 is still there after Down")
	}
	if h := history(t, db, "1.down"); h.State != mongomigrate.StateApplied {
		t.Errorf("down history: %+v", h)
	}
	if st, err := r.Status(ctx); err != nil || st.Steps[0].State != "pending" || st.Steps[0].Up != nil {
		t.Errorf("status after Down = %+v, %v; want step 1 pending with no up history", st, err)
	}
	if _, err := r.Down(ctx); !errors.Is(err, runner.ErrNothingToUndo) {
		t.Errorf("second Down: err = %v, want ErrNothingToUndo", err)
	}
	if _, err := r.Up(ctx); err != nil {
		t.Fatalf("Up after Down: %v", err)
	}
	if h := history(t, db, "1.up"); h.State != mongomigrate.StateApplied || h.Attempts != 1 {
		t.Errorf("up history after re-Up: %+v", h)
	}
}

func TestConcurrentRunnersApplyOnce(t *testing.T) {
	cfg, db := testConfig(t)
	cfg.NewInstall = true // no legacy collection: these steps need none
	const n = 4
	runners := make([]*runner.Runner, n)
	_, latest := steps(t)
	for i := range runners {
		runners[i] = newRunner(t, cfg)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	results := make([]runner.Result, n)
	start := make(chan struct{})
	for i, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = r.Up(context.Background())
		}()
	}
	close(start)
	wg.Wait()
	applied := 0
	for i, err := range errs {
		if err != nil {
			t.Errorf("runner %d: %v", i, err)
		}
		applied += len(results[i].Steps)
	}
	if applied != latest {
		t.Errorf("%d runners applied %d steps in all, want %d", n, applied, latest)
	}
	for v := 1; v <= latest; v++ {
		if h := history(t, db, fmt.Sprintf("%d.up", v)); h.Attempts != 1 || h.State != mongomigrate.StateApplied {
			t.Errorf("history of step %d = %+v, want one attempt", v, h)
		}
	}
}

// insertDeadHolder writes the lock document a killed runner leaves behind.
func insertDeadHolder(t *testing.T, db *mongo.Database, expires time.Time) {
	t.Helper()
	_, err := db.Collection("migrations_lock").InsertOne(context.Background(), bson.D{
		{Key: "_id", Value: lease.DocID("migrations", 1)}, {Key: "name", Value: "migrations"}, {Key: "gen", Value: int64(1)},
		{Key: "owner", Value: "dead-host/1/00000000"}, {Key: "host", Value: "dead-host"},
		{Key: "acquired_at", Value: time.Now()}, {Key: "heartbeat_at", Value: time.Now()}, {Key: "expires_at", Value: expires},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDeadHolderBlocksAtMostItsLease(t *testing.T) {
	cfg, db := testConfig(t)
	cfg.NewInstall = true // no legacy collection: these steps need none
	lease := 2 * time.Second
	insertDeadHolder(t, db, time.Now().Add(lease))
	start := time.Now()
	res, err := newRunner(t, cfg).Up(context.Background())
	waited := time.Since(start)
	if err != nil {
		t.Fatalf("Up behind a dead holder: %v", err)
	}
	if _, latest := steps(t); res.To != latest {
		t.Fatalf("Up = %+v, want every step applied", res)
	}
	if waited < lease-200*time.Millisecond || waited > lease+5*time.Second {
		t.Errorf("waited %s behind a dead holder with a %s lease", waited, lease)
	}
}

func TestLockWaitExceeded(t *testing.T) {
	cfg, db := testConfig(t)
	cfg.NewInstall = true // no legacy collection: these steps need none
	// A live holder keeps renewing: the runner must give up after lock.wait.
	l, err := lease.Acquire(context.Background(), lease.Options{
		Coll: db.Collection("migrations_lock"), Name: "migrations", Owner: "other/1/x", Host: "other",
		TTL: 2 * time.Second, Renew: 500 * time.Millisecond, Wait: time.Second, Log: testenv.Quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(context.Background())
	cfg.Lock.Wait = 3 * time.Second
	start := time.Now()
	_, err = newRunner(t, cfg).Up(context.Background())
	if !errors.Is(err, runner.ErrLockWait) {
		t.Fatalf("Up while another holds the lock: err = %v, want ErrLockWait", err)
	}
	if w := time.Since(start); w < 3*time.Second || w > 8*time.Second {
		t.Errorf("gave up after %s, want about lock.wait (3s)", w)
	}
	var held *lease.HeldError
	if !errors.As(err, &held) || held.Owner != "other/1/x" {
		t.Errorf("error does not name the holder: %v", err)
	}
}

// phase1Only is a Go step named as phase 1, doing up, whose down does
// nothing.
func phase1Only(up mongomigrate.StepFunc) []step.Step {
	return []step.Step{fakePhase1{up: up}}
}

type fakePhase1 struct{ up mongomigrate.StepFunc }

func (fakePhase1) Name() migrations.GoStep { return phase1.Name }
func (fakePhase1) Phase() int              { return 1 }
func (f fakePhase1) Up(ctx context.Context, _ step.Env, _ *step.Call) (mongomigrate.Result, error) {
	return f.up(ctx)
}
func (fakePhase1) Down(context.Context, step.Env) (mongomigrate.Result, error) {
	return mongomigrate.Result{}, nil
}
func (fakePhase1) DryRun(context.Context, step.Env) (any, error) { return nil, nil }

// goSteps is a step source with a JSON step and Go steps, for the tests of
// the driver's Go steps, dirty state and phases.
func goSteps() fstest.MapFS {
	return fstest.MapFS{
		"1_indexes.up.json":   {Data: []byte(`[{"createIndexes": "{{.TenantsAccounts}}", "indexes": [{"key": {"org_id": 1}, "name": "org"}]}]`)},
		"1_indexes.down.json": {Data: []byte(`[{"dropIndexes": "{{.TenantsAccounts}}", "index": "org"}]`)},
		"2_first.up.json":     {Data: []byte(`{"go": "phase1"}`)},
		"2_first.down.json":   {Data: []byte(`{"go": "phase1_down"}`)},
	}
}

// A step file naming a Go step, up or down, that the build lacks is
// refused by New, in one line, before any step runs.
func TestUnknownGoStepRefusedAtNew(t *testing.T) {
	tests := []struct {
		name string
		file string
		body string
	}{
		{"up", "2_first.up.json", `{"go": "phase9"}`},
		{"down", "2_first.down.json", `{"go": "phase9_down"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, db := testConfig(t)
			files := goSteps()
			files[tt.file] = &fstest.MapFile{Data: []byte(tt.body)}
			r, err := runner.New(context.Background(), cfg, runner.WithLogger(testenv.Quiet()), runner.WithSteps(files, phase1Only(nil)))
			if err == nil {
				r.Close(context.Background())
				t.Fatal("New accepted a step file naming a Go step this build lacks")
			}
			if !errors.Is(err, runner.ErrUnknownStep) || !strings.Contains(err.Error(), "phase9") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line with ErrUnknownStep naming phase9", err)
			}
			if names, _ := db.ListCollectionNames(context.Background(), bson.D{}); len(names) != 0 {
				t.Errorf("New wrote %v before refusing", names)
			}
		})
	}
}

func TestGoStepFailureLeavesDirtyThenResumes(t *testing.T) {
	cfg, db := testConfig(t)
	cfg.NewInstall = true // no legacy collection: these steps need none
	calls := 0
	fail := true
	steps := phase1Only(func(ctx context.Context) (mongomigrate.Result, error) {
		calls++
		if ctx == nil || ctx.Err() != nil {
			return mongomigrate.Result{}, errors.New("no live context")
		}
		if fail {
			return mongomigrate.Result{}, errors.New("boom")
		}
		return mongomigrate.Result{Counts: count.Counts{"written": 7}}, nil
	})
	r := newRunner(t, cfg, runner.WithSteps(goSteps(), steps))
	ctx := context.Background()

	_, err := r.Up(ctx)
	var se *mongomigrate.StepError
	if !errors.As(err, &se) || se.Version != 2 || se.Name != "phase1" {
		t.Fatalf("Up with a failing step: err = %v, want StepError for step 2", err)
	}
	st, err := r.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Dirty || st.Steps[1].State != runner.StepFailed || st.Steps[1].Up.Error == "" || st.Steps[0].State != runner.StepApplied {
		t.Fatalf("status after failure = %+v / %+v", st, st.Steps[1].Up)
	}

	// on_dirty=fail refuses with an explanation.
	strict := cfg
	strict.Boot.OnDirty = config.DirtyFail
	_, err = newRunner(t, strict, runner.WithSteps(goSteps(), steps)).Up(ctx)
	var de *runner.DirtyError
	if !errors.As(err, &de) || !errors.Is(err, runner.ErrDirty) || de.Step != 2 || de.LastError == "" {
		t.Fatalf("Up with on_dirty=fail: err = %v, want DirtyError for step 2 with its error", err)
	}

	fail = false
	res, err := r.Up(ctx)
	if err != nil {
		t.Fatalf("Up resuming: %v", err)
	}
	if !res.Resumed || res.To != 2 || len(res.Steps) != 1 || res.Steps[0].Counts["written"] != 7 {
		t.Fatalf("resumed Up = %+v", res)
	}
	if h := history(t, db, "2.up"); h.Attempts != 2 || h.State != mongomigrate.StateApplied || h.Error != "" {
		t.Errorf("history after resume = %+v", h)
	}
	if calls != 2 {
		t.Errorf("step ran %d times, want 2", calls)
	}
}

func TestPhaseRunsPrerequisitesThenReruns(t *testing.T) {
	cfg, db := testConfig(t)
	cfg.NewInstall = true // no legacy collection: these steps need none
	calls := 0
	steps := phase1Only(func(context.Context) (mongomigrate.Result, error) {
		calls++
		return mongomigrate.Result{Counts: count.Counts{"n": int64(calls)}}, nil
	})
	r := newRunner(t, cfg, runner.WithSteps(goSteps(), steps))
	ctx := context.Background()
	res, err := r.Phase(ctx, 1)
	if err != nil || res.To != 2 || len(res.Steps) != 2 {
		t.Fatalf("Phase(1) = %+v, %v; want steps 1 and 2 applied", res, err)
	}
	res, err = r.Phase(ctx, 1)
	if err != nil || res.To != 2 || len(res.Steps) != 1 || res.Steps[0].Counts["n"] != 2 {
		t.Fatalf("second Phase(1) = %+v, %v; want phase 1 run again", res, err)
	}
	if h := history(t, db, "2.up"); h.Attempts != 2 || h.State != mongomigrate.StateApplied {
		t.Errorf("history = %+v", h)
	}
	if _, err := r.Phase(ctx, 2); !errors.Is(err, runner.ErrNoPhase) {
		t.Errorf("Phase(2): err = %v, want ErrNoPhase", err)
	}
	p, err := r.Plan(ctx, 1)
	if err != nil || len(p.Steps) != 1 || !p.Steps[0].Rerun {
		t.Errorf("Plan(1) = %+v, %v; want a re-run of step 2", p, err)
	}
}

func TestLostLeaseCancelsTheStep(t *testing.T) {
	cfg, db := testConfig(t)
	cfg.NewInstall = true // no legacy collection: these steps need none
	started := make(chan struct{})
	steps := phase1Only(func(ctx context.Context) (mongomigrate.Result, error) {
		close(started)
		select {
		case <-ctx.Done():
			return mongomigrate.Result{}, context.Cause(ctx)
		case <-time.After(30 * time.Second):
			return mongomigrate.Result{}, errors.New("step was not cancelled")
		}
	})
	r := newRunner(t, cfg, runner.WithSteps(goSteps(), steps))
	go func() {
		<-started
		// Another runner takes the lock over (as after a long pause of this
		// one): a newer generation appears.
		cur, err := lease.Current(context.Background(), db.Collection("migrations_lock"), "migrations")
		if err != nil || cur == nil {
			panic(fmt.Sprint("no lock while the step runs: ", err))
		}
		_, _ = db.Collection("migrations_lock").InsertOne(context.Background(), bson.D{
			{Key: "_id", Value: lease.DocID("migrations", cur.Gen+1)}, {Key: "name", Value: "migrations"}, {Key: "gen", Value: cur.Gen + 1},
			{Key: "owner", Value: "usurper"}, {Key: "expires_at", Value: time.Now().Add(time.Hour)}})
	}()
	_, err := r.Up(context.Background())
	if !errors.Is(err, runner.ErrLeaseLost) {
		t.Fatalf("Up after losing the lease: err = %v, want ErrLeaseLost", err)
	}
	cur, err := lease.Current(context.Background(), db.Collection("migrations_lock"), "migrations")
	if err != nil || cur == nil || cur.Owner != "usurper" || cur.Free(time.Now()) {
		t.Errorf("the runner that lost its lease changed the new holder's lock: %+v, %v", cur, err)
	}
	if st, _ := mongomigrate.ReadState(context.Background(), db.Collection("migrations_state")); !st.Dirty || st.Step != 2 {
		t.Errorf("state after a lost lease = %+v, want step 2 left dirty for the new holder", st)
	}
}

func TestBootOnFailureContinue(t *testing.T) {
	cfg := config.Default()
	cfg.MongoDB.URI = "mongodb://127.0.0.1:1"
	cfg.MongoDB.ConnectTimeout = 500 * time.Millisecond
	var logs bytes.Buffer
	l := logrus.New()
	l.SetOutput(&logs)
	l.SetFormatter(&logrus.JSONFormatter{})

	_, err := runner.Boot(context.Background(), cfg, runner.WithLogger(l))
	if !errors.Is(err, runner.ErrUnreachable) {
		t.Fatalf("Boot on_failure=fail: err = %v, want ErrUnreachable", err)
	}
	cfg.Boot.OnFailure = config.FailureContinue
	res, err := runner.Boot(context.Background(), cfg, runner.WithLogger(l))
	if err != nil || !errors.Is(res.Err, runner.ErrUnreachable) {
		t.Fatalf("Boot on_failure=continue = %+v, %v; want nil error and Result.Err", res, err)
	}
	if !bytes.Contains(logs.Bytes(), []byte(`"level":"error"`)) {
		t.Errorf("continue did not log the failure: %s", logs.String())
	}
}

// Connecting tells refused credentials from an absent server by the
// driver's error types, in one line that never shows the password.
// stepNamed is the step of res with that identifier.
func stepNamed(t *testing.T, res runner.Result, name string) runner.StepResult {
	t.Helper()
	for _, s := range res.Steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no step %s among %+v", name, res.Steps)
	return runner.StepResult{}
}

func TestConnectErrors(t *testing.T) {
	withUser := func(uri string) string {
		u, err := url.Parse(uri)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword("nobody", "wrong-s3cret")
		return u.String()
	}
	for _, tt := range []struct {
		name string
		uri  string
		want error
	}{
		{"wrong credentials", withUser(env.URI), runner.ErrAuth},
		{"no server", "mongodb://127.0.0.1:1", runner.ErrUnreachable},
		{"no server, credentials", withUser("mongodb://127.0.0.1:1"), runner.ErrUnreachable},
		{"host name that does not resolve", "mongodb://nosuch.invalid:27017/", runner.ErrUnreachable},
		{"SRV name that does not resolve", "mongodb+srv://nobody:wrong-s3cret@nosuch.invalid/", runner.ErrUnreachable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.MongoDB.URI = tt.uri
			cfg.MongoDB.ConnectTimeout = 2 * time.Second
			r, err := runner.New(context.Background(), cfg, runner.WithLogger(testenv.Quiet()))
			if err == nil {
				_ = r.Close(context.Background())
				t.Fatal("connected")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if msg := err.Error(); strings.Contains(msg, "wrong-s3cret") || strings.Contains(msg, "\n") {
				t.Errorf("message shows the password or spans lines: %q", msg)
			}
		})
	}
}

func TestBootAppliesSteps(t *testing.T) {
	cfg, _ := testConfig(t)
	cfg.NewInstall = true // no legacy collection: these steps need none
	res, err := runner.Boot(context.Background(), cfg, runner.WithLogger(testenv.Quiet()))
	if _, latest := steps(t); err != nil || res.To != latest {
		t.Fatalf("Boot = %+v, %v", res, err)
	}
}

func TestEndToEndOnFixture(t *testing.T) {
	cfg, db := testConfig(t)
	ctx := context.Background()
	exp := env.Load(t, db, gen.Options{Accounts: 3000, Seed: 11})
	before := fmt.Sprint(testenv.Dump(t, db.Collection(names.Accounts)))
	logger, logs := logtest.NewNullLogger()
	r := newRunner(t, cfg, runner.WithLogger(logger))
	_, latest := steps(t)
	res, err := r.Up(ctx)
	if err != nil || res.To != latest {
		t.Fatalf("Up = %+v, %v", res, err)
	}
	probe, err := phase2.Probe(ctx, phase2.Config{Env: step.Env{DB: db, ShardKey: env.ShardKey}})
	if err != nil {
		t.Fatal(err)
	}
	serverSide := probe.Chose != phase2.PathStream
	// The step's notes say which path ran, chosen by the probe.
	if n := strings.Join(stepNamed(t, res, "phase2_one_to_one").Notes, "\n"); !strings.Contains(n, "path "+probe.Chose.String()+" (") || !strings.Contains(n, "chosen by a probe") {
		t.Errorf("phase 2's notes %q do not name the probed path %s", n, probe.Chose)
	}
	// Phase 1 has just checked every account: the streaming phase 2 does
	// not read them all once more to check them again.
	wantChecked := map[bool]phase2.Checked{true: phase2.CheckedOnServer, false: phase2.CheckedInScan}[serverSide]
	if got := phase2Checked(logs); got != wantChecked {
		t.Errorf("phase 2 at boot checked accounts %q, want %q", got, wantChecked)
	}
	rep, err := r.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.LegacyAccounts != exp.Accounts || rep.Linked+rep.OneToOne != exp.Accounts ||
		rep.Linked != exp.GroupedAccounts || rep.TenantAccounts != exp.TenantsExpected {
		t.Fatalf("verify = %+v (%s); fixture expects %d accounts, %d grouped, %d tenants", rep, rep.Problem(), exp.Accounts, exp.GroupedAccounts, exp.TenantsExpected)
	}
	// Each phase again changes nothing.
	for _, phase := range []int{1, 2} {
		logs.Reset()
		res, err := r.Phase(ctx, phase)
		if err != nil || len(res.Steps) != 1 {
			t.Fatalf("Phase(%d) again = %+v, %v", phase, res, err)
		}
		// Run alone, phase 2 checks before it writes.
		if want := map[bool]phase2.Checked{true: phase2.CheckedOnServer, false: phase2.CheckedBefore}[serverSide]; phase == 2 && phase2Checked(logs) != want {
			t.Errorf("phase 2 run alone checked accounts %q, want %q", phase2Checked(logs), want)
		}
		for k, v := range res.Steps[0].Counts {
			if (k == "tenants_inserted" || k == "tenants_replaced" || k == "links_written" || k == "inserted" || k == "refreshed") && v != 0 {
				t.Errorf("Phase(%d) again wrote: %s=%d", phase, k, v)
			}
		}
	}
	firstTenants := fmt.Sprint(testenv.Dump(t, db.Collection(names.TenantsAccounts)))
	firstLinks := fmt.Sprint(testenv.Dump(t, db.Collection(names.Links)))
	// Down past the phase steps removes what they wrote.
	for v := latest; v >= 1; v-- {
		if _, err := r.Down(ctx); err != nil {
			t.Fatalf("Down from %d: %v", v, err)
		}
	}
	for _, coll := range []string{names.TenantsAccounts, names.Links} {
		if n, _ := db.Collection(coll).CountDocuments(ctx, bson.D{}); n != 0 {
			t.Errorf("%d documents left in %s after down", n, coll)
		}
	}
	if n, _ := db.Collection("migrations_history").CountDocuments(ctx, bson.D{{Key: "direction", Value: "up"}}); n != 0 {
		t.Errorf("%d step histories left after down past every step", n)
	}
	if got := fmt.Sprint(testenv.Dump(t, db.Collection(names.Accounts))); got != before {
		t.Error("the legacy collection changed")
	}
	if res, err := r.Up(ctx); err != nil || res.To != latest {
		t.Fatalf("Up after down = %+v, %v", res, err)
	}
	if rep, err := r.Verify(ctx); err != nil || !rep.OK() || rep.TenantAccounts != exp.TenantsExpected {
		t.Fatalf("verify after down and up = %+v, %v", rep, err)
	}
	if fmt.Sprint(testenv.Dump(t, db.Collection(names.TenantsAccounts))) != firstTenants ||
		fmt.Sprint(testenv.Dump(t, db.Collection(names.Links))) != firstLinks {
		t.Error("down then up did not give the same tenants and links as the first run")
	}
}

// Legacy accounts inserted and updated while phase 2 runs, and after it, are
// migrated and refreshed by the next runs; a new account of a person already
// migrated joins that person's tenant account.
func TestConcurrentEditsThenRerun(t *testing.T) {
	cfg, db := testConfig(t)
	ctx := context.Background()
	opts := gen.Options{Accounts: 1500, Seed: 13}
	exp := env.Load(t, db, opts)
	r := newRunner(t, cfg)
	if _, err := r.Up(ctx); err != nil {
		t.Fatal(err)
	}
	accounts := db.Collection(names.Accounts)
	var someone bson.M // a one-to-one account whose person gains a second account
	if err := db.Collection(names.TenantsAccounts).FindOne(ctx, bson.D{{Key: "org_apps_memberships", Value: bson.D{{Key: "$size", Value: 1}}},
		{Key: "auth_types.auth_type_code", Value: "email"}}).Decode(&someone); err != nil {
		t.Fatal(err)
	}
	var email string
	for _, at := range someone["auth_types"].(bson.A) {
		if m := at.(bson.M); m["auth_type_code"] == "email" {
			email = m["identifier"].(string)
		}
	}
	var appOrg string
	for _, ao := range gen.AppOrgs(opts) {
		if ao.OrgID == someone["org_id"] && ao.ID != someone["org_apps_memberships"].(bson.A)[0].(bson.M)["app_org_id"] {
			appOrg = ao.ID
		}
	}
	newAccount := func(id, ao, identifier string) bson.D {
		return bson.D{{Key: "_id", Value: id}, {Key: "app_org_id", Value: ao}, {Key: "date_created", Value: time.Now().UTC()},
			{Key: "auth_types", Value: bson.A{bson.D{{Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: identifier}}}}}
	}
	// Edits while phase 2 runs again.
	done := make(chan error, 1)
	go func() { _, err := r.Phase(ctx, 2); done <- err }()
	later := time.Now().UTC().Add(time.Minute).Truncate(time.Millisecond)
	var updated []model.ID
	cur, err := accounts.Find(ctx, bson.D{}, options.Find().SetLimit(20).SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	for cur.Next(ctx) {
		id, _ := model.IDOf(cur.Current.Lookup("_id"))
		if _, err := accounts.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{{Key: "date_updated", Value: later}, {Key: "username", Value: "edited-" + id.Text()}}}}); err != nil {
			t.Fatal(err)
		}
		updated = append(updated, id)
	}
	for i := 0; i < 30; i++ {
		if _, err := accounts.InsertOne(ctx, newAccount(fmt.Sprintf("zz-new-%02d", i), appOrg, fmt.Sprintf("new-%d@example.org", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil && !errors.Is(err, runner.ErrMismatch) {
		t.Fatalf("phase 2 during edits: %v", err)
	}
	// After: one more account, of a person already migrated.
	if _, err := accounts.InsertOne(ctx, newAccount("zz-joiner", appOrg, email)); err != nil {
		t.Fatal(err)
	}
	env.Seeded(t, db)
	if _, err := r.Phase(ctx, 1); err != nil && !errors.Is(err, runner.ErrMismatch) {
		t.Fatal(err)
	}
	if _, err := r.Phase(ctx, 2); err != nil {
		t.Fatalf("phase 2 after the edits: %v", err)
	}
	rep, err := r.Verify(ctx)
	if err != nil || !rep.OK() || rep.LegacyAccounts != exp.Accounts+31 {
		t.Fatalf("verify = %+v (%s), %v", rep, rep.Problem(), err)
	}
	for _, id := range updated {
		var tn bson.M
		var link bson.M
		tenantID := id
		if db.Collection(names.Links).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&link) == nil {
			continue // merged by phase 1: the survivor's fields win
		}
		if err := db.Collection(names.TenantsAccounts).FindOne(ctx, bson.D{{Key: "_id", Value: tenantID}}).Decode(&tn); err != nil || tn["username"] != "edited-"+id.Text() {
			t.Errorf("tenant %s not refreshed: %v, %v", id, tn["username"], err)
		}
	}
	var tn bson.M
	if err := db.Collection(names.TenantsAccounts).FindOne(ctx, bson.D{{Key: "_id", Value: someone["_id"]}}).Decode(&tn); err != nil || len(tn["org_apps_memberships"].(bson.A)) != 2 {
		t.Errorf("the joining account did not join its person's tenant account: %v, %v", tn["org_apps_memberships"], err)
	}
	if n, _ := db.Collection(names.TenantsAccounts).CountDocuments(ctx, bson.D{{Key: "_id", Value: "zz-joiner"}}); n != 0 {
		t.Error("the joining account kept a tenant account of its own")
	}
}

// phase2Checked is where the last phase 2 of the logs checked accounts.
func phase2Checked(logs *logtest.Hook) phase2.Checked {
	checked := phase2.Checked(-1)
	for _, e := range logs.AllEntries() {
		if e.Message == "phase 2: report" {
			checked, _ = e.Data["checked"].(phase2.Checked)
		}
	}
	return checked
}

// A call whose context is never cancelled (a service's boot) leaves no
// goroutine behind.
func TestCallsLeaveNoGoroutine(t *testing.T) {
	cfg, _ := testConfig(t)
	cfg.NewInstall = true // no legacy collection: these steps need none
	ctx := context.Background()
	r := newRunner(t, cfg)
	if _, err := r.Up(ctx); err != nil {
		t.Fatal(err)
	}
	const calls = 30
	before := runtime.NumGoroutine()
	for range calls {
		if _, err := r.Up(ctx); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // let the calls' own goroutines end
	if after := runtime.NumGoroutine(); after-before >= calls/2 {
		t.Errorf("%d goroutines before %d calls, %d after: one leaks per call", before, calls, after)
	}
}

// startHook reports every task through Reporter, calling onStart first.
type startHook struct {
	progress.Reporter
	onStart func(name string)
}

func (h startHook) Start(name string, total int64) progress.Task {
	h.onStart(name)
	return h.Reporter.Start(name, total)
}

// A run's own verify holds the run's lease: another runner cannot undo a
// step between the run and the verdict it gives of it.
func TestOwnVerifyHoldsTheLease(t *testing.T) {
	ctx := context.Background()
	cfg, db := testConfig(t)
	env.Load(t, db, gen.Options{Accounts: 200, Seed: 2})
	var r *runner.Runner
	checked, held := 0, 0
	hook := startHook{Reporter: progress.Discard{}, onStart: func(name string) {
		if name != "verify" {
			return
		}
		checked++
		st, err := r.Status(ctx)
		if err == nil && st.Lock != nil && !st.Lock.Free && st.Lock.Owner == r.Owner() {
			held++
		}
	}}
	r = newRunner(t, cfg, runner.WithProgress(hook))
	res, err := r.Up(ctx)
	if err != nil || res.Verify == nil || !res.Verify.OK() {
		t.Fatalf("Up = %+v, %v", res, err)
	}
	if _, err := r.Phase(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if checked != 2 || held != 2 {
		t.Errorf("the run's verify ran %d times, %d of them under the run's lease; want 2 and 2", checked, held)
	}
	// Verify on its own takes no lease.
	if _, err := r.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := r.Status(ctx); err != nil || st.Lock == nil || !st.Lock.Free {
		t.Errorf("after the runs, lock = %+v, %v; want it free", st.Lock, err)
	}
}

// The dry run of every step counts what the run then does: phase 2's
// counts come after the accounts phase 1 would link, not before.
func TestDryRunCountsEqualTheRun(t *testing.T) {
	cfg, db := testConfig(t)
	env.Load(t, db, gen.Options{Accounts: 3000, Seed: 5})
	r := newRunner(t, cfg)
	ctx := context.Background()
	p, err := r.Plan(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var p1 *phase1.Report
	var p2 *phase2.Report
	for _, s := range p.Steps {
		switch rep := s.Report.(type) {
		case *phase1.Report:
			p1 = rep
		case *phase2.Report:
			p2 = rep
		}
	}
	if p1 == nil || p2 == nil {
		t.Fatalf("the plan has no dry run of both phases: %+v", p.Steps)
	}
	res, err := r.Up(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := stepNamed(t, res, "phase1_merge_identities").Counts, stepNamed(t, res, "phase2_one_to_one").Counts
	for _, tt := range []struct {
		what      string
		dry, real int64
	}{
		{"phase 1 tenant accounts inserted", int64(p1.TenantsInserted), c1[count.TenantsInserted]},
		{"phase 1 links", int64(p1.LinksWritten), c1[count.LinksWritten]},
		{"phase 1 grouped accounts", int64(p1.GroupedAccounts), c1[count.GroupedAccounts]},
		{"phase 2 inserted", p2.Inserted, c2[count.Inserted]},
		{"phase 2 left to phase 1", p2.Merged, c2[count.LeftToPhase1]},
	} {
		if tt.dry != tt.real || tt.real == 0 {
			t.Errorf("%s: dry run %d, run %d", tt.what, tt.dry, tt.real)
		}
	}
}
