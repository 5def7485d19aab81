package mongomigrate_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/golang-migrate/migrate/v4/database"
	dt "github.com/golang-migrate/migrate/v4/database/testing"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

func driver(t *testing.T, db *mongo.Database, owner string) *mongomigrate.Driver {
	t.Helper()
	d, err := mongomigrate.WithInstance(context.Background(), mongomigrate.Config{
		DB: db, StateCollection: "migrations_state", HistoryCollection: "migrations_history", LockCollection: "migrations_lock",
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
