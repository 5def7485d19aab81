package lease_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/runner/internal/servererr"
	"github.com/tenantmigrate/runner/runner/lease"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

// clock is a fake clock every holder shares: a lease expires when the test
// says, not when the machine gets round to it.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func options(coll *mongo.Collection, c *clock, owner string) lease.Options {
	// Renew: an hour of real time, so no heartbeat runs unless a test asks.
	return lease.Options{Coll: coll, Name: "migrations", Owner: owner, Host: "test", TTL: time.Minute, Renew: time.Hour, Grace: time.Millisecond, Log: testenv.Quiet(), Now: c.Now}
}

func TestLease(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		// between runs after a takes the lease, before b tries.
		between func(t *testing.T, c *clock, a *lease.Lease)
		// wantB: b gets the lease at once (else it is refused with a's name).
		wantB   bool
		wantGen int64
	}{
		{"held: refused, naming the holder", func(*testing.T, *clock, *lease.Lease) {}, false, 1},
		{"held until just before expiry", func(_ *testing.T, c *clock, _ *lease.Lease) { c.advance(time.Minute - time.Millisecond) }, false, 1},
		{"expired: taken over", func(_ *testing.T, c *clock, _ *lease.Lease) { c.advance(time.Minute) }, true, 2},
		{"released: taken at once", func(t *testing.T, _ *clock, a *lease.Lease) {
			if err := a.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}, true, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			coll := env.Database(t).Collection("locks")
			c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			a, err := lease.Acquire(ctx, options(coll, c, "a"))
			if err != nil {
				t.Fatal(err)
			}
			tt.between(t, c, a)
			b, err := lease.Acquire(ctx, options(coll, c, "b"))
			var held *lease.HeldError
			switch {
			case tt.wantB && err != nil:
				t.Fatalf("b: %v; want the lease", err)
			case !tt.wantB && (!errors.As(err, &held) || held.Owner != "a" || !errors.Is(err, lease.ErrWaitExceeded)):
				t.Fatalf("b: %v; want a HeldError naming a", err)
			}
			cur, err := lease.Current(ctx, coll, "migrations")
			if err != nil || cur == nil || cur.Gen != tt.wantGen {
				t.Fatalf("current = %+v, %v; want generation %d", cur, err, tt.wantGen)
			}
			if n, _ := coll.CountDocuments(ctx, bson.D{}); n != 1 {
				t.Errorf("%d lock documents; older generations are deleted on acquire", n)
			}
			if b != nil {
				if cur.Owner != "b" {
					t.Errorf("generation %d held by %s, want b", cur.Gen, cur.Owner)
				}
				_ = b.Release(ctx)
			}
		})
	}
}

// A holder whose lease was taken over learns it at its next heartbeat: its
// context is cancelled with ErrLost, and Release says so.
func TestLeaseLostToATakeover(t *testing.T) {
	ctx := context.Background()
	coll := env.Database(t).Collection("locks")
	c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	opts := options(coll, c, "a")
	opts.Renew = 20 * time.Millisecond
	a, err := lease.Acquire(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Context().Done():
		t.Fatalf("lost while held: %v", context.Cause(a.Context()))
	case <-time.After(100 * time.Millisecond): // heartbeats renew it
	}
	// b's clock is an hour on (a stalled, or its clock lags): by b's
	// clock a's lease, renewed by a's own clock, has expired.
	later := &clock{now: c.Now().Add(time.Hour)}
	b, err := lease.Acquire(ctx, options(coll, later, "b"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release(ctx)
	select {
	case <-a.Context().Done():
		if cause := context.Cause(a.Context()); !errors.Is(cause, lease.ErrLost) {
			t.Errorf("a's context ended with %v, want ErrLost", cause)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a never learned it lost the lease")
	}
	if err := a.Release(ctx); !errors.Is(err, lease.ErrLost) {
		t.Errorf("a.Release = %v, want ErrLost", err)
	}
	if cur, _ := lease.Current(ctx, coll, "migrations"); cur == nil || cur.Owner != "b" || cur.Released {
		t.Errorf("current = %+v; want b's, not released by a", cur)
	}
}

// A holder paused past its lease knows it the moment it runs again, by its
// own clock, before any heartbeat: nothing more is sent under the lease.
func TestPausedHolderSendsNothing(t *testing.T) {
	ctx := context.Background()
	coll := env.Database(t).Collection("locks")
	c := &clock{now: time.Now()}
	a, err := lease.Acquire(ctx, options(coll, c, "a"))
	if err != nil {
		t.Fatal(err)
	}
	held := lease.NewContext(ctx, a)
	sent := 0
	send := func(context.Context) error { sent++; return nil }
	if err := lease.Do(held, send); err != nil || sent != 1 || lease.MaxTime(held) <= 0 || lease.Comment(held) == "" {
		t.Fatalf("held: Do = %v (sent %d), MaxTime %v, comment %q", err, sent, lease.MaxTime(held), lease.Comment(held))
	}
	c.advance(time.Minute) // paused a lease long; no heartbeat ran
	if err := lease.Do(held, send); !errors.Is(err, lease.ErrLost) || sent != 1 {
		t.Errorf("after a pause past the lease: Do = %v, sent %d times; want ErrLost, nothing sent", err, sent)
	}
	if err := lease.Do(ctx, send); err != nil || sent != 2 {
		t.Errorf("without a lease: Do = %v; want sent", err)
	}
}

// A runner that takes the lock from a holder that did not release it waits
// until that holder's lease, plus a grace, has passed, having ended what the
// server lists of its operations, and says so; one that takes a released
// lock waits for nothing.
func TestTakeoverWaitsOutThePreviousHolder(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name     string
		released bool
	}{{"not released: waited out", false}, {"released: no wait", true}} {
		t.Run(tt.name, func(t *testing.T) {
			coll := env.Database(t).Collection("locks")
			c := &clock{now: time.Now()}
			a, err := lease.Acquire(ctx, options(coll, c, "a"))
			if err != nil {
				t.Fatal(err)
			}
			if tt.released {
				if err := a.Release(ctx); err != nil {
					t.Fatal(err)
				}
			}
			c.advance(time.Minute)
			opts := options(coll, c, "b")
			opts.Grace = 300 * time.Millisecond
			start := time.Now()
			b, err := lease.Acquire(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Release(ctx)
			took := b.Took()
			if tt.released {
				if took != nil {
					t.Errorf("took over a released lock: %v", took)
				}
				return
			}
			if took == nil || took.Previous != "a" || took.Waited < 250*time.Millisecond || time.Since(start) < 250*time.Millisecond {
				t.Fatalf("took = %v after %v; want a's operations waited out for the grace", took, time.Since(start))
			}
			t.Log(took)
		})
	}
}

// An operation cut at the lease's expiry while the lease was renewed
// meanwhile (a slow server) is transient: tried again under the renewed
// lease. One cut because the lease is gone is the lost lease.
func TestCutAtTheLeasesEnd(t *testing.T) {
	ctx := context.Background()
	coll := env.Database(t).Collection("locks")
	c := &clock{now: time.Now()}
	opts := options(coll, c, "a")
	opts.TTL = 300 * time.Millisecond
	a, err := lease.Acquire(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	held := lease.NewContext(ctx, a)
	slow := func(renewed bool) func(context.Context) error {
		return func(ctx context.Context) error {
			<-ctx.Done() // the server answers after the lease's end
			if !renewed {
				c.advance(time.Second)
			}
			return ctx.Err()
		}
	}
	if err := lease.Do(held, slow(true)); !servererr.IsTransient(err) || errors.Is(err, lease.ErrLost) {
		t.Errorf("cut, the lease still held: %v; want transient", err)
	}
	if err := lease.Do(held, slow(false)); !errors.Is(err, lease.ErrLost) || servererr.IsTransient(err) {
		t.Errorf("cut, the lease gone: %v; want ErrLost", err)
	}
}
