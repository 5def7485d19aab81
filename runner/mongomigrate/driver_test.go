package mongomigrate_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-migrate/migrate/v4/database"
	dt "github.com/golang-migrate/migrate/v4/database/testing"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/retry"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

func driver(t *testing.T, db *mongo.Database, owner string) *mongomigrate.Driver {
	t.Helper()
	d, err := mongomigrate.WithInstance(context.Background(), mongomigrate.Config{
		DB: db, Store: mongomigrate.NewStore(db, "migrations", nil),
		LeaseTTL: 10 * time.Second, LeaseRenew: time.Second, LockWait: 0, Owner: owner, Host: "test", Log: testenv.Quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// golang-migrate's own suite, the one every driver must pass.
func TestDriverConformance(t *testing.T) {
	db := env.Database(t)
	dt.Test(t, driver(t, db, "conformance"), []byte(`[{"ping": 1}]`))
}

// Lock is a lease: a second driver waits (here: not at all) and is
// refused while the first holds it, and gets it once released. Drop
// removes the driver's own collections and nothing else.
func TestDriverLockAndDrop(t *testing.T) {
	ctx := context.Background()
	db := env.Database(t)
	if _, err := db.Collection("accounts").InsertOne(ctx, bson.D{{Key: "_id", Value: "legacy"}}); err != nil {
		t.Fatal(err)
	}
	env.Seeded(t, db)
	a, b := driver(t, db, "a"), driver(t, db, "b")
	if err := a.Lock(); err != nil {
		t.Fatal(err)
	}
	if err := a.Lock(); !errors.Is(err, database.ErrLocked) {
		t.Errorf("second Lock of a held lock = %v, want database.ErrLocked", err)
	}
	if err := b.Lock(); err == nil {
		t.Fatal("another driver took a held lock")
	}
	if err := a.SetVersion(1, false); err != nil {
		t.Fatal(err)
	}
	if err := a.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := a.Unlock(); !errors.Is(err, database.ErrNotLocked) {
		t.Errorf("Unlock of a free lock = %v, want database.ErrNotLocked", err)
	}
	if err := b.Lock(); err != nil {
		t.Fatalf("the released lock: %v", err)
	}
	if err := b.Drop(); err != nil {
		t.Fatal(err)
	}
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"accounts"}) {
		t.Errorf("collections after Drop = %v, want only the legacy accounts", names)
	}
	if v, _, err := b.Version(); err != nil || v != database.NilVersion {
		t.Errorf("version after Drop = %d, %v; want none", v, err)
	}
	if err := a.Lock(); err != nil {
		t.Errorf("Lock after Drop (which released b's lease): %v", err)
	}
	_ = a.Unlock()
}

// The driver's own reads and writes (state, history) ride out a server
// that goes away for a moment, within its retry budget: a cut connection
// between a step and its bookkeeping must not fail the step (CI saw "set
// version: socket was unexpectedly closed"). Without a budget, the same
// cut fails the call: the test can tell.
func TestDriverRetriesItsBookkeeping(t *testing.T) {
	ctx := context.Background()
	db := env.Database(t)
	for _, tt := range []struct {
		name  string
		retry bool
		// dirty: the cut call starts step 7 (a read, then writes), else it
		// ends it (writes only).
		dirty bool
	}{
		{"start, with a retry budget", true, true},
		{"end, with a retry budget", true, false},
		{"start, without one", false, true},
		{"end, without one", false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The driver's own retry of a read or write (once, and of
			// writes only on a replica set) is off: the budget is tested.
			proxy, uri := env.Proxied(t, map[string]string{"retryReads": "false", "retryWrites": "false"})
			client, err := mongo.Connect(ctx, options.Client().ApplyURI(uri))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = client.Disconnect(ctx) })
			var retries retry.Counter
			cfg := mongomigrate.Config{
				DB: client.Database(db.Name()), Store: mongomigrate.NewStore(client.Database(db.Name()), "migrations", nil),
				LeaseTTL: 10 * time.Second, LeaseRenew: time.Second, Owner: "cut", Host: "test", Log: testenv.Quiet(),
			}
			if tt.retry {
				cfg.Retry = &retry.Policy{Attempts: 20, MaxElapsed: 30 * time.Second, Base: 50 * time.Millisecond, Max: 500 * time.Millisecond, Counter: &retries}
			}
			d, err := mongomigrate.WithInstance(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := d.Version(); err != nil { // connected, a connection pooled
				t.Fatal(err)
			}
			if !tt.dirty {
				if err := d.SetVersion(7, true); err != nil {
					t.Fatal(err)
				}
			}
			// Every reply resets the connection: the server made the write
			// the client never hears of, the nastiest case for a retry.
			if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(`{"name":"cut","type":"reset_peer","stream":"downstream","toxicity":1,"attributes":{"timeout":0}}`)); err != nil {
				t.Fatal(err)
			}
			back := make(chan error, 1)
			go func() {
				time.Sleep(300 * time.Millisecond)
				back <- proxy.Toxics.RemoveToxic(ctx, "cut")
			}()
			err = d.SetVersion(7, tt.dirty)
			if err := <-back; err != nil {
				t.Fatalf("remove the toxic: %v", err)
			}
			if !tt.retry {
				if err == nil {
					t.Fatal("SetVersion through a cut connection, with no retry budget, succeeded: the cut did not reach it")
				}
				return
			}
			if err != nil {
				t.Fatalf("SetVersion through a cut connection: %v", err)
			}
			if retries.Load() == 0 {
				t.Error("no retry counted: the cut did not reach the driver's reads and writes")
			}
			if tt.dirty {
				if err := d.SetVersion(7, false); err != nil {
					t.Fatal(err)
				}
			}
			st, err := mongomigrate.ReadState(ctx, db.Collection("migrations_state"))
			if err != nil || st.Version != 7 || st.Dirty {
				t.Errorf("state after the cut = %+v, %v; want version 7, clean", st, err)
			}
			var h mongomigrate.History
			if err := db.Collection("migrations_history").FindOne(ctx, bson.D{{Key: "_id", Value: mongomigrate.HistoryID(7, mongomigrate.Up)}}).Decode(&h); err != nil || h.State != mongomigrate.StateApplied {
				t.Errorf("history of step 7 = %+v, %v; want applied", h, err)
			}
		})
	}
}
