package lease

// What a holder's work needs of its lease: the generation that fences its
// writes on the server, the expiry that bounds its operations, and the
// comment that tags them, carried to the work by its context.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tenantmigrate/runner/runner/internal/servererr"
)

type contextKey struct{}

// NewContext is ctx carrying l: the writes and operations made under it are
// fenced and bounded by l (Bound, FromContext).
func NewContext(ctx context.Context, l *Lease) context.Context {
	return context.WithValue(ctx, contextKey{}, l)
}

// FromContext is the lease ctx carries, nil if none (a dry run, a test, a
// read-only command).
func FromContext(ctx context.Context) *Lease {
	l, _ := ctx.Value(contextKey{}).(*Lease)
	return l
}

// Named is err naming ErrLost when the lease's loss is what stopped the
// work: the driver's operations end with a plain context.Canceled, which
// would tell an operator nothing. An error of the work's own (a lost
// connection) is kept as it is.
func Named(ctx context.Context, err error) error {
	if err == nil || errors.Is(err, ErrLost) || !errors.Is(err, context.Canceled) || !errors.Is(context.Cause(ctx), ErrLost) {
		return err
	}
	return fmt.Errorf("%w (%w)", ErrLost, err)
}

// Gen is the lease's generation: a newer holder's is larger. Writes fenced
// by it are refused by the server once a newer generation wrote the same
// document.
func (l *Lease) Gen() int64 { return l.gen }

// Expires is when the lease ends unless renewed, as this holder last
// renewed it: by its own clock, so a holder that was paused (SIGSTOP, a
// stalled VM) sees at once that its lease may be gone, before its
// heartbeat runs again.
func (l *Lease) Expires() time.Time { return time.Unix(0, l.expires.Load()) }

// Err is ErrLost if the lease was lost or has expired by this holder's
// clock; nil while it is held.
func (l *Lease) Err() error {
	if l.ctx.Err() != nil {
		return fmt.Errorf("%w: %v", ErrLost, context.Cause(l.ctx))
	}
	if !l.opts.Now().Before(l.Expires()) {
		return fmt.Errorf("%w: it expired at %s, before it could be renewed", ErrLost, l.Expires().UTC().Format(time.RFC3339))
	}
	return nil
}

// Comment tags every server operation of this holding (the operations'
// comment), so that the next holder can find and end the ones still
// running on the server (endPrevious).
func (l *Lease) Comment() string { return comment(l.id) }

func comment(docID string) string { return commentPrefix + docID }

// commentPrefix starts the comment of every holder's operations.
const commentPrefix = "tenantmigrate lease "

// Bound is ctx for one operation under the lease ctx carries: it ends when
// the lease does (its deadline is the lease's expiry, so the driver sends
// nothing after it, and an operation given MaxTime runs on the server no
// longer), and ErrLost, with no context, if the lease is gone already.
// Without a lease, it is ctx.
func Bound(ctx context.Context) (context.Context, context.CancelFunc, error) {
	l := FromContext(ctx)
	if l == nil {
		return ctx, func() {}, nil
	}
	if err := l.Err(); err != nil {
		return nil, nil, err
	}
	c, cancel := context.WithDeadline(ctx, l.Expires())
	return c, cancel, nil
}

// MaxTime is how long an operation sent now under ctx's lease may run on the
// server: the rest of the lease, less a quarter of it (at most 2 s), so that
// the server's MaxTimeMSExpired comes back before Bound's deadline cuts
// the wait for it; 0 without a lease. An operation that needs longer fails
// with MaxTimeMSExpired and is cut smaller.
func MaxTime(ctx context.Context) time.Duration {
	l := FromContext(ctx)
	if l == nil {
		return 0
	}
	left := l.Expires().Sub(l.opts.Now())
	return max(left-min(left/4, 2*time.Second), time.Millisecond)
}

// Comment is the comment of ctx's lease's operations, "" without a lease.
func Comment(ctx context.Context) string {
	if l := FromContext(ctx); l != nil {
		return l.Comment()
	}
	return ""
}

// ErrCut: an operation ran past the lease's expiry as it was when the
// operation was sent, and was cut there, though the lease has been renewed
// since. It is transient: tried again under the renewed lease; a batch
// that keeps being cut is one too long for this server and can be split.
var ErrCut = errors.New("cut at the end of the lease, renewed since")

// Do runs one operation under ctx's lease (Bound): not at all once the lease
// is gone, and cut when it ends, the cut reported as ErrLost.
func Do(ctx context.Context, fn func(context.Context) error) error {
	bctx, cancel, err := Bound(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	err = fn(bctx)
	// The driver may report the socket's deadline before the context's
	// own timer has ended it: either says the lease's deadline cut it.
	cut := bctx.Err() != nil || errors.Is(err, context.DeadlineExceeded)
	if l := FromContext(ctx); l != nil && err != nil && cut && ctx.Err() == nil {
		if lerr := l.Err(); lerr != nil {
			return fmt.Errorf("%w (%v)", lerr, err)
		}
		// Cut at the expiry it had when it was sent, but renewed since
		// (a slow server): tried again, under the renewed lease.
		return servererr.Transient(fmt.Errorf("%w: %w", ErrCut, err))
	}
	return err
}
