package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/sirupsen/logrus"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/runner/config"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/step"
)

// migrator applies the steps: golang-migrate over the step files and the
// Go steps they name, under the lease, resuming a step a dead or failed
// runner left half done. Runner is its public face.
type migrator struct {
	cfg config.Config
	log logrus.FieldLogger
	db  *mongo.Database
	// steps are the step files; cat is them with the Go steps they name,
	// read once.
	steps fs.FS
	cat   catalogue
	// store is the bookkeeping; env what every step runs with. Both are
	// built once, in New.
	store *mongomigrate.Store
	env   step.Env
	owner string
	host  string
	// afterUp, if set, runs under the lease after a run up that did not
	// fail (the run's own verify); its error is the run's.
	afterUp func(ctx context.Context, res *Result) error
	// beforeUp, if set, runs under the lease before a run up applies
	// anything, with the version it starts from and ctx carrying the
	// lease; its error is the run's.
	beforeUp func(ctx context.Context, from int) error
}

// up applies every pending step.
func (m *migrator) up(ctx context.Context) (Result, error) {
	return m.migrateWith(ctx, false, func(s *session) error { return s.m.Up() })
}

// down undoes the last applied step.
func (m *migrator) down(ctx context.Context) (Result, error) {
	return m.migrateWith(ctx, true, func(s *session) error {
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

func (m *migrator) through(ctx context.Context, t target) (Result, error) {
	v, err := m.cat.version(t)
	if err != nil {
		return Result{}, err
	}
	res, err := m.migrateWith(ctx, false, func(s *session) error {
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
	return res, err
}

// stateReadTimeout bounds the read of where a run left the database.
const stateReadTimeout = 5 * time.Second

func (m *migrator) migrateWith(ctx context.Context, down bool, fn func(*session) error) (Result, error) {
	var res Result
	listed := false // res.Steps read under the lease
	start := time.Now().UTC()
	err := m.withLock(ctx, &step.Call{}, func(s *session) error {
		v, _, err := s.drv.Version()
		if err != nil {
			return err
		}
		res.From, res.To = v, v
		resumed, err := m.resolveDirty(ctx, s, down)
		if err != nil {
			return err
		}
		res.Resumed = resumed
		if !down && m.beforeUp != nil {
			held, done := s.drv.Held(ctx)
			err := m.beforeUp(held, v)
			done()
			if err != nil {
				return err
			}
		}
		err = fn(s)
		if errors.Is(err, migrate.ErrNoChange) {
			err = nil
		}
		// Where this run left the database, read even when ctx was
		// cancelled (Ctrl-C): a run stopped part way says so.
		// The store's own read, not the driver's: that one refuses once
		// the lease is lost, and a read changes nothing.
		readCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateReadTimeout)
		if st, verr := m.store.State(readCtx); verr == nil {
			res.To, res.Dirty = st.Version, st.Dirty
			if st.Dirty {
				res.Step = st.Step
			}
		}
		cancel()
		if err != nil || down || m.afterUp == nil {
			return err
		}
		// Still under the lease: what afterUp reads is what this run left,
		// not what another runner made of it since.
		if res.Steps, err = m.stepsSince(ctx, start); err != nil {
			return err
		}
		listed = true
		return m.afterUp(ctx, &res)
	})
	if !listed {
		steps, herr := m.stepsSince(ctx, start)
		res.Steps = steps
		if err == nil {
			err = herr
		}
	}
	return res, err
}

// resolveDirty handles a step left half done by a runner that died or
// failed. It is called under the lease, so that runner is gone. Every step is
// idempotent, so resuming means running the step again from its start.
func (m *migrator) resolveDirty(ctx context.Context, s *session, down bool) (bool, error) {
	st, err := m.store.State(ctx)
	if err != nil || !st.Dirty {
		return false, err
	}
	lastErr := m.store.LastError(ctx, st.Step, st.Direction)
	if m.cfg.Boot.OnDirty != config.DirtyResume {
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
	m.log.WithFields(logrus.Fields{"step": step, "direction": st.Direction, "last_error": lastErr}).
		Warn("a step was left half done; resuming it (steps are idempotent)")
	if err := s.m.Force(force); err != nil {
		return false, fmt.Errorf("resume step %d: %w", step, err)
	}
	return true, nil
}

func (m *migrator) open(ctx context.Context, call *step.Call) (*session, error) {
	src, err := iofs.New(m.steps, ".")
	if err != nil {
		return nil, fmt.Errorf("read steps: %w", err)
	}
	policy := m.env.Retry
	inner, err := mongomigrate.WithInstance(ctx, mongomigrate.Config{
		DB:           m.db,
		Store:        m.store,
		Steps:        m.stepFuncs(call),
		TemplateData: newStepData(m.cfg),
		LeaseTTL:     m.cfg.Lock.Lease,
		LeaseRenew:   m.cfg.Lock.Heartbeat,
		LockWait:     m.cfg.Lock.Wait,
		Owner:        m.owner,
		Host:         m.host,
		Log:          m.log,
		Retry:        &policy,
	})
	if err != nil {
		return nil, err
	}
	drv := &heldDriver{Driver: inner}
	mig, err := migrate.NewWithInstance("iofs", src, "mongomigrate", drv)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	// The driver waits for the lease itself, within lock.wait.
	mig.LockTimeout = m.cfg.Lock.Wait + time.Minute
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		select {
		case mig.GracefulStop <- true:
		default:
		}
	}()
	return &session{m: mig, drv: drv, src: src, done: done}, nil
}

// withLock opens a session for call and holds the lease around fn.
func (m *migrator) withLock(ctx context.Context, call *step.Call, fn func(*session) error) error {
	s, err := m.open(ctx, call)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.drv.Lock(); err != nil {
		return err
	}
	ferr := fn(s)
	if uerr := s.drv.Unlock(); uerr != nil && ferr == nil {
		ferr = uerr
	}
	return ferr
}

// stepsSince lists the steps this runner finished since start.
func (m *migrator) stepsSince(ctx context.Context, start time.Time) ([]StepResult, error) {
	hist, err := m.store.AppliedBy(context.WithoutCancel(ctx), m.owner, start)
	if err != nil {
		return nil, err
	}
	var out []StepResult
	for _, h := range hist {
		name := h.Name
		if ident := m.cat.identifier(h.Version); ident != "" {
			name = ident
		}
		out = append(out, StepResult{Version: h.Version, Name: name, Direction: h.Direction,
			Duration: time.Duration(h.DurationMS) * time.Millisecond, Counts: h.Counts, Notes: h.Notes})
	}
	return out, nil
}

// stepFuncs gives the driver the up or down of the step of a version, as
// the catalogue has it, run with the steps' environment; call carries what
// the steps before it in the same call learned.
func (m *migrator) stepFuncs(call *step.Call) func(int, mongomigrate.Direction) mongomigrate.StepFunc {
	return func(v int, direction mongomigrate.Direction) mongomigrate.StepFunc {
		in, ok := m.cat.at(v)
		switch {
		case !ok:
			return nil
		case direction == mongomigrate.Down && in.down != nil:
			return func(ctx context.Context) (mongomigrate.Result, error) { return in.down.Down(ctx, m.env) }
		case direction == mongomigrate.Up:
			return func(ctx context.Context) (mongomigrate.Result, error) { return in.Step.Up(ctx, m.env, call) }
		}
		return nil
	}
}
