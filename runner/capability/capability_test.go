package capability_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/runner/capability"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

// Detect's claim about unique indexes over arrays is what the server does:
// the test makes the server show it.
func TestDetectTellsWhatTheServerEnforces(t *testing.T) {
	db := env.Database(t)
	ctx := context.Background()
	caps, err := capability.Detect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if caps.Server != capability.MongoDB && caps.Server != capability.FerretDB || caps.Version == "" {
		t.Fatalf("Detect = %+v", caps)
	}
	if env.Embedded != nil && caps.Server != capability.FerretDB {
		t.Errorf("the embedded FerretDB detected as %q", caps.Server)
	}
	unique := db.Collection("unique_arrays")
	if err := db.RunCommand(ctx, bson.D{{Key: "createIndexes", Value: unique.Name()}, {Key: "indexes", Value: bson.A{
		bson.D{{Key: "key", Value: bson.D{{Key: "ids", Value: 1}}}, {Key: "name", Value: "ids_unique"}, {Key: "unique", Value: true}},
	}}}).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := unique.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "ids", Value: bson.A{"a", "b"}}}); err != nil {
		t.Fatal(err)
	}
	_, err = unique.InsertOne(ctx, bson.D{{Key: "_id", Value: 2}, {Key: "ids", Value: bson.A{"c", "b"}}})
	refused := mongo.IsDuplicateKeyError(err)
	if err != nil && !refused {
		t.Fatalf("second insert: %v", err)
	}
	if refused != caps.UniqueArrayIndexes {
		t.Errorf("Detect says UniqueArrayIndexes=%v; the server refused a shared element: %v", caps.UniqueArrayIndexes, refused)
	}
}

func TestDetectReturnsTheConnectionError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := capability.Detect(ctx, env.Database(t)); !errors.Is(err, context.Canceled) {
		t.Errorf("Detect on a cancelled context: %v, want context.Canceled wrapped", err)
	}
}
