package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
	"github.com/tenantmigrate/runner/runner"
	"github.com/tenantmigrate/runner/runner/config"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/sharding"
	"github.com/tenantmigrate/runner/runner/verify"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
)

// The runner's exit codes that loadtest reads (see runner --help).
const (
	runnerExitOK       = 0
	runnerExitMismatch = 6
	// runnerExitNotFinished: verify found the database consistent with
	// steps still pending.
	runnerExitNotFinished = 7
)

// Figures are the measurements of one data set size. A part is nil when
// measure did not get that far.
type Figures struct {
	Accounts int    `json:"accounts"`
	Seed     uint64 `json:"seed"`
	// TenantsExpected is the number of tenant accounts a correct migration
	// of the fixture writes.
	TenantsExpected int `json:"tenants_expected"`
	// Phase1Expected is what phase 1 must report of the fixture.
	Phase1Expected Phase1Figures    `json:"phase1_expected"`
	Load           *LoadFigures     `json:"load,omitempty"`
	Baseline       *BaselineFigures `json:"baseline,omitempty"`
	// IndexedCopy is a plain copy of the tenant accounts the run wrote
	// into a collection with their unique indexes (those phase 2 writes
	// under), measured after the run: what the server alone spends writing
	// them, the floor of phase 2.
	IndexedCopy *BaselineFigures `json:"indexed_copy,omitempty"`
	// BarePipeline is phase 2's insert pipeline over the legacy accounts
	// into a collection without secondary indexes, measured after the run:
	// the pipeline's own cost, apart from the tenant indexes'.
	BarePipeline *BaselineFigures `json:"bare_pipeline,omitempty"`
	Runner       *RunnerFigures   `json:"runner,omitempty"`
	Status       *StatusFigures   `json:"status,omitempty"`
	Verify       *VerifyFigures   `json:"verify,omitempty"`
	// CatchUp is what the catch-up costs after the migration (catchup.go).
	CatchUp *CatchUpFigures `json:"catch_up,omitempty"`
	// Follow is runner follow under a steady stream of edits (follow.go).
	Follow *FollowFigures `json:"follow,omitempty"`
}

// Phase1Figures are phase 1's groups and what it saw of the identities,
// as its step reports them, or as gen.Expect finds them in the fixture's
// documents (the default identity codes, compared exactly).
type Phase1Figures struct {
	Groups          int64 `json:"groups"`
	GroupedAccounts int64 `json:"grouped_accounts"`
	// UnverifiedIdentities are shared identities an account holds only
	// unverified; HeldApart the accounts they did not link.
	UnverifiedIdentities int64 `json:"unverified_identities"`
	HeldApart            int64 `json:"held_apart"`
	// Variants are classes of identifiers that differ only by case or
	// Unicode form; VariantAccounts their accounts.
	Variants        int64 `json:"variants"`
	VariantAccounts int64 `json:"variant_accounts"`
}

func phase1Expected(x gen.Expectations) Phase1Figures {
	return Phase1Figures{Groups: int64(len(x.Groups)), GroupedAccounts: int64(x.GroupedAccounts),
		UnverifiedIdentities: int64(x.UnverifiedIdentities), HeldApart: int64(x.HeldApartAccounts),
		Variants: int64(x.IdentifierVariants), VariantAccounts: int64(x.VariantAccounts)}
}

// phase1Reported is what the phase-1 step's history says, false when the
// status has no applied phase-1 step.
func (f Figures) phase1Reported() (Phase1Figures, bool) {
	if f.Status == nil {
		return Phase1Figures{}, false
	}
	for _, st := range f.Status.Steps {
		if _, ok := st.Counts[count.Groups]; ok && st.State == runner.StepApplied {
			c := st.Counts
			return Phase1Figures{Groups: c[count.Groups], GroupedAccounts: c[count.GroupedAccounts],
				UnverifiedIdentities: c[count.UnverifiedShared], HeldApart: c[count.HeldApart],
				Variants: c[count.IdentityVariants], VariantAccounts: c[count.VariantAccounts]}, true
		}
	}
	return Phase1Figures{}, false
}

// LoadFigures are the fixture load's.
type LoadFigures struct {
	Seconds           float64 `json:"seconds"`
	AccountsPerSecond float64 `json:"accounts_per_second"`
}

// BaselineFigures are the fastest plain copy of the legacy collection the
// same server offers: what the phases are compared with.
type BaselineFigures struct {
	Method  string  `json:"method"`
	Seconds float64 `json:"seconds"`
}

// baselineColl receives the baseline copy; it is dropped right after.
const baselineColl = "loadtest_baseline_copy"

// indexedColl is the indexed copy's target.
const indexedColl = "loadtest_indexed_copy"

// bareColl is the bare pipeline's target.
const bareColl = "loadtest_bare_pipeline"

// Process is what one run of the runner binary cost.
type Process struct {
	ExitCode   int     `json:"exit_code"`
	Seconds    float64 `json:"seconds"`      // wall time
	CPUSeconds float64 `json:"cpu_seconds"`  // the child's own user and system time
	PeakRSSKiB int64   `json:"peak_rss_kib"` // the child's own, not ours; 0: unknown (Linux only)
}

// RunnerFigures are the boot run's: every pending step.
type RunnerFigures struct {
	Process
	AccountsPerSecond float64 `json:"accounts_per_second"`
}

// StatusFigures are what `runner status` says after the boot run.
type StatusFigures struct {
	Version int           `json:"version"`
	Dirty   bool          `json:"dirty"`
	Steps   []StepFigures `json:"steps"`
}

// StepFigures are one step's, from its history.
type StepFigures struct {
	Version    uint             `json:"version"`
	Identifier string           `json:"identifier"`
	State      runner.StepState `json:"state"`
	Seconds    float64          `json:"seconds"`
	Counts     count.Counts     `json:"counts,omitempty"`
	Notes      []string         `json:"notes,omitempty"`
}

// VerifyFigures are `runner verify`'s.
type VerifyFigures struct {
	Process
	LegacyAccounts  int     `json:"legacy_accounts"`
	TenantAccounts  int     `json:"tenant_accounts"`
	Linked          int     `json:"linked_by_phase1"`
	OneToOne        int     `json:"one_to_one"`
	NotMigrated     int     `json:"not_migrated"`
	MigratedPercent float64 `json:"migrated_percent"`
	// Lost are legacy accounts the fixture wrote that are gone.
	Lost    int    `json:"lost"`
	OK      bool   `json:"ok"`
	Problem string `json:"problem,omitempty"`
}

// Passed reports whether the runner succeeded, verify is OK, the tenant
// accounts are as many as the fixture expects, and phase 1 reports the
// fixture's groups and identities.
func (f Figures) Passed() bool {
	p1, ok := f.phase1Reported()
	return f.Runner != nil && f.Runner.ExitCode == runnerExitOK &&
		f.Verify != nil && f.Verify.OK && f.Verify.TenantAccounts == f.TenantsExpected &&
		ok && p1 == f.Phase1Expected && (f.CatchUp == nil || f.CatchUp.Changes == 0 || f.CatchUp.VerifyDone) && (f.Follow == nil || f.Follow.Caught)
}

// harness runs the measurements on one database with one runner binary.
type harness struct {
	runner string // the runner binary; it runs in its directory, with the config.yaml there
	db     *mongo.Database
	env    []string  // the runner's environment
	log    io.Writer // progress and the runner's output
	server string    // where the database lives, for the summary; no password
	// loaded, if set, is called once the fixture is in, and again after
	// each of loadtest's own writes to the legacy collections (an old
	// replica's): between them only the runner works on the database, and
	// tests guard the legacy collections.
	loaded func()
	// references: load the referencing collections and configure them.
	references bool
	// profiles, if set, is where the boot runs write their CPU profiles.
	profiles string
	// followRate edits a second for followFor: runner follow's figures
	// (0: not measured).
	followRate int
	followFor  time.Duration
	// noCopies: no tenant copy nor bare pipeline after the run (at a
	// million accounts the copy grew a DocumentDB backend past 19 GB).
	noCopies bool
	// noIndexUse: the server uses no index (the embedded FerretDB 1).
	noIndexUse bool
	// changes: how many accounts the old replica changes before the
	// catch-up (0: changesFor's default).
	changes int
	// shardKey: the runner's tenants.shard_key (setShardKey); on a mongos,
	// load shards the tenant accounts on it.
	shardKey model.ShardKey
}

func newHarness(bin, uri string, db *mongo.Database, log io.Writer) *harness {
	return &harness{runner: bin, db: db, env: runnerEnv(os.Environ(), uri, db.Name()), log: log, server: runner.RedactURI(uri)}
}

// The variables that point the runner at the test database and make it log
// text; every other variable of ours, RUNNER_* included, passes through.
const (
	envShardKey  = "RUNNER_TENANTS_SHARD_KEY"
	envURI       = "RUNNER_MONGODB_URI"
	envDatabase  = "RUNNER_MONGODB_DATABASE"
	envLogFormat = "RUNNER_LOG_FORMAT"
	// envReferences configures the references step with --references.
	envReferences = "RUNNER_REFERENCES"
)

// runnerEnv is base with the runner pointed at the test database.
func runnerEnv(base []string, uri, database string) []string {
	env := make([]string, 0, len(base)+3)
	for _, kv := range base {
		if name, _, _ := strings.Cut(kv, "="); !ourVar(name) {
			env = append(env, kv)
		}
	}
	return append(env, envURI+"="+uri, envDatabase+"="+database, envLogFormat+"=text")
}

func ourVar(name string) bool {
	return name == envURI || name == envDatabase || name == envLogFormat || name == envReferences || name == envShardKey
}

// setShardKey gives the runner tenants.shard_key (--shard-key), in place
// of any it would inherit.
func (h *harness) setShardKey(key model.ShardKey) {
	h.shardKey = key
	h.env = slices.DeleteFunc(h.env, func(kv string) bool { return strings.HasPrefix(kv, envShardKey+"=") })
	if key.Sharded() {
		h.env = append(h.env, envShardKey+"="+string(key))
	}
}

// inheritedEnv names the RUNNER_* variables the runner gets from our own
// environment: they change what is measured.
func (h *harness) inheritedEnv() []string {
	var names []string
	for _, kv := range h.env {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "RUNNER_") && !ourVar(name) {
			names = append(names, name)
		}
	}
	return names
}

// measure loads opts.Accounts accounts into a fresh database, runs the
// runner as a service does at boot, then `runner status` and `runner
// verify`. It returns the figures gathered, even with an error: a failed
// runner is followed by status and verify all the same.
func (h *harness) measure(ctx context.Context, opts gen.Options) (Figures, error) {
	f := Figures{Accounts: opts.Accounts, Seed: opts.Seed}
	load, x, err := h.load(ctx, opts)
	if err != nil {
		return f, err
	}
	f.Load, f.TenantsExpected, f.Phase1Expected = load, x.TenantsExpected, phase1Expected(x)
	if h.loaded != nil {
		h.loaded()
	}
	if f.Baseline, err = h.baseline(ctx); err != nil {
		return f, err
	}

	var errs []error
	stages := []func() error{
		func() (err error) { f.Runner, err = h.boot(ctx, opts.Accounts); return err },
		func() (err error) { f.Status, err = h.status(ctx); return err },
		func() (err error) { f.Verify, err = h.verify(ctx, opts.Accounts); return err },
		func() (err error) { f.CatchUp, err = h.catchUp(ctx, opts.Accounts); return err },
		func() (err error) {
			if h.followFor > 0 {
				f.Follow, err = h.follow(ctx, h.followRate, h.followFor)
			}
			return err
		},
		func() (err error) {
			if !h.noCopies {
				f.IndexedCopy, err = h.indexedCopy(ctx)
			}
			return err
		},
		func() (err error) {
			if !h.noCopies {
				f.BarePipeline, err = h.barePipeline(ctx)
			}
			return err
		},
	}
	for _, stage := range stages {
		if err := stage(); err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return f, errors.Join(errs...)
}

// baseline copies the legacy accounts the fastest plain way the server
// offers: a bare $out where the server takes it, else (FerretDB 1 refuses
// it) an unbuffered stream with unordered bulk inserts of 1,000.
func (h *harness) baseline(ctx context.Context) (*BaselineFigures, error) {
	src, dst := h.db.Collection(model.DefaultNames().Accounts), h.db.Collection(baselineColl)
	if err := dst.Drop(ctx); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	defer dst.Drop(context.WithoutCancel(ctx))
	fmt.Fprintln(h.log, "baseline copy of the legacy collection...")
	start := time.Now()
	b := &BaselineFigures{Method: "$out copy"}
	cur, err := src.Aggregate(ctx, mongo.Pipeline{{{Key: "$out", Value: baselineColl}}}, options.Aggregate().SetAllowDiskUse(true))
	var refused mongo.ServerError
	switch {
	case err == nil:
		cur.Close(ctx)
	case errors.As(err, &refused):
		b.Method = "unordered bulk insert copy"
		start = time.Now()
		if err := bulkCopy(ctx, src, dst); err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
	default:
		return nil, fmt.Errorf("baseline: %w", err)
	}
	b.Seconds = time.Since(start).Seconds()
	return b, nil
}

// indexedCopy copies the tenant accounts with a bare $merge into a new
// collection that has the tenant collection's unique indexes first (those
// the phases write under: the lookup indexes come after them): the
// server's own cost of writing those documents and maintaining those
// indexes, which no server-side phase 2 can go below. Not measured (nil)
// where the server has no $merge.
func (h *harness) indexedCopy(ctx context.Context) (*BaselineFigures, error) {
	src, dst := h.db.Collection(config.Default().Collections.TenantsAccounts), h.db.Collection(indexedColl)
	if err := dst.Drop(ctx); err != nil {
		return nil, fmt.Errorf("indexed copy: %w", err)
	}
	defer dst.Drop(context.WithoutCancel(ctx))
	specs, err := src.Indexes().ListSpecifications(ctx)
	if err != nil {
		return nil, fmt.Errorf("indexed copy: %w", err)
	}
	var models []mongo.IndexModel
	for _, sp := range specs {
		if sp.Name == "_id_" || sp.Unique == nil || !*sp.Unique {
			continue
		}
		models = append(models, mongo.IndexModel{Keys: sp.KeysDocument, Options: options.Index().SetName(sp.Name).SetUnique(true)})
	}
	if err := h.db.CreateCollection(ctx, indexedColl); err != nil {
		return nil, fmt.Errorf("indexed copy: %w", err)
	}
	if len(models) > 0 {
		if _, err := dst.Indexes().CreateMany(ctx, models); err != nil {
			return nil, fmt.Errorf("indexed copy: %w", err)
		}
	}
	under := fmt.Sprintf("%d unique indexes", len(models))
	if len(models) == 1 {
		under = "the unique index"
	}
	fmt.Fprintf(h.log, "copy of the tenant accounts into a collection with %s...\n", under)
	start := time.Now()
	b := &BaselineFigures{Method: "$merge copy under " + under}
	merge := bson.D{{Key: "$merge", Value: bson.D{{Key: "into", Value: indexedColl}, {Key: "whenMatched", Value: "keepExisting"}}}}
	// No $merge (FerretDB 1): the streaming phase 2 is compared with the
	// baseline only, and the quick start is spared a second copy.
	if ran, err := h.aggregateIfTaken(ctx, src, mongo.Pipeline{merge}); !ran {
		if err != nil {
			return nil, fmt.Errorf("indexed copy: %w", err)
		}
		return nil, nil
	}
	b.Seconds = time.Since(start).Seconds()
	return b, nil
}

// barePipeline runs phase 2's insert pipeline (pipelines.Phase2Inserts:
// stage 1's checks, both $lookups, the transform, a $merge that inserts)
// over the legacy accounts, with the run's links, into an empty collection
// with only its _id index. Next to the tenant copy it tells the pipeline's
// cost from the tenant indexes'. Not measured (nil) where the server
// refuses the pipeline.
func (h *harness) barePipeline(ctx context.Context) (*BaselineFigures, error) {
	c := config.Default().Collections
	dst := h.db.Collection(bareColl)
	if err := dst.Drop(ctx); err != nil {
		return nil, fmt.Errorf("bare pipeline: %w", err)
	}
	defer dst.Drop(context.WithoutCancel(ctx))
	if err := h.db.CreateCollection(ctx, bareColl); err != nil {
		return nil, fmt.Errorf("bare pipeline: %w", err)
	}
	var valid []string
	cur, err := h.db.Collection(c.ApplicationsOrganizations).Find(ctx, bson.D{{Key: model.FieldOrgID, Value: bson.D{{Key: "$type", Value: "string"}, {Key: "$ne", Value: ""}}}})
	if err != nil {
		return nil, fmt.Errorf("bare pipeline: %w", err)
	}
	var aos []model.ApplicationOrganization
	if err := cur.All(ctx, &aos); err != nil {
		return nil, fmt.Errorf("bare pipeline: %w", err)
	}
	for _, ao := range aos {
		valid = append(valid, ao.ID)
	}
	names := c.Names
	names.TenantsAccounts = bareColl
	fmt.Fprintln(h.log, "phase 2's insert pipeline into a collection without secondary indexes...")
	start := time.Now()
	if ran, err := h.aggregateIfTaken(ctx, h.db.Collection(c.Accounts), pipelines.Phase2Inserts(names, model.Unsharded, valid, nil)); !ran {
		if err != nil {
			return nil, fmt.Errorf("bare pipeline: %w", err)
		}
		return nil, nil
	}
	return &BaselineFigures{Method: "phase 2's insert pipeline into a collection without secondary indexes", Seconds: time.Since(start).Seconds()}, nil
}

// aggregateIfTaken runs a pipeline that writes (ending in $merge) to its
// end. ran is false when the server refused it, which it logs and is no
// error (the figure is then not measured), or when err says why not.
func (h *harness) aggregateIfTaken(ctx context.Context, coll *mongo.Collection, p mongo.Pipeline) (ran bool, err error) {
	cur, err := coll.Aggregate(ctx, p, options.Aggregate().SetAllowDiskUse(true))
	var refused mongo.ServerError
	switch {
	case err == nil:
		cur.Close(ctx)
		return true, nil
	case errors.As(err, &refused):
		fmt.Fprintf(h.log, "  not measured: %v\n", err)
		return false, nil
	}
	return false, err
}

func bulkCopy(ctx context.Context, src, dst *mongo.Collection) error {
	cur, err := src.Find(ctx, bson.D{}, options.Find().SetBatchSize(1000))
	if err != nil {
		return err
	}
	defer cur.Close(ctx)
	batch := make([]any, 0, 1000)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := dst.InsertMany(ctx, batch, options.InsertMany().SetOrdered(false))
		batch = batch[:0]
		return err
	}
	for cur.Next(ctx) {
		batch = append(batch, bson.Raw(append([]byte(nil), cur.Current...)))
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := cur.Err(); err != nil {
		return err
	}
	return flush()
}

func (h *harness) load(ctx context.Context, opts gen.Options) (*LoadFigures, gen.Expectations, error) {
	if err := h.db.Drop(ctx); err != nil {
		return nil, gen.Expectations{}, fmt.Errorf("drop database %s: %w", h.db.Name(), err)
	}
	if err := sharding.Shard(ctx, h.db, model.DefaultNames().TenantsAccounts, h.shardKey); err != nil {
		return nil, gen.Expectations{}, err
	}
	fmt.Fprintf(h.log, "loading %d accounts... ", opts.Accounts)
	start := time.Now()
	x, err := gen.Load(ctx, h.db, opts)
	if err != nil {
		fmt.Fprintln(h.log, "failed")
		return nil, x, fmt.Errorf("load the fixture: %w", err)
	}
	secs := time.Since(start).Seconds()
	lf := &LoadFigures{Seconds: secs, AccountsPerSecond: float64(opts.Accounts) / secs}
	fmt.Fprintf(h.log, "%.1f s (%.0f accounts/s)\n", lf.Seconds, lf.AccountsPerSecond)
	if h.references {
		fmt.Fprint(h.log, "loading the referencing collections... ")
		counts, err := gen.LoadReferences(ctx, h.db, opts)
		if err != nil {
			fmt.Fprintln(h.log, "failed")
			return nil, x, fmt.Errorf("load the referencing collections: %w", err)
		}
		fmt.Fprintln(h.log, counts)
		if kv := envReferences + "=" + strings.Join(gen.ReferenceFields(), ","); !slices.Contains(h.env, kv) {
			h.env = append(h.env, kv)
		}
	}
	return lf, x, nil
}

// boot runs the runner with no arguments, as a service at boot.
func (h *harness) boot(ctx context.Context, accounts int) (*RunnerFigures, error) {
	fmt.Fprintln(h.log, "running the runner as at boot...")
	var args []string
	if h.profiles != "" {
		dir, err := filepath.Abs(h.profiles)
		if err == nil {
			err = os.MkdirAll(dir, 0o755)
		}
		if err != nil {
			return nil, fmt.Errorf("cpu profile directory: %w", err)
		}
		args = append(args, "--cpuprofile", filepath.Join(dir, fmt.Sprintf("runner-%d.pprof", accounts)))
	}
	p, err := h.runRunner(ctx, nil, args...)
	if err != nil {
		return nil, err
	}
	rf := &RunnerFigures{Process: p, AccountsPerSecond: float64(accounts) / p.Seconds}
	if p.ExitCode != runnerExitOK {
		return rf, fmt.Errorf("runner exited with code %d (%s)", p.ExitCode, runnerExitMeaning(p.ExitCode))
	}
	return rf, nil
}

func (h *harness) status(ctx context.Context) (*StatusFigures, error) {
	fmt.Fprintln(h.log, "runner status --json...")
	var st runner.Status
	if _, err := h.runJSON(ctx, &st, nil, "status", "--json"); err != nil {
		return nil, err
	}
	sf := &StatusFigures{Version: st.Version, Dirty: st.Dirty, Steps: make([]StepFigures, 0, len(st.Steps))}
	for _, s := range st.Steps {
		step := StepFigures{Version: s.Version, Identifier: s.Identifier, State: s.State}
		if s.Up != nil {
			step.Seconds = float64(s.Up.DurationMS) / 1000
			step.Counts, step.Notes = s.Up.Counts, s.Up.Notes
		}
		sf.Steps = append(sf.Steps, step)
	}
	return sf, nil
}

// verify runs `runner verify`; loaded is how many legacy accounts the
// fixture wrote.
func (h *harness) verify(ctx context.Context, loaded int) (*VerifyFigures, error) {
	fmt.Fprintln(h.log, "runner verify --json...")
	var rep verify.Report
	p, err := h.runJSON(ctx, &rep, []int{runnerExitMismatch, runnerExitNotFinished}, "verify", "--json")
	if err != nil {
		return nil, err
	}
	vf := &VerifyFigures{
		Process:        p,
		LegacyAccounts: rep.LegacyAccounts,
		TenantAccounts: rep.TenantAccounts,
		Linked:         rep.Linked,
		OneToOne:       rep.OneToOne,
		NotMigrated:    rep.NotMigrated.Count,
		// Not migrated is not lost: the legacy account is still there.
		// Lost is a legacy account gone from the collection the runner
		// only reads.
		Lost:    max(loaded-rep.LegacyAccounts, 0),
		OK:      rep.OK(),
		Problem: rep.Problem(),
	}
	if rep.LegacyAccounts > 0 {
		vf.MigratedPercent = 100 * float64(rep.Linked+rep.OneToOne) / float64(rep.LegacyAccounts)
	}
	if vf.OK != (p.ExitCode == runnerExitOK) {
		return vf, fmt.Errorf("runner verify exited with code %d but its report says ok=%t", p.ExitCode, vf.OK)
	}
	return vf, nil
}

// runJSON runs the runner with args and decodes its standard output into v.
// Exit codes other than 0 and alsoOK are errors.
func (h *harness) runJSON(ctx context.Context, v any, alsoOK []int, args ...string) (Process, error) {
	var out bytes.Buffer
	name := "runner " + strings.Join(args, " ")
	p, err := h.runRunner(ctx, &out, args...)
	if err != nil {
		return p, err
	}
	if p.ExitCode != runnerExitOK && !slices.Contains(alsoOK, p.ExitCode) {
		return p, fmt.Errorf("%s exited with code %d (%s)", name, p.ExitCode, runnerExitMeaning(p.ExitCode))
	}
	if err := json.Unmarshal(out.Bytes(), v); err != nil {
		return p, fmt.Errorf("%s: read its output: %w", name, err)
	}
	return p, nil
}

// runRunner runs the runner binary with args in its directory, its
// standard error (and standard output, when stdout is nil) streamed to the
// log, and measures its wall time and peak memory. An exit code is a figure,
// not an error; an error is a runner that could not start, was killed or was
// interrupted. When ctx ends, the runner is interrupted as by Ctrl-C and
// killed if it has not stopped 15 s later.
func (h *harness) runRunner(ctx context.Context, stdout io.Writer, args ...string) (Process, error) {
	name := strings.TrimSpace("runner " + strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, h.runner, args...)
	cmd.Dir = filepath.Dir(h.runner)
	cmd.Env = h.env
	logw := &prefixWriter{w: h.log, prefix: "  runner| "}
	defer logw.Flush()
	cmd.Stdout, cmd.Stderr = stdout, logw
	if stdout == nil {
		cmd.Stdout = logw
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Process{ExitCode: -1}, fmt.Errorf("%s: %w", name, err)
	}
	rss := watchRSS(cmd.Process.Pid)
	err := cmd.Wait()
	p := Process{Seconds: time.Since(start).Seconds(), ExitCode: cmd.ProcessState.ExitCode(),
		CPUSeconds: (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()}
	p.PeakRSSKiB = rss.peakKiB(cmd.ProcessState)
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return p, fmt.Errorf("%s: %w", name, context.Cause(ctx))
	case errors.As(err, &exitErr) && p.ExitCode >= 0:
		return p, nil
	case err != nil:
		return p, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

// runnerExitMeaning names the runner's exit codes (runner --help).
func runnerExitMeaning(code int) string {
	switch code {
	case 1:
		return "a step failed"
	case 2:
		return "bad usage or configuration"
	case 3:
		return "MongoDB unreachable or authentication failed"
	case 4:
		return "a step was left half done"
	case 5:
		return "lock wait exceeded"
	case 6:
		return "verify found a mismatch"
	case 7:
		return "verify: consistent, not finished"
	}
	return "unknown exit code"
}

// prefixWriter writes each complete line to w behind prefix, in one Write.
type prefixWriter struct {
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		if err := p.writeLine(p.buf[:i+1]); err != nil {
			return len(b), err
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// Flush writes a last line that has no newline.
func (p *prefixWriter) Flush() {
	if len(p.buf) > 0 {
		_ = p.writeLine(append(p.buf, '\n'))
		p.buf = nil
	}
}

func (p *prefixWriter) writeLine(line []byte) error {
	_, err := p.w.Write(append([]byte(p.prefix), line...))
	return err
}
