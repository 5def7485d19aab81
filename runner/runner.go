// Package runner migrates legacy per-app accounts into per-organisation
// tenant accounts, inside MongoDB, through versioned steps.
//
// A service calls Boot at start; several replicas may do so at once: one
// applies the pending steps under a lease lock while the others wait, then
// find nothing to do. The runner command (runner/cmd/runner) offers the same
// operations by hand.
package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/migrations"
	"github.com/tenantmigrate/runner/runner/capability"
	"github.com/tenantmigrate/runner/runner/catchup"
	"github.com/tenantmigrate/runner/runner/config"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/progress"
	"github.com/tenantmigrate/runner/runner/retry"
	"github.com/tenantmigrate/runner/runner/sharding"
	"github.com/tenantmigrate/runner/runner/step"
	"github.com/tenantmigrate/runner/runner/verify"
)

// Runner runs the migration steps against one database.
type Runner struct {
	cfg    config.Config
	log    logrus.FieldLogger
	client *mongo.Client
	db     *mongo.Database
	// progress shows long work: a bar on a terminal, log lines otherwise.
	progress progress.Reporter
	monitor  *event.CommandMonitor
	// m applies the steps; steps and goSteps are what WithSteps gave it.
	m       *migrator
	steps   fs.FS
	goSteps []step.Step
}

// Option customises a Runner.
type Option func(*Runner)

// WithLogger makes the runner log through l (a service's own logger).
func WithLogger(l logrus.FieldLogger) Option { return func(r *Runner) { r.log = l } }

// WithProgress makes the runner show long work through p.
func WithProgress(p progress.Reporter) Option { return func(r *Runner) { r.progress = p } }

// WithSteps replaces the embedded migrations/ steps and the Go steps
// they name; for services with steps of their own, and for tests.
func WithSteps(files fs.FS, goSteps []step.Step) Option {
	return func(r *Runner) { r.steps, r.goSteps = files, goSteps }
}

// WithCommandMonitor makes the runner's client report every command it
// sends to m: a service's own APM monitor, or a test's fault.
func WithCommandMonitor(m *event.CommandMonitor) Option { return func(r *Runner) { r.monitor = m } }

// New connects to MongoDB and returns a runner. The caller closes it.
func New(ctx context.Context, cfg config.Config, opts ...Option) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg}
	for _, o := range opts {
		o(r)
	}
	if r.log == nil {
		r.log = NewLogger(cfg.Log, os.Stderr)
	}
	if r.steps == nil {
		r.steps = migrations.FS()
	}
	if r.goSteps == nil {
		steps, err := builtinSteps(cfg)
		if err != nil {
			return nil, err
		}
		r.goSteps = steps
	}
	cat, err := readCatalogue(r.steps, newStepData(cfg), r.goSteps)
	if err != nil {
		return nil, err
	}
	client, err := connect(ctx, cfg.MongoDB, r.monitor)
	if err != nil {
		return nil, err
	}
	r.client = client
	r.db = client.Database(cfg.MongoDB.Database)
	caps, err := capability.Detect(ctx, r.db)
	if err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	if r.progress == nil {
		r.progress = progress.NewLog(r.log, 10*time.Second)
	}
	policy := retryPolicy(cfg.Retry, r.log)
	if !cfg.NewInstall {
		if err := legacyPresent(ctx, r.db, cfg.Collections.Accounts, cfg.Collections.MigrationsPrefix+"_state", policy); err != nil {
			_ = client.Disconnect(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	store := mongomigrate.NewStore(r.db, cfg.Collections.MigrationsPrefix, &policy)
	if err := checkShardKey(ctx, r.db, cfg, policy); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	host, _ := os.Hostname()
	r.m = &migrator{
		cfg: cfg, log: r.log, db: r.db, steps: r.steps, cat: cat, store: store,
		env: step.Env{
			DB: r.db, Names: cfg.Collections.Names, Store: store, Retry: policy, Log: r.log, Progress: r.progress,
			Batch: cfg.BatchSize, ScratchPrefix: cfg.Collections.MigrationsPrefix, Caps: caps, SkipInvalid: cfg.SkipInvalid,
			ShardKey: cfg.Tenants.ShardKey,
		},
		owner: ownerID(host), host: host,
	}
	r.m.afterUp = r.verifyAfterSteps
	r.m.beforeUp = r.countBeforeMigrating
	r.log.WithFields(logrus.Fields{"uri": RedactURI(cfg.MongoDB.URI), "database": cfg.MongoDB.Database, "owner": r.m.owner}).Debug("connected")
	return r, nil
}

// legacyPresent refuses a database without the legacy collection where
// the runner has never run: most likely a wrong mongodb.database.
func legacyPresent(ctx context.Context, db *mongo.Database, accounts, stateCollection string, policy retry.Policy) error {
	var names []string
	if err := policy.Do(ctx, "list the collections", func(ctx context.Context) (err error) {
		names, err = db.ListCollectionNames(ctx, bson.D{})
		return err
	}); err != nil {
		return err
	}
	// A database the runner has state in is the right one, though its
	// legacy collection be gone (retired after cutover).
	if slices.Contains(names, accounts) || slices.Contains(names, stateCollection) {
		return nil
	}
	names = slices.DeleteFunc(names, func(n string) bool { return strings.HasPrefix(n, "system.") })
	slices.Sort(names)
	e := &NoLegacyError{Database: db.Name(), Collection: accounts, Has: names}
	const most = 8
	if len(names) > most {
		e.Has, e.More = names[:most], len(names)-most
	}
	return e
}

// checkShardKey refuses a tenants.shard_key that disagrees with the
// cluster, or with the indexes step 1 made (sharding.Target.Check).
func checkShardKey(ctx context.Context, db *mongo.Database, cfg config.Config, policy retry.Policy) error {
	var t sharding.Target
	if err := policy.Do(ctx, "find out whether the tenant accounts are sharded", func(ctx context.Context) (err error) {
		t, err = sharding.Inspect(ctx, db, cfg.Collections.TenantsAccounts)
		return err
	}); err != nil {
		return err
	}
	// Step 1 made the tenant accounts' unique indexes if its membership
	// index is there (a catalogue of a library user's may have no such
	// step).
	return t.Check(cfg.Tenants.ShardKey, cfg.Collections.TenantsAccounts, t.Names[membershipIndex])
}

// membershipIndex is the unique index step 1 makes on the memberships' ids
// (migrations/1_tenants_accounts_indexes.up.json).
const membershipIndex = "org_apps_memberships_id_unique"

// Close disconnects from MongoDB.
func (r *Runner) Close(ctx context.Context) error {
	return r.client.Disconnect(ctx)
}

// DB is the database the runner works on.
func (r *Runner) DB() *mongo.Database { return r.db }

// Owner identifies this runner in the lock and the history.
func (r *Runner) Owner() string { return r.m.owner }

func ownerID(host string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

// StepResult is what one step did in this call.
type StepResult struct {
	Version   int                    `json:"version"`
	Name      string                 `json:"name"`
	Direction mongomigrate.Direction `json:"direction"`
	Duration  time.Duration          `json:"duration_ns"`
	Counts    count.Counts           `json:"counts,omitempty"`
	// Notes say which way the step went and why (phase 2's path).
	Notes []string `json:"notes,omitempty"`
}

// Result is the outcome of Up, Phase or Down.
type Result struct {
	From    int          `json:"from_version"`
	To      int          `json:"to_version"`
	Steps   []StepResult `json:"steps"`
	Resumed bool         `json:"resumed,omitempty"` // a half-done step was resumed
	// Dirty: the run stopped with step Step half done, up or down
	// (interrupted, or it failed); the next run resumes it (boot.on_dirty).
	Dirty bool `json:"dirty,omitempty"`
	Step  int  `json:"dirty_step,omitempty"`
	// Verify is the reconciliation run after the steps (verify.after_steps).
	Verify *verify.Report `json:"verify,omitempty"`
	// CatchUp is what Boot's catch-up carried (boot.catch_up).
	CatchUp *catchup.Report `json:"catch_up,omitempty"`
	// Err is set by Boot when boot.on_failure is "continue".
	Err error `json:"-"`
}

// Up applies every pending step, as a service does at boot.
func (r *Runner) Up(ctx context.Context) (Result, error) {
	return r.m.up(ctx)
}

// verifyAfterSteps reconciles after a run that applied or re-ran a step,
// when configured (verify.after_steps). The migrator runs it under the
// run's lease, so it reports the database this run left, not one another
// runner has changed since.
func (r *Runner) verifyAfterSteps(ctx context.Context, res *Result) error {
	if len(res.Steps) == 0 || !r.cfg.Verify.AfterSteps {
		return nil
	}
	rep, err := r.Verify(ctx)
	if err != nil {
		return err
	}
	res.Verify = rep
	if !rep.OK() {
		return &MismatchError{Problem: rep.Problem()}
	}
	return nil
}

// Down undoes the last applied step.
func (r *Runner) Down(ctx context.Context) (Result, error) { return r.m.down(ctx) }

// Phase applies the steps up to and including phase n's step; when that
// step was applied before, it runs it again (phase steps are idempotent and
// pick up accounts added or changed since).
func (r *Runner) Phase(ctx context.Context, n int) (Result, error) {
	return r.m.through(ctx, phaseStep(n))
}

// References applies the steps up to and including the references step;
// when it was applied before, it runs it again (after phase 1 merged more
// accounts, or for documents the service changed meanwhile).
func (r *Runner) References(ctx context.Context) (Result, error) {
	return r.m.through(ctx, referencesStep())
}

// retryPolicy is the configured budget against transient errors.
func retryPolicy(c config.Retry, log logrus.FieldLogger) retry.Policy {
	return retry.Policy{Attempts: c.Attempts, MaxElapsed: c.MaxElapsed, Base: c.InitialWait, Max: c.MaxWait, Log: log}
}
