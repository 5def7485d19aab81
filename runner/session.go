package runner

import (
	"sync"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	"github.com/golang-migrate/migrate/v4/source"

	"github.com/tenantmigrate/runner/runner/mongomigrate"
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

func (s *session) close() {
	close(s.done)
	_, _ = s.m.Close()
}
