// Package retry runs an idempotent operation again when it fails for a
// reason that passes (a connection reset, a primary stepping down, a
// write-concern timeout), within a budget of attempts and time, with
// capped exponential backoff and jitter. Every write of the runner is
// keyed by deterministic ids or conditional, so repeating one is safe;
// errors that will not get better (authentication, a bad command, a
// document too large, a duplicate key) fail at once.
//
// What passes is judged in one place, runner/internal/servererr, from the
// driver's own predicates and the server's codes and labels.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tenantmigrate/runner/runner/internal/servererr"
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
	// (a duplicate key of a server-side write of one's own, still running).
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

// Wrap names what failed in err, as Do does when the budget is spent: an
// *ExhaustedError of the same what already names it, and is not named
// twice ("count links: count links: still failing ...").
func Wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	var ex *ExhaustedError
	if errors.As(err, &ex) && ex.What == what {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Do runs fn until it succeeds, fails with an error that is not
// transient (servererr.IsTransient), ctx ends, or the budget is spent (then an *ExhaustedError
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
		if err == nil || !(servererr.IsTransient(err) || p.Also != nil && p.Also(err)) || ctx.Err() != nil {
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
			p.Log.WithFields(logrus.Fields{"what": what, "attempt": attempt, "wait": d.Round(time.Millisecond).String(), "kind": servererr.Kind(err)}).
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
