package runner

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	"github.com/golang-migrate/migrate/v4/source"
	"github.com/golang-migrate/migrate/v4/source/iofs"

	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/step"
)

// session is one golang-migrate instance over a fresh source and driver,
// bound to one call's context.
type session struct {
	m   *migrate.Migrate
	drv *heldDriver
	src source.Driver
	// done ends the goroutine that stops golang-migrate when the call's
	// context ends: a context never cancelled must not leak it.
	done chan struct{}
}

// heldDriver is the driver as one session uses it: the runner takes the
// lease once around several golang-migrate calls (check the dirty state,
// force, migrate), each of which locks and unlocks again; those nest in
// the runner's hold instead of failing (mongomigrate.Driver, as
// golang-migrate's contract says, refuses a second Lock), so no other
// runner slips in between.
type heldDriver struct {
	*mongomigrate.Driver
	mu    sync.Mutex
	holds int
}

func (d *heldDriver) Lock() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.holds == 0 {
		if err := d.Driver.Lock(); err != nil {
			return err
		}
	}
	d.holds++
	return nil
}

func (d *heldDriver) Unlock() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.holds == 0 {
		return database.ErrNotLocked
	}
	if d.holds--; d.holds > 0 {
		return nil
	}
	return d.Driver.Unlock()
}

func (r *Runner) open(ctx context.Context, call *step.Call) (*session, error) {
	src, err := iofs.New(r.steps, ".")
	if err != nil {
		return nil, fmt.Errorf("read steps: %w", err)
	}
	policy := r.retryPolicy()
	inner, err := mongomigrate.WithInstance(ctx, mongomigrate.Config{
		DB:           r.db,
		Store:        r.store,
		Steps:        driverSteps(r.goSteps, r.env, call),
		TemplateData: r.cfg.Collections,
		LeaseTTL:     r.cfg.Lock.Lease,
		LeaseRenew:   r.cfg.Lock.Heartbeat,
		LockWait:     r.cfg.Lock.Wait,
		Owner:        r.owner,
		Host:         r.host,
		Log:          r.log,
		Retry:        &policy,
	})
	if err != nil {
		return nil, err
	}
	drv := &heldDriver{Driver: inner}
	m, err := migrate.NewWithInstance("iofs", src, "mongomigrate", drv)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	// The driver waits for the lease itself, within lock.wait.
	m.LockTimeout = r.cfg.Lock.Wait + time.Minute
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		select {
		case m.GracefulStop <- true:
		default:
		}
	}()
	return &session{m: m, drv: drv, src: src, done: done}, nil
}

func (s *session) close() {
	close(s.done)
	_, _ = s.m.Close()
}

// withLock opens a session for call and holds the lease around fn.
func (r *Runner) withLock(ctx context.Context, call *step.Call, fn func(*session) error) error {
	s, err := r.open(ctx, call)
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
