package sorted_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/tenantmigrate/runner/model"
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
			if doc, err := c.SkipTo(ctx, model.StringID("id002")); err != nil || doc == nil {
				t.Fatalf("SkipTo(id002) = %v, %v", doc, err)
			}
			if tt.broken {
				cancel() // the next batch cannot be read
			}
			doc, err := c.SkipTo(ctx, model.StringID("id050"))
			switch {
			case tt.broken && err == nil:
				t.Fatalf("SkipTo past a broken cursor = %v, nil error: the join would take it for a missing document", doc)
			case !tt.broken && (err != nil || doc == nil):
				t.Fatalf("SkipTo(id050) = %v, %v", doc, err)
			}
			if doc, err := c.SkipTo(ctx, model.StringID("id051")); tt.broken && err == nil {
				t.Errorf("SkipTo after the error = %v, nil error", doc)
			}
		})
	}
}

// The server sorts _ids as model.ID.Compare orders them (every string, byte
// by byte, before every ObjectId), wherever it puts the other types, and
// SkipTo finds every ID of a mixed collection past them: the premise of
// every merge join of the runner.
func TestServerOrderIsIDOrder(t *testing.T) {
	ctx := context.Background()
	coll := env.Database(t).Collection("mixed")
	oid := func(h string) primitive.ObjectID { o, _ := primitive.ObjectIDFromHex(h); return o }
	values := []any{
		"b", "", "a", "ab", "B", "é", "z", "\u007f", "ä", "名前", "0", "fffffffffffffffffffffffe",
		oid("000000000000000000000001"), oid("ffffffffffffffffffffffff"), oid("0a0000000000000000000000"), oid("a00000000000000000000000"),
		// other types, which no ID has: a join passes over them
		int32(7), 2.5, primitive.Binary{Data: []byte("x")}, bson.D{{Key: "k", Value: "v"}}, true, primitive.NewDateTimeFromTime(time.Unix(0, 0)),
	}
	var docs []any
	var want []model.ID
	for _, v := range values {
		docs = append(docs, bson.D{{Key: "_id", Value: v}})
		if id, ok := model.IDOfValue(v); ok {
			want = append(want, id)
		}
	}
	// (No string equal to an ObjectId's hex: FerretDB 1 takes the two
	// for one _id, a duplicate key.)
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(want, model.ID.Compare)
	var got []model.ID
	if err := sorted.Each(ctx, coll, nil, nil, 4, func(raw bson.Raw) error {
		if id, ok := model.IDOf(raw.Lookup("_id")); ok {
			got = append(got, id)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the server sorts the IDs\n %v\nCompare orders them\n %v", got, want)
	}
	for _, step := range []int{1, 2, 3} { // every ID, every other, every third
		c, err := sorted.Open(ctx, coll, nil, nil, 3)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(want); i += step {
			doc, err := c.SkipTo(ctx, want[i])
			if err != nil || doc == nil {
				t.Errorf("step %d: SkipTo(%s) = %v, %v", step, want[i], doc, err)
			} else if id, _ := model.IDOf(doc.Lookup("_id")); id != want[i] {
				t.Errorf("step %d: SkipTo(%s) found %s", step, want[i], id)
			}
		}
		c.Close(ctx)
	}
}
