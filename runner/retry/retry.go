// Package retry runs an idempotent operation again when it fails for a
// reason that passes (a connection reset, a primary stepping down, a
// write-concern timeout), within a budget of attempts and time, with
// capped exponential backoff and jitter. Every write of the runner is
// keyed by deterministic ids or conditional, so repeating one is safe;
// errors that will not get better (authentication, a bad command, a
// document too large, a duplicate key) fail at once.
//
// Transient is the one judgement of what passes, from the driver's own
// predicates and the server's codes and labels, never from error strings.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/x/mongo/driver"
)

// Policy is a retry budget. The zero value tries once.
type Policy struct {
	// Attempts is how many times an operation is tried in all (1: no
	// retry).
	Attempts int
	// MaxElapsed bounds the time from an operation's first failure to its
	// last retry, waits and attempts included (so a long operation that
	// fails late still gets its retries); 0: no bound but Attempts.
	MaxElapsed time.Duration
	// Base is the first wait; each next one doubles, up to Max, and is
	// drawn at random between half of it and all of it (jitter, so the
	// replicas that booted together do not retry together).
	Base, Max time.Duration
	// Log gets one warning per retry (what, attempt, wait, the error's
	// kind; no personal data).
	Log logrus.FieldLogger
	// Counter, if set, counts the retries, for the step's report.
	Counter *Counter
	// Also, if set, names more errors that pass for this operation only
	// (see DuplicateOfOwnWrite).
	Also func(error) bool
	// sleep waits d or until ctx ends (tests replace it).
	sleep func(ctx context.Context, d time.Duration) error
}

// Default is the budget the runner uses unless configured: 8 attempts
// within 2 minutes, waits from 200 ms to 15 s.
func Default() Policy {
	return Policy{Attempts: 8, MaxElapsed: 2 * time.Minute, Base: 200 * time.Millisecond, Max: 15 * time.Second}
}

// Counter counts retries across goroutines.
type Counter struct{ n atomic.Int64 }

// Add counts one retry.
func (c *Counter) Add() { c.n.Add(1) }

// Load is the number counted.
func (c *Counter) Load() int64 { return c.n.Load() }

// ExhaustedError is an operation that still failed when its budget was
// spent; it wraps the last error. Elapsed is from the first failure.
type ExhaustedError struct {
	What     string
	Attempts int
	Elapsed  time.Duration
	Err      error
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("%s: still failing after %d attempts in %s: %v", e.What, e.Attempts, e.Elapsed.Round(time.Millisecond), e.Err)
}

func (e *ExhaustedError) Unwrap() error { return e.Err }

// Do runs fn until it succeeds, fails with an error that is not
// Transient, ctx ends, or the budget is spent (then an *ExhaustedError
// with the last error). what names the operation in logs and errors.
func (p Policy) Do(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	var failed time.Time // the first failure
	attempts := max(p.Attempts, 1)
	sleep := p.sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	wait := p.Base
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil || !(Transient(err) || p.Also != nil && p.Also(err)) || ctx.Err() != nil {
			return err
		}
		if failed.IsZero() {
			failed = time.Now()
		}
		elapsed := time.Since(failed)
		if attempt >= attempts || p.MaxElapsed > 0 && elapsed >= p.MaxElapsed {
			return &ExhaustedError{What: what, Attempts: attempt, Elapsed: elapsed, Err: err}
		}
		d := jitter(min(wait, p.Max))
		if p.MaxElapsed > 0 {
			d = min(d, p.MaxElapsed-elapsed)
		}
		if p.Log != nil {
			p.Log.WithFields(logrus.Fields{"what": what, "attempt": attempt, "wait": d.Round(time.Millisecond).String(), "kind": Kind(err)}).
				Warn("transient error; retrying")
		}
		if p.Counter != nil {
			p.Counter.Add()
		}
		if err := sleep(ctx, d); err != nil {
			return err
		}
		wait = min(wait*2, max(p.Max, p.Base))
	}
}

func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// transientCode: a server error code that passes (the retryable-writes
// and SDAM specifications' lists, with write-concern timeouts).
func transientCode(code int32) bool {
	switch code {
	case 6, // HostUnreachable
		7,     // HostNotFound
		43,    // CursorNotFound: the server dropped our cursor; reopening resumes
		64,    // WriteConcernFailed (wtimeout)
		89,    // NetworkTimeout
		91,    // ShutdownInProgress
		134,   // ReadConcernMajorityNotAvailableYet
		189,   // PrimarySteppedDown
		262,   // ExceededTimeLimit
		9001,  // SocketException
		10058, // LegacyNotPrimary
		10107, // NotWritablePrimary
		11600, // InterruptedAtShutdown
		11602, // InterruptedDueToReplStateChange
		13435, // NotPrimaryNoSecondaryOk
		13436: // NotPrimaryOrSecondary
		return true
	}
	return false
}

// Transient reports whether err may pass if the operation is tried again:
// a network error or timeout of the driver, its cleared connection pool, a
// server error labelled
// retryable, or one of the codes of a node that is stepping down, shutting
// down, unreachable or slow to acknowledge a write. A cancelled or expired
// context of the caller is never transient, nor is a duplicate key.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if mongo.IsDuplicateKeyError(err) {
		return false
	}
	if mongo.IsNetworkError(err) || mongo.IsTimeout(err) {
		return true
	}
	// The driver's pool, cleared after a connection failed, refuses the
	// operations waiting on it; a read's cursor reports that as it is.
	var pool driver.RetryablePoolError
	if errors.As(err, &pool) && pool.Retryable() {
		return true
	}
	var le interface{ HasErrorLabel(string) bool }
	if errors.As(err, &le) && (le.HasErrorLabel("RetryableWriteError") || le.HasErrorLabel("NetworkError") || le.HasErrorLabel("ResumableChangeStreamError")) {
		return true
	}
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return transientCode(ce.Code)
	}
	var we mongo.WriteException
	if errors.As(err, &we) {
		return writeErrorsTransient(we.WriteConcernError, we.WriteErrors)
	}
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) {
		var wes mongo.WriteErrors
		for _, e := range bwe.WriteErrors {
			wes = append(wes, e.WriteError)
		}
		return writeErrorsTransient(bwe.WriteConcernError, wes)
	}
	return false
}

// writeErrorsTransient: a write-concern error of a transient code, and no
// write error that is not.
func writeErrorsTransient(wce *mongo.WriteConcernError, wes mongo.WriteErrors) bool {
	if wce == nil && len(wes) == 0 {
		return false
	}
	if wce != nil && !transientCode(int32(wce.Code)) {
		return false
	}
	for _, e := range wes {
		if !transientCode(int32(e.Code)) {
			return false
		}
	}
	return true
}

// DuplicateOfOwnWrite reports a duplicate key, in MongoDB's form or in
// DocumentDB's (an InternalError quoting PostgreSQL's "duplicate key value
// violates unique constraint"). A server-side write of deterministic ids
// meets one when an earlier attempt of its own, cut off from the client,
// still runs on the server: trying again after a wait finds those
// documents written. For such operations only (Policy.Also), and within
// the budget, so a real conflict still fails with its error.
func DuplicateOfOwnWrite(err error) bool {
	if mongo.IsDuplicateKeyError(err) {
		return true
	}
	var ce mongo.CommandError
	return errors.As(err, &ce) && strings.Contains(ce.Message, "duplicate key value violates unique constraint")
}

// Kind names the class of a transient error for logs, without its
// message (which may quote data).
func Kind(err error) string {
	switch {
	case mongo.IsTimeout(err):
		return "timeout"
	case mongo.IsNetworkError(err):
		return "network"
	}
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return fmt.Sprintf("server code %d (%s)", ce.Code, ce.Name)
	}
	var we mongo.WriteException
	if errors.As(err, &we) && we.WriteConcernError != nil {
		return fmt.Sprintf("write concern code %d", we.WriteConcernError.Code)
	}
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) && bwe.WriteConcernError != nil {
		return fmt.Sprintf("write concern code %d", bwe.WriteConcernError.Code)
	}
	return "server"
}
