package mongomigrate_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/runner/lease"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

// twoHolders is a holder "a" that was paused past its lease, and "b", which
// took the lock over meanwhile: a's clock stopped when it was paused, so a
// still believes its lease held, as a SIGSTOPped runner does on SIGCONT
// until its next heartbeat. Only the server can refuse a's writes.
func twoHolders(t *testing.T, coll *mongo.Collection) (a, b context.Context) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	opts := func(owner string, now time.Time) lease.Options {
		return lease.Options{Coll: coll, Name: mongomigrate.LockName, Owner: owner, Host: "test", TTL: time.Minute,
			Renew: time.Hour, Grace: time.Millisecond, Log: testenv.Quiet(), Now: func() time.Time { return now }}
	}
	la, err := lease.Acquire(ctx, opts("a", start))
	if err != nil {
		t.Fatal(err)
	}
	lb, err := lease.Acquire(ctx, opts("b", start.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if lb.Gen() <= la.Gen() || lb.Took() == nil {
		t.Fatalf("b took over as generation %d after %d (took: %v)", lb.Gen(), la.Gen(), lb.Took())
	}
	if la.Err() != nil {
		t.Fatalf("a, paused, knows already that it lost its lease: %v", la.Err())
	}
	return lease.NewContext(ctx, la), lease.NewContext(ctx, lb)
}

type position struct {
	Through string `bson:"through"`
}

// A write of an older generation than the document's is refused by the
// server, whatever its writer believes of its lease: the steps' values (a
// checkpoint), the version and dirty flag, and the history, its down's
// tombstone included.
func TestStoreFencesAnOlderGeneration(t *testing.T) {
	type op func(s *mongomigrate.Store, ctx context.Context) error
	save := func(through string) op {
		return func(s *mongomigrate.Store, ctx context.Context) error {
			return s.Save(ctx, "phase2_checkpoint", position{Through: through})
		}
	}
	clear := func(s *mongomigrate.Store, ctx context.Context) error { return s.Clear(ctx, "phase2_checkpoint") }
	load := func(s *mongomigrate.Store, ctx context.Context) error {
		_, err := s.Load(ctx, "phase2_checkpoint", &position{})
		return err
	}
	state := func(v int) op {
		return func(s *mongomigrate.Store, ctx context.Context) error {
			return s.WriteState(ctx, bson.D{{Key: "$set", Value: bson.D{{Key: "version", Value: v}, {Key: "dirty", Value: true}}}})
		}
	}
	history := func(s *mongomigrate.Store, ctx context.Context) error {
		return s.WriteHistory(ctx, "3.up", bson.D{{Key: "$set", Value: bson.D{{Key: "version", Value: 3}, {Key: "state", Value: mongomigrate.StateApplied}}}})
	}
	undo := func(s *mongomigrate.Store, ctx context.Context) error { return s.UndoHistory(ctx, "3.up") }
	for _, tt := range []struct {
		name string
		a1   op // a, before it was paused
		b    op // b, the new holder
		a2   op // a, late: refused
		// wantThrough is the checkpoint then ("" none); wantVersion the
		// version (-1 none); wantHistory whether step 3's history is read.
		wantThrough string
		wantVersion int
		wantHistory bool
	}{
		{"a late checkpoint after a newer down's clear", save("p1"), clear, save("p2"), "", -1, false},
		{"a late checkpoint after a newer holder read it", save("p1"), load, save("p2"), "p1", -1, false},
		{"a late checkpoint after a newer one", save("p1"), save("q1"), save("p2"), "q1", -1, false},
		{"a late clear after a newer checkpoint", save("p1"), save("q1"), clear, "q1", -1, false},
		{"a late version after a newer one", state(3), state(2), state(3), "", 2, false},
		{"a late history after a newer down's tombstone", history, undo, history, "", -1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := env.Database(t)
			s := mongomigrate.NewStore(db, "migrations", nil)
			a, b := twoHolders(t, db.Collection("migrations_lock"))
			if err := tt.a1(s, a); err != nil {
				t.Fatal(err)
			}
			if err := tt.b(s, b); err != nil {
				t.Fatal(err)
			}
			err := tt.a2(s, a)
			var fe *mongomigrate.FencedError
			if !errors.As(err, &fe) || !errors.Is(err, lease.ErrLost) {
				t.Fatalf("the older generation's late write: %v; want a FencedError (lease lost)", err)
			}
			var p position
			found, err := s.Load(context.Background(), "phase2_checkpoint", &p)
			if err != nil || p.Through != tt.wantThrough || found != (tt.wantThrough != "") {
				t.Errorf("checkpoint = %v %q, %v; want %q", found, p.Through, err, tt.wantThrough)
			}
			st, err := s.State(context.Background())
			if err != nil || st.Version != tt.wantVersion {
				t.Errorf("version = %d, %v; want %d", st.Version, err, tt.wantVersion)
			}
			h, err := s.History(context.Background())
			if _, ok := h["3.up"]; err != nil || ok != tt.wantHistory {
				t.Errorf("history of step 3: %v, %v; want %v", ok, err, tt.wantHistory)
			}
		})
	}
}

// The newer generation writes over an older one's documents, and the older
// one's writes pass until then.
func TestStoreLetsTheNewerGenerationWrite(t *testing.T) {
	db := env.Database(t)
	s := mongomigrate.NewStore(db, "migrations", nil)
	a, b := twoHolders(t, db.Collection("migrations_lock"))
	for i, step := range []struct {
		ctx     context.Context
		through string
	}{{a, "p1"}, {a, "p2"}, {b, "q1"}, {b, "q2"}} {
		if err := s.Save(step.ctx, "phase2_checkpoint", position{Through: step.through}); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
	}
	if err := s.Clear(b, "phase2_checkpoint"); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(b, "phase2_checkpoint", position{Through: "q3"}); err != nil {
		t.Fatalf("a save after the holder's own clear: %v", err)
	}
}
