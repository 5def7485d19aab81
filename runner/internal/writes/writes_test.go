package writes_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/internal/writes"
	"github.com/tenantmigrate/runner/runner/retry"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

func docs(ids ...string) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = bson.D{{Key: "_id", Value: id}, {Key: "v", Value: "new"}}
	}
	return out
}

// A duplicate _id is a document an earlier run wrote: done, and left as
// it is; every other document of the batch is still written.
func TestInsertManyTakesDuplicatesAsDone(t *testing.T) {
	db := env.Database(t)
	ctx := context.Background()
	coll := db.Collection("keyed")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "b"}, {Key: "v", Value: "old"}}); err != nil {
		t.Fatal(err)
	}
	if err := writes.InsertMany(ctx, nil, coll, docs("a", "b", "c")); err != nil {
		t.Fatalf("InsertMany with a duplicate: %v", err)
	}
	got := testenv.Dump(t, coll)
	if len(got) != 3 {
		t.Fatalf("after InsertMany: %v", got)
	}
	var b bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "b"}}).Decode(&b); err != nil || b["v"] != "old" {
		t.Errorf("the existing document became %v (%v); want it left as it was", b, err)
	}
	if err := writes.InsertMany(ctx, nil, coll, nil); err != nil {
		t.Errorf("InsertMany of nothing: %v", err)
	}
}

func TestDeleteIDsCounts(t *testing.T) {
	db := env.Database(t)
	ctx := context.Background()
	coll := db.Collection("keyed")
	if err := writes.InsertMany(ctx, nil, coll, docs("a", "b", "c")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		ids  []model.ID
		want int64
	}{
		{[]model.ID{model.StringID("a"), model.StringID("zz")}, 1},
		{[]model.ID{model.StringID("a")}, 0}, // already gone: a re-run deletes nothing
		{nil, 0},
		{[]model.ID{model.StringID("b"), model.StringID("c")}, 2},
	} {
		n, err := writes.DeleteIDs(ctx, nil, coll, tt.ids)
		if err != nil || n != tt.want {
			t.Errorf("DeleteIDs(%v) = %d, %v; want %d", tt.ids, n, err, tt.want)
		}
	}
}

// An error the policy does not take for transient is returned at once;
// a cancelled context too, unretried.
func TestWritesReturnTheirErrors(t *testing.T) {
	db := env.Database(t)
	coll := db.Collection("keyed")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := &retry.Policy{Attempts: 3, MaxElapsed: time.Second, Counter: &retry.Counter{}}
	if err := writes.InsertMany(ctx, p, coll, docs("a")); !errors.Is(err, context.Canceled) {
		t.Errorf("InsertMany on a cancelled context: %v", err)
	}
	if _, err := writes.BulkWrite(ctx, p, coll, []mongo.WriteModel{mongo.NewInsertOneModel().SetDocument(bson.D{{Key: "_id", Value: "x"}})}); !errors.Is(err, context.Canceled) {
		t.Errorf("BulkWrite on a cancelled context: %v", err)
	}
	if _, err := writes.DeleteIDs(ctx, p, coll, []model.ID{model.StringID("a")}); !errors.Is(err, context.Canceled) {
		t.Errorf("DeleteIDs on a cancelled context: %v", err)
	}
	if n := p.Counter.Load(); n != 0 {
		t.Errorf("%d retries of a cancelled context", n)
	}
	// A unique index refusing a different document is no duplicate of
	// our own: BulkWrite returns it.
	if _, err := writes.BulkWrite(context.Background(), nil, coll, []mongo.WriteModel{
		mongo.NewInsertOneModel().SetDocument(bson.D{{Key: "_id", Value: "y"}}),
		mongo.NewInsertOneModel().SetDocument(bson.D{{Key: "_id", Value: "y"}}),
	}); !mongo.IsDuplicateKeyError(err) {
		t.Errorf("BulkWrite of two documents with one _id: %v, want the duplicate key error", err)
	}
}
