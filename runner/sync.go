package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/runner/catchup"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/lease"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/phase1"
	"github.com/tenantmigrate/runner/runner/references"
	"github.com/tenantmigrate/runner/runner/step"
	"github.com/tenantmigrate/runner/runner/verify"
)

// ErrStepsPending: a catch-up or a cutover was asked while migration
// steps are pending or half done; `runner` applies them first.
var ErrStepsPending = errors.New("migration steps are pending")

// ErrCutOver: the database was cut over (`runner cutover`): the legacy
// collection is no longer carried.
var ErrCutOver = catchup.ErrCutOver

// SyncOptions says how to catch up.
type SyncOptions struct {
	// Full looks for deleted legacy accounts with a pass over every _id
	// even where the count says none was deleted.
	Full bool
}

// Sync carries the legacy accounts changed since the last catch-up into
// the tenant accounts (runner/catchup), under the lease. It needs every
// step applied (ErrStepsPending) and the database not cut over
// (ErrCutOver).
func (r *Runner) Sync(ctx context.Context, opts SyncOptions) (*catchup.Report, error) {
	var rep *catchup.Report
	err := r.m.withLock(ctx, &step.Call{}, func(s *session) error {
		var err error
		rep, err = r.syncHeld(ctx, s, opts)
		return err
	})
	return rep, err
}

// syncHeld is a catch-up by a runner that holds the lock.
func (r *Runner) syncHeld(ctx context.Context, s *session, opts SyncOptions) (*catchup.Report, error) {
	since, err := r.migratedSince(ctx)
	if err != nil {
		return nil, err
	}
	cfg, err := r.catchupConfig(since, opts.Full)
	if err != nil {
		return nil, err
	}
	held, done := s.drv.Held(ctx)
	defer done()
	rep, err := catchup.Run(held, cfg)
	if err == nil {
		err = r.followReferences(held, rep)
	}
	return rep, lease.Named(held, err)
}

// followReferences re-points the configured references when the catch-up
// merged accounts anew (the references step, run again: idempotent).
func (r *Runner) followReferences(ctx context.Context, rep *catchup.Report) error {
	if rep.Phase1 == nil || len(r.cfg.References) == 0 {
		return nil
	}
	if n, _ := rep.Phase1.Counts().Sum(count.LinksWritten); n == 0 {
		return nil
	}
	for _, in := range r.m.cat {
		if rs, ok := in.Step.(references.Step); ok {
			if _, err := rs.Up(ctx, r.m.env, &step.Call{}); err != nil {
				return fmt.Errorf("catch-up: references: %w", err)
			}
		}
	}
	return nil
}

// migratedSince is when the migration started: the earliest start of the
// applied phase steps' ups. Every step must be applied and none half done.
func (r *Runner) migratedSince(ctx context.Context) (time.Time, error) {
	st, err := r.m.store.State(ctx)
	if err != nil {
		return time.Time{}, err
	}
	last := int(r.m.cat[len(r.m.cat)-1].Version)
	if st.Dirty || st.Version != last {
		return time.Time{}, fmt.Errorf("%w (at version %d of %d%s): run `runner` first", ErrStepsPending, st.Version, last, map[bool]string{true: ", half done", false: ""}[st.Dirty])
	}
	hist, err := r.m.store.History(ctx)
	if err != nil {
		return time.Time{}, err
	}
	var since time.Time
	for _, in := range r.m.cat {
		if in.Phase() == 0 {
			continue
		}
		h, ok := hist[mongomigrate.HistoryID(int(in.Version), mongomigrate.Up)]
		if ok && (since.IsZero() || h.StartedAt.Before(since)) {
			since = h.StartedAt
		}
	}
	return since, nil
}

// catchupConfig is the catch-up of this runner's configuration and steps.
func (r *Runner) catchupConfig(since time.Time, full bool) (catchup.Config, error) {
	cfg := catchup.Config{Env: r.m.env, Options: r.cfg.CatchUp, Since: since, Full: full}
	for _, in := range r.m.cat {
		p, ok := in.Step.(catchup.Phase)
		switch {
		case !ok:
		case in.Phase() == 1:
			cfg.Phase1 = p
			if rs, ok := in.Step.(interface{ Rules() phase1.Rules }); ok {
				cfg.Rules = rs.Rules()
			}
		case in.Phase() == 2:
			cfg.Phase2 = p
		}
	}
	if cfg.Phase1 == nil || cfg.Phase2 == nil {
		return cfg, errNoPhases
	}
	return cfg, nil
}

// errNoPhases: the steps of this runner (WithSteps) have no phases to
// catch up with.
var errNoPhases = errors.New("catch-up: this runner's steps have no phase 1 and phase 2 to run")

// bootCatchUp is the catch-up of a boot: skipped once cut over, and by a
// runner whose steps have no phases.
func (r *Runner) bootCatchUp(ctx context.Context) (*catchup.Report, error) {
	rep, err := r.Sync(ctx, SyncOptions{})
	switch {
	case errors.Is(err, ErrCutOver):
		r.log.Debug("catch-up: cut over, nothing to carry")
		return nil, nil
	case errors.Is(err, errNoPhases):
		return nil, nil
	}
	if rep != nil && err == nil {
		r.log.WithFields(logrus.Fields{"changed": rep.Changed, "deleted": rep.Deleted, "took": rep.Took}).Info("boot catch-up done")
	}
	return rep, err
}

// CutoverResult is what a cutover did.
type CutoverResult struct {
	// CatchUp is the last catch-up, with the pass over every _id.
	CatchUp *catchup.Report `json:"catch_up"`
	Verify  *verify.Report  `json:"verify"`
	// At is when the legacy collection was declared frozen.
	At time.Time `json:"cut_over_at"`
}

// Cutover declares the legacy collection frozen, once the last old
// replica is gone: a last catch-up (deletions looked for over every _id),
// a full verify that must pass, and from then on no catch-up. Under the
// lease, so no catch-up runs beside it.
func (r *Runner) Cutover(ctx context.Context) (CutoverResult, error) {
	var res CutoverResult
	err := r.m.withLock(ctx, &step.Call{}, func(s *session) error {
		var err error
		if res.CatchUp, err = r.syncHeld(ctx, s, SyncOptions{Full: true}); err != nil {
			return err
		}
		if res.Verify, err = r.Verify(ctx); err != nil {
			return err
		}
		if !res.Verify.OK() {
			return &MismatchError{Problem: res.Verify.Problem()}
		}
		if !res.Verify.Done() {
			return fmt.Errorf("%w: verify says the migration is not finished", ErrStepsPending)
		}
		held, done := s.drv.Held(ctx)
		defer done()
		st, err := catchup.CutOver(held, r.m.store, time.Now())
		res.At = st.CutOver
		return err
	})
	return res, err
}

// MinFollowInterval is the shortest pause of Follow between two
// catch-ups: longer than a waiting runner sleeps between two looks at the
// lock (lease.MaxPoll), so that a replica booting meanwhile gets the lock
// instead of waiting behind the follower until lock.wait.
const MinFollowInterval = lease.MaxPoll + 500*time.Millisecond

// FollowOptions says how to follow.
type FollowOptions struct {
	// Interval is the pause between two catch-ups (0: 5 s), at least
	// MinFollowInterval.
	Interval time.Duration
	// Each, if set, gets every catch-up's report and the lag after it.
	Each func(rep *catchup.Report, lag time.Duration)
}

// Follow catches up every Interval until ctx ends (SIGTERM: the catch-up
// in hand finishes its batch's writes, is cut, and the next run resumes
// idempotently), for a long rolling deploy or a migration run ahead of
// the deploy. It returns nil when ctx ended it, and stops on the first
// error but a lost lock wait (another runner, a boot, held the lock: the
// next round tries again) and ErrCutOver (cut over meanwhile: done).
func (r *Runner) Follow(ctx context.Context, opts FollowOptions) error {
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	opts.Interval = max(opts.Interval, MinFollowInterval)
	for {
		rep, err := r.Sync(ctx, SyncOptions{})
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrCutOver):
			r.log.Info("follow: cut over; nothing more to carry")
			return nil
		case errors.Is(err, ErrLockWait):
			r.log.WithError(err).Warn("follow: another runner held the lock; trying again")
		case err != nil:
			return err
		default:
			lag := time.Since(rep.Watermark)
			if opts.Each != nil {
				opts.Each(rep, lag)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(opts.Interval):
		}
	}
}

// countBeforeMigrating gives the first catch-up its count: before the
// phases first migrate (no phase step applied, no catch-up state), the
// legacy accounts are counted, so that the first catch-up tells by the
// count, as every later one, whether an account was deleted meanwhile
// (an insert or a deletion during the migration makes the counts differ,
// and the first catch-up then passes over every _id).
func (r *Runner) countBeforeMigrating(ctx context.Context, from int) error {
	first := -1
	for _, in := range r.m.cat {
		if in.Phase() > 0 {
			first = int(in.Version)
			break
		}
	}
	if first < 0 || from >= first {
		return nil
	}
	n, err := r.db.Collection(r.cfg.Collections.Accounts).CountDocuments(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("count legacy accounts: %w", err)
	}
	return catchup.Begin(ctx, r.m.store, n)
}
