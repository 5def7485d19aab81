package sorted_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/tenantmigrate/runner/runner/internal/sorted"
	"github.com/tenantmigrate/runner/runner/retry"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

// A cursor the server drops part way (CursorNotFound, as after a failover
// or an idle timeout) is resumed after the last _id it delivered: the
// reader gets every document once, in order, across every _id type; a
// cursor without a retry budget returns the error instead.
func TestCursorResumesAfterTheLastID(t *testing.T) {
	ctx := context.Background()
	db := env.Database(t)
	coll := db.Collection("mixed")
	var docs []any
	for i := 0; i < 40; i++ {
		docs = append(docs, bson.D{{Key: "_id", Value: fmt.Sprintf("s%03d", i)}})
		var oid primitive.ObjectID
		oid[11] = byte(i)
		docs = append(docs, bson.D{{Key: "_id", Value: oid}})
	}
	docs = append(docs, bson.D{{Key: "_id", Value: int32(5)}}, bson.D{{Key: "_id", Value: true}}, bson.D{{Key: "_id", Value: bson.D{{Key: "k", Value: 1}}}})
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	var want []string
	if err := sorted.Each(ctx, coll, nil, nil, sorted.Options{Batch: 1000}, func(raw bson.Raw) error {
		want = append(want, raw.Lookup("_id").String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, killAt := range []int{3, 20, 41, 60, 80} { // a number, strings, ObjectIds, the last types
		t.Run(fmt.Sprint(killAt), func(t *testing.T) {
			for _, resume := range []bool{true, false} {
				o := sorted.Options{Batch: 4}
				counter := &retry.Counter{}
				if resume {
					o.Retry = &retry.Policy{Attempts: 3, Counter: counter}
				}
				c, err := sorted.Open(ctx, coll, nil, nil, o)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for {
					raw, ok := c.Next(ctx)
					if !ok {
						break
					}
					got = append(got, raw.Lookup("_id").String())
					if len(got) == killAt {
						id := sorted.ServerCursorID(c)
						if err := db.RunCommand(ctx, bson.D{{Key: "killCursors", Value: "mixed"}, {Key: "cursors", Value: bson.A{id}}}).Err(); err != nil {
							t.Fatalf("killCursors: %v", err)
						}
					}
				}
				err = c.Err()
				c.Close(ctx)
				switch {
				case resume && (err != nil || !slices.Equal(got, want) || counter.Load() != 1):
					t.Errorf("resumed: err %v, %d of %d documents (equal: %v), %d resumes", err, len(got), len(want), slices.Equal(got, want), counter.Load())
				case !resume && (err == nil || len(got) >= len(want)):
					t.Errorf("without a budget: err %v after %d of %d documents; want the cursor's error", err, len(got), len(want))
				}
			}
		})
	}
}

// Sorted by another key then _id (verify reads the links by tenant), a
// resume starts after the last (key, _id) pair, a missing key sorting as
// null, first.
func TestCursorResumesByTwoKeys(t *testing.T) {
	ctx := context.Background()
	db := env.Database(t)
	coll := db.Collection("links")
	var docs []any
	for i := 0; i < 60; i++ {
		d := bson.D{{Key: "_id", Value: fmt.Sprintf("l%03d", i)}}
		switch i % 4 {
		case 0: // no tenant: a link phase 1 left out
		case 1, 2:
			d = append(d, bson.E{Key: "tenant_id", Value: fmt.Sprintf("t%02d", i/8)})
		case 3:
			var oid primitive.ObjectID
			oid[11] = byte(i / 8)
			d = append(d, bson.E{Key: "tenant_id", Value: oid})
		}
		docs = append(docs, d)
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	sort := bson.D{{Key: "tenant_id", Value: 1}, {Key: "_id", Value: 1}}
	var want []string
	if err := sorted.EachBy(ctx, coll, nil, nil, sort, sorted.Options{Batch: 1000}, func(raw bson.Raw) error {
		want = append(want, raw.Lookup("_id").StringValue())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, killAt := range []int{4, 15, 30, 50} {
		counter := &retry.Counter{}
		c, err := sorted.OpenBy(ctx, coll, nil, nil, sort, sorted.Options{Batch: 4, Retry: &retry.Policy{Attempts: 3, Counter: counter}})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			raw, ok := c.Next(ctx)
			if !ok {
				break
			}
			got = append(got, raw.Lookup("_id").StringValue())
			if len(got) == killAt {
				if err := db.RunCommand(ctx, bson.D{{Key: "killCursors", Value: "links"}, {Key: "cursors", Value: bson.A{sorted.ServerCursorID(c)}}}).Err(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := c.Err(); err != nil || !slices.Equal(got, want) || counter.Load() != 1 {
			t.Errorf("killed at %d: err %v, %d of %d (equal: %v), %d resumes", killAt, err, len(got), len(want), slices.Equal(got, want), counter.Load())
		}
		c.Close(ctx)
	}
}

// Read ahead, a cursor gives the same documents in the same order, each
// still whole after the reader has moved on; a cursor that breaks gives
// what came before and then its error, never a silent end; a reader that
// stops early or is cancelled does not wait for the rest.
func TestReadAhead(t *testing.T) {
	ctx := context.Background()
	db := env.Database(t)
	coll := db.Collection("ahead")
	var docs []any
	for i := 0; i < 250; i++ {
		docs = append(docs, bson.D{{Key: "_id", Value: fmt.Sprintf("a%03d", i)}, {Key: "n", Value: i}})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	read := func(t *testing.T, o sorted.Options, kill bool) ([]bson.Raw, error) {
		c, err := sorted.Open(ctx, coll, nil, nil, o)
		if err != nil {
			t.Fatal(err)
		}
		if kill { // the first batch came with the find; the next getMore fails
			if err := db.RunCommand(ctx, bson.D{{Key: "killCursors", Value: "ahead"}, {Key: "cursors", Value: bson.A{sorted.ServerCursorID(c)}}}).Err(); err != nil {
				t.Fatal(err)
			}
		}
		a := sorted.ReadAhead(ctx, c, 2)
		defer a.Close(ctx)
		var got []bson.Raw
		for {
			raw, ok := a.Next(ctx)
			if !ok {
				return got, a.Err()
			}
			got = append(got, raw)
		}
	}
	for _, batch := range []int{1, 7, 1000} {
		got, err := read(t, sorted.Options{Batch: batch}, false)
		if err != nil || len(got) != len(docs) {
			t.Fatalf("batch %d: err %v, %d of %d documents", batch, err, len(got), len(docs))
		}
		for i, raw := range got {
			if id, n := raw.Lookup("_id").StringValue(), raw.Lookup("n").AsInt64(); id != fmt.Sprintf("a%03d", i) || n != int64(i) {
				t.Fatalf("batch %d: document %d is %s (n %d)", batch, i, id, n)
			}
		}
	}
	got, err := read(t, sorted.Options{Batch: 10}, true)
	if err == nil || len(got) != 10 {
		t.Errorf("a broken cursor read ahead: err %v after %d documents; want its error after the first batch of 10", err, len(got))
	}

	c, err := sorted.Open(ctx, coll, nil, nil, sorted.Options{Batch: 5})
	if err != nil {
		t.Fatal(err)
	}
	a := sorted.ReadAhead(ctx, c, 1)
	if _, ok := a.Next(ctx); !ok {
		t.Fatalf("no first document: %v", a.Err())
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, ok := a.Next(cancelled); ok {
		t.Error("a cancelled reader got a document")
	}
	if !errors.Is(a.Err(), context.Canceled) {
		t.Errorf("a cancelled reader: err %v, want context.Canceled", a.Err())
	}
	a.Close(ctx) // returns although the goroutine had more to send
}
