// Package mongomigrate is a golang-migrate database.Driver for MongoDB that
// fixes what the upstream driver gets wrong for services that migrate at boot:
//
//   - the version is one document written by upsert, never by dropping and
//     re-creating a collection;
//   - every step leaves one history document (state, start, end, duration,
//     host, owner, error, counts, checksum of the step file);
//   - the lock is a lease (package lease): a killed holder blocks others for
//     at most one lease, and a runner that boots while another migrates waits
//     a bounded time instead of failing at once;
//   - a step is either a JSON array of database commands, in the upstream
//     driver's format (canonical Extended JSON sent with RunCommand), or
//     {"go": "name"}: a Go function from the registry, run with a context
//     that is cancelled if the lease is lost.
//
// The Driver keeps golang-migrate's contract (database/testing.Test passes):
// a second Lock of a held lock is an error, not a nesting; a caller that
// holds the lock across several golang-migrate calls nests them itself (the
// runner does). Drop removes what the driver owns, its state, history and
// lock collections, and nothing else: never the legacy accounts (the
// runner only reads them), nor the tenant accounts and links the steps
// wrote (a step's down undoes those), nor the steps' checkpoints and
// records (Store).
package mongomigrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/golang-migrate/migrate/v4/database"
	"github.com/sirupsen/logrus"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/internal/refusal"
	"github.com/tenantmigrate/runner/runner/lease"
	"github.com/tenantmigrate/runner/runner/retry"
)

// Result is what a Go step reports: its counts, and notes for the people
// who read the history (which way it went, and why). Notes carry no
// personal data.
type Result struct {
	Counts count.Counts
	Notes  []string
}

// StepFunc is a step written in Go. It must be idempotent: a step killed at
// any instant is run again from the start by the next runner.
type StepFunc func(ctx context.Context) (Result, error)

// Config configures a Driver.
type Config struct {
	DB *mongo.Database
	// Store is the bookkeeping the driver reads and writes: its state,
	// history and lock.
	Store *Store
	// Steps gives the up or down of the step of a version, as a versioned
	// run applies it; nil (or a nil StepFunc): the step file as it is, a
	// JSON step's commands sent by the driver (a Go step is refused).
	Steps func(version int, direction Direction) StepFunc
	// TemplateData fills {{...}} placeholders of JSON command steps, so a
	// step can name configured collections.
	TemplateData any
	LeaseTTL     time.Duration
	LeaseRenew   time.Duration
	LockWait     time.Duration
	Owner        string
	Host         string
	Log          logrus.FieldLogger
	// Retry, if set, retries a transient error of the driver's own reads
	// and writes (state, history, the lease's release) and of a JSON
	// step's commands (idempotent: a dirty step runs again from its
	// first); Go steps retry their own work.
	Retry *retry.Policy
}

// Driver implements database.Driver.
type Driver struct {
	cfg Config
	ctx context.Context

	mu    sync.Mutex
	lease *lease.Lease
	cur   *running
}

// running is the step between SetVersion(v, true) and SetVersion(v, false).
type running struct {
	version   int
	direction Direction
	started   time.Time
	result    Result
}

var _ database.Driver = (*Driver)(nil)

const stateID = "version"

// LockName is the name of the lease that serialises runners.
const LockName = "migrations"

// WithInstance returns a driver bound to ctx: cancelling ctx cancels the step
// in progress.
func WithInstance(ctx context.Context, cfg Config) (*Driver, error) {
	if cfg.DB == nil {
		return nil, errors.New("mongomigrate: no database")
	}
	if cfg.Store == nil {
		return nil, errors.New("mongomigrate: no store")
	}
	if cfg.Log == nil {
		cfg.Log = logrus.New()
	}
	return &Driver{cfg: cfg, ctx: ctx}, nil
}

// Open is not supported: the runner builds its driver with WithInstance.
func (d *Driver) Open(string) (database.Driver, error) {
	return nil, errors.New("mongomigrate: use WithInstance")
}

// Close releases the lock if this driver still holds it. It does not
// disconnect the client, which belongs to the caller.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lease == nil {
		return nil
	}
	err := d.lease.Release(context.Background())
	d.lease = nil
	return err
}

// Lock takes the lease, waiting up to LockWait for another holder. This
// driver holding it already is database.ErrLocked.
func (d *Driver) Lock() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lease != nil {
		return fmt.Errorf("mongomigrate: %w: this driver holds the lease", database.ErrLocked)
	}
	l, err := lease.Acquire(d.ctx, lease.Options{
		Coll:  d.cfg.Store.lock(),
		Name:  LockName,
		Owner: d.cfg.Owner,
		Host:  d.cfg.Host,
		TTL:   d.cfg.LeaseTTL,
		Renew: d.cfg.LeaseRenew,
		Wait:  d.cfg.LockWait,
		Log:   d.cfg.Log,
		Retry: d.cfg.Retry,
	})
	if err != nil {
		return err
	}
	d.lease = l
	return nil
}

// Unlock releases the lease; database.ErrNotLocked if not held.
func (d *Driver) Unlock() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lease == nil {
		return database.ErrNotLocked
	}
	err := d.lease.Release(context.Background())
	d.lease = nil
	return err
}

// leaseErr is non-nil when this driver's lease was lost: nothing may be
// written after that, since another runner may own the work now.
func (d *Driver) leaseErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lease != nil && d.lease.Context().Err() != nil && errors.Is(context.Cause(d.lease.Context()), lease.ErrLost) {
		return lease.ErrLost
	}
	return nil
}

// fenced is ctx carrying the lease this driver holds, if it holds one: the
// store fences its writes by it.
func (d *Driver) fenced(ctx context.Context) context.Context {
	d.mu.Lock()
	l := d.lease
	d.mu.Unlock()
	if l == nil {
		return ctx
	}
	return lease.NewContext(ctx, l)
}

// State is the stored version document.
type State struct {
	Version   int       `bson:"version"`
	Dirty     bool      `bson:"dirty"`
	Step      int       `bson:"step,omitempty"`      // the step in progress when dirty
	Direction Direction `bson:"direction,omitempty"` // its direction
	UpdatedAt time.Time `bson:"updated_at"`
	Owner     string    `bson:"owner"`
}

// ReadState returns the stored state; version -1 when nothing was applied.
func ReadState(ctx context.Context, coll *mongo.Collection) (State, error) {
	var s State
	err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: stateID}}).Decode(&s)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return State{Version: database.NilVersion}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("read migration state: %w", err)
	}
	return s, nil
}

// Version returns the stored version and dirty flag.
func (d *Driver) Version() (int, bool, error) {
	s, err := d.State(d.ctx)
	return s.Version, s.Dirty, err
}

// State is ReadState within the driver's retry budget.
func (d *Driver) State(ctx context.Context) (State, error) {
	var s State
	err := d.do(ctx, "read migration state", func(ctx context.Context) (err error) {
		s, err = ReadState(ctx, d.cfg.Store.state())
		return err
	})
	return s, err
}

// do runs one of the driver's own reads or writes, or a JSON step's
// command, within its retry budget. Each of its own is keyed by _id and
// sets what it sets whole, and a step's commands are idempotent, so a
// write the server made but whose reply was lost is made again to the
// same effect (but startStep's attempt count). No attempt starts once the
// lease is lost: another runner may own the state by then.
func (d *Driver) do(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	attempt := func(ctx context.Context) error {
		if err := d.leaseErr(); err != nil {
			return err
		}
		return fn(d.fenced(ctx))
	}
	if d.cfg.Retry == nil {
		return attempt(ctx)
	}
	return d.cfg.Retry.Do(ctx, what, attempt)
}

// SetVersion stores the version with one upsert and keeps the history:
// golang-migrate calls it with dirty=true before a step and dirty=false after.
func (d *Driver) SetVersion(version int, dirty bool) error {
	if err := d.leaseErr(); err != nil {
		return err
	}
	ctx := d.ctx
	now := time.Now().UTC()
	set := bson.D{
		{Key: "version", Value: version},
		{Key: "dirty", Value: dirty},
		{Key: "updated_at", Value: now},
		{Key: "owner", Value: d.cfg.Owner},
	}
	if !dirty {
		d.mu.Lock()
		cur := d.cur
		d.mu.Unlock()
		if cur != nil && cur.direction == Down {
			// Undoing a step removes what it wrote, its history included,
			// before the version says it is undone: killed in between, the
			// state is still dirty and the down runs again.
			if err := d.do(ctx, "remove a step's history", func(ctx context.Context) error {
				return d.cfg.Store.undoHistory(ctx, HistoryID(cur.version, Up))
			}); err != nil {
				return fmt.Errorf("remove the history of step %d: %w", cur.version, err)
			}
		}
		update := bson.D{{Key: "$set", Value: set}, {Key: "$unset", Value: bson.D{{Key: "step", Value: ""}, {Key: "direction", Value: ""}}}}
		if err := d.setState(ctx, update); err != nil {
			return fmt.Errorf("set version %d: %w", version, err)
		}
		return d.finishStep(ctx, now)
	}

	prev, err := d.State(ctx)
	if err != nil {
		return err
	}
	r := &running{version: version, direction: Up, started: now}
	if prev.Version != database.NilVersion && version < prev.Version {
		r.version, r.direction = prev.Version, Down
	}
	set = append(set, bson.E{Key: "step", Value: r.version}, bson.E{Key: "direction", Value: r.direction})
	if err := d.setState(ctx, bson.D{{Key: "$set", Value: set}}); err != nil {
		return fmt.Errorf("set version %d: %w", version, err)
	}
	return d.startStep(ctx, r)
}

// setState writes the version document.
func (d *Driver) setState(ctx context.Context, update bson.D) error {
	return d.do(ctx, "set version", func(ctx context.Context) error {
		return d.cfg.Store.write(ctx, d.cfg.Store.state(), stateID, update)
	})
}

// Rerun runs an applied up step again without changing the version: phase
// steps are idempotent and a re-run picks up accounts added or changed
// since. The caller must hold the lock.
func (d *Driver) Rerun(version int, body io.Reader) error {
	if err := d.leaseErr(); err != nil {
		return err
	}
	r := &running{version: version, direction: Up, started: time.Now().UTC()}
	if err := d.startStep(d.ctx, r); err != nil {
		return err
	}
	if err := d.Run(body); err != nil {
		return err
	}
	return d.finishStep(d.ctx, time.Now().UTC())
}

// Run runs one step file.
func (d *Driver) Run(r io.Reader) error {
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	cur, stepCtx, done := d.begin()
	defer done()

	step, perr := ParseStep(body, d.cfg.TemplateData)
	version, direction := 0, Up
	if cur != nil {
		version, direction = cur.version, cur.direction
	}
	if err := d.recordStep(cur, step, body); err != nil {
		return err
	}
	log := d.cfg.Log.WithFields(logrus.Fields{"step": version, "direction": direction, "kind": step.Kind, "name": step.Name})
	log.Info("step started")
	start := time.Now()
	var c Result
	err = perr
	if err == nil {
		c, err = d.runStep(stepCtx, cur, step)
	}
	if err != nil {
		err = &StepError{Version: version, Direction: direction, Name: step.Name, Err: lease.Named(stepCtx, err)}
		log.WithError(err).WithField("duration", time.Since(start).Round(time.Millisecond).String()).Error("step failed")
		d.recordFailure(cur, err, log)
		return err
	}
	log.WithField("duration", time.Since(start).Round(time.Millisecond).String()).WithField("counts", c.Counts).Info("step finished")
	if cur != nil {
		d.mu.Lock()
		cur.result = c
		d.mu.Unlock()
	}
	return nil
}

// begin takes the step in hand (nil outside a versioned run) and gives the
// step a context that the loss of the lease cancels with lease.ErrLost;
// done releases it.
func (d *Driver) begin() (cur *running, stepCtx context.Context, done func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lease == nil {
		return d.cur, d.ctx, func() {}
	}
	c, cancel := context.WithCancelCause(lease.NewContext(d.ctx, d.lease))
	stop := context.AfterFunc(d.lease.Context(), func() { cancel(lease.ErrLost) })
	return d.cur, c, func() { stop(); cancel(nil) }
}

// Held is ctx carrying the lease this driver holds, cancelled with
// lease.ErrLost when the lease is lost: work done under the lock but
// outside a step (the catch-up) is fenced as a step's is. done releases
// it.
func (d *Driver) Held(ctx context.Context) (context.Context, func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lease == nil {
		return ctx, func() {}
	}
	c, cancel := context.WithCancelCause(lease.NewContext(ctx, d.lease))
	stop := context.AfterFunc(d.lease.Context(), func() { cancel(lease.ErrLost) })
	return c, func() { stop(); cancel(nil) }
}

// recordStep writes what the step file is (kind, name, checksum) into the
// step's history.
func (d *Driver) recordStep(cur *running, step Step, body []byte) error {
	if cur == nil {
		return nil
	}
	sum := sha256.Sum256(body)
	err := d.setHistory(d.ctx, cur, bson.D{{Key: "kind", Value: step.Kind}, {Key: "name", Value: step.Name}, {Key: "checksum", Value: hex.EncodeToString(sum[:])}})
	if err != nil {
		return fmt.Errorf("record step %d: %w", cur.version, err)
	}
	return nil
}

// failureRecordTimeout bounds recordFailure's write and its retries.
const failureRecordTimeout = 15 * time.Second

// recordFailure marks the step failed in its history, with its error; a
// write that fails is logged, the step's own error being the one returned.
func (d *Driver) recordFailure(cur *running, err error, log *logrus.Entry) {
	if cur == nil {
		return
	}
	now := time.Now().UTC()
	// Written even when the run was cancelled (a stop signal), but not
	// for long: the process is on its way out.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(d.ctx), failureRecordTimeout)
	defer cancel()
	herr := d.setHistory(ctx, cur, bson.D{
		{Key: "state", Value: StateFailed},
		{Key: "error", Value: truncate(refusal.Flat(err.Error()), 2000)},
		{Key: "ended_at", Value: now},
		{Key: "duration_ms", Value: now.Sub(cur.started).Milliseconds()},
	})
	if herr != nil {
		log.WithError(herr).Warn("could not record the failure in the history")
	}
}

// Drop removes the driver's own collections (state, history, lock), so
// the database reads as never migrated; it leaves every other collection:
// the legacy accounts, and the tenant accounts and links the steps wrote,
// which a step's down removes. A lease this driver holds is released
// first.
func (d *Driver) Drop() error {
	d.mu.Lock()
	l := d.lease
	d.lease = nil
	d.mu.Unlock()
	if l != nil {
		if err := l.Release(context.Background()); err != nil {
			return fmt.Errorf("mongomigrate: drop: %w", err)
		}
	}
	for _, coll := range d.cfg.Store.owned() {
		if err := d.do(d.ctx, "drop "+coll.Name(), coll.Drop); err != nil {
			return fmt.Errorf("mongomigrate: drop %s: %w", coll.Name(), err)
		}
	}
	return nil
}
