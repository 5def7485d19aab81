package runner_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/runner"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/phase2"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

// cursorKiller kills the server's cursor under the nth getMore the runner
// sends while it is armed, just before that getMore reaches the server:
// what a server does to a cursor left idle too long, and a failover to every
// cursor it holds.
type cursorKiller struct {
	t      *testing.T
	side   *mongo.Client // the test's own client, which kills
	armed  atomic.Bool
	at     atomic.Int64 // the getMore to fail, counted from 1; 0: none
	seen   atomic.Int64 // getMores sent since armed
	killed atomic.Int64
	mu     sync.Mutex
	colls  []string // the collection of each getMore since armed
}

func (k *cursorKiller) arm(at int64) {
	k.seen.Store(0)
	k.killed.Store(0)
	k.mu.Lock()
	k.colls = nil
	k.mu.Unlock()
	k.at.Store(at)
	k.armed.Store(true)
}

// disarm returns how many getMores the runner sent while armed.
func (k *cursorKiller) disarm() int64 {
	k.armed.Store(false)
	return k.seen.Load()
}

func (k *cursorKiller) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName != "getMore" || !k.armed.Load() {
			return
		}
		id, okID := e.Command.Lookup("getMore").Int64OK()
		coll, okColl := e.Command.Lookup("collection").StringValueOK()
		if !okID || !okColl {
			k.t.Errorf("a getMore without a cursor id or collection: %s", e.Command)
			return
		}
		k.mu.Lock()
		k.colls = append(k.colls, coll)
		k.mu.Unlock()
		if k.seen.Add(1) != k.at.Load() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var res struct {
			Killed []int64 `bson:"cursorsKilled"`
		}
		kill := bson.D{{Key: "killCursors", Value: coll}, {Key: "cursors", Value: bson.A{id}}}
		if err := k.side.Database(e.DatabaseName).RunCommand(ctx, kill).Decode(&res); err != nil {
			k.t.Errorf("killCursors on %s: %v", coll, err)
			return
		}
		if len(res.Killed) != 1 {
			k.t.Errorf("killCursors on %s killed %v, want the cursor %d", coll, res.Killed, id)
			return
		}
		k.killed.Add(1)
	}}
}

// killPoints are the getMores to fail, counted from 1, out of those of a
// run: of each collection's, the first, the middle and the last, so that
// every cursor of every join dies at its start, mid-way and at its end.
func (k *cursorKiller) killPoints() []int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	byColl := map[string][]int64{}
	for i, c := range k.colls {
		byColl[c] = append(byColl[c], int64(i)+1)
	}
	set := map[int64]bool{}
	for _, at := range byColl {
		set[at[0]], set[at[len(at)/2]], set[at[len(at)-1]] = true, true, true
	}
	out := make([]int64, 0, len(set))
	for at := range set {
		out = append(out, at)
	}
	slices.Sort(out)
	return out
}

// collections are the collections getMores read since armed, once each.
func (k *cursorKiller) collections() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := slices.Clone(k.colls)
	slices.Sort(out)
	return slices.Compact(out)
}

// betweenStates reports the first document of got that is neither as it
// was before an operation nor as the operation leaves it (absent counts
// as a state).
func betweenStates(before, after, got map[string]string) string {
	keys := map[string]bool{}
	for _, m := range []map[string]string{before, after, got} {
		for k := range m {
			keys[k] = true
		}
	}
	for k := range keys {
		g, inGot := got[k]
		b, inBefore := before[k]
		a, inAfter := after[k]
		if (inGot == inBefore && g == b) || (inGot == inAfter && g == a) {
			continue
		}
		switch {
		case !inGot:
			return fmt.Sprintf("%s deleted", k)
		case !inBefore && !inAfter:
			return fmt.Sprintf("%s written, which no run writes", k)
		default:
			return fmt.Sprintf("%s written with a value no run gives it", k)
		}
	}
	return ""
}

// A cursor that dies in the middle of any step (phase 1's passes, phase 2,
// verify, either down) never turns into a wrong write: without retries the
// step stops with the error before its next write, leaving every tenant
// account and link as it was or as the step leaves it, and a re-run
// finishes the job; with retries the broken cursor resumes and the step
// ends as if nothing had happened.
func TestADeadCursorWritesNothingWrong(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every step some thirty times")
	}
	ctx := context.Background()
	cfg, db := testConfig(t)
	env.Load(t, db, gen.Options{Accounts: 300, Seed: 17})
	legacy := testenv.Dump(t, db.Collection(names.Accounts))
	cfg.BatchSize = 25 // many getMores per pass
	cfg.Verify.AfterSteps = false
	killer := &cursorKiller{t: t, side: db.Client()}
	failing := cfg
	failing.Retry.Attempts = 1
	retrying := cfg
	retrying.Retry.InitialWait, retrying.Retry.MaxWait = 10*time.Millisecond, 100*time.Millisecond
	runners := map[string]*runner.Runner{
		"failing":  newRunner(t, failing, runner.WithCommandMonitor(killer.monitor())),
		"retrying": newRunner(t, retrying, runner.WithCommandMonitor(killer.monitor())),
	}
	stream := failing
	stream.Phase2.Path = phase2.PathStream
	runners["failing stream"] = newRunner(t, stream, runner.WithCommandMonitor(killer.monitor()))
	stream.Retry = retrying.Retry
	runners["retrying stream"] = newRunner(t, stream, runner.WithCommandMonitor(killer.monitor()))

	// Each operation returns the retries it counted.
	retries := func(res runner.Result) (n int64) {
		for _, s := range res.Steps {
			n += s.Counts[count.Retries]
		}
		return n
	}
	phase := func(n int) func(context.Context, *runner.Runner) (int64, error) {
		return func(ctx context.Context, r *runner.Runner) (int64, error) {
			res, err := r.Phase(ctx, n)
			return retries(res), err
		}
	}
	down := func(ctx context.Context, r *runner.Runner) (int64, error) {
		res, err := r.Down(ctx)
		return retries(res), err
	}
	verify := func(ctx context.Context, r *runner.Runner) (int64, error) {
		rep, err := r.Verify(ctx)
		if err != nil {
			return 0, err
		}
		if !rep.OK() {
			return rep.Retries, fmt.Errorf("verify found a mismatch: %s", rep.Problem())
		}
		return rep.Retries, nil
	}
	type stage struct {
		name string
		// runner names the runners: its failing and its retrying one.
		runner string
		run    func(context.Context, *runner.Runner) (int64, error)
		// undo brings the database back from after run to before it; nil
		// (but for verify) is a step only to reach the next stage.
		undo func(context.Context, *runner.Runner) (int64, error)
	}
	stages := []stage{
		{"phase 1", "", phase(1), down},
		{"phase 2", "", phase(2), down},
		{"verify", "", verify, nil},
		{"phase 2 down", "", down, phase(2)},
	}
	if env.Real() { // probe takes a server-side path: stream as well
		stages = append(stages, stage{"phase 2 streamed", " stream", phase(2), down}, stage{"undo phase 2", "", down, nil})
	}
	stages = append(stages, stage{"phase 1 down", "", down, phase(1)})
	state := func() [2]map[string]string {
		return [2]map[string]string{testenv.Dump(t, db.Collection(names.TenantsAccounts)), testenv.Dump(t, db.Collection(names.Links))}
	}
	same := func(what string, got, want [2]map[string]string) {
		t.Helper()
		for i, name := range []string{"tenant accounts", "links"} {
			if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
				t.Fatalf("%s: %s differ (%d vs %d)", what, name, len(got[i]), len(want[i]))
			}
		}
	}
	for _, st := range stages {
		failing, retrying := runners["failing"+st.runner], runners["retrying"+st.runner]
		before := state()
		killer.arm(0)
		if _, err := st.run(ctx, failing); err != nil {
			t.Fatalf("%s, no cursor killed: %v", st.name, err)
		}
		n := killer.disarm()
		after := state()
		if st.undo == nil && st.name != "verify" {
			continue // a step to reach the next stage
		}
		points := killer.killPoints()
		t.Logf("%s: %d getMores on %v; killing the cursor under getMores %v", st.name, n, killer.collections(), points)
		if n == 0 {
			t.Logf("%s reads all it needs in first batches", st.name)
		}
		for _, at := range points {
			if st.undo != nil {
				if _, err := st.undo(ctx, failing); err != nil {
					t.Fatalf("%s: undo: %v", st.name, err)
				}
				same(st.name+": undone", state(), before)
			}
			killer.arm(at)
			_, err := st.run(ctx, failing)
			killer.disarm()
			if killer.killed.Load() != 1 {
				t.Fatalf("%s: getMore %d: no cursor killed (%d getMores this time)", st.name, at, killer.seen.Load())
			}
			if bad := betweenStates(before[0], after[0], testenv.Dump(t, db.Collection(names.TenantsAccounts))); bad != "" {
				t.Fatalf("%s: the cursor under getMore %d died (%v): tenant account %s", st.name, at, err, bad)
			}
			if bad := betweenStates(before[1], after[1], testenv.Dump(t, db.Collection(names.Links))); bad != "" {
				t.Fatalf("%s: the cursor under getMore %d died (%v): link %s", st.name, at, err, bad)
			}
			if err == nil {
				t.Fatalf("%s: the cursor under getMore %d died and the step succeeded without retries", st.name, at)
			}
			if _, err := st.run(ctx, failing); err != nil {
				t.Fatalf("%s: re-run after the cursor under getMore %d died: %v", st.name, at, err)
			}
			same(fmt.Sprintf("%s: re-run after getMore %d failed", st.name, at), state(), after)
		}
		if n == 0 {
			continue
		}
		if st.undo != nil {
			if _, err := st.undo(ctx, retrying); err != nil {
				t.Fatalf("%s: undo: %v", st.name, err)
			}
		}
		killer.arm(n/2 + 1)
		counted, err := st.run(ctx, retrying)
		killer.disarm()
		if err != nil {
			t.Fatalf("%s: with retries, the cursor under getMore %d died and the step failed: %v", st.name, n/2+1, err)
		}
		t.Logf("%s: with retries, the cursor under getMore %d died: %d retries, same result", st.name, n/2+1, counted)
		if counted == 0 {
			t.Errorf("%s: with retries, a cursor died and no retry was counted", st.name)
		}
		if killer.killed.Load() != 1 {
			t.Fatalf("%s: with retries, no cursor killed", st.name)
		}
		same(st.name+": with retries, a cursor died", state(), after)
	}
	if fmt.Sprint(testenv.Dump(t, db.Collection(names.Accounts))) != fmt.Sprint(legacy) {
		t.Error("the legacy accounts changed")
	}
}
