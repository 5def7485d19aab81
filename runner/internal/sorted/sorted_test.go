package sorted_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/runner/internal/sorted"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

// A cursor that breaks part way through a join says so: SkipTo returns the
// error, never "no such document", which a join would act on (a down would
// delete a linked tenant account, phase 2 would copy a merged account).
func TestSkipToReturnsTheCursorsError(t *testing.T) {
	db := env.Database(t)
	coll := db.Collection("joined")
	var docs []any
	for i := 0; i < 60; i++ {
		docs = append(docs, bson.D{{Key: "_id", Value: fmt.Sprintf("id%03d", i)}})
	}
	if _, err := coll.InsertMany(context.Background(), docs); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		broken bool
	}{{"whole", false}, {"broken mid-way", true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c, err := sorted.Open(ctx, coll, nil, nil, 5)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			if doc, err := c.SkipTo(ctx, "id002"); err != nil || doc == nil {
				t.Fatalf("SkipTo(id002) = %v, %v", doc, err)
			}
			if tt.broken {
				cancel() // the next batch cannot be read
			}
			doc, err := c.SkipTo(ctx, "id050")
			switch {
			case tt.broken && err == nil:
				t.Fatalf("SkipTo past a broken cursor = %v, nil error: the join would take it for a missing document", doc)
			case !tt.broken && (err != nil || doc == nil):
				t.Fatalf("SkipTo(id050) = %v, %v", doc, err)
			}
			if doc, err := c.SkipTo(ctx, "id051"); tt.broken && err == nil {
				t.Errorf("SkipTo after the error = %v, nil error", doc)
			}
		})
	}
}
