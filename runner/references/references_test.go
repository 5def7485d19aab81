package references_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/references"
	"github.com/tenantmigrate/runner/runner/step"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

var (
	oidA = primitive.ObjectID{0x65, 1}
	oidT = primitive.ObjectID{0x65, 2}
)

// world is a small service: links of three merged people and the
// collections that refer to their accounts.
//
//	a1, a2 -> a0 (a0 survives)      b1 -> b0      oidA -> oidT
//	c0: one-to-one (no link)        z: an id that exists nowhere
func world(t *testing.T, db *mongo.Database) {
	t.Helper()
	ctx := context.Background()
	ins := func(coll string, docs ...any) {
		t.Helper()
		if _, err := db.Collection(coll).InsertMany(ctx, docs); err != nil {
			t.Fatalf("insert %s: %v", coll, err)
		}
	}
	ins("links",
		bson.D{{Key: "_id", Value: "a0"}, {Key: "tenant_id", Value: "a0"}},
		bson.D{{Key: "_id", Value: "a1"}, {Key: "tenant_id", Value: "a0"}},
		bson.D{{Key: "_id", Value: "a2"}, {Key: "tenant_id", Value: "a0"}},
		bson.D{{Key: "_id", Value: "b0"}, {Key: "tenant_id", Value: "b0"}},
		bson.D{{Key: "_id", Value: "b1"}, {Key: "tenant_id", Value: "b0"}},
		bson.D{{Key: "_id", Value: oidA}, {Key: "tenant_id", Value: oidT}},
		bson.D{{Key: "_id", Value: oidT}, {Key: "tenant_id", Value: oidT}},
		bson.D{{Key: "_id", Value: "s1"}, {Key: "skipped", Value: "too large"}},
	)
	ins("sessions",
		bson.D{{Key: "_id", Value: 1}, {Key: "account_id", Value: "a1"}, {Key: "device", Value: "d1"}},
		bson.D{{Key: "_id", Value: 2}, {Key: "account_id", Value: "a2"}, {Key: "device", Value: "d2"}},
		bson.D{{Key: "_id", Value: 3}, {Key: "account_id", Value: "a0"}, {Key: "device", Value: "d3"}},
		bson.D{{Key: "_id", Value: 4}, {Key: "account_id", Value: "c0"}, {Key: "device", Value: "d1"}},
		bson.D{{Key: "_id", Value: 5}, {Key: "account_id", Value: "z"}, {Key: "device", Value: "d1"}},
		bson.D{{Key: "_id", Value: 6}, {Key: "account_id", Value: oidA}, {Key: "device", Value: "d1"}},
		// b1's d9 becomes b0's d9, which exists: the unique index refuses.
		bson.D{{Key: "_id", Value: 7}, {Key: "account_id", Value: "b1"}, {Key: "device", Value: "d9"}},
		bson.D{{Key: "_id", Value: 8}, {Key: "account_id", Value: "b0"}, {Key: "device", Value: "d9"}},
		bson.D{{Key: "_id", Value: 9}, {Key: "account_id", Value: "s1"}, {Key: "device", Value: "d1"}},
	)
	if _, err := db.Collection("sessions").Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "account_id", Value: 1}, {Key: "device", Value: 1}}, Options: options.Index().SetUnique(true),
	}); err != nil {
		t.Fatal(err)
	}
	ins("credentials",
		bson.D{{Key: "_id", Value: "k1"}, {Key: "name", Value: "x"}, {Key: "account_auth_types", Value: bson.A{
			bson.D{{Key: "account_id", Value: "a1"}, {Key: "code", Value: "email"}},
			bson.D{{Key: "account_id", Value: "c0"}, {Key: "code", Value: "phone"}},
			bson.D{{Key: "account_id", Value: "b1"}, {Key: "code", Value: "phone"}},
		}}},
		bson.D{{Key: "_id", Value: "k2"}, {Key: "account_auth_types", Value: bson.A{}}},
		bson.D{{Key: "_id", Value: "k3"}, {Key: "account_auth_types", Value: "not an array"}},
	)
	ins("follows",
		bson.D{{Key: "_id", Value: 1}, {Key: "follower_id", Value: "a1"}, {Key: "following_id", Value: "c0"}},
		// a1 follows a2: both are a0 now, a follow of oneself.
		bson.D{{Key: "_id", Value: 2}, {Key: "follower_id", Value: "a1"}, {Key: "following_id", Value: "a2"}},
		bson.D{{Key: "_id", Value: 3}, {Key: "follower_id", Value: "c0"}, {Key: "following_id", Value: "b1"}},
		bson.D{{Key: "_id", Value: 4}, {Key: "follower_id", Value: "a0"}, {Key: "following_id", Value: "a0"}},
	)
	ins("saved", bson.D{{Key: "_id", Value: 1}, {Key: "owners", Value: bson.A{"a1", "c0", "b1", "a2"}}})
}

var refs = []references.Ref{
	{Collection: "sessions", Path: "account_id"},
	{Collection: "credentials", Path: "account_auth_types.account_id"},
	{Collection: "follows", Path: "follower_id"},
	{Collection: "follows", Path: "following_id"},
	{Collection: "saved", Path: "owners"},
}

var serviceColls = []string{"sessions", "credentials", "follows", "saved"}

func config(db *mongo.Database, batch int) references.Config {
	return references.Config{Env: step.Env{DB: db, Names: model.Names{Links: "links"}, Store: mongomigrate.NewStore(db, "migrations", nil), Batch: batch}, Refs: refs}
}

func dumpAll(t *testing.T, db *mongo.Database) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, c := range serviceColls {
		out[c] = testenv.Dump(t, db.Collection(c))
	}
	return out
}

func field(t *testing.T, db *mongo.Database, coll string, id any, key string) string {
	t.Helper()
	var d bson.M
	if err := db.Collection(coll).FindOne(context.Background(), bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		t.Fatalf("%s %v: %v", coll, id, err)
	}
	return fmt.Sprintf("%v", d[key])
}

func TestRunRepointsExactlyTheMergedAway(t *testing.T) {
	for _, batch := range []int{1, 2, 1000} {
		t.Run(fmt.Sprintf("batch %d", batch), func(t *testing.T) {
			ctx := context.Background()
			db := env.Database(t)
			world(t, db)
			before := dumpAll(t, db)

			dry := config(db, batch)
			dry.DryRun = true
			drep, err := references.Run(ctx, dry)
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}
			if fmt.Sprint(dumpAll(t, db)) != fmt.Sprint(before) {
				t.Fatal("the dry run wrote")
			}
			if n, _ := db.Collection("migrations_references").CountDocuments(ctx, bson.D{}); n != 0 {
				t.Fatalf("the dry run recorded %d documents", n)
			}

			chk, err := references.Check(ctx, config(db, batch))
			if err != nil {
				t.Fatalf("check before: %v", err)
			}
			if fmt.Sprint(chk.Stale) != "map[credentials:1 follows:3 saved:1 sessions:4]" || len(chk.Left) != 0 {
				t.Errorf("check before the run: stale %v, left %v", chk.Stale, chk.Left)
			}

			rep, err := references.Run(ctx, config(db, batch))
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			chk, err = references.Check(ctx, config(db, batch))
			if err != nil {
				t.Fatalf("check after: %v", err)
			}
			if len(chk.Stale) != 0 || fmt.Sprint(chk.Left) != "map[follows:1 sessions:1]" {
				t.Errorf("check after the run: stale %v, left %v", chk.Stale, chk.Left)
			}
			for _, c := range []struct {
				coll string
				id   any
				key  string
				want string
			}{
				{"sessions", 1, "account_id", "a0"},
				{"sessions", 2, "account_id", "a0"},
				{"sessions", 3, "account_id", "a0"},
				{"sessions", 4, "account_id", "c0"},
				{"sessions", 5, "account_id", "z"},
				{"sessions", 6, "account_id", oidT.String()},
				{"sessions", 7, "account_id", "b1"}, // refused by the unique index
				{"sessions", 9, "account_id", "s1"},
				{"credentials", "k1", "account_auth_types", "[map[account_id:a0 code:email] map[account_id:c0 code:phone] map[account_id:b0 code:phone]]"},
				{"credentials", "k1", "name", "x"},
				{"credentials", "k3", "account_auth_types", "not an array"},
				{"follows", 1, "follower_id", "a0"},
				{"follows", 2, "follower_id", "a1"}, // a follow of oneself: left
				{"follows", 2, "following_id", "a2"},
				{"follows", 3, "following_id", "b0"},
				{"follows", 4, "follower_id", "a0"},
				{"saved", 1, "owners", "[a0 c0 b0 a0]"},
			} {
				if got := field(t, db, c.coll, c.id, c.key); got != c.want {
					t.Errorf("%s %v %s = %s, want %s", c.coll, c.id, c.key, got, c.want)
				}
			}
			if rep.Documents != 7 || rep.Conflicts != 2 || rep.Changed != 0 {
				t.Errorf("report: %d documents, %d conflicts, %d changed; want 7, 2, 0", rep.Documents, rep.Conflicts, rep.Changed)
			}
			for _, f := range rep.Fields {
				// world indexes only the sessions' account_id.
				if want := f.Ref.Collection != "sessions"; f.Unindexed != want {
					t.Errorf("%s: unindexed %v, want %v", f.Field, f.Unindexed, want)
				}
			}
			reasons := map[string]bool{}
			for _, c := range rep.FirstConflicts {
				reasons[c.Collection+" "+c.Document+": "+c.Reason] = true
			}
			for _, want := range []string{"sessions 7: " + references.ReasonUnique, "follows 2: " + references.ReasonSame} {
				if !reasons[want] {
					t.Errorf("conflicts %v lack %q", rep.FirstConflicts, want)
				}
			}
			if drep.Documents != rep.Documents || drep.Conflicts != rep.Conflicts {
				t.Errorf("dry run: %d documents, %d conflicts; run %d, %d", drep.Documents, drep.Conflicts, rep.Documents, rep.Conflicts)
			}
			for i, f := range rep.Fields {
				if want := drep.Fields[i].Replaced; f.Replaced != want {
					t.Errorf("%s: replaced %d, the dry run said %d", f.Field, f.Replaced, want)
				}
			}

			after := dumpAll(t, db)
			again, err := references.Run(ctx, config(db, batch))
			if err != nil {
				t.Fatalf("run again: %v", err)
			}
			if again.Documents != 0 || fmt.Sprint(dumpAll(t, db)) != fmt.Sprint(after) {
				t.Errorf("a second run rewrote %d documents", again.Documents)
			}

			down, err := references.Down(ctx, config(db, batch))
			if err != nil {
				t.Fatalf("down: %v", err)
			}
			if down.Restored != 7 || down.Changed != 0 {
				t.Errorf("down: %+v, want 7 restored", down)
			}
			if fmt.Sprint(dumpAll(t, db)) != fmt.Sprint(before) {
				t.Fatal("down did not restore every document exactly")
			}
			if _, err := references.Run(ctx, config(db, batch)); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(dumpAll(t, db)) != fmt.Sprint(after) {
				t.Fatal("a run after down differs from the first")
			}
		})
	}
}

// A document the service changes after the rewrite is left alone by
// Down, and counted.
func TestDownLeavesWhatTheServiceChanged(t *testing.T) {
	ctx := context.Background()
	db := env.Database(t)
	world(t, db)
	if _, err := references.Run(ctx, config(db, 1000)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("sessions").UpdateOne(ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "account_id", Value: "c9"}}}}); err != nil {
		t.Fatal(err)
	}
	down, err := references.Down(ctx, config(db, 1000))
	if err != nil {
		t.Fatal(err)
	}
	if down.Changed != 1 || down.Restored != 6 {
		t.Errorf("down: %+v, want 6 restored, 1 changed", down)
	}
	if got := field(t, db, "sessions", 1, "account_id"); got != "c9" {
		t.Errorf("down changed what the service wrote: %s", got)
	}
	if got := field(t, db, "sessions", 2, "account_id"); got != "a2" {
		t.Errorf("down did not restore session 2: %s", got)
	}
}

// A document the service changes between the step's read and its write is
// left alone and counted, and down leaves it too.
func TestRunLeavesWhatTheServiceChangesMeanwhile(t *testing.T) {
	ctx := context.Background()
	side := env.Database(t)
	world(t, side)
	var once sync.Once
	monitor := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName != "update" || e.Command.Lookup("update").StringValue() != "sessions" {
			return
		}
		once.Do(func() {
			_, err := side.Collection("sessions").UpdateOne(context.Background(), bson.D{{Key: "_id", Value: 2}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "account_id", Value: "c9"}}}})
			if err != nil {
				t.Errorf("the service's write: %v", err)
			}
		})
	}}
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(env.URI).SetMonitor(monitor))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	db := client.Database(side.Name())
	rep, err := references.Run(ctx, config(db, 1000))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Changed != 1 || rep.Documents != 6 {
		t.Errorf("report: %d changed meanwhile, %d rewritten; want 1, 6", rep.Changed, rep.Documents)
	}
	if got := field(t, db, "sessions", 2, "account_id"); got != "c9" {
		t.Errorf("session 2 = %s, want the service's c9", got)
	}
	down, err := references.Down(ctx, config(db, 1000))
	if err != nil {
		t.Fatal(err)
	}
	if down.Restored != 6 || down.Changed != 0 {
		t.Errorf("down: %+v, want 6 restored", down)
	}
	if got := field(t, db, "sessions", 2, "account_id"); got != "c9" {
		t.Errorf("down changed session 2 to %s", got)
	}
}

// A re-run after phase 1 merged more is killed after it recorded its
// rewrite, before or after writing it: down still gives every document its
// very first original. And an original the service replaced since the
// runner's write is the one down restores.
func TestRecordsSurviveAKillAndAServiceWrite(t *testing.T) {
	ctx := context.Background()
	for _, stop := range []struct {
		name string
		cfg  func(references.Config) references.Config
	}{{"before the write", references.StopAfterRecord}, {"after the write", references.StopAfterWrite}} {
		t.Run(stop.name, func(t *testing.T) {
			db := env.Database(t)
			ins := func(coll string, docs ...any) {
				t.Helper()
				if _, err := db.Collection(coll).InsertMany(ctx, docs); err != nil {
					t.Fatal(err)
				}
			}
			ins("links", bson.D{{Key: "_id", Value: "a1"}, {Key: "tenant_id", Value: "a0"}}, bson.D{{Key: "_id", Value: "b1"}, {Key: "tenant_id", Value: "b0"}})
			ins("sessions",
				bson.D{{Key: "_id", Value: 1}, {Key: "account_id", Value: "a1"}},
				bson.D{{Key: "_id", Value: 2}, {Key: "account_id", Value: "a1"}})
			cfg := config(db, 1000)
			cfg.Refs = []references.Ref{{Collection: "sessions", Path: "account_id"}}
			if _, err := references.Run(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			// Phase 1 merges a0's person into t; the service moves session
			// 2 to b1.
			for _, id := range []string{"a1", "a0"} {
				if _, err := db.Collection("links").UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
					bson.D{{Key: "$set", Value: bson.D{{Key: "tenant_id", Value: "t"}}}}, options.Update().SetUpsert(true)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := db.Collection("sessions").UpdateOne(ctx, bson.D{{Key: "_id", Value: 2}}, bson.D{{Key: "$set", Value: bson.D{{Key: "account_id", Value: "b1"}}}}); err != nil {
				t.Fatal(err)
			}
			if _, err := references.Run(ctx, stop.cfg(cfg)); err == nil {
				t.Fatal("the stopped run succeeded")
			}
			down, err := references.Down(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := field(t, db, "sessions", 1, "account_id"); got != "a1" {
				t.Errorf("session 1 after down = %s, want its first original a1 (%+v)", got, down)
			}
			if got := field(t, db, "sessions", 2, "account_id"); got != "b1" {
				t.Errorf("session 2 after down = %s, want b1, which the service wrote (%+v)", got, down)
			}
		})
	}
}
