package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/config"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/references"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

// fastLease makes a killed holder block the next run for three seconds only.
var fastLease = []string{"RUNNER_LOCK_LEASE=3s", "RUNNER_LOCK_HEARTBEAT=1s", "RUNNER_BATCH_SIZE=100"}

func diff(want, got map[string]string) (missing, extra, changed int) {
	for id, h := range want {
		switch g, ok := got[id]; {
		case !ok:
			missing++
		case g != h:
			changed++
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			extra++
		}
	}
	return
}

// killPoint is a moment of a run: the first log line holding every part of
// event, then delay.
type killPoint struct {
	event []string
	delay time.Duration
	args  []string  // the runner's arguments: none is a run as at boot
	env   []string  // more of the runner's environment
	out   io.Writer // the runner's stdout; nil: discarded
}

func (p killPoint) matches(line string) bool {
	for _, part := range p.event {
		if !strings.Contains(line, part) {
			return false
		}
	}
	return true
}

// runUntil starts the runner and kills it with SIGKILL at the point; it
// reports whether the kill came before the runner finished.
func runUntil(t *testing.T, db string, p killPoint) bool {
	t.Helper()
	cmd, done := actAt(t, db, env.URI, p, func(cmd *exec.Cmd) { _ = cmd.Process.Signal(syscall.SIGKILL) })
	return cmd != nil && <-done != nil
}

// cleanRun is the tenant accounts and links an uninterrupted run gives on
// the fixture opts describes.
func cleanRun(t *testing.T, opts gen.Options) [2]map[string]string {
	t.Helper()
	clean := env.Database(t)
	env.Load(t, clean, opts)
	if r := runBin(t, clean.Name(), fastLease); r.code != 0 {
		t.Fatalf("uninterrupted run: %+v", r)
	}
	return [2]map[string]string{testenv.Dump(t, clean.Collection(names.TenantsAccounts)), testenv.Dump(t, clean.Collection(names.Links))}
}

// Killed with SIGKILL at many points spread over every step, then run again:
// the tenant accounts and links equal those of an uninterrupted run.
func TestKillAnywhereThenRerun(t *testing.T) {
	if testing.Short() {
		t.Skip("kills the runner a dozen times")
	}
	opts := gen.Options{Accounts: 2500, Seed: 21}
	if env.Real() {
		// A real engine does 2,500 accounts' steps within the delays
		// below: a kill would land after the work it aims at.
		opts.Accounts = 20000
	}
	want := cleanRun(t, opts)

	db := env.Database(t)
	env.Load(t, db, opts)
	legacy := testenv.Dump(t, db.Collection(names.Accounts))
	started := func(name string) []string { return []string{`"msg":"step started"`, `"name":"` + name + `"`} }
	finished := func(name string) []string { return []string{`"msg":"step finished"`, `"name":"` + name + `"`} }
	pass := func(name string) []string { return []string{"phase 1: pass started", name} }
	var points []killPoint
	// A real engine takes phase 1's server path, which has no collect
	// pass: it fetches the grouped accounts as it merges them.
	collect := killPoint{pass("3 collect"), 100 * time.Millisecond, nil, nil, nil}
	if env.Real() {
		collect = killPoint{pass("4 merge"), 100 * time.Millisecond, nil, nil, nil}
	}
	if env.Real() {
		// FerretDB 1.24 cancels a createIndexes whose client vanished half
		// way and then panics on every later createIndexes of that
		// collection ("slice bounds out of range"): a server bug, so this
		// point runs on real MongoDB only.
		points = append(points, killPoint{started("commands"), 0, nil, nil, nil})
	}
	points = append(points, []killPoint{
		{pass("1 identities"), 30 * time.Millisecond, nil, nil, nil},
		{pass("2 groups"), 0, nil, nil, nil},
		collect,
		{pass("4 merge"), 0, nil, nil, nil},
		{pass("4 merge"), 300 * time.Millisecond, nil, nil, nil},
		{finished("phase1"), 0, nil, nil, nil},
		{started("phase2"), 300 * time.Millisecond, nil, nil, nil},
		{started("phase2"), 800 * time.Millisecond, nil, nil, nil},
		{started("phase2"), 1500 * time.Millisecond, nil, nil, nil},
		// The run after a kill in phase 2 resumes it, then verifies.
		{[]string{"verify: started"}, 100 * time.Millisecond, nil, nil, nil},
		{[]string{"verify: started"}, 100 * time.Millisecond, []string{"verify"}, nil, nil},
		{[]string{"verify: started"}, 700 * time.Millisecond, []string{"verify"}, nil, nil},
		{pass("1 identities"), 50 * time.Millisecond, []string{"--phase", "1"}, nil, nil},
		{pass("4 merge"), 200 * time.Millisecond, []string{"--phase", "1"}, nil, nil},
	}...)
	killed := 0
	for _, p := range points {
		if runUntil(t, db.Name(), p) {
			killed++
		}
	}
	if killed < 10 {
		t.Fatalf("only %d of %d kill points hit a running runner", killed, len(points))
	}
	if r := runBin(t, db.Name(), fastLease); r.code != 0 {
		t.Fatalf("run after the kills: %+v", r)
	}
	r := runBin(t, db.Name(), fastLease, "verify", "--json")
	var rep struct {
		LegacyAccounts int `json:"legacy_accounts"`
		Linked         int `json:"linked_by_phase1"`
		OneToOne       int `json:"one_to_one"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); r.code != 0 || err != nil || rep.Linked+rep.OneToOne != rep.LegacyAccounts || rep.LegacyAccounts != opts.Accounts {
		t.Fatalf("verify after the kills: %+v (%v) %s", rep, err, r.stderr)
	}
	for i, coll := range []string{names.TenantsAccounts, names.Links} {
		got := testenv.Dump(t, db.Collection(coll))
		if m, e, c := diff(want[i], got); m+e+c != 0 {
			t.Errorf("%s after %d kills: %d missing, %d extra, %d different of %d", coll, killed, m, e, c, len(want[i]))
		}
	}
	if m, e, c := diff(legacy, testenv.Dump(t, db.Collection(names.Accounts))); m+e+c != 0 {
		t.Errorf("legacy accounts changed: %d missing, %d extra, %d different", m, e, c)
	}
	t.Logf("%d kills; compared %d tenant accounts and %d links document for document; lost 0", killed, len(want[0]), len(want[1]))
}

// Info-level logs carry no identifiers, emails, names or URI passwords.
func TestLogsCarryNoPersonalData(t *testing.T) {
	db := env.Database(t)
	opts := gen.Options{Accounts: 800, Seed: 4}
	env.Load(t, db, opts)
	secret := map[string]bool{}
	err := gen.Accounts(opts, func(a model.LegacyAccount) error {
		for _, at := range a.AuthTypes {
			secret[at.Identifier] = true
		}
		for _, s := range []string{a.Profile.Email, a.Profile.Phone, a.Username, strings.TrimSpace(a.Profile.FirstName + " " + a.Profile.LastName)} {
			if len(s) >= 6 {
				secret[s] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	for _, args := range [][]string{{"--dry-run"}, {}, {"--phase", "1"}, {"status"}, {"verify"}} {
		r := runBin(t, db.Name(), []string{"RUNNER_LOG_LEVEL=info"}, args...)
		if r.code != 0 {
			t.Fatalf("runner %v: %+v", args, r)
		}
		logs.WriteString(r.stderr)
	}
	text := logs.String()
	if !strings.Contains(text, "phase 1: report") || !strings.Contains(text, "verify: finished") {
		t.Fatalf("the logs do not cover the phases: %s", text)
	}
	leaks := 0
	for s := range secret {
		if strings.Contains(text, s) {
			leaks++
			if leaks <= 3 {
				t.Errorf("personal data in info-level logs: %q", s)
			}
		}
	}
	t.Logf("checked %d identifiers, emails, phones, usernames and names against %d bytes of logs: %d found", len(secret), len(text), leaks)
}

// Four runners boot together on one database; the one holding the lock is
// killed in the middle of phase 1. Another takes over after the lease and
// completes every step; all the others exit 0.
func TestConcurrentBootsWithKilledHolder(t *testing.T) {
	if testing.Short() {
		t.Skip("runs four runners over a fixture")
	}
	db := env.Database(t)
	opts := gen.Options{Accounts: 1500, Seed: 8}
	env.Load(t, db, opts)
	type proc struct {
		cmd  *exec.Cmd
		done chan error
	}
	const n = 4
	procs := make([]proc, n)
	holder := make(chan int, n)
	for i := range procs {
		cmd := exec.Command(bin)
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), "RUNNER_MONGODB_URI="+env.URI, "RUNNER_MONGODB_DATABASE="+db.Name(),
			"RUNNER_LOG_FORMAT=json", "RUNNER_LOCK_WAIT=3m")
		cmd.Env = append(cmd.Env, fastLease...)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		procs[i] = proc{cmd: cmd, done: make(chan error, 1)}
		go func() {
			sc := bufio.NewScanner(stderr)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				if strings.Contains(sc.Text(), "phase 1: pass started") && strings.Contains(sc.Text(), "4 merge") {
					holder <- i
				}
			}
		}()
	}
	for i := range procs {
		if err := procs[i].cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { procs[i].done <- procs[i].cmd.Wait() }()
	}
	var victim int
	select {
	case victim = <-holder:
	case <-time.After(3 * time.Minute):
		t.Fatal("no runner reached phase 1")
	}
	if err := procs[victim].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := range procs {
		err := <-procs[i].done
		if i == victim {
			continue
		}
		if err != nil {
			t.Errorf("runner %d: %v", i, err)
		}
	}
	r := runBin(t, db.Name(), nil, "verify", "--json")
	if r.code != 0 {
		t.Fatalf("verify after the takeover: %+v", r)
	}
	r = runBin(t, db.Name(), nil, "status", "--json")
	var st struct {
		Version int
		Dirty   bool
		Steps   []struct {
			Version int
			State   string
			Up      struct {
				Attempts int
				Owner    string
			}
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Dirty || st.Version != latest(t) {
		t.Fatalf("status = %+v, %v", st, err)
	}
	for _, s := range st.Steps {
		want := 1
		if s.Version == 2 {
			want = 2 // the killed attempt, then the new owner's
		}
		if s.State != "applied" || s.Up.Attempts != want || s.Up.Owner == "" {
			t.Errorf("step %d: state %s, %d attempts by %q; want applied after %d", s.Version, s.State, s.Up.Attempts, s.Up.Owner, want)
		}
	}
}

// Killed with SIGKILL at points spread over the references step and its
// down, then run again: the referencing collections equal an uninterrupted
// run's, and down gives them back byte for byte.
func TestKillReferencesThenRerun(t *testing.T) {
	if testing.Short() {
		t.Skip("kills the runner several times")
	}
	opts := gen.Options{Accounts: 600, Seed: 29} // FerretDB 1 scans per conditional write
	if env.Real() {
		opts.Accounts = 20000
	}
	refs := append([]string{"RUNNER_REFERENCES=" + strings.Join(gen.ReferenceFields(), ",")}, fastLease...)
	load := func() *mongo.Database {
		db := env.Database(t)
		env.Load(t, db, opts)
		if _, err := gen.LoadReferences(context.Background(), db, opts); err != nil {
			t.Fatal(err)
		}
		return db
	}
	// Whole documents (not hashes), so a difference can be shown.
	dumps := func(db *mongo.Database) map[string]map[string]string {
		out := map[string]map[string]string{}
		for _, c := range gen.ReferenceCollections() {
			out[c] = map[string]string{}
			for _, d := range testenv.ReadAll[bson.Raw](t, db.Collection(c)) {
				out[c][d.Lookup("_id").String()] = d.String()
			}
		}
		return out
	}
	clean := load()
	if r := runBin(t, clean.Name(), refs); r.code != 0 {
		t.Fatalf("uninterrupted run: %+v", r)
	}
	want := dumps(clean)

	db := load()
	original := dumps(db)
	if r := runBin(t, db.Name(), refs, "--phase", "2"); r.code != 0 {
		t.Fatalf("phases: %+v", r)
	}
	started := func(name string) []string { return []string{`"msg":"step started"`, `"name":"` + name + `"`} }
	var points []killPoint
	for _, d := range []time.Duration{0, 100 * time.Millisecond, 400 * time.Millisecond, time.Second, 2 * time.Second} {
		points = append(points, killPoint{started("references"), d, []string{"--references"}, refs, nil})
	}
	killed := 0
	for _, p := range points {
		if runUntil(t, db.Name(), p) {
			killed++
		}
	}
	if r := runBin(t, db.Name(), refs, "--references"); r.code != 0 {
		t.Fatalf("run after the kills: %+v", r)
	}
	// The step's records (by collection and document), to show what down
	// had to go by when a document comes back different.
	records := func(db *mongo.Database) map[string]string {
		out := map[string]string{}
		for _, d := range testenv.ReadAll[bson.Raw](t, db.Collection(mongomigrate.NewStore(db, config.Default().Collections.MigrationsPrefix, nil).Records(references.RecordsName))) {
			out[d.Lookup("c").StringValue()+" "+d.Lookup("d").String()] = d.String()
		}
		return out
	}
	var before map[string]string
	same := func(what string, got, want map[string]map[string]string) {
		t.Helper()
		for _, c := range gen.ReferenceCollections() {
			if m, e, ch := diff(want[c], got[c]); m+e+ch != 0 {
				t.Errorf("%s: %s: %d missing, %d extra, %d different of %d", what, c, m, e, ch, len(want[c]))
				for id, w := range want[c] {
					if g := got[c][id]; g != w {
						t.Errorf("first of them, %s:\n want %s\n  got %s\n its record before down: %s", id, w, g, before[c+" "+id])
						break
					}
				}
			}
		}
	}
	same(fmt.Sprintf("after %d kills in the step", killed), dumps(db), want)
	before = records(db)

	downKilled := 0
	for _, d := range []time.Duration{50 * time.Millisecond, 500 * time.Millisecond, 1500 * time.Millisecond} {
		if runUntil(t, db.Name(), killPoint{started("references_down"), d, []string{"down"}, refs, nil}) {
			downKilled++
		}
	}
	r := runBin(t, db.Name(), refs, "down")
	if r.code != 0 {
		t.Fatalf("down after the kills: %+v", r)
	}
	if left := records(db); len(left) != 0 {
		t.Errorf("%d records left after down", len(left))
	}
	same(fmt.Sprintf("down after %d kills in it", downKilled), dumps(db), original)
	if t.Failed() {
		t.Logf("the last down printed: %s", r.stdout)
	}
	if r := runBin(t, db.Name(), refs, "--references"); r.code != 0 {
		t.Fatalf("run after down: %+v", r)
	}
	same("a run after down", dumps(db), want)
	if killed+downKilled < 4 {
		t.Errorf("only %d of %d kill points hit a running runner", killed+downKilled, len(points)+3)
	}
	t.Logf("%d kills in the step, %d in its down; referencing collections compared document for document", killed, downKilled)
}

// actAt starts the runner (A) on uri and calls act at the point; it
// returns A and a channel that gets its exit, or nil if A ended before the
// point.
func actAt(t *testing.T, db, uri string, p killPoint, act func(*exec.Cmd)) (*exec.Cmd, <-chan error) {
	t.Helper()
	cmd := exec.Command(bin, p.args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "RUNNER_MONGODB_URI="+uri, "RUNNER_MONGODB_DATABASE="+db, "RUNNER_LOG_FORMAT=json")
	cmd.Env = append(cmd.Env, fastLease...)
	cmd.Env = append(cmd.Env, p.env...)
	cmd.Stdout = p.out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	hit := make(chan struct{})
	var last []string
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		found := false
		for sc.Scan() {
			if last = append(last, sc.Text()); len(last) > 3 {
				last = last[1:]
			}
			if !found && p.matches(sc.Text()) {
				found = true
				close(hit)
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-hit:
		time.Sleep(p.delay)
		act(cmd)
		return cmd, done
	case err := <-done:
		<-scanned
		t.Logf("point %q not reached: runner ended (%v): %s", p.event, err, strings.Join(last, " | "))
		return nil, nil
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("point %q not reached in 3 minutes", p.event)
		return nil, nil
	}
}

// A holder cut off past its lease while another runner takes the lock and
// works, then back, writes nothing that counts: its late checkpoint,
// version and history writes are refused by the server (the lease's
// generation fences them) or never sent (its lease has expired by its own
// clock). Cut off is either paused (SIGSTOP, then SIGCONT) or its requests
// held in flight by a proxy, so that what it sent before its lease ended
// reaches the server after the other runner's work. The next run gives
// the tenant accounts and links of a clean run, document for document.
func TestCutOffHolderWritesNothingThatCounts(t *testing.T) {
	if testing.Short() {
		t.Skip("cuts the runner off past its lease")
	}
	// 3,000 on the embedded server: some 30 batches of phase 2's stream
	// (fastLease's batch size) and a merge pass of seconds, in a third less
	// of the suite's time than 4,000.
	opts := gen.Options{Accounts: 3000, Seed: 5}
	if env.Real() {
		opts.Accounts = 20000
		if env.SlowShardKey(t) {
			// DocumentDB checks the unique index led by org_id against
			// every tenant of the org: at 20,000 the five cases took 14
			// minutes on FerretDB 2.
			opts.Accounts = 8000
		}
	}
	want := cleanRun(t, opts)
	pass := func(name string) []string { return []string{"phase 1: pass started", name} }
	// Phase 2 in many small ranges, four at once (one at a time on the
	// split path with a shard key), each finished range saving a
	// checkpoint: cut off just after one, others may be in flight, and
	// their checkpoints follow.
	rangeDone := []string{"phase 2: range done"}
	smallRanges := []string{"RUNNER_PHASE2_RANGE_SIZE=500", "RUNNER_PHASE2_PARALLEL=4"}
	if !env.Real() {
		// the embedded server streams phase 2: a checkpoint per batch
		rangeDone = []string{`"msg":"step started"`, `"name":"phase2"`}
	}
	pause := func(cmd *exec.Cmd) (resume func()) {
		if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		return func() { _ = cmd.Process.Signal(syscall.SIGCONT) }
	}
	for _, tt := range []struct {
		name  string
		point killPoint
		hold  bool     // hold A's requests in flight (else pause A)
		b     []string // what B runs meanwhile
	}{
		{"phase 2 paused, another runner's down", killPoint{rangeDone, 0, nil, smallRanges, nil}, false, []string{"down"}},
		{"phase 2 paused, another runner's phase 2", killPoint{rangeDone, 0, nil, smallRanges, nil}, false, []string{"--phase", "2"}},
		{"phase 1 paused, another runner's down", killPoint{pass("4 merge"), 100 * time.Millisecond, nil, nil, nil}, false, []string{"down"}},
		{"phase 2 held in flight, another runner's down", killPoint{rangeDone, 0, nil, smallRanges, nil}, true, []string{"down"}},
		{"phase 2 held in flight, another runner's phase 2", killPoint{rangeDone, 0, nil, smallRanges, nil}, true, []string{"--phase", "2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := env.Database(t)
			env.Load(t, db, opts)
			uri := env.URI
			var proxy *toxiproxy.Proxy
			if tt.hold {
				proxy, uri = env.Proxied(t, nil)
			}
			var resume func()
			a, done := actAt(t, db.Name(), uri, tt.point, func(cmd *exec.Cmd) {
				if !tt.hold {
					resume = pause(cmd)
					return
				}
				// Every request A sends from now on reaches the server 12 s
				// late: its lease (3 s) ends meanwhile, and B works.
				spec := `{"name":"hold","type":"latency","stream":"upstream","toxicity":1,"attributes":{"latency":12000}}`
				if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
					t.Fatal(err)
				}
				resume = func() {}
			})
			if a == nil {
				t.Skip("the runner finished before the point")
			}
			if !tt.hold {
				time.Sleep(4 * time.Second) // past A's 3 s lease
			}
			rb := runBin(t, db.Name(), fastLease, tt.b...)
			resume()
			errA := <-done
			t.Logf("B (%v): exit %d; A: %v", tt.b, rb.code, errA)
			if rb.code != 0 && rb.code != 7 {
				t.Fatalf("B: %+v", rb)
			}
			if r := runBin(t, db.Name(), fastLease); r.code != 0 {
				t.Fatalf("the run after: %+v", r)
			}
			if r := runBin(t, db.Name(), fastLease, "--phase", "2"); r.code != 0 {
				t.Fatalf("phase 2 again after: %+v", r)
			}
			for i, coll := range []string{names.TenantsAccounts, names.Links} {
				got := testenv.Dump(t, db.Collection(coll))
				if m, e, c := diff(want[i], got); m+e+c != 0 {
					t.Errorf("%s: %d missing, %d extra, %d different of %d", coll, m, e, c, len(want[i]))
				}
			}
		})
	}
}

// A runner killed (SIGKILL) during a long phase-2 $merge leaves nothing
// running on the server past its lease: the run carries maxTimeMS within
// the lease, and the runner that takes the lock over waits for the lease
// (and a grace) to pass, or ends the run where the server lists it. So the
// other runner's down stays done: the tenant accounts do not grow behind
// it. The runner goes through a proxy that, at the kill, holds its
// connections open and silent, as a network that lost the client without
// telling the server does: the server would otherwise end the run when
// the connection closes.
func TestKilledHoldersMergeEndsWithItsLease(t *testing.T) {
	if !env.Real() {
		t.Skip("the embedded server has no $merge: phase 2 streams")
	}
	ctx := context.Background()
	opts := gen.Options{Accounts: 60000, Seed: 9}
	if env.SlowShardKey(t) {
		// DocumentDB checks the unique index led by org_id against every
		// tenant of the org: 10,000 outlast the lease in one $merge, and
		// 60,000 would keep the run after busy for half an hour.
		opts.Accounts = 10000
	}
	db := env.Database(t)
	env.Load(t, db, opts)
	proxy, uri := env.Proxied(t, nil)
	oneRange := []string{"RUNNER_PHASE2_RANGE_SIZE=100000", "RUNNER_PHASE2_PARALLEL=1"}
	// 5 s after the probe (and the range's counts): in its one $merge, which takes longer
	// than the lease (3 s) at this size on FerretDB 2
	point := killPoint{[]string{"phase 2: probed the server"}, 5 * time.Second, nil, oneRange, nil}
	a, done := actAt(t, db.Name(), uri, point, func(cmd *exec.Cmd) {
		for _, stream := range []string{"upstream", "downstream"} {
			spec := `{"name":"silent-` + stream + `","type":"timeout","stream":"` + stream + `","toxicity":1,"attributes":{"timeout":0}}`
			if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
				t.Fatal(err)
			}
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
	})
	if a == nil {
		t.Skip("the runner finished phase 2 before the kill")
	}
	<-done
	r := runBin(t, db.Name(), fastLease, "down")
	if r.code != 0 {
		t.Fatalf("down: %+v", r)
	}
	count := func() int64 {
		n, err := db.Collection(names.TenantsAccounts).CountDocuments(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	after := count()
	time.Sleep(15 * time.Second) // longer than the killed run's one range takes
	if later := count(); later != after {
		t.Errorf("tenant accounts grew from %d to %d after the down: the killed runner's $merge outlived its lease", after, later)
	}
	proxy.Stop()
	if r := runBin(t, db.Name(), fastLease); r.code != 0 {
		t.Fatalf("the run after: %+v", r)
	}
}
