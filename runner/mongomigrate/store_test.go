package mongomigrate_test

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/runner/mongomigrate"
)

type checkpoint struct {
	Through string `bson:"through"`
}

// The steps' values live in the store's own collection, survive the
// driver's Drop (which removes only what golang-migrate owns), and are
// read where builds before the store left them, the state collection.
func TestStoreKeepsTheStepsValues(t *testing.T) {
	ctx := context.Background()
	db := env.Database(t)
	store := mongomigrate.NewStore(db, "migrations", nil)
	var cp checkpoint
	if found, err := store.Load(ctx, "phase2_checkpoint", &cp); found || err != nil {
		t.Fatalf("empty store: %v, %v", found, err)
	}
	if err := store.Save(ctx, "phase2_checkpoint", checkpoint{Through: "a"}); err != nil {
		t.Fatal(err)
	}
	d := driver(t, db, "a")
	if err := d.SetVersion(1, false); err != nil {
		t.Fatal(err)
	}
	if err := d.Drop(); err != nil {
		t.Fatal(err)
	}
	if found, err := store.Load(ctx, "phase2_checkpoint", &cp); !found || err != nil || cp.Through != "a" {
		t.Fatalf("after Drop: %v, %v, %+v; want the checkpoint kept", found, err, cp)
	}
	if st, err := store.State(ctx); err != nil || st.Version != -1 {
		t.Errorf("state after Drop = %+v, %v; want none", st, err)
	}

	// An earlier build's checkpoint, a whole document in the state
	// collection, is read, and cleared with the store's.
	if _, err := db.Collection("migrations_state").InsertOne(ctx, bson.D{{Key: "_id", Value: "references_checkpoint"}, {Key: "through", Value: "old"}}); err != nil {
		t.Fatal(err)
	}
	cp = checkpoint{}
	if found, err := store.Load(ctx, "references_checkpoint", &cp); !found || err != nil || cp.Through != "old" {
		t.Fatalf("an earlier build's checkpoint: %v, %v, %+v", found, err, cp)
	}
	for _, key := range []string{"phase2_checkpoint", "references_checkpoint"} {
		if err := store.Clear(ctx, key); err != nil {
			t.Fatal(err)
		}
		if found, err := store.Load(ctx, key, &cp); found || err != nil {
			t.Errorf("%s after Clear: %v, %v", key, found, err)
		}
	}
	if got := store.Records("references"); got != "migrations_references" {
		t.Errorf("Records = %q", got)
	}
}
