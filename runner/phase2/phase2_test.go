package phase2_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/phase1"
	"github.com/tenantmigrate/runner/runner/phase2"
	"github.com/tenantmigrate/runner/runner/step"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

var names = model.DefaultNames()

// leftCheckpoint reports whether phase 2's checkpoint is in db's store.
func leftCheckpoint(t *testing.T, db *mongo.Database) bool {
	t.Helper()
	var cp bson.Raw
	found, err := mongomigrate.NewStore(db, "migrations", nil).Load(context.Background(), "phase2_checkpoint", &cp)
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// database is a fresh database for a test. With RUNNER_TENANTS_SHARD_KEY,
// its tenant accounts have the unique index step 1 makes for the shard key
// ({org_id: 1, _id: 1}), which $merge on it needs: these tests run the
// phase alone.
func database(t *testing.T) *mongo.Database {
	t.Helper()
	db := env.Database(t)
	if key := env.ShardKey.UniqueKey(); key != nil {
		if _, err := db.Collection(names.TenantsAccounts).Indexes().CreateOne(context.Background(),
			mongo.IndexModel{Keys: key, Options: options.Index().SetUnique(true)}); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// testEnv is the environment of the tests' runs: the default names and
// bookkeeping of db, batch documents per round trip (0: the default).
func testEnv(db *mongo.Database, batch int) step.Env {
	return step.Env{DB: db, Names: names, Store: mongomigrate.NewStore(db, "migrations", nil), Batch: batch, Log: testenv.Quiet(), ShardKey: env.ShardKey}
}

func config(db *mongo.Database, path phase2.Path) phase2.Config {
	// ExactCounts: the tests below check refreshes on every path;
	// TestPhase2MergeCountsWithoutPreview checks the lean default.
	return phase2.Config{Env: testEnv(db, 400), Options: phase2.Options{Path: path, ExactCounts: true}}
}

// paths are the paths this server takes, as the probe finds them: the
// streaming one everywhere, the server-side ones where the server runs them.
func paths(t *testing.T, db *mongo.Database) []phase2.Path {
	t.Helper()
	rep, err := phase2.Probe(context.Background(), phase2.Config{Env: testEnv(db, 0)})
	if err != nil {
		t.Fatal(err)
	}
	refused := map[phase2.Path]bool{}
	for _, r := range rep.Refused {
		refused[r.Path] = true
	}
	var out []phase2.Path
	for _, p := range []phase2.Path{phase2.PathMerge, phase2.PathSplit} {
		if !refused[p] {
			out = append(out, p)
		}
	}
	t.Logf("the probe chose %s; refused: %v", rep.Chose, rep.Refused)
	return append(out, phase2.PathStream)
}

func takes(t *testing.T, db *mongo.Database, p phase2.Path) bool {
	t.Helper()
	for _, q := range paths(t, db) {
		if q == p {
			return true
		}
	}
	return false
}

// prepared loads a fixture and runs phase 1 on it.
func prepared(t *testing.T, n int) (*mongo.Database, gen.Expectations) {
	t.Helper()
	db := database(t)
	exp := env.Load(t, db, gen.Options{Accounts: n, Seed: 5})
	_, err := phase1.Run(context.Background(), phase1.Config{Env: step.Env{DB: db, Names: names, ScratchPrefix: "migrations", Batch: 500, Log: testenv.Quiet(), ShardKey: env.ShardKey},
		Rules: phase1.Rules{IdentityCodes: gen.DefaultIdentityCodes()}})
	if err != nil {
		t.Fatal(err)
	}
	return db, exp
}

func TestPhase2MovesTheRestOnce(t *testing.T) {
	probe := database(t)
	for _, path := range paths(t, probe) {
		t.Run(path.String(), func(t *testing.T) {
			db, exp := prepared(t, 3000)
			ctx := context.Background()
			one := int64(exp.Accounts - exp.GroupedAccounts)

			dry := config(db, path)
			dry.DryRun = true
			before := testenv.Dump(t, db.Collection(names.TenantsAccounts))
			drep, err := phase2.Run(ctx, dry)
			if err != nil || drep.Inserted != one {
				t.Fatalf("dry run = %+v, %v; want %d to insert", drep, err, one)
			}
			if fmt.Sprint(testenv.Dump(t, db.Collection(names.TenantsAccounts))) != fmt.Sprint(before) {
				t.Fatal("dry run wrote tenant accounts")
			}

			rep, err := phase2.Run(ctx, config(db, path))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Inserted != one || rep.Refreshed != 0 || rep.Merged != int64(exp.GroupedAccounts) {
				t.Errorf("phase 2 = %+v; want %d inserted, %d left to phase 1", rep, one, exp.GroupedAccounts)
			}
			if n, _ := db.Collection(names.TenantsAccounts).CountDocuments(ctx, bson.D{}); n != int64(exp.TenantsExpected) {
				t.Errorf("%d tenant accounts, fixture expects %d", n, exp.TenantsExpected)
			}
			after := testenv.Dump(t, db.Collection(names.TenantsAccounts))
			rep, err = phase2.Run(ctx, config(db, path))
			if err != nil || rep.Inserted != 0 || rep.Refreshed != 0 || rep.Unchanged != one {
				t.Errorf("re-run = %+v, %v; want nothing written", rep, err)
			}
			if fmt.Sprint(testenv.Dump(t, db.Collection(names.TenantsAccounts))) != fmt.Sprint(after) {
				t.Error("re-run changed tenant accounts")
			}
		})
	}
}

// Without phase2.exact_counts the $merge path runs the pipeline alone: it
// counts inserts from the tenant count and does not tell refreshed from
// unchanged. Only servers with $merge run it.
func TestPhase2MergeCountsWithoutPreview(t *testing.T) {
	db, exp := prepared(t, 3000)
	if !takes(t, db, phase2.PathMerge) {
		t.Skip("the server refuses the one-pipeline path: it runs on MongoDB 4.2+ only (MONGODB_URI)")
	}
	ctx := context.Background()
	one := int64(exp.Accounts - exp.GroupedAccounts)
	for i, size := range []int{0, 700} { // one pipeline, then ranges
		cfg := config(db, phase2.PathMerge)
		cfg.ExactCounts, cfg.RangeSize = false, size
		if i > 0 { // phase 2's tenant accounts go: those no link names
			merged, err := db.Collection(names.Links).Distinct(ctx, "tenant_id", bson.D{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Collection(names.TenantsAccounts).DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$nin", Value: merged}}}}); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := phase2.Run(ctx, cfg)
		if err != nil || rep.Exact || rep.Inserted != one || rep.RefreshedOrUnchanged != 0 || rep.Merged != int64(exp.GroupedAccounts) {
			t.Fatalf("range size %d: phase 2 = %+v, %v; want %d inserted, none refreshed or unchanged, %d left to phase 1", size, rep, err, one, exp.GroupedAccounts)
		}
		if n, _ := db.Collection(names.TenantsAccounts).CountDocuments(ctx, bson.D{}); n != int64(exp.TenantsExpected) {
			t.Errorf("range size %d: %d tenant accounts, fixture expects %d", size, n, exp.TenantsExpected)
		}
		rep, err = phase2.Run(ctx, cfg)
		if err != nil || rep.Inserted != 0 || rep.RefreshedOrUnchanged != one || rep.Counts()["accounts_read"] != int64(exp.Accounts) {
			t.Errorf("range size %d: re-run = %+v (counts %v), %v; want 0 inserted, %d refreshed or unchanged, %d read", size, rep, rep.Counts(), err, one, exp.Accounts)
		}
	}
}

// lastOneToOne is an account phase 2 moves: one without a link.
func lastOneToOne(t *testing.T, db *mongo.Database) model.ID {
	t.Helper()
	cur, err := db.Collection(names.Accounts).Find(context.Background(), bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close(context.Background())
	for cur.Next(context.Background()) {
		id, _ := model.IDOf(cur.Current.Lookup("_id"))
		if err := db.Collection(names.Links).FindOne(context.Background(), bson.D{{Key: "_id", Value: id}}).Err(); errors.Is(err, mongo.ErrNoDocuments) {
			return id
		}
	}
	t.Fatal("no one-to-one account")
	return model.ID{}
}

// edit sets a document's date_updated and username, as a service would.
func edit(t *testing.T, coll *mongo.Collection, id model.ID, updated time.Time, username string) {
	t.Helper()
	if _, err := coll.UpdateOne(context.Background(), bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "date_updated", Value: updated}, {Key: "username", Value: username}}}}); err != nil {
		t.Fatal(err)
	}
}

func TestPhase2Refresh(t *testing.T) {
	probe := database(t)
	for _, path := range paths(t, probe) {
		t.Run(path.String(), func(t *testing.T) {
			db, _ := prepared(t, 600)
			ctx := context.Background()
			if _, err := phase2.Run(ctx, config(db, path)); err != nil {
				t.Fatal(err)
			}
			id := lastOneToOne(t, db)
			later := time.Now().UTC().Truncate(time.Millisecond)
			// The legacy account changes after its tenant account was written.
			edit(t, db.Collection(names.Accounts), id, later, "renamed")
			env.Seeded(t, db)
			rep, err := phase2.Run(ctx, config(db, path))
			if err != nil || rep.Refreshed != 1 {
				t.Fatalf("re-run after a legacy edit = %+v, %v; want 1 refreshed", rep, err)
			}
			var tn bson.M
			if err := db.Collection(names.TenantsAccounts).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&tn); err != nil || tn["username"] != "renamed" {
				t.Fatalf("tenant after refresh = %v, %v", tn["username"], err)
			}
			// A tenant edited after its source is kept.
			edit(t, db.Collection(names.TenantsAccounts), id, later.Add(time.Hour), "service-edit")
			if rep, err = phase2.Run(ctx, config(db, path)); err != nil || rep.Refreshed != 0 {
				t.Fatalf("re-run over a newer tenant = %+v, %v", rep, err)
			}
			if err := db.Collection(names.TenantsAccounts).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&tn); err != nil || tn["username"] != "service-edit" {
				t.Errorf("a tenant newer than its source was overwritten: %v", tn["username"])
			}
		})
	}
}

// Ranges run at once write what one range writes, count the same, and
// leave no checkpoint; a re-run over them inserts nothing.
func TestPhase2ParallelRanges(t *testing.T) {
	probe := database(t)
	for _, path := range paths(t, probe) {
		if path == phase2.PathStream {
			continue // it streams in one pass, with no ranges
		}
		t.Run(path.String(), func(t *testing.T) {
			ctx := context.Background()
			one, _ := prepared(t, 3000)
			want, err := phase2.Run(ctx, config(one, path))
			if err != nil || want.Ranges != 1 {
				t.Fatalf("one range: %+v, %v", want, err)
			}
			db, _ := prepared(t, 3000)
			cfg := config(db, path)
			cfg.RangeSize, cfg.Parallel = 300, 4
			got, err := phase2.Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			// Ranges of the _ids the phases migrate; the last one holds the
			// rest, however few (none when they divide evenly).
			migrated, err := db.Collection(names.Accounts).CountDocuments(ctx, (&pipelines.Range{}).MigratedIDs())
			if err != nil {
				t.Fatal(err)
			}
			wantRanges := int(migrated/300) + 1
			if got.Ranges != wantRanges || got.Inserted != want.Inserted || got.Refreshed != want.Refreshed || got.Unchanged != want.Unchanged || got.Merged != want.Merged {
				t.Errorf("4 at once over ranges of 300 = %+v; want %d ranges and the counts of one range, %+v", got, wantRanges, want)
			}
			if a, b := testenv.Dump(t, db.Collection(names.TenantsAccounts)), testenv.Dump(t, one.Collection(names.TenantsAccounts)); fmt.Sprint(a) != fmt.Sprint(b) {
				t.Errorf("tenant accounts differ from one range's: %d vs %d", len(a), len(b))
			}
			if leftCheckpoint(t, db) {
				t.Error("checkpoint left after a complete run")
			}
			again, err := phase2.Run(ctx, cfg)
			if err != nil || again.Inserted != 0 || again.Refreshed != 0 {
				t.Errorf("re-run = %+v, %v; want nothing inserted or refreshed", again, err)
			}
		})
	}
}

func TestPhase2InterruptedThenRerun(t *testing.T) {
	probe := database(t)
	for _, path := range paths(t, probe) {
		t.Run(path.String(), func(t *testing.T) {
			clean, _ := prepared(t, 2500)
			start := time.Now()
			if _, err := phase2.Run(context.Background(), config(clean, path)); err != nil {
				t.Fatal(err)
			}
			full := time.Since(start)
			want := testenv.Dump(t, clean.Collection(names.TenantsAccounts))

			db, _ := prepared(t, 2500)
			cfg := config(db, path)
			// Three ranges at once: a range that finishes after one
			// still running moves no checkpoint past it.
			cfg.RangeSize, cfg.Parallel = 500, 3
			interrupted, resumed := 0, 0
			for _, frac := range []float64{0.2, 0.4, 0.6, 0.8} {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(frac*float64(full)))
				rep, err := phase2.Run(ctx, cfg)
				cancel()
				if err != nil {
					interrupted++
				}
				if rep != nil && rep.Resumed != "" {
					resumed++
				}
			}
			if interrupted == 0 {
				t.Fatal("no run was interrupted: the test proves nothing")
			}
			if _, err := phase2.Run(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			if got := testenv.Dump(t, db.Collection(names.TenantsAccounts)); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("after %d interrupted runs (%d resumed from a checkpoint): %d tenants, a clean run %d (or contents differ)", interrupted, resumed, len(got), len(want))
			}
			if leftCheckpoint(t, db) {
				t.Error("checkpoint left after a complete run")
			}
		})
	}
}

func TestPhase2BadData(t *testing.T) {
	db, _ := prepared(t, 300)
	ctx := context.Background()
	if _, err := db.Collection(names.Accounts).InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: int32(7)}, {Key: "app_org_id", Value: "x"}},
		bson.D{{Key: "_id", Value: "dangling"}, {Key: "app_org_id", Value: "nope"}, {Key: "auth_types", Value: bson.A{bson.D{{Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: "a@b"}}}}},
	}); err != nil {
		t.Fatal(err)
	}
	env.Seeded(t, db)
	before := testenv.Dump(t, db.Collection(names.TenantsAccounts))
	rep, err := phase2.Run(ctx, config(db, phase2.PathStream))
	if !errors.Is(err, pipelines.ErrInvalidData) || rep.Invalid != 2 {
		t.Fatalf("phase 2 over bad data = %+v, %v; want ErrInvalidData for 2", rep, err)
	}
	if fmt.Sprint(testenv.Dump(t, db.Collection(names.TenantsAccounts))) != fmt.Sprint(before) {
		t.Fatal("phase 2 wrote despite bad data")
	}
	cfg := config(db, phase2.PathStream)
	cfg.SkipInvalid = true
	if rep, err = phase2.Run(ctx, cfg); err != nil || rep.Invalid != 2 || rep.Inserted == 0 {
		t.Fatalf("with SkipInvalid = %+v, %v", rep, err)
	}
	if err := db.Collection(names.TenantsAccounts).FindOne(ctx, bson.D{{Key: "_id", Value: "dangling"}}).Err(); !errors.Is(err, mongo.ErrNoDocuments) {
		t.Errorf("an invalid account was migrated: %v", err)
	}
}

// After this run's phase 1 checked every account, the streaming path checks
// in its copy scan: an account that turned bad since stops the writes where
// it stands, the scan still counts every bad one, and a run that skips them
// completes the rest.
func TestPhase2FallbackChecksInItsScan(t *testing.T) {
	db, exp := prepared(t, 300)
	ctx := context.Background()
	ids := legacyIDs(t, db)
	// mid among the strings; last after everything, the ObjectIds too
	mid := model.StringID(ids[len(ids)/2].Text() + "~")
	last := model.ObjectIDOf(primitive.ObjectID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if mid.IsObjectID() || !ids[len(ids)-1].IsObjectID() {
		t.Fatal("the fixture lost its mix of string and ObjectId _ids")
	}
	bad := func(id model.ID) bson.D {
		return bson.D{{Key: "_id", Value: id}, {Key: "app_org_id", Value: "nope"},
			{Key: "auth_types", Value: bson.A{bson.D{{Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: "a@b"}}}}}
	}
	if _, err := db.Collection(names.Accounts).InsertMany(ctx, []any{bad(mid), bad(last)}); err != nil {
		t.Fatal(err)
	}
	env.Seeded(t, db)
	before := map[model.ID]bool{}
	for _, id := range tenantIDs(t, db) {
		before[id] = true
	}
	cfg := config(db, phase2.PathStream)
	cfg.Batch, cfg.Prechecked = 20, true
	rep, err := phase2.Run(ctx, cfg)
	if !errors.Is(err, pipelines.ErrInvalidData) || rep.Invalid != 2 || rep.Checked != phase2.CheckedInScan {
		t.Fatalf("phase 2 over bad data, prechecked = %+v, %v; want ErrInvalidData (one sentinel for both phases) for 2, checked in the copy scan", rep, err)
	}
	written := 0
	for _, id := range tenantIDs(t, db) {
		if before[id] {
			continue
		}
		written++
		if mid.Less(id) {
			t.Errorf("tenant %s written after the first bad account %s", id, mid)
		}
	}
	if written == 0 {
		t.Fatal("nothing was written before the first bad account: the test proves nothing")
	}

	cfg.SkipInvalid = true
	if rep, err = phase2.Run(ctx, cfg); err != nil || rep.Invalid != 2 || rep.Resumed == "" {
		t.Fatalf("with SkipInvalid = %+v, %v; want 2 skipped, resumed from the checkpoint", rep, err)
	}
	if n, _ := db.Collection(names.TenantsAccounts).CountDocuments(ctx, bson.D{}); n != int64(exp.TenantsExpected) {
		t.Errorf("%d tenant accounts, fixture expects %d", n, exp.TenantsExpected)
	}
	for _, id := range []model.ID{mid, last} {
		if err := db.Collection(names.TenantsAccounts).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Err(); !errors.Is(err, mongo.ErrNoDocuments) {
			t.Errorf("invalid account %s was migrated: %v", id, err)
		}
	}
	// Not prechecked, the same data stops the phase before any write.
	if rep, err = phase2.Run(ctx, config(db, phase2.PathStream)); !errors.Is(err, pipelines.ErrInvalidData) || rep.Checked != phase2.CheckedBefore {
		t.Errorf("not prechecked = %+v, %v; want a scan before the copy to stop it", rep, err)
	}
	// A run resumed past the first bad account still counts both: it scans
	// before the copy, which reads only what follows the checkpoint.
	// Written as builds before the store kept it, in the state collection
	// (and no steps collection, which those builds had not): a database
	// they left half done resumes.
	if err := db.Collection("migrations_steps").Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("migrations_state").InsertOne(ctx, bson.D{{Key: "_id", Value: "phase2_checkpoint"}, {Key: "through", Value: mid}}); err != nil {
		t.Fatal(err)
	}
	if rep, err = phase2.Run(ctx, cfg); err != nil || rep.Resumed != mid.String() || rep.Invalid != 2 || rep.Checked != phase2.CheckedBefore {
		t.Errorf("resumed after the first bad account = %+v, %v; want both counted by a scan before the copy", rep, err)
	}
}

func legacyIDs(t *testing.T, db *mongo.Database) []model.ID {
	t.Helper()
	return sortedIDs(t, db.Collection(names.Accounts))
}

func tenantIDs(t *testing.T, db *mongo.Database) []model.ID {
	t.Helper()
	return sortedIDs(t, db.Collection(names.TenantsAccounts))
}

func sortedIDs(t *testing.T, coll *mongo.Collection) []model.ID {
	t.Helper()
	cur, err := coll.Find(context.Background(), bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var out []model.ID
	for cur.Next(context.Background()) {
		if id, ok := model.IDOf(cur.Current.Lookup("_id")); ok {
			out = append(out, id)
		}
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The probe picks the best path the server takes, says why it refused the
// better ones in the server's words, and leaves nothing behind.
func TestPhase2ProbeChoosesAndExplains(t *testing.T) {
	db, exp := prepared(t, 300)
	ctx := context.Background()
	collections := func() []string {
		n, err := db.ListCollectionNames(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(n)
		return n
	}
	before := collections()
	rep, err := phase2.Run(ctx, phase2.Config{Env: testEnv(db, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Probe == nil || rep.Path != rep.Probe.Chose || rep.Path == phase2.PathProbe {
		t.Fatalf("report = %+v, probe %+v; want the probe's choice to run", rep, rep.Probe)
	}
	// Paths are tried best first: every refused one is better than the
	// choice, and each refusal carries the server's words.
	for _, r := range rep.Probe.Refused {
		if r.Path >= rep.Path || r.Error == "" {
			t.Errorf("refusal %+v next to the choice %s", r, rep.Path)
		}
	}
	if len(rep.Probe.Refused) != int(rep.Path-phase2.PathMerge) {
		t.Errorf("refused %v, chose %s: a better path was skipped without a refusal", rep.Probe.Refused, rep.Path)
	}
	if env.Embedded != nil && rep.Path != phase2.PathStream {
		t.Errorf("the embedded FerretDB 1 has no $merge, but the probe chose %s", rep.Path)
	}
	if n, _ := db.Collection(names.TenantsAccounts).CountDocuments(ctx, bson.D{}); n != int64(exp.TenantsExpected) {
		t.Errorf("%d tenant accounts after the probed run, fixture expects %d", n, exp.TenantsExpected)
	}
	after := collections()
	for _, n := range after {
		if strings.Contains(n, "_p2probe_") {
			t.Errorf("the probe left %s behind", n)
		}
	}
	if !slices.Equal(slices.DeleteFunc(slices.Clone(after), func(n string) bool { return n == "migrations_steps" }), before) {
		t.Errorf("collections before %v, after %v (the checkpoint's aside)", before, after)
	}
	before = after
	notes := strings.Join(rep.Notes(), "\n")
	if !strings.Contains(notes, "path "+rep.Path.String()) || len(rep.Notes()) != 1+len(rep.Probe.Refused) {
		t.Errorf("notes %q do not say the path and each refusal", notes)
	}
	t.Logf("notes:\n%s", notes)

	// A dry run writes nothing, not even the probe's scratch.
	dry := config(db, phase2.PathProbe)
	dry.DryRun = true
	if rep, err := phase2.Run(ctx, dry); err != nil || rep.Probe != nil || rep.Path != phase2.PathProbe || rep.Unchanged != int64(exp.Accounts-exp.GroupedAccounts) {
		t.Errorf("dry run = %+v, %v; want no probe, everything unchanged", rep, err)
	}
	if got := collections(); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("collections after a dry run %v, before %v", got, before)
	}
}

// A refresh is a conditional write: a tenant account the service writes
// after phase 2 read it, and before phase 2 writes it, is kept.
func TestPhase2RefreshKeepsATenantWrittenMeanwhile(t *testing.T) {
	probe := database(t)
	for _, path := range paths(t, probe) {
		if path == phase2.PathMerge {
			continue // one server-side write: nothing comes in between
		}
		t.Run(path.String(), func(t *testing.T) {
			db, _ := prepared(t, 400)
			ctx := context.Background()
			if _, err := phase2.Run(ctx, config(db, path)); err != nil {
				t.Fatal(err)
			}
			id := lastOneToOne(t, db)
			later := time.Now().UTC().Truncate(time.Millisecond)
			edit(t, db.Collection(names.Accounts), id, later, "renamed")
			env.Seeded(t, db)
			calls := 0
			cfg := phase2.WithBeforeRefresh(config(db, path), func() {
				calls++
				edit(t, db.Collection(names.TenantsAccounts), id, later.Add(time.Hour), "service-edit")
			})
			rep, err := phase2.Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if calls == 0 {
				t.Fatal("no refresh was attempted: the test proves nothing")
			}
			var tn bson.M
			if err := db.Collection(names.TenantsAccounts).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&tn); err != nil || tn["username"] != "service-edit" {
				t.Errorf("the tenant the service wrote meanwhile was overwritten: %v, %v", tn["username"], err)
			}
			if rep.Refreshed != 0 {
				t.Errorf("report = %+v; want 0 refreshed (the one candidate was kept)", rep)
			}
		})
	}
}

// Phase 2 creates the collections its pipelines read: a server may refuse
// a $merge whose $lookup names a missing one (DocumentDB does).
func TestPhase2WithoutLinksCollection(t *testing.T) {
	db := database(t)
	exp := env.Load(t, db, gen.Options{Accounts: 300, Seed: 3})
	ctx := context.Background()
	rep, err := phase2.Run(ctx, config(db, phase2.PathProbe))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Inserted != int64(exp.Accounts) {
		t.Errorf("phase 2 alone (no phase 1, no links) = %+v; want all %d inserted", rep, exp.Accounts)
	}
	got, err := db.ListCollectionNames(ctx, bson.D{{Key: "name", Value: names.Links}})
	if err != nil || len(got) != 1 {
		t.Errorf("links collection after phase 2: %v, %v", got, err)
	}
	// Down removes what phase 2 wrote and the collections it created (here
	// both: no step 1, no phase 1), twice over as once; the legacy
	// accounts stay as they were.
	legacy := testenv.Dump(t, db.Collection(names.Accounts))
	for i := 0; i < 2; i++ {
		down, err := phase2.Down(ctx, config(db, phase2.PathProbe))
		if err != nil {
			t.Fatal(err)
		}
		wantDeleted, wantDropped := int64(exp.Accounts), []string{names.Links, names.TenantsAccounts}
		if env.ShardKey.Sharded() {
			wantDropped = wantDropped[:1] // the test made the tenant accounts, with the shard key's index
		}
		if i == 1 {
			wantDeleted, wantDropped = 0, nil
		}
		if down.TenantsDeleted != wantDeleted || !slices.Equal(down.Dropped, wantDropped) {
			t.Errorf("down %d = %+v; want %d deleted, %v dropped", i+1, down, wantDeleted, wantDropped)
		}
	}
	if got, _ := db.ListCollectionNames(ctx, bson.D{{Key: "name", Value: names.Links}}); len(got) != 0 {
		t.Errorf("the links collection phase 2 created is still there after down")
	}
	if n, _ := db.Collection(names.TenantsAccounts).CountDocuments(ctx, bson.D{}); n != 0 {
		t.Errorf("%d tenant accounts after down", n)
	}
	if got := testenv.Dump(t, db.Collection(names.Accounts)); fmt.Sprint(got) != fmt.Sprint(legacy) {
		t.Error("down changed the legacy accounts")
	}
}

// A links collection phase 1 wrote is phase 1's: phase 2's down keeps it,
// and the tenant accounts phase 1 merged into.
func TestPhase2DownKeepsPhase1(t *testing.T) {
	db, exp := prepared(t, 400)
	ctx := context.Background()
	if _, err := phase2.Run(ctx, config(db, phase2.PathStream)); err != nil {
		t.Fatal(err)
	}
	down, err := phase2.Down(ctx, config(db, phase2.PathStream))
	if err != nil {
		t.Fatal(err)
	}
	if down.TenantsDeleted != int64(exp.Accounts-exp.GroupedAccounts) || len(down.Dropped) != 0 {
		t.Errorf("down = %+v; want the %d one-to-one tenants deleted, nothing dropped", down, exp.Accounts-exp.GroupedAccounts)
	}
	if n, _ := db.Collection(names.TenantsAccounts).CountDocuments(ctx, bson.D{}); n != int64(len(exp.Groups)) {
		t.Errorf("%d tenant accounts after down, want phase 1's %d", n, len(exp.Groups))
	}
}

// A database an earlier build migrated keeps the collections phase 2
// created as one list in the state collection: down still drops them.
func TestPhase2DownDropsWhatAnEarlierBuildCreated(t *testing.T) {
	db := database(t)
	exp := env.Load(t, db, gen.Options{Accounts: 100, Seed: 5})
	ctx := context.Background()
	if _, err := phase2.Run(ctx, config(db, phase2.PathStream)); err != nil {
		t.Fatal(err)
	}
	// As the earlier build left it.
	if _, err := db.Collection("migrations_steps").DeleteMany(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("migrations_state").InsertOne(ctx, bson.D{{Key: "_id", Value: "phase2_created"},
		{Key: "collections", Value: bson.A{names.Links, names.TenantsAccounts}}}); err != nil {
		t.Fatal(err)
	}
	down, err := phase2.Down(ctx, config(db, phase2.PathStream))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{names.Links, names.TenantsAccounts}; down.TenantsDeleted != int64(exp.Accounts) || !slices.Equal(down.Dropped, want) {
		t.Errorf("down = %+v; want %d deleted, %v dropped", down, exp.Accounts, want)
	}
	if n, _ := db.Collection("migrations_state").CountDocuments(ctx, bson.D{{Key: "_id", Value: "phase2_created"}}); n != 0 {
		t.Error("the earlier build's list is left after down")
	}
}

// A range whose server-side run takes longer than the lease allows is cut
// by the server (maxTimeMS) and run again as its halves, which fit: the
// result is an uncut run's. Here the lease allows 1 ms to any range of
// more than 300 accounts, and no limit to the others.
func TestRangesFitTheLease(t *testing.T) {
	db, exp := prepared(t, 3000)
	var ps []phase2.Path
	for _, p := range paths(t, db) {
		if p != phase2.PathStream {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		t.Skip("the server runs no server-side path: it runs on FerretDB 2 and MongoDB (MONGODB_URI)")
	}
	ctx := context.Background()
	for _, path := range ps {
		t.Run(path.String(), func(t *testing.T) {
			// phase 2's tenant accounts go: those no link names
			merged, err := db.Collection(names.Links).Distinct(ctx, "tenant_id", bson.D{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Collection(names.TenantsAccounts).DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$nin", Value: merged}}}}); err != nil {
				t.Fatal(err)
			}
			var cut, whole atomic.Int64
			cfg := phase2.WithMaxTime(config(db, path), func(ctx context.Context, r *pipelines.Range) time.Duration {
				n, err := db.Collection(names.Accounts).CountDocuments(ctx, r.MigratedIDs())
				if err != nil {
					t.Error(err)
				}
				if n > 300 {
					cut.Add(1)
					return time.Millisecond
				}
				whole.Add(1)
				return 0
			})
			cfg.RangeSize = 1000
			rep, err := phase2.Run(ctx, cfg)
			if err != nil {
				t.Fatalf("phase 2: %v", err)
			}
			if n, _ := db.Collection(names.TenantsAccounts).CountDocuments(ctx, bson.D{}); n != int64(exp.TenantsExpected) {
				t.Errorf("%d tenant accounts; fixture expects %d", n, exp.TenantsExpected)
			}
			if cut.Load() == 0 || whole.Load() <= cut.Load() {
				t.Errorf("%d ranges cut, %d run whole; want the cut ones run as halves (report %+v)", cut.Load(), whole.Load(), rep)
			}
		})
	}
}

// Phase 2's down deletes only the tenant accounts the runner wrote that
// nobody changed since: one the service wrote after its legacy account,
// and one the service created (no legacy account), are kept and counted;
// one whose legacy account was edited since (the runner's, not yet
// refreshed) goes.
func TestPhase2DownKeepsTheServicesTenants(t *testing.T) {
	db, exp := prepared(t, 1000)
	ctx := context.Background()
	cfg := config(db, phase2.PathStream)
	rep, err := phase2.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ids := tenantIDs(t, db)
	merged, err := db.Collection(names.Links).Distinct(ctx, "tenant_id", bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	isMerged := map[string]bool{}
	for _, m := range merged {
		isMerged[fmt.Sprint(m)] = true
	}
	var oneToOne []model.ID
	for _, id := range ids {
		if !isMerged[fmt.Sprint(id.Value())] {
			oneToOne = append(oneToOne, id)
		}
	}
	if int64(len(oneToOne)) != rep.Inserted || len(oneToOne) < 2 {
		t.Fatalf("%d one-to-one tenant accounts, %d inserted", len(oneToOne), rep.Inserted)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	tenants := db.Collection(names.TenantsAccounts)
	if _, err := tenants.UpdateOne(ctx, bson.D{{Key: "_id", Value: oneToOne[0].Value()}}, bson.D{{Key: "$set", Value: bson.D{{Key: "date_updated", Value: now}, {Key: "service_field", Value: 1}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := tenants.InsertOne(ctx, bson.D{{Key: "_id", Value: "service-signup-1"}, {Key: "date_updated", Value: now}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection(names.Accounts).UpdateOne(ctx, bson.D{{Key: "_id", Value: oneToOne[1].Value()}}, bson.D{{Key: "$set", Value: bson.D{{Key: "date_updated", Value: now}}}}); err != nil {
		t.Fatal(err)
	}
	env.Seeded(t, db)
	down, err := phase2.Down(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if down.KeptChanged != 1 || down.KeptNoSource != 1 || down.TenantsDeleted != int64(len(oneToOne)-1) {
		t.Errorf("down = %+v; want %d deleted, 1 kept as changed, 1 kept with no source", down, len(oneToOne)-1)
	}
	for _, id := range []any{oneToOne[0].Value(), "service-signup-1"} {
		if err := tenants.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Err(); err != nil {
			t.Errorf("the service's tenant account %v: %v; want kept", id, err)
		}
	}
	if n, _ := tenants.CountDocuments(ctx, bson.D{}); n != int64(len(exp.Groups)+2) {
		t.Errorf("%d tenant accounts after the down; want phase 1's %d and the service's 2", n, len(exp.Groups))
	}
}

// A dry run's counts moved to phase 1 (AfterPhase1) still add up to the
// accounts read, however many phase 1 says.
func TestAfterPhase1KeepsTheSum(t *testing.T) {
	for _, tt := range []struct {
		name                              string
		rep                               phase2.Report
		newlyLinked, ownTenant            int64
		inserted, refreshed, unch, merged int64
	}{
		{"fresh database", phase2.Report{Inserted: 100}, 30, 0, 70, 0, 0, 30},
		{"own tenant accounts", phase2.Report{Inserted: 50, Refreshed: 5, Unchanged: 10, Merged: 2}, 20, 8, 38, 0, 7, 22},
		{"more than counted", phase2.Report{Inserted: 3, Refreshed: 1}, 10, 4, 0, 0, 0, 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.rep
			before := r.Counts()[count.AccountsRead]
			r.AfterPhase1(tt.newlyLinked, tt.ownTenant)
			if r.Inserted != tt.inserted || r.Refreshed != tt.refreshed || r.Unchanged != tt.unch || r.Merged != tt.merged || r.Counts()[count.AccountsRead] != before {
				t.Errorf("after phase 1: %+v (read %d, was %d)", r, r.Counts()[count.AccountsRead], before)
			}
		})
	}
}
