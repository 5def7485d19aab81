package join_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/internal/join"
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
			cur, err := sorted.Open(ctx, coll, nil, nil, sorted.Options{Batch: 5})
			if err != nil {
				t.Fatal(err)
			}
			c := join.ByID(cur, "joined")
			defer c.Close(context.Background())
			if doc, ok, err := c.SkipTo(ctx, model.StringID("id002")); err != nil || !ok {
				t.Fatalf("SkipTo(id002) = %v, %v, %v", doc, ok, err)
			}
			if tt.broken {
				cancel() // the next batch cannot be read
			}
			doc, ok, err := c.SkipTo(ctx, model.StringID("id050"))
			switch {
			case tt.broken && err == nil:
				t.Fatalf("SkipTo past a broken cursor = %v, %v, nil error: the join would take it for a missing document", doc, ok)
			case !tt.broken && (err != nil || !ok):
				t.Fatalf("SkipTo(id050) = %v, %v, %v", doc, ok, err)
			}
			if doc, ok, err := c.SkipTo(ctx, model.StringID("id051")); tt.broken && err == nil {
				t.Errorf("SkipTo after the error = %v, %v, nil error", doc, ok)
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
	if err := sorted.Each(ctx, coll, nil, nil, sorted.Options{Batch: 4}, func(raw bson.Raw) error {
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
		cur, err := sorted.Open(ctx, coll, nil, nil, sorted.Options{Batch: 3})
		if err != nil {
			t.Fatal(err)
		}
		c := join.ByID(cur, "mixed")
		for i := 0; i < len(want); i += step {
			doc, ok, err := c.SkipTo(ctx, want[i])
			if err != nil || !ok {
				t.Errorf("step %d: SkipTo(%s) = %v, %v, %v", step, want[i], doc, ok, err)
			} else if id, _ := model.IDOf(doc.Raw.Lookup("_id")); id != want[i] || doc.ID != want[i] {
				t.Errorf("step %d: SkipTo(%s) found %s", step, want[i], id)
			}
		}
		c.Close(ctx)
	}
}

// rows are documents {_id: k, v: i} in memory; the read of document
// failAt fails with errBroken (-1: none).
type rows struct {
	docs   []bson.Raw
	i      int
	failAt int
	err    error
}

var errBroken = errors.New("connection reset")

func newRows(failAt int, keys ...string) *rows {
	r := &rows{failAt: failAt}
	for i, k := range keys {
		raw, _ := bson.Marshal(bson.D{{Key: "_id", Value: k}, {Key: "v", Value: i}})
		r.docs = append(r.docs, raw)
	}
	return r
}

func (r *rows) Next(context.Context) (bson.Raw, bool) {
	if r.err != nil || r.i >= len(r.docs) {
		return nil, false
	}
	if r.i == r.failAt {
		r.err = errBroken
		return nil, false
	}
	r.i++
	return r.docs[r.i-1], true
}

func (r *rows) Err() error            { return r.err }
func (r *rows) Close(context.Context) {}

type row struct {
	K string `bson:"_id"`
	V int    `bson:"v"`
}

func stream(r *rows) *join.Stream[row, string] {
	return join.New(r, join.Spec[row, string]{What: "rows", Key: func(x row) string { return x.K }, Compare: strings.Compare})
}

// Groups hands over each run of one key once, in order, and a read that
// fails ends it with the error, never with a short last group.
func TestGroups(t *testing.T) {
	tests := []struct {
		name   string
		keys   []string
		failAt int
		want   string
		err    bool
	}{
		{"empty", nil, -1, "", false},
		{"one", []string{"a"}, -1, "a", false},
		{"runs", []string{"a", "a", "b", "c", "c", "c"}, -1, "aa b ccc", false},
		{"broken in the last run", []string{"a", "b", "b"}, 2, "a", true},
		{"broken at once", []string{"a"}, 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			err := stream(newRows(tt.failAt, tt.keys...)).Groups(context.Background(), func(g []row) error {
				s := ""
				for _, r := range g {
					s += r.K
				}
				got = append(got, s)
				return nil
			})
			if fmt.Sprint(got) != fmt.Sprint(words(tt.want)) {
				t.Errorf("groups = %v, want %v", got, words(tt.want))
			}
			if tt.err != errors.Is(err, errBroken) {
				t.Errorf("err = %v, want broken: %v", err, tt.err)
			}
		})
	}
	stop := errors.New("stop")
	if err := stream(newRows(-1, "a", "b")).Groups(context.Background(), func([]row) error { return stop }); err != stop {
		t.Errorf("fn's error came back as %v", err)
	}
}

func words(s string) []string {
	var out []string
	word := ""
	for _, c := range s + " " {
		if c == ' ' {
			if word != "" {
				out = append(out, word)
			}
			word = ""
			continue
		}
		word += string(c)
	}
	return out
}

// Seek, SkipTo and Take, side by side as a join calls them, and a stream
// that broke says so on every later call.
func TestSeekSkipToTake(t *testing.T) {
	ctx := context.Background()
	s := stream(newRows(5, "a", "c", "e", "g", "i", "k"))
	steps := []struct {
		call string
		key  string
		want string // "" for none
		err  bool
	}{
		{"skip", "a", "a", false},
		{"skip", "a", "a", false}, // SkipTo takes nothing
		{"take", "b", "", false},
		{"take", "a", "a", false},
		{"skip", "b", "", false}, // c is next, not b
		{"seek", "d", "e", false},
		{"take", "e", "e", false},
		{"skip", "i", "i", false},
		{"take", "i", "i", false},
		{"skip", "k", "", true}, // the read of k fails
		{"take", "k", "", true},
		{"seek", "z", "", true},
	}
	for i, st := range steps {
		var v row
		var ok bool
		var err error
		switch st.call {
		case "skip":
			v, ok, err = s.SkipTo(ctx, st.key)
		case "seek":
			v, ok, err = s.Seek(ctx, st.key)
		case "take":
			v, ok, err = s.Take(ctx, st.key)
		}
		got := ""
		if ok {
			got = v.K
		}
		if got != st.want || st.err != errors.Is(err, errBroken) {
			t.Fatalf("step %d: %s(%s) = %q, %v; want %q, broken %v", i, st.call, st.key, got, err, st.want, st.err)
		}
	}
	if !errors.Is(s.Err(), errBroken) {
		t.Errorf("Err() = %v", s.Err())
	}
}

// MinKey is the smallest head over streams of different value types, and
// the error of any of them.
func TestMinKey(t *testing.T) {
	ctx := context.Background()
	a, b := stream(newRows(-1, "c", "d")), stream(newRows(-1, "b"))
	ids := join.ByID(newRows(-1, "a"), "ids")
	keyOfID := join.New(newRows(-1), join.Spec[row, string]{What: "none", Key: func(x row) string { return x.K }, Compare: strings.Compare})
	k, ok, err := join.MinKey[string](ctx, strings.Compare, a, b, keyOfID)
	if k != "b" || !ok || err != nil {
		t.Fatalf("MinKey = %q, %v, %v", k, ok, err)
	}
	if _, ok, err := ids.SkipTo(ctx, model.StringID("a")); !ok || err != nil {
		t.Fatalf("ByID SkipTo(a) = %v, %v", ok, err)
	}
	broken := stream(newRows(0, "a"))
	if _, _, err := join.MinKey[string](ctx, strings.Compare, a, broken); !errors.Is(err, errBroken) {
		t.Fatalf("MinKey over a broken stream: err = %v", err)
	}
}
