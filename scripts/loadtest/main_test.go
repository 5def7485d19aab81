package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

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
	if r := f.Runner; r == nil || r.ExitCode != 0 || r.Seconds <= 0 || r.PeakRSSKiB <= 0 {
		t.Fatalf("runner = %+v; want exit code 0, a time and a peak RSS", r)
	}
	if f.Status == nil {
		t.Fatal("no status")
	}
	applied := map[string]bool{}
	for _, s := range f.Status.Steps {
		applied[s.Identifier] = s.State == "applied"
		if s.Version == 1 && s.State != "applied" {
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
	if v.PeakRSSKiB <= 0 || v.Seconds <= 0 || v.LegacyAccounts != accounts || v.Lost != v.LegacyAccounts-v.Linked-v.OneToOne {
		t.Errorf("verify = %+v; want a time, a peak RSS, %d legacy accounts and lost = legacy - linked - one-to-one", v, accounts)
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

	rep := newReport(h, f, err)
	var out bytes.Buffer
	if err := printSummary(&out, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"accounts:            2000\n", "step 1 ", "runner peak RSS:", "verify peak RSS:", "migrated:", "lost:", "verify:", "all steps seconds:", "target 3x: "} {
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
	f, err := parseFlags(nil, nil)
	if err != nil || f.accounts != 93000 || f.seed != 1 || f.database != "loadtest" || f.uri != "" {
		t.Errorf("defaults = %+v, %v", f, err)
	}
	for _, args := range [][]string{{"--accounts", "0"}, {"--uri", "mongodb://x", "--dir", "d"}, {"extra"}, {"--database", ""}} {
		if _, err := parseFlags(args, nil); err == nil {
			t.Errorf("parseFlags(%q) = nil error", args)
		}
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
