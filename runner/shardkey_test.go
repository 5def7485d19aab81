package runner_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/event"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

// shardKeyAudit reads every command the runner sends that writes the
// tenant accounts, as a sharded cluster would: each update, delete and
// findAndModify statement must carry the shard key in its filter (at its
// top, or in every branch of an $or), and a $merge into them must be on
// it. Inserts carry it in the document itself.
type shardKeyAudit struct {
	key     string
	mu      sync.Mutex
	checked map[string]int // statements seen, by kind
	missing []string       // what lacked the key, at most a few
}

func newShardKeyAudit(key model.ShardKey) *shardKeyAudit {
	return &shardKeyAudit{key: string(key), checked: map[string]int{}}
}

func (a *shardKeyAudit) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		cmd := e.Command
		coll, _ := cmd.Lookup(e.CommandName).StringValueOK()
		switch e.CommandName {
		case "update", "delete":
			if coll != names.TenantsAccounts {
				return
			}
			list := map[string]string{"update": "updates", "delete": "deletes"}[e.CommandName]
			arr, _ := cmd.Lookup(list).ArrayOK()
			vals, _ := arr.Values()
			for _, v := range vals {
				q, _ := v.Document().Lookup("q").DocumentOK()
				a.check(e.CommandName, q)
			}
			if len(vals) == 0 {
				a.note(e.CommandName, "a command with no statement to read: "+cmd.String())
			}
		case "findAndModify":
			if coll == names.TenantsAccounts {
				q, _ := cmd.Lookup("query").DocumentOK()
				a.check(e.CommandName, q)
			}
		case "aggregate":
			arr, _ := cmd.Lookup("pipeline").ArrayOK()
			stages, _ := arr.Values()
			if len(stages) == 0 {
				return
			}
			merge, ok := stages[len(stages)-1].Document().Lookup("$merge").DocumentOK()
			if !ok {
				return
			}
			if into, _ := merge.Lookup("into").StringValueOK(); into != names.TenantsAccounts {
				return
			}
			on := merge.Lookup("on")
			fields := []string{}
			if s, ok := on.StringValueOK(); ok {
				fields = append(fields, s)
			} else if arr, ok := on.ArrayOK(); ok {
				vs, _ := arr.Values()
				for _, f := range vs {
					fields = append(fields, f.StringValue())
				}
			}
			a.mu.Lock()
			a.checked["$merge"]++
			a.mu.Unlock()
			if !slices.Contains(fields, a.key) || !slices.Contains(fields, "_id") {
				a.note("$merge", fmt.Sprintf("on %v", fields))
			}
		}
	}}
}

func (a *shardKeyAudit) check(kind string, q bson.Raw) {
	a.mu.Lock()
	a.checked[kind]++
	a.mu.Unlock()
	if !carries(q, a.key) {
		a.note(kind, q.String())
	}
}

// carries: q names the shard key at its top, or in every branch of an $or.
func carries(q bson.Raw, key string) bool {
	if _, err := q.LookupErr(key); err == nil {
		return true
	}
	arr, ok := q.Lookup("$or").ArrayOK()
	if !ok {
		return false
	}
	branches, _ := arr.Values()
	for _, b := range branches {
		d, ok := b.DocumentOK()
		if !ok || !carries(d, key) {
			return false
		}
	}
	return len(branches) > 0
}

func (a *shardKeyAudit) note(kind, what string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.missing) < 5 {
		a.missing = append(a.missing, kind+": "+what)
	}
}

// With tenants.shard_key set, no write of any step to the tenant accounts
// lacks it: the migration, a re-run of each phase, a catch-up with new,
// edited and deleted legacy accounts, and every down. And the tenant
// accounts and links written are the same documents as without it.
func TestEveryWriteCarriesTheShardKey(t *testing.T) {
	ctx := context.Background()
	opts := gen.Options{Accounts: 700, Seed: 23}
	type run struct {
		tenants, links map[string]string // after the migration, then after the catch-up
		caught         map[string]string
		caughtLinks    map[string]string
	}
	migrate := func(key model.ShardKey, audit *shardKeyAudit) run {
		cfg, db := testConfig(t)
		cfg.Tenants.ShardKey = key
		env.Load(t, db, opts)
		var ro []runner.Option
		if audit != nil {
			ro = append(ro, runner.WithCommandMonitor(audit.monitor()))
		}
		r := newRunner(t, cfg, ro...)
		if _, err := r.Up(ctx); err != nil {
			t.Fatalf("shard key %q: Up: %v", key, err)
		}
		var out run
		out.tenants, out.links = testenv.Dump(t, db.Collection(names.TenantsAccounts)), testenv.Dump(t, db.Collection(names.Links))
		if _, err := r.Sync(ctx, runner.SyncOptions{}); err != nil {
			t.Fatal(err)
		}
		rollingChanges(t, db, opts)
		if _, err := r.Sync(ctx, runner.SyncOptions{}); err != nil {
			t.Fatalf("shard key %q: Sync: %v", key, err)
		}
		out.caught, out.caughtLinks = testenv.Dump(t, db.Collection(names.TenantsAccounts)), testenv.Dump(t, db.Collection(names.Links))
		v, err := r.Verify(ctx)
		if err != nil || !v.OK() {
			t.Errorf("shard key %q: verify after the catch-up: %v (%s)", key, err, v.Problem())
		}
		for _, phase := range []int{1, 2} {
			if _, err := r.Phase(ctx, phase); err != nil {
				t.Fatalf("shard key %q: phase %d again: %v", key, phase, err)
			}
		}
		for {
			_, err := r.Down(ctx)
			if errors.Is(err, runner.ErrNothingToUndo) {
				break
			}
			if err != nil {
				t.Fatalf("shard key %q: Down: %v", key, err)
			}
		}
		if n := len(testenv.Dump(t, db.Collection(names.TenantsAccounts))); n != 0 {
			t.Errorf("shard key %q: %d tenant accounts left after every down; want none (no service wrote any)", key, n)
		}
		return out
	}
	audit := newShardKeyAudit(model.ShardByOrg)
	sharded := migrate(model.ShardByOrg, audit)
	plain := migrate(model.Unsharded, nil)

	t.Logf("statements checked for the shard key: %v", audit.checked)
	if len(audit.missing) > 0 {
		t.Errorf("writes to the tenant accounts without the shard key: %v", audit.missing)
	}
	// Each kind of write was seen, so that the audit could have failed:
	// conditional replaces and pulls (update) and deletes everywhere; a
	// $merge where the server takes one.
	if audit.checked["update"] == 0 || audit.checked["delete"] == 0 {
		t.Errorf("the audit saw %v: too little to tell", audit.checked)
	}
	if env.Real() && audit.checked["$merge"] == 0 {
		t.Errorf("no $merge into the tenant accounts on a server that takes it (%v)", audit.checked)
	}
	diff(t, "tenant accounts after the migration, with the shard key", sharded.tenants, plain.tenants)
	diff(t, "links after the migration, with the shard key", sharded.links, plain.links)
	diff(t, "tenant accounts after the catch-up, with the shard key", sharded.caught, plain.caught)
	diff(t, "links after the catch-up, with the shard key", sharded.caughtLinks, plain.caughtLinks)
}

// Step 1 makes its unique indexes with the shard key first, and the unique
// {org_id: 1, _id: 1} $merge needs; its down drops them.
func TestStepOneIndexesWithTheShardKey(t *testing.T) {
	ctx := context.Background()
	cfg, db := testConfig(t)
	cfg.Tenants.ShardKey = model.ShardByOrg
	cfg.NewInstall = true
	r := newRunner(t, cfg)
	if _, err := r.Phase(ctx, 1); err != nil { // steps 1 and 2
		t.Fatal(err)
	}
	keys := map[string]string{}
	cur, err := db.Collection(names.TenantsAccounts).Indexes().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var specs []struct {
		Name   string `bson:"name"`
		Key    bson.D `bson:"key"`
		Unique bool   `bson:"unique"`
	}
	if err := cur.All(ctx, &specs); err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		if s.Unique {
			keys[s.Name] = fmt.Sprint(s.Key)
		}
	}
	want := map[string]string{
		"org_apps_memberships_id_unique": fmt.Sprint(bson.D{{Key: "org_id", Value: int32(1)}, {Key: "org_apps_memberships.id", Value: int32(1)}}),
		"shard_key_id_unique":            fmt.Sprint(bson.D{{Key: "org_id", Value: int32(1)}, {Key: "_id", Value: int32(1)}}),
	}
	for name, k := range want {
		if keys[name] != k {
			t.Errorf("unique index %s = %q, want %q (all unique: %v)", name, keys[name], k, keys)
		}
	}
	for {
		if _, err := r.Down(ctx); errors.Is(err, runner.ErrNothingToUndo) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if names := indexNames(t, db.Collection(names.TenantsAccounts)); names["shard_key_id_unique"] || names["org_apps_memberships_id_unique"] {
		t.Errorf("indexes after step 1's down: %v", names)
	}
}

// A configuration that names a shard key on a database whose step 1 ran
// without it is refused in one line, before anything runs.
func TestShardKeyRefusedAfterAnUnshardedStepOne(t *testing.T) {
	ctx := context.Background()
	cfg, db := testConfig(t)
	cfg.NewInstall = true
	cfg.Tenants.ShardKey = model.Unsharded // whatever the suite runs with
	r := newRunner(t, cfg)
	if _, err := r.Phase(ctx, 1); err != nil {
		t.Fatal(err)
	}
	cfg.Tenants.ShardKey = model.ShardByOrg
	_, err := runner.New(ctx, cfg, runner.WithLogger(testenv.Quiet()))
	if !errors.Is(err, runner.ErrShardKey) {
		t.Fatalf("New with a shard key after step 1 ran without it: %v, want ErrShardKey", err)
	}
	if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "shard_key_id_unique") && !strings.Contains(err.Error(), "{org_id: 1, _id: 1}") {
		t.Errorf("refused with %q; want one line naming the missing index", err)
	}
	if names := indexNames(t, db.Collection(names.TenantsAccounts)); names["shard_key_id_unique"] {
		t.Errorf("the refused runner made indexes: %v", names)
	}
}
