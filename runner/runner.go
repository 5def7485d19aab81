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
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/sirupsen/logrus"
	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/migrations"
	"github.com/tenantmigrate/runner/runner/capability"
	"github.com/tenantmigrate/runner/runner/config"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/progress"
	"github.com/tenantmigrate/runner/runner/retry"
	"github.com/tenantmigrate/runner/runner/step"
	"github.com/tenantmigrate/runner/runner/verify"
)

// Runner runs the migration steps against one database.
type Runner struct {
	cfg    config.Config
	log    logrus.FieldLogger
	client *mongo.Client
	db     *mongo.Database
	steps  fs.FS
	// goSteps are the Go steps the files of steps may name; cat is both,
	// read once.
	goSteps []step.Step
	cat     catalogue
	owner   string
	host    string
	// progress shows long work: a bar on a terminal, log lines otherwise.
	progress progress.Reporter
	monitor  *event.CommandMonitor
	// store is the bookkeeping; env what every step runs with. Both are
	// built once, in New.
	store *mongomigrate.Store
	env   step.Env
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
	host, _ := os.Hostname()
	r := &Runner{cfg: cfg, host: host, owner: ownerID(host)}
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
		steps, err := r.builtinSteps()
		if err != nil {
			return nil, err
		}
		r.goSteps = steps
	}
	cat, err := readCatalogue(r.steps, cfg.Collections, r.goSteps)
	if err != nil {
		return nil, err
	}
	r.cat = cat
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
	policy := r.retryPolicy()
	r.store = mongomigrate.NewStore(r.db, cfg.Collections.MigrationsPrefix, &policy)
	r.env = step.Env{
		DB: r.db, Names: cfg.Collections.Names, Store: r.store, Retry: policy, Log: r.log, Progress: r.progress,
		Batch: cfg.BatchSize, ScratchPrefix: cfg.Collections.MigrationsPrefix, Caps: caps, SkipInvalid: cfg.SkipInvalid,
	}
	r.log.WithFields(logrus.Fields{"uri": RedactURI(cfg.MongoDB.URI), "database": cfg.MongoDB.Database, "owner": r.owner}).Debug("connected")
	return r, nil
}

// Close disconnects from MongoDB.
func (r *Runner) Close(ctx context.Context) error {
	return r.client.Disconnect(ctx)
}

// DB is the database the runner works on.
func (r *Runner) DB() *mongo.Database { return r.db }

// Owner identifies this runner in the lock and the history.
func (r *Runner) Owner() string { return r.owner }

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
	// Verify is the reconciliation run after the steps (verify.after_steps).
	Verify *verify.Report `json:"verify,omitempty"`
	// Err is set by Boot when boot.on_failure is "continue".
	Err error `json:"-"`
}

// Up applies every pending step, as a service does at boot.
func (r *Runner) Up(ctx context.Context) (Result, error) {
	res, err := r.migrateWith(ctx, false, func(s *session) error { return s.m.Up() })
	return r.verifyAfter(ctx, res, err)
}

// verifyAfter reconciles after a run that did something, when configured.
func (r *Runner) verifyAfter(ctx context.Context, res Result, err error) (Result, error) {
	if err != nil || len(res.Steps) == 0 || !r.cfg.Verify.AfterSteps {
		return res, err
	}
	rep, err := r.Verify(ctx)
	if err != nil {
		return res, err
	}
	res.Verify = rep
	if !rep.OK() {
		return res, &MismatchError{Problem: rep.Problem()}
	}
	return res, nil
}

// Down undoes the last applied step.
func (r *Runner) Down(ctx context.Context) (Result, error) {
	return r.migrateWith(ctx, true, func(s *session) error {
		v, _, err := s.drv.Version()
		if err != nil {
			return err
		}
		if v == -1 {
			return ErrNothingToUndo
		}
		return s.m.Steps(-1)
	})
}

// Phase applies the steps up to and including phase n's step; when that
// step was applied before, it runs it again (phase steps are idempotent and
// pick up accounts added or changed since).
func (r *Runner) Phase(ctx context.Context, n int) (Result, error) {
	return r.through(ctx, phaseStep(n))
}

// References applies the steps up to and including the references step;
// when it was applied before, it runs it again (after phase 1 merged more
// accounts, or for documents the service changed meanwhile).
func (r *Runner) References(ctx context.Context) (Result, error) {
	return r.through(ctx, referencesStep())
}

func (r *Runner) through(ctx context.Context, t target) (Result, error) {
	v, err := r.cat.version(t)
	if err != nil {
		return Result{}, err
	}
	res, err := r.migrateWith(ctx, false, func(s *session) error {
		cur, _, err := s.drv.Version()
		if err != nil {
			return err
		}
		if cur < v {
			return s.m.Migrate(uint(v))
		}
		body, _, err := s.src.ReadUp(uint(v))
		if err != nil {
			return err
		}
		defer body.Close()
		return s.drv.Rerun(v, body)
	})
	return r.verifyAfter(ctx, res, err)
}

func (r *Runner) migrateWith(ctx context.Context, down bool, fn func(*session) error) (Result, error) {
	var res Result
	start := time.Now().UTC()
	err := r.withLock(ctx, &step.Call{}, func(s *session) error {
		v, _, err := s.drv.Version()
		if err != nil {
			return err
		}
		res.From = v
		resumed, err := r.resolveDirty(ctx, s, down)
		if err != nil {
			return err
		}
		res.Resumed = resumed
		err = fn(s)
		if errors.Is(err, migrate.ErrNoChange) {
			err = nil
		}
		if v, _, verr := s.drv.Version(); verr == nil {
			res.To = v
		}
		return err
	})
	steps, herr := r.stepsSince(ctx, start)
	res.Steps = steps
	if err == nil {
		err = herr
	}
	return res, err
}

// resolveDirty handles a step left half done by a runner that died or
// failed. It is called under the lease, so that runner is gone. Every step is
// idempotent, so resuming means running the step again from its start.
func (r *Runner) resolveDirty(ctx context.Context, s *session, down bool) (bool, error) {
	st, err := r.store.State(ctx)
	if err != nil || !st.Dirty {
		return false, err
	}
	lastErr := r.store.LastError(ctx, st.Step, st.Direction)
	if r.cfg.Boot.OnDirty != config.DirtyResume {
		return false, &DirtyError{Step: st.Step, Direction: st.Direction, LastError: lastErr}
	}
	step := st.Step
	if step == 0 {
		step = st.Version
	}
	// Going up, a half-done step (up or down) is re-applied from the
	// version below it; going down, it is re-applied from its own version
	// and then undone.
	force := step
	if !down {
		prev, err := s.src.Prev(uint(step))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			force = -1
		case err != nil:
			return false, err
		default:
			force = int(prev)
		}
	}
	r.log.WithFields(logrus.Fields{"step": step, "direction": st.Direction, "last_error": lastErr}).
		Warn("a step was left half done; resuming it (steps are idempotent)")
	if err := s.m.Force(force); err != nil {
		return false, fmt.Errorf("resume step %d: %w", step, err)
	}
	return true, nil
}

// retryPolicy is the configured budget against transient errors.
func (r *Runner) retryPolicy() retry.Policy {
	c := r.cfg.Retry
	return retry.Policy{Attempts: c.Attempts, MaxElapsed: c.MaxElapsed, Base: c.InitialWait, Max: c.MaxWait, Log: r.log}
}
