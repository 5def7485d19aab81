package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	// A child started by TestPeakRSSIsTheChilds.
	if os.Getenv("LOADTEST_TEST_CHILD") == "sleep" {
		time.Sleep(300 * time.Millisecond)
		os.Exit(3)
	}
	os.Exit(testenv.Main(m, &env))
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := findModuleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestMeasureSmall runs the whole flow at 2000 accounts: build the runner,
// load the fixture, run the runner as at boot, status and verify.
func TestMeasureSmall(t *testing.T) {
	const accounts = 2000
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root := moduleRoot(t)
	bin, err := buildRunner(ctx, root, t.TempDir(), t.Output())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "config.yaml")); err == nil {
		if _, err := os.Stat(filepath.Join(filepath.Dir(bin), "config.yaml")); err != nil {
			t.Errorf("config.yaml not copied beside the runner: %v", err)
		}
	}
	db := env.Database(t)
	h := newHarness(bin, env.URI, db, t.Output())
	h.loaded = func() { env.Seeded(t, db) } // the harness loads the fixture itself
	h.profiles = t.TempDir()

	f, err := h.measure(ctx, gen.Options{Accounts: accounts, Seed: 1})
	if err != nil {
		t.Errorf("measure: %v", err)
	}
	if f.Accounts != accounts || f.Load == nil || f.Load.Seconds <= 0 {
		t.Fatalf("accounts %d, load %+v; want %d accounts loaded", f.Accounts, f.Load, accounts)
	}
	if f.Baseline == nil || f.Baseline.Seconds <= 0 || f.Baseline.Method == "" {
		t.Fatalf("baseline = %+v; want the plain copy measured", f.Baseline)
	}
	if names, _ := h.db.ListCollectionNames(ctx, bson.D{}); slices.Contains(names, baselineColl) {
		t.Errorf("the baseline copy was left behind")
	}
	if f.TenantsExpected <= 0 || f.TenantsExpected > accounts {
		t.Errorf("tenants expected = %d, want 1..%d", f.TenantsExpected, accounts)
	}
	if r := f.Runner; r == nil || r.ExitCode != 0 || r.Seconds <= 0 || r.PeakRSSKiB <= 0 || r.CPUSeconds <= 0 {
		t.Fatalf("runner = %+v; want exit code 0, a time, a CPU time and a peak RSS", r)
	}
	if fi, err := os.Stat(filepath.Join(h.profiles, fmt.Sprintf("runner-%d.pprof", accounts))); err != nil || fi.Size() == 0 {
		t.Errorf("the boot run's CPU profile: %v", err)
	}
	if f.Status == nil {
		t.Fatal("no status")
	}
	applied := map[string]bool{}
	for _, s := range f.Status.Steps {
		applied[s.Identifier] = s.State == runner.StepApplied
		if s.Version == 1 && s.State != runner.StepApplied {
			t.Errorf("step 1 %s is %s, want applied", s.Identifier, s.State)
		}
	}
	if len(f.Status.Steps) == 0 || f.Status.Steps[0].Version != 1 {
		t.Errorf("status steps = %+v, want step 1 first", f.Status.Steps)
	}
	v := f.Verify
	if v == nil {
		t.Fatal("no verify figures")
	}
	if v.PeakRSSKiB <= 0 || v.Seconds <= 0 || v.LegacyAccounts != accounts || v.Lost != 0 {
		t.Errorf("verify = %+v; want a time, a peak RSS, %d legacy accounts and none lost (the runner only reads them)", v, accounts)
	}
	// Until phase 2 exists, verify rightly reports the accounts as not migrated.
	phase2 := false
	for id, ok := range applied {
		phase2 = phase2 || ok && strings.Contains(id, "phase2")
	}
	if phase2 {
		t.Log("phase 2 applied: checking for a complete migration")
	}
	if phase2 && (v.Lost != 0 || !v.OK || v.TenantAccounts != f.TenantsExpected || !f.Passed()) {
		t.Errorf("phase 2 applied but verify = %+v (tenants expected %d)", v, f.TenantsExpected)
	}

	if p1, ok := f.phase1Reported(); !ok || p1 != f.Phase1Expected || p1.UnverifiedIdentities == 0 {
		t.Errorf("phase 1 reported %+v (found: %v); the fixture expects %+v, some unverified", p1, ok, f.Phase1Expected)
	}

	rep := newReport(h, f, err)
	var out bytes.Buffer
	if err := printSummary(&out, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"accounts:            2000\n", "step 1 ", "runner peak RSS:", "runner CPU seconds:", "phase 1 unverified:", "verify peak RSS:", "migrated:", "lost:", "verify:", "all steps seconds:", "target 3x: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := printJSON(&out, rep); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Accounts int
		Runner   struct {
			PeakRSSKiB int64 `json:"peak_rss_kib"`
		}
	}
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || back.Accounts != accounts || back.Runner.PeakRSSKiB <= 0 {
		t.Errorf("JSON = %+v (%v):\n%s", back, err, out.String())
	}
}

func TestCheckDatabase(t *testing.T) {
	ctx := context.Background()
	client := env.Connect(t)
	for _, name := range []string{"core", "admin", "local", "config"} {
		if err := checkDatabase(ctx, client.Database(name), false); err == nil || !strings.Contains(err.Error(), "refusing") {
			t.Errorf("checkDatabase(%s) = %v, want a refusal", name, err)
		}
	}
	if err := checkDatabase(ctx, client.Database("core"), true); err != nil {
		t.Errorf("checkDatabase(core, force) = %v", err)
	}
	if err := checkDatabase(ctx, client.Database("admin"), true); err == nil {
		t.Error("checkDatabase(admin, force) = nil, want a refusal")
	}

	db := env.Database(t)
	for _, c := range []string{"accounts", "tenants_accounts", "migrations_history"} {
		if _, err := db.Collection(c).InsertOne(ctx, bson.D{{Key: "x", Value: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	env.Seeded(t, db)
	if err := checkDatabase(ctx, db, false); err != nil {
		t.Errorf("database with loadtest's collections only: %v", err)
	}
	if _, err := db.Collection("users").InsertOne(ctx, bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := checkDatabase(ctx, db, false); err == nil || !strings.Contains(err.Error(), "(users)") {
		t.Errorf("database with users = %v, want a refusal naming users", err)
	}
	if err := checkDatabase(ctx, db, true); err != nil {
		t.Errorf("database with users, force = %v", err)
	}
}

func TestFindModuleRoot(t *testing.T) {
	root := moduleRoot(t)
	if _, err := os.Stat(filepath.Join(root, "runner", "cmd", "runner")); err != nil {
		t.Errorf("module root %s has no runner/cmd/runner: %v", root, err)
	}
	if _, err := findModuleRoot(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no go.mod") {
		t.Errorf("outside the module: %v, want no go.mod", err)
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "go.mod"), []byte("module example.com/other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := findModuleRoot(filepath.Join(other)); err == nil || !strings.Contains(err.Error(), "example.com/other") {
		t.Errorf("another module: %v, want it named", err)
	}
}

func TestParseFlags(t *testing.T) {
	if f, err := parseFlags([]string{"--shard-key", "org_id"}, nil); err != nil || f.shardKey != model.ShardByOrg {
		t.Errorf("--shard-key org_id = %q, %v", f.shardKey, err)
	}
	f, err := parseFlags(nil, nil)
	if err != nil || f.accounts != 93000 || f.seed != 1 || f.database != "loadtest" || f.uri != "" {
		t.Errorf("defaults = %+v, %v", f, err)
	}
	for _, args := range [][]string{{"--accounts", "0"}, {"--uri", "mongodb://x", "--dir", "d"}, {"extra"}, {"--database", ""}, {"--changes", "-1"}, {"--shard-key", "_id"}} {
		if _, err := parseFlags(args, nil); err == nil {
			t.Errorf("parseFlags(%q) = nil error", args)
		}
	}
}

// The old replica changes 1 % of the accounts (5 at least), none on the
// embedded server (each of its writes scans the collection) and what
// --changes says wherever it is given; the summary says why.
func TestChangesFor(t *testing.T) {
	for _, c := range []struct {
		name       string
		changes    int
		noIndexUse bool
		accounts   int
		want       int
		why        string
	}{
		{"1 %", 0, false, 93000, 930, "1 % of the accounts"},
		{"at least 5", 0, false, 100, 5, "1 % of the accounts"},
		{"embedded: none", 0, true, 93000, 0, "not on the embedded server"},
		{"told", 12, false, 93000, 12, "--changes"},
		{"told, embedded", 12, true, 93000, 12, "--changes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := &harness{changes: c.changes, noIndexUse: c.noIndexUse}
			n, why := h.changesFor(c.accounts)
			if n != c.want || !strings.Contains(why, c.why) {
				t.Errorf("changesFor(%d) = %d, %q; want %d, %q", c.accounts, n, why, c.want, c.why)
			}
			rep := report{Figures: Figures{Accounts: c.accounts, CatchUp: &CatchUpFigures{Changes: n, ChangesWhy: why, IndexedSkipped: c.noIndexUse}}}
			var out bytes.Buffer
			if err := printSummary(&out, rep); err != nil {
				t.Fatal(err)
			}
			notMeasured := strings.Contains(out.String(), "catch-up seconds:    not measured: not on the embedded server")
			if notMeasured != (n == 0) || !strings.Contains(out.String(), why) {
				t.Errorf("summary, %d changes:\n%s", n, out.String())
			}
		})
	}
}

func TestRunnerEnv(t *testing.T) {
	got := runnerEnv([]string{"PATH=/bin", "RUNNER_MONGODB_URI=mongodb://prod", "RUNNER_BATCH_SIZE=500", "RUNNER_LOG_FORMAT=json"}, "mongodb://test", "lt")
	want := []string{"PATH=/bin", "RUNNER_BATCH_SIZE=500", "RUNNER_MONGODB_URI=mongodb://test", "RUNNER_MONGODB_DATABASE=lt", "RUNNER_LOG_FORMAT=text"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("runnerEnv = %q, want %q", got, want)
	}
	h := &harness{env: got}
	if in := h.inheritedEnv(); len(in) != 1 || in[0] != "RUNNER_BATCH_SIZE" {
		t.Errorf("inheritedEnv = %q", in)
	}
}

func TestPrefixWriterAndRedact(t *testing.T) {
	var b bytes.Buffer
	p := &prefixWriter{w: &b, prefix: "  x| "}
	p.Write([]byte("one\ntw"))
	p.Write([]byte("o\nthree"))
	p.Flush()
	if want := "  x| one\n  x| two\n  x| three\n"; b.String() != want {
		t.Errorf("prefixWriter wrote %q, want %q", b.String(), want)
	}
	uri := "mongodb://u:s3cret@h:27017/db"
	if got := redact("cannot reach "+uri+": s3cret", uri); strings.Contains(got, "s3cret") {
		t.Errorf("redact = %q", got)
	}
}

// A small child of a big parent: Linux's rusage alone would report the
// parent's peak.
func TestPeakRSSIsTheChilds(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("peak RSS is measured on Linux only")
	}
	ballast := make([]byte, 256<<20)
	for i := range ballast {
		ballast[i] = 1
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{runner: self, log: io.Discard, env: append(os.Environ(), "LOADTEST_TEST_CHILD=sleep")}
	p, err := h.runRunner(context.Background(), nil)
	runtime.KeepAlive(ballast)
	if err != nil || p.ExitCode != 3 || p.Seconds < 0.3 {
		t.Fatalf("child = %+v, %v; want exit code 3 after 0.3 s", p, err)
	}
	t.Logf("child peak RSS %d KiB", p.PeakRSSKiB)
	if p.PeakRSSKiB <= 0 || p.PeakRSSKiB > 128<<10 {
		t.Errorf("child peak RSS = %d KiB; want above 0 and far below our 256 MiB", p.PeakRSSKiB)
	}
}

func TestParseFlagsSweep(t *testing.T) {
	good := []struct {
		args []string
		want []int
	}{
		{nil, nil},
		{[]string{"--accounts", "1000"}, nil},
		{[]string{"--sweep", "10000,93000,300000"}, []int{10000, 93000, 300000}},
		{[]string{"--sweep=300"}, []int{300}},
		{[]string{"--sweep", "2000,1000"}, []int{2000, 1000}}, // the order given
		{[]string{"--sweep", " 1000, 2000 "}, []int{1000, 2000}},
		{[]string{"--sweep", "1000,2000", "--json", "--seed", "7"}, []int{1000, 2000}},
	}
	for _, c := range good {
		f, err := parseFlags(c.args, nil)
		if err != nil || !slices.Equal(f.sweep, c.want) {
			t.Errorf("parseFlags(%q) = sweep %v, %v; want %v", c.args, f.sweep, err, c.want)
		}
	}
	bad := []struct {
		args []string
		want string // in the error
	}{
		{[]string{"--sweep", ""}, "wants sizes"},
		{[]string{"--sweep", " "}, "wants sizes"},
		{[]string{"--sweep", "1000,abc"}, `"abc" is not a number`},
		{[]string{"--sweep", "1e3"}, `"1e3" is not a number`},
		{[]string{"--sweep", "1000.5"}, "not a number"},
		{[]string{"--sweep", "1000,,2000"}, "an empty size"},
		{[]string{"--sweep", "1000,"}, "an empty size"},
		{[]string{"--sweep", "0,1000"}, "at least 1 account, not 0"},
		{[]string{"--sweep", "1000,-5"}, "at least 1 account, not -5"},
		{[]string{"--sweep", "99999999999999999999999"}, "out of range"},
		{[]string{"--sweep", "1000,2000,1000"}, "1000 is listed twice"},
		{[]string{"--sweep", "1000,01000"}, "1000 is listed twice"},
		{[]string{"--sweep", "1000", "--accounts", "2000"}, "--sweep and --accounts"},
		{[]string{"--accounts", "93000", "--sweep", "1000"}, "--sweep and --accounts"},
		{[]string{"--sweep", "1000", "--database", ""}, "--database"},
		{[]string{"--sweep"}, "needs an argument"},
	}
	for _, c := range bad {
		_, err := parseFlags(c.args, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("parseFlags(%q) = %v; want one line with %q", c.args, err, c.want)
		}
	}
}

// A bad --sweep is bad usage: exit 2, one line, before any server starts.
func TestRunBadSweep(t *testing.T) {
	for _, args := range [][]string{{"--sweep", "10,x"}, {"--sweep", "10,10"}, {"--sweep", "0"}, {"--sweep", "10", "--accounts", "10"}} {
		var out, errs bytes.Buffer
		if code := run(context.Background(), args, &out, &errs); code != exitUsage {
			t.Errorf("run(%q) = %d, want %d", args, code, exitUsage)
		}
		if lines := strings.Split(strings.TrimSuffix(errs.String(), "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "loadtest: --sweep") || out.Len() > 0 {
			t.Errorf("run(%q) wrote %q to stderr and %q to stdout; want one usage line", args, errs.String(), out.String())
		}
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out, io.Discard); code != exitPassed || !strings.Contains(out.String(), "[--accounts N | --sweep N1,N2,...]") || !strings.Contains(out.String(), "-sweep sizes") {
		t.Errorf("--help = %d:\n%s", code, out.String())
	}
}

// fakeReport is one size's report with the figures the sweep table reads.
func fakeReport(accounts int, rssMiB float64, passed bool) report {
	return report{Server: "s", Database: "d", Passed: passed, Figures: Figures{
		Accounts: accounts, Seed: 1, TenantsExpected: accounts,
		Load:     &LoadFigures{Seconds: 1},
		Baseline: &BaselineFigures{Method: "copy", Seconds: 2},
		Status: &StatusFigures{Version: 3, Steps: []StepFigures{
			{Version: 1, Identifier: "indexes", State: "applied", Seconds: 0.5},
			{Version: 2, Identifier: "phase1", State: "applied", Seconds: 1.5},
			{Version: 3, Identifier: "phase2", State: "applied", Seconds: 2},
		}},
		Runner: &RunnerFigures{Process: Process{Seconds: 5, PeakRSSKiB: int64(rssMiB * 1024)}, AccountsPerSecond: float64(accounts) / 5},
		Verify: &VerifyFigures{Process: Process{Seconds: 1, PeakRSSKiB: 20 << 10}, MigratedPercent: 100, OK: passed},
	}}
}

func TestSummarizeSweep(t *testing.T) {
	cases := []struct {
		name      string
		sizes     []int
		reports   []report
		passed    bool
		growth    float64 // 0: unknown
		failed    []int
		over      []int
		notDone   []int
		wantLines []string
	}{
		{
			name: "flat", sizes: []int{2000, 1000},
			reports: []report{fakeReport(2000, 44, true), fakeReport(1000, 40, true)},
			passed:  true, growth: 1.1,
			wantLines: []string{"runner peak RSS: 40.0 MiB at 1000 accounts, 44.0 MiB at 2000: growth 1.10x; below 150 MiB at every size: yes", "result: PASS (2 of 2 sizes passed)"},
		},
		{
			name: "a size failed", sizes: []int{1000, 2000},
			reports: []report{fakeReport(1000, 40, false), fakeReport(2000, 40, true)},
			growth:  1, failed: []int{1000},
			wantLines: []string{"result: FAIL (1 of 2 sizes failed: 1000)"},
		},
		{
			name: "memory over the limit", sizes: []int{1000, 2000},
			reports: []report{fakeReport(1000, 100, true), fakeReport(2000, 150, true)},
			growth:  1.5, over: []int{2000},
			wantLines: []string{"below 150 MiB at every size: no, not at 2000", "result: FAIL (2 of 2 sizes passed; runner peak RSS at or above 150 MiB at 2000)"},
		},
		{
			name: "interrupted", sizes: []int{1000, 2000, 3000},
			reports: []report{fakeReport(1000, 40, true)},
			growth:  1, notDone: []int{2000, 3000},
			wantLines: []string{"runner peak RSS: 40.0 MiB at 1000 accounts (the only size measured): growth 1.00x; below 150 MiB at every size: yes", "result: FAIL (1 of 3 sizes passed; interrupted before 2000,3000)"},
		},
		{
			name: "runner never ran", sizes: []int{1000},
			reports:   []report{{Passed: false, Figures: Figures{Accounts: 1000}}},
			failed:    []int{1000},
			wantLines: []string{"growth unknown; below 150 MiB at every size: unknown at 1000", "result: FAIL (1 of 1 sizes failed: 1000)"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sum := summarizeSweep(c.sizes, c.reports)
			if sum.Passed != c.passed || !slices.Equal(sum.FailedSizes, c.failed) || !slices.Equal(sum.RSSOverLimit, c.over) || !slices.Equal(sum.NotMeasured, c.notDone) {
				t.Errorf("summary = passed %t, failed %v, over %v, not measured %v; want %t, %v, %v, %v",
					sum.Passed, sum.FailedSizes, sum.RSSOverLimit, sum.NotMeasured, c.passed, c.failed, c.over, c.notDone)
			}
			switch g := sum.RunnerRSSGrowth; {
			case c.growth == 0 && g != nil, c.growth != 0 && (g == nil || *g < c.growth-1e-9 || *g > c.growth+1e-9):
				t.Errorf("growth = %v, want %v", g, c.growth)
			}
			if len(sum.Rows) != len(c.reports) {
				t.Fatalf("%d rows for %d reports", len(sum.Rows), len(c.reports))
			}
			var out bytes.Buffer
			if err := printSweep(&out, sweepReport{Server: "s", Database: "d", Seed: 1, Sizes: c.sizes, Reports: c.reports, Summary: sum}); err != nil {
				t.Fatal(err)
			}
			for _, want := range c.wantLines {
				if !strings.Contains(out.String(), want+"\n") {
					t.Errorf("sweep output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}

	row := summarizeSweep([]int{1000}, []report{fakeReport(1000, 40, true)}).Rows[0]
	if *row.Phase1Seconds != 1.5 || *row.Phase2Seconds != 2 || *row.AllStepsSeconds != 4 || *row.StepsPerBaseline != 2 || !*row.WithinTarget ||
		*row.RunnerPeakRSSMiB != 40 || *row.VerifyPeakRSSMiB != 20 || *row.Lost != 0 {
		t.Errorf("row = %+v", row)
	}
}

// TestSweepSmall sweeps two tiny sizes end to end on one database.
func TestSweepSmall(t *testing.T) {
	sizes := []int{300, 600}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := buildRunner(ctx, moduleRoot(t), t.TempDir(), t.Output())
	if err != nil {
		t.Fatal(err)
	}
	db := env.Database(t)
	h := newHarness(bin, env.URI, db, t.Output())
	h.loaded = func() { env.Seeded(t, db) } // the harness loads each size itself

	var blocks bytes.Buffer
	var seen []int
	s := h.sweep(ctx, sizes, 1, env.URI, func(i int, r report) {
		seen = append(seen, r.Accounts)
		if err := printSummary(&blocks, r); err != nil {
			t.Error(err)
		}
	})
	if !slices.Equal(seen, sizes) || len(s.Reports) != len(sizes) {
		t.Fatalf("sizes reported as measured %v, reports %d; want %v", seen, len(s.Reports), sizes)
	}
	for i, r := range s.Reports {
		if r.Accounts != sizes[i] || !r.Passed || r.Verify == nil || r.Verify.LegacyAccounts != sizes[i] || r.Verify.Lost != 0 {
			t.Errorf("size %d: accounts %d, passed %t, errors %q, verify %+v", sizes[i], r.Accounts, r.Passed, r.Errors, r.Verify)
		}
	}
	if !s.Summary.Passed || s.Summary.RunnerRSSGrowth == nil || !s.Summary.RSSBelowLimit || len(s.Summary.Rows) != 2 {
		t.Errorf("summary = %+v", s.Summary)
	}
	if got := strings.Count(blocks.String(), "result:              PASS\n"); got != 2 {
		t.Errorf("%d passing per-size blocks, want 2:\n%s", got, blocks.String())
	}

	var out bytes.Buffer
	if err := printSweep(&out, s); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	t.Logf("sweep table:\n%s", text)
	for _, n := range sizes {
		row := regexp.MustCompile(`(?m)^ *` + strconv.Itoa(n) + `  .* (met|not met) .*PASS\s*$`)
		if !row.MatchString(text) {
			t.Errorf("the sweep table has no passing row for %d:\n%s", n, text)
		}
	}
	for _, want := range []string{"steps/baseline", "runner RSS MiB", "verify RSS MiB", "at 300 accounts", "at 600: growth ", "below 150 MiB at every size: yes", "result: PASS (2 of 2 sizes passed)"} {
		if !strings.Contains(text, want) {
			t.Errorf("the sweep output lacks %q:\n%s", want, text)
		}
	}

	out.Reset()
	if err := printJSON(&out, s); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Sizes   []int
		Reports []struct {
			Accounts int
			Passed   bool
		}
		Summary struct {
			Passed bool
			Rows   []struct{ Accounts int }
		}
	}
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || !slices.Equal(back.Sizes, sizes) || len(back.Reports) != 2 ||
		!back.Reports[0].Passed || !back.Reports[1].Passed || back.Reports[1].Accounts != 600 || !back.Summary.Passed || len(back.Summary.Rows) != 2 {
		t.Errorf("JSON = %+v (%v):\n%s", back, err, out.String())
	}
}

// A size that fails does not stop the sweep; an interruption does. The
// "runner" here is this test binary, exiting 3 at once.
func TestSweepKeepsGoing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := env.Database(t)
	h := &harness{runner: os.Args[0], db: db, log: t.Output(), server: "test", env: append(os.Environ(), "LOADTEST_TEST_CHILD=sleep"),
		loaded: func() { env.Seeded(t, db) }}
	s := h.sweep(ctx, []int{50, 100, 150}, 1, "", func(i int, r report) {
		if i == 1 {
			cancel()
		}
	})
	if len(s.Reports) != 2 || s.Reports[0].Passed || s.Reports[1].Passed || s.Reports[0].Load == nil || s.Reports[1].Accounts != 100 {
		t.Fatalf("reports = %+v; want 50 and 100 measured, both failed", s.Reports)
	}
	if len(s.Reports[0].Errors) == 0 || !strings.Contains(strings.Join(s.Reports[0].Errors, " "), "exited with code 3") {
		t.Errorf("size 50's errors = %q", s.Reports[0].Errors)
	}
	if sum := s.Summary; sum.Passed || !slices.Equal(sum.FailedSizes, []int{50, 100}) || !slices.Equal(sum.NotMeasured, []int{150}) {
		t.Errorf("summary = %+v; want FAIL, 50 and 100 failed, 150 not measured", sum)
	}
}
