package runner

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tenantmigrate/runner/pipelines"
	"github.com/tenantmigrate/runner/runner/lease"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/sharding"
)

// Sentinel errors callers can test with errors.Is.
var (
	// ErrUnreachable: the MongoDB server could not be reached.
	ErrUnreachable = errors.New("cannot reach MongoDB")
	// ErrAuth: the server refused the credentials.
	ErrAuth = errors.New("MongoDB authentication failed")
	// ErrDirty: a step was left half done and boot.on_dirty is "fail".
	ErrDirty = errors.New("migration state is dirty")
	// ErrLockWait: another runner held the lock longer than lock.wait.
	ErrLockWait = lease.ErrWaitExceeded
	// ErrLeaseLost: this runner's lease was taken over mid-step.
	ErrLeaseLost = lease.ErrLost
	// ErrInvalidData: a phase found legacy accounts it cannot migrate and
	// skip_invalid is off (the error lists the first and their reasons).
	ErrInvalidData = pipelines.ErrInvalidData
	// ErrNoPhase: this build has no step for the requested phase.
	ErrNoPhase = errors.New("no step for this phase")
	// ErrMismatch: verify found legacy and tenant accounts that do not match.
	ErrMismatch = errors.New("verify found a mismatch")
	// ErrNothingToUndo: down was asked with no step applied.
	ErrNothingToUndo = errors.New("no applied step to undo")
	// ErrUnknownStep: a step file names a Go step this build does not
	// have. New refuses it before any step runs.
	ErrUnknownStep = errors.New("a step file names a Go step this build does not have")
	// ErrNoLegacy: the database has no legacy accounts collection, and the
	// configuration does not say it is a new install (NoLegacyError).
	ErrNoLegacy = errors.New("no legacy accounts collection")
	// ErrShardKey: tenants.shard_key disagrees with the cluster
	// (*sharding.KeyError says how, and what to do).
	ErrShardKey = sharding.ErrShardKey
)

// DirtyError says which step was left half done, and by what.
type DirtyError struct {
	Step      int
	Direction mongomigrate.Direction
	LastError string
}

func (e *DirtyError) Error() string {
	msg := fmt.Sprintf("step %d (%s) was left half done", e.Step, e.Direction)
	if e.LastError != "" {
		msg += ": " + e.LastError
	}
	return msg + "; fix the cause, then run again with boot.on_dirty=resume (every step is idempotent)"
}

func (e *DirtyError) Unwrap() error { return ErrDirty }

// MismatchError is a failed verify; it wraps ErrMismatch.
type MismatchError struct{ Problem string }

func (e *MismatchError) Error() string { return "verify found " + e.Problem }

func (e *MismatchError) Unwrap() error { return ErrMismatch }

// NoLegacyError: the database has no legacy accounts collection; Has are
// the collections it does have (at most a few, then how many more).
type NoLegacyError struct {
	Database, Collection string
	Has                  []string
	More                 int
}

func (e *NoLegacyError) Error() string {
	has := "no collection at all"
	if len(e.Has) > 0 {
		has = "only " + strings.Join(e.Has, ", ")
		if e.More > 0 {
			has += fmt.Sprintf(" and %d more", e.More)
		}
	}
	return fmt.Sprintf("database %q has no collection %q (it has %s): is mongodb.database right? A new install with no legacy accounts sets new_install: true", e.Database, e.Collection, has)
}

func (e *NoLegacyError) Unwrap() error { return ErrNoLegacy }
