package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/migrations"
	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/lease"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/phase1"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

var (
	env *testenv.Env
	bin string
	// names are the collections of the default configuration the tests run.
	names = model.DefaultNames()
)

func TestMain(m *testing.M) {
	// A child started by TestKilledHolder: hold the lock until killed.
	if uri := os.Getenv("HOLDLOCK_URI"); uri != "" {
		os.Exit(holdLock(uri, os.Getenv("HOLDLOCK_DB")))
	}
	dir, err := os.MkdirTemp("", "runner-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "runner")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build runner: %v\n%s", err, out)
		os.Exit(1)
	}
	code := testenv.Main(m, &env)
	os.RemoveAll(dir)
	os.Exit(code)
}

func holdLock(uri, db string) int {
	ctx := context.Background()
	c, err := mongo.Connect(ctx, options.Client().ApplyURI(uri))
	if err != nil {
		return 1
	}
	_, err = lease.Acquire(ctx, lease.Options{
		Coll: c.Database(db).Collection("migrations_lock"), Name: "migrations",
		Owner: fmt.Sprintf("child/%d", os.Getpid()), Host: "child",
		TTL: 3 * time.Second, Renew: time.Second, Wait: 10 * time.Second,
	})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("held")
	select {} // until killed
}

type result struct {
	code           int
	stdout, stderr string
}

// runBin runs the runner binary on a database of the test server.
func runBin(t *testing.T, db string, extraEnv []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir() // no ./config.yaml: built-in defaults
	cmd.Env = append(os.Environ(),
		"RUNNER_MONGODB_URI="+env.URI, "RUNNER_MONGODB_DATABASE="+db,
		"RUNNER_LOCK_LEASE=3s", "RUNNER_LOCK_HEARTBEAT=1s", "RUNNER_LOCK_WAIT=30s", "RUNNER_LOG_FORMAT=json")
	cmd.Env = append(cmd.Env, extraEnv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{code, out.String(), errb.String()}
}

// lastLine is the one line the runner prints on failure.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func TestHelpAndUsageErrors(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"--help"}, 0, "runner status"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"--no-such-flag"}, 2, "unknown flag"},
		{[]string{"--phase", "3"}, 2, "--phase takes 1 or 2"},
		{[]string{"--phase", "0"}, 2, "--phase takes 1 or 2"},
		{[]string{"--phase=-1"}, 2, "--phase takes 1 or 2"},
		{[]string{"status", "--phase", "1"}, 2, "--phase takes 1 or 2"},
		{[]string{"status", "--dry-run"}, 2, "--dry-run goes with"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tt.args, &out, &errb)
			if code != tt.code || !strings.Contains(out.String()+errb.String(), tt.contains) {
				t.Errorf("runner %v = %d, %q %q; want %d containing %q", tt.args, code, out.String(), errb.String(), tt.code, tt.contains)
			}
		})
	}
}

// latest is the highest step version of this build.
func latest(t *testing.T) int {
	t.Helper()
	entries, err := fs.ReadDir(migrations.FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	v := -1
	for _, e := range entries {
		var n int
		if _, err := fmt.Sscanf(e.Name(), "%d_", &n); err == nil && n > v {
			v = n
		}
	}
	return v
}

// emptyLegacy gives db an empty legacy collection: a database the runner
// takes for a migration with nothing to move (without one, it refuses).
func emptyLegacy(t *testing.T, db *mongo.Database) {
	t.Helper()
	if err := db.CreateCollection(context.Background(), names.Accounts); err != nil {
		t.Fatal(err)
	}
}

func TestUpStatusDownThroughTheBinary(t *testing.T) {
	db := env.Database(t)
	emptyLegacy(t, db)
	top := latest(t)
	r := runBin(t, db.Name(), nil, "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "would apply step 1 tenants_accounts_indexes") || !strings.Contains(r.stdout, "createIndexes") ||
		!strings.Contains(r.stdout, "would apply step 2 phase1_merge_identities") || !strings.Contains(r.stdout, "phase 1: 0 accounts read") {
		t.Fatalf("dry run = %+v", r)
	}
	for _, c := range []string{"migrations_state", "migrations_steps"} {
		if n, _ := db.Collection(c).CountDocuments(context.Background(), bson.D{}); n != 0 {
			t.Fatalf("dry run wrote %s", c)
		}
	}
	r = runBin(t, db.Name(), nil)
	if r.code != 0 || !strings.Contains(r.stdout, "tenants_accounts_indexes") || !strings.Contains(r.stdout, fmt.Sprintf("no step applied -> version %d", top)) ||
		!strings.Contains(r.stdout, "READ  WRITTEN  MERGED  REFRESHED  SKIPPED  DELETED  KEPT") {
		t.Fatalf("runner = %+v", r)
	}
	r = runBin(t, db.Name(), nil)
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("no step to apply: at version %d", top)) {
		t.Fatalf("second runner = %+v", r)
	}
	r = runBin(t, db.Name(), nil, "status")
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("version %d", top)) || !strings.Contains(r.stdout, "applied") || !strings.Contains(r.stdout, "commands=1") {
		t.Fatalf("status = %+v", r)
	}
	r = runBin(t, db.Name(), nil, "status", "--json")
	var st struct {
		Version int
		Steps   []struct {
			State string
			Up    struct{ Attempts int }
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Version != top || st.Steps[0].State != "applied" || st.Steps[0].Up.Attempts != 1 {
		t.Fatalf("status --json = %+v (%v): %s", st, err, r.stdout)
	}
	r = runBin(t, db.Name(), nil, "--phase", "1")
	if r.code != 0 || !strings.Contains(r.stdout, "phase1_merge_identities") {
		t.Fatalf("--phase 1 on an applied phase 1 = %+v", r)
	}
	for v := top; v >= 1; v-- {
		r = runBin(t, db.Name(), nil, "down")
		if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("version %d -> version %d", v, v-1)) && !(v == 1 && strings.Contains(r.stdout, "version 1 -> no step applied")) {
			t.Fatalf("down from %d = %+v", v, r)
		}
	}
	r = runBin(t, db.Name(), nil, "down")
	if r.code != 2 || !strings.Contains(lastLine(r.stderr), "no applied step to undo") {
		t.Fatalf("down with nothing applied = %+v", r)
	}
}

func TestConcurrentBinariesApplyOnce(t *testing.T) {
	db := env.Database(t)
	emptyLegacy(t, db)
	const n = 4
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = runBin(t, db.Name(), nil) }()
	}
	wg.Wait()
	applied := 0
	for i, r := range results {
		if r.code != 0 {
			t.Errorf("runner %d exited %d: %s", i, r.code, r.stderr)
		}
		if strings.Contains(r.stdout, fmt.Sprintf("no step applied -> version %d", latest(t))) {
			applied++
		}
	}
	if applied != 1 {
		t.Errorf("%d of %d runners applied the step, want 1", applied, n)
	}
	// status shows one owner per step: the runner that applied them all,
	// each once.
	r := runBin(t, db.Name(), nil, "status", "--json")
	var st struct {
		Steps []struct {
			Version int
			State   string
			Up      *mongomigrate.History
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st.Steps) != latest(t) {
		t.Fatalf("status = %+v, %v: %s", st, err, r.stdout)
	}
	owners := map[string]bool{}
	for _, s := range st.Steps {
		if s.State != "applied" || s.Up == nil || s.Up.Attempts != 1 || s.Up.Owner == "" {
			t.Errorf("step %d: %s, %+v; want applied once by one owner", s.Version, s.State, s.Up)
			continue
		}
		owners[s.Up.Owner] = true
	}
	if len(owners) != 1 {
		t.Errorf("steps applied by %d owners, want the one runner that migrated", len(owners))
	}
}

func TestKilledHolderBlocksAtMostOneLease(t *testing.T) {
	db := env.Database(t)
	emptyLegacy(t, db)
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "HOLDLOCK_URI="+env.URI, "HOLDLOCK_DB="+db.Name())
	stdout, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "held" {
		child.Process.Kill()
		t.Fatalf("child did not take the lock: %q", line)
	}
	// kill -9: no release, no last heartbeat.
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	start := time.Now()
	r := runBin(t, db.Name(), nil)
	waited := time.Since(start)
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("no step applied -> version %d", latest(t))) {
		t.Fatalf("runner after a killed holder = %+v", r)
	}
	if waited > 3*time.Second+5*time.Second {
		t.Errorf("waited %s behind a killed holder with a 3s lease", waited)
	}
	if !strings.Contains(r.stderr, "another runner holds the migration lock; waiting") {
		t.Errorf("runner did not say it was waiting: %s", r.stderr)
	}
}

func TestOneLineErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("mongodb:\n  connect_timeout: forever\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unknown := filepath.Join(t.TempDir(), "unknown.yaml")
	if err := os.WriteFile(unknown, []byte("mongodb:\n  urii: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		env      []string
		code     int
		contains string
		absent   string
	}{
		{"bad value", []string{"--config", bad}, nil, 2, "mongodb.connect_timeout", ""},
		{"unknown key", []string{"--config", unknown}, nil, 2, "mongodb.urii", ""},
		{"missing file", []string{"--config", "/nonexistent/c.yaml"}, nil, 2, "cannot read", ""},
		{"unreachable", []string{"--uri", "mongodb://admin:s3cret@127.0.0.1:1/"}, []string{"RUNNER_MONGODB_CONNECT_TIMEOUT=1s"}, 3, "cannot reach MongoDB at mongodb://admin:xxxxx@127.0.0.1:1/", "s3cret"},
		{"unknown env", nil, []string{"RUNNER_MONGO_URI=x"}, 2, "RUNNER_MONGO_URI", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runBin(t, "cli_errors", tt.env, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d: %s", r.code, tt.code, r.stderr)
			}
			msg := strings.TrimSpace(r.stderr)
			if strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "runner: ") || !strings.Contains(msg, tt.contains) {
				t.Errorf("stderr is not one line containing %q: %q", tt.contains, msg)
			}
			if tt.absent != "" && strings.Contains(r.stdout+r.stderr, tt.absent) {
				t.Errorf("output leaks %q: %s", tt.absent, msg)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name   string
		counts count.Counts
		want   summaryRow
	}{
		{"index step", count.Counts{"commands": 1}, summaryRow{"-", "-", "-", "-", "-", "-", "-"}},
		{"phase 1", count.Counts{"accounts_read": 100, "grouped_accounts": 9, "tenants_inserted": 3, "tenants_replaced": 1,
			"invalid_skipped": 2, "skipped: no auth_types": 1, "skipped: dangling app_org_id": 1},
			summaryRow{"100", "4", "9", "1", "2 (dangling app_org_id: 1, no auth_types: 1)", "-", "-"}},
		{"phase 1, groups left as they are", count.Counts{"accounts_read": 100, "grouped_accounts": 12, "merged_accounts": 5, "tenants_inserted": 2},
			summaryRow{"100", "2", "5", "-", "-", "-", "-"}},
		{"phase 1 with a group over 16 MB left out, before merged_accounts", count.Counts{"accounts_read": 100, "grouped_accounts": 8, "tenants_inserted": 2,
			"invalid_skipped": 3, count.Skipped(phase1.ReasonTooLarge): 3},
			summaryRow{"100", "2", "5", "-", "3 (merged tenant account over the 16 MB document limit: 3)", "-", "-"}},
		{"phase 2", count.Counts{"accounts_read": 100, "inserted": 80, "refreshed": 5, "unchanged": 4, "left_to_phase1": 9, "invalid_skipped": 2},
			summaryRow{"100", "85", "-", "5", "2", "-", "-"}},
		{"phase 2, $merge without exact counts", count.Counts{"accounts_read": 100, "inserted": 80, "refreshed_or_unchanged": 9, "left_to_phase1": 9, "invalid_skipped": 2},
			summaryRow{"100", "≥80", "-", "≤9", "2", "-", "-"}},
		{"phase 2, $merge without exact counts, nothing else", count.Counts{"accounts_read": 89, "inserted": 80, "refreshed_or_unchanged": 0, "left_to_phase1": 9},
			summaryRow{"89", "80", "-", "0", "-", "-", "-"},
		},
		{"phase 2 down, keeping the service's", count.Counts{"tenants_deleted": 70, "tenants_kept_newer": 2, "tenants_kept_no_source": 1},
			summaryRow{"-", "-", "-", "-", "-", "70", "3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summarize(tt.counts); got != tt.want {
				t.Errorf("summarize = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// failingWriter refuses every write, as a closed pipe does.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

// The command writes only to the writers it is given: its logs to stderr,
// its output to stdout; output it cannot write fails the command, in one
// line on stderr.
func TestWritesOnlyToItsWriters(t *testing.T) {
	db := env.Database(t)
	emptyLegacy(t, db)
	args := []string{"--uri", env.URI, "--database", db.Name(), "--log-format", "json"}
	var out, errb bytes.Buffer
	if code := run(append(args, "--json"), &out, &errb); code != exitOK {
		t.Fatalf("runner --json = %d: %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), `"msg":"step finished"`) || !strings.HasPrefix(strings.TrimSpace(out.String()), "{") {
		t.Errorf("logs on the given stderr: %q; JSON on the given stdout: %q", errb.String(), out.String())
	}
	for _, cmd := range [][]string{{"verify", "--json"}, {"status", "--json"}, {"--json"}} {
		errb.Reset()
		code := run(append(slices.Clone(args), cmd...), failingWriter{}, &errb)
		if code != exitFailed || !strings.Contains(lastLine(errb.String()), "runner: print JSON: broken pipe") {
			t.Errorf("runner %v into a broken pipe = %d, %q; want exit %d saying so", cmd, code, lastLine(errb.String()), exitFailed)
		}
	}
}

// A runner that never got the lock says only that: no version it did not
// read, no "nothing to do".
func TestLockWaitSaysOnlyThat(t *testing.T) {
	db := env.Database(t)
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "HOLDLOCK_URI="+env.URI, "HOLDLOCK_DB="+db.Name())
	stdout, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); strings.TrimSpace(line) != "held" {
		t.Fatalf("child did not take the lock: %q", line)
	}
	r := runBin(t, db.Name(), []string{"RUNNER_LOCK_WAIT=2s", "RUNNER_NEW_INSTALL=true"})
	if r.code != 5 || strings.TrimSpace(r.stdout) != "" || !strings.Contains(lastLine(r.stderr), "lock wait") {
		t.Errorf("runner behind a live holder = exit %d, stdout %q, last line %q; want exit 5, nothing on stdout, the lock wait", r.code, r.stdout, lastLine(r.stderr))
	}
}

// Interrupted (SIGINT) in phase 1 or phase 2, the runner says it was, and
// in which step it stopped half done: the step status then shows. The next
// run resumes it.
func TestInterruptSaysWhereItStopped(t *testing.T) {
	opts := gen.Options{Accounts: 2500, Seed: 21}
	if env.Real() {
		opts.Accounts = 20000 // a real engine ends phase 2 within the delay
	}
	for _, at := range []struct {
		name  string
		event []string
		delay time.Duration
	}{
		{"phase 1", []string{"phase 1: pass started", "1 identities"}, 30 * time.Millisecond},
		{"phase 2", []string{`"msg":"step started"`, `"name":"phase2"`}, 300 * time.Millisecond},
	} {
		t.Run(at.name, func(t *testing.T) {
			db := env.Database(t)
			env.Load(t, db, opts)
			var out bytes.Buffer
			p := killPoint{at.event, at.delay, nil, nil, &out}
			cmd, done := actAt(t, db.Name(), env.URI, p, func(cmd *exec.Cmd) { _ = cmd.Process.Signal(os.Interrupt) })
			if cmd == nil {
				t.Fatalf("%s never started", at.name)
			}
			if err := <-done; cmd.ProcessState.ExitCode() != 1 {
				t.Fatalf("interrupted runner: %v (exit %d); stdout %s", err, cmd.ProcessState.ExitCode(), out.String())
			}
			st := runBin(t, db.Name(), fastLease, "status", "--json")
			var status struct {
				Dirty bool `json:"dirty"`
				Steps []struct {
					Version int    `json:"version"`
					State   string `json:"state"`
				} `json:"steps"`
			}
			if err := json.Unmarshal([]byte(st.stdout), &status); err != nil || !status.Dirty {
				t.Fatalf("status after the interrupt: %v %s", err, st.stdout)
			}
			running := -1
			for _, s := range status.Steps {
				if s.State != "applied" && s.State != "pending" {
					running = s.Version
				}
			}
			if want := fmt.Sprintf("stopped in step %d, left half done", running); running < 0 || !strings.Contains(out.String(), want) {
				t.Errorf("the interrupted run's output does not say %q:\n%s", want, out.String())
			}
			if strings.Contains(out.String(), "no step to apply") {
				t.Errorf("the interrupted run says there was no step to apply:\n%s", out.String())
			}
			if r := runBin(t, db.Name(), fastLease); r.code != 0 || !strings.Contains(r.stdout, "resumed a step") {
				t.Errorf("run after the interrupt = %+v", r)
			}
		})
	}
}

// A database without the legacy collection is refused with one line naming
// what it has (a typo in --database), unless the configuration says it is a
// new install; an empty legacy collection migrates and says so.
func TestNoLegacyCollection(t *testing.T) {
	ctx := context.Background()
	db := env.Database(t)
	if err := db.CreateCollection(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	r := runBin(t, db.Name(), nil)
	want := fmt.Sprintf(`database %q has no collection "accounts" (it has only orders)`, db.Name())
	if msg := strings.TrimSpace(r.stderr); r.code != 2 || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, want) || r.stdout != "" {
		t.Errorf("runner on a database without accounts = exit %d, stdout %q, stderr %q; want exit 2 and one line containing %q", r.code, r.stdout, msg, want)
	}
	for _, args := range [][]string{{"verify"}, {"--dry-run"}, {"sync"}} {
		if r := runBin(t, db.Name(), nil, args...); r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("runner %v = exit %d, %q; want exit 2", args, r.code, lastLine(r.stderr))
		}
	}
	if n, _ := db.Collection(names.TenantsAccounts).CountDocuments(ctx, bson.D{}); n != 0 {
		t.Errorf("a refused run wrote %d tenant accounts", n)
	}
	r = runBin(t, db.Name(), []string{"RUNNER_NEW_INSTALL=true"})
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("no step applied -> version %d", latest(t))) {
		t.Errorf("a new install = %+v", r)
	}
}

// An empty legacy collection migrates, and the summary says it was empty.
func TestEmptyLegacyCollection(t *testing.T) {
	db := env.Database(t)
	if err := db.CreateCollection(context.Background(), names.Accounts); err != nil {
		t.Fatal(err)
	}
	r := runBin(t, db.Name(), nil)
	if r.code != 0 || !strings.Contains(r.stdout, "verify: OK: the legacy collection is empty; there was nothing to migrate") {
		t.Errorf("runner on an empty legacy collection = %+v", r)
	}
}

// After a failed step, status keeps its table narrow: the error goes on a
// line of its own under it.
func TestStatusStaysNarrowAfterAFailure(t *testing.T) {
	ctx := context.Background()
	db := env.Database(t)
	if _, err := db.Collection(names.Accounts).InsertOne(ctx, bson.D{{Key: "_id", Value: "a1"}, {Key: "app_org_id", Value: "no-such-app-org"},
		{Key: "auth_types", Value: bson.A{bson.D{{Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: "x@example.com"}}}}}); err != nil {
		t.Fatal(err)
	}
	env.Seeded(t, db)
	if r := runBin(t, db.Name(), nil); r.code != 1 {
		t.Fatalf("runner on an invalid account = %+v; want exit 1", r)
	}
	r := runBin(t, db.Name(), nil, "status")
	var header, errLine string
	for _, line := range strings.Split(r.stdout, "\n") {
		switch {
		case strings.HasPrefix(line, "VERSION"):
			header = line
		case strings.Contains(line, " error: "):
			errLine = line
		}
	}
	if r.code != 0 || header == "" || len(header) > 140 || !strings.HasPrefix(errLine, "step 2 error: ") {
		t.Errorf("status after a failure: header %d characters (want at most 140), error line %q:\n%s", len(header), errLine, r.stdout)
	}
}

// With --skip-invalid, a run that skips an invalid account exits 0 and says
// so, the next run too, and verify exits 0 and lists it; without the flag
// verify holds it as a mismatch (exit 6).
func TestSkipInvalidExitsTheSameEveryRun(t *testing.T) {
	ctx := context.Background()
	db := env.Database(t)
	env.Load(t, db, gen.Options{Accounts: 200, Seed: 3})
	if _, err := db.Collection(names.Accounts).InsertOne(ctx, bson.D{{Key: "_id", Value: "bad-1"}, {Key: "app_org_id", Value: "no-such-app-org"},
		{Key: "auth_types", Value: bson.A{bson.D{{Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: "x@example.com"}}}}}); err != nil {
		t.Fatal(err)
	}
	env.Seeded(t, db)
	for i := 0; i < 2; i++ {
		r := runBin(t, db.Name(), nil, "--skip-invalid")
		if r.code != 0 {
			t.Fatalf("run %d with --skip-invalid = %+v; want exit 0", i+1, r)
		}
		if i == 0 && !strings.Contains(r.stdout, "skipped as configured (skip_invalid): 1 legacy accounts") {
			t.Errorf("the first run does not say what it skipped:\n%s", r.stdout)
		}
	}
	if r := runBin(t, db.Name(), nil, "verify", "--skip-invalid"); r.code != 0 || !strings.Contains(r.stdout, "bad-1") {
		t.Errorf("verify --skip-invalid = %+v; want exit 0 listing bad-1", r)
	}
	if r := runBin(t, db.Name(), nil, "verify"); r.code != 6 {
		t.Errorf("verify without --skip-invalid = exit %d; want 6 (%s)", r.code, lastLine(r.stderr))
	}
}
