// Package lease is a lock held as a lease in one MongoDB document: it has an
// owner, an expiry and a heartbeat, so a killed holder blocks others for at
// most one lease, and a holder that loses its lease learns it and stops.
//
// Each holding is a new document, <name>#<generation>, created by an insert:
// the unique _id lets exactly one of several racing runners take a free or
// expired lock. The lock is never taken by updating a document's owner,
// because some servers (FerretDB) do not re-check an update's filter at
// write time and would let two racers both "win". The holder renews its own
// document and gives the lock up as soon as a newer generation exists. No
// transaction and no server clock is needed; holders' clocks must agree to
// well within a lease.
package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/runner/internal/servererr"
	"github.com/tenantmigrate/runner/runner/retry"
)

// ErrWaitExceeded is returned by Acquire when another owner still held the
// lock after the configured wait.
var ErrWaitExceeded = errors.New("lock wait exceeded")

// ErrLost is the cause of a held lease's context when the lease was taken
// over or could not be renewed before it expired.
var ErrLost = errors.New("lock lease lost")

// Options configure Acquire.
type Options struct {
	Coll  *mongo.Collection
	Name  string        // the lock document's _id
	Owner string        // unique per process
	Host  string        // for status and logs
	TTL   time.Duration // lease length
	Renew time.Duration // heartbeat period, below TTL/2
	Wait  time.Duration // how long to wait for another holder
	Log   logrus.FieldLogger
	Now   func() time.Time // nil: time.Now
	// Grace is how long after a previous holder's expiry its last
	// operations may still be finishing on the server (an operation's
	// maxTimeMS is checked at the server's interrupt points, not to the
	// millisecond); 0 is DefaultGrace.
	Grace time.Duration
	// Retry, if set, retries the release of a transient error: a release
	// that fails leaves the lock held until the lease expires.
	Retry *retry.Policy
}

// HeldError says who holds the lock; it wraps ErrWaitExceeded.
type HeldError struct {
	Owner   string
	Host    string
	Expires time.Time
	Waited  time.Duration
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("lock wait exceeded after %s: held by %s on %s until %s (it renews while it works; raise lock.wait or retry later)",
		e.Waited.Round(time.Second), e.Owner, e.Host, e.Expires.UTC().Format(time.RFC3339))
}

func (e *HeldError) Unwrap() error { return ErrWaitExceeded }

// Lease is a held lock.
type Lease struct {
	opts    Options
	id      string
	gen     int64
	expires atomic.Int64 // unix nanoseconds, as last renewed
	// took is what this holder did about the operations of the previous
	// one, nil if that one released the lock.
	took    *Takeover
	ctx     context.Context
	cancel  context.CancelCauseFunc
	stop    chan struct{}
	stopped sync.WaitGroup
}

// Holder is one generation of the lock document.
type Holder struct {
	ID          string    `bson:"_id"`
	Name        string    `bson:"name"`
	Gen         int64     `bson:"gen"`
	Owner       string    `bson:"owner"`
	Host        string    `bson:"host"`
	AcquiredAt  time.Time `bson:"acquired_at"`
	HeartbeatAt time.Time `bson:"heartbeat_at"`
	ExpiresAt   time.Time `bson:"expires_at"`
	Released    bool      `bson:"released"`
}

// Free reports whether another runner may take the lock at now.
func (h *Holder) Free(now time.Time) bool { return h.Released || !now.Before(h.ExpiresAt) }

// DocID is the _id of generation gen of lock name; zero-padded so that _id
// order is generation order.
func DocID(name string, gen int64) string { return fmt.Sprintf("%s#%012d", name, gen) }

// Current returns the newest generation of lock name, or nil if it was
// never taken.
func Current(ctx context.Context, coll *mongo.Collection, name string) (*Holder, error) {
	var h Holder
	err := coll.FindOne(ctx,
		bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: name + "#"}, {Key: "$lt", Value: name + "$"}}}},
		options.FindOne().SetSort(bson.D{{Key: "_id", Value: -1}})).Decode(&h)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lock: %w", err)
	}
	return &h, nil
}

// MaxPoll is the longest a runner waiting for the lock sleeps between two
// looks: a holder that takes the lock again at once (a follower) leaves it
// free longer than this, so that a waiter gets its turn.
const MaxPoll = time.Second

// Acquire takes the lock, waiting up to opts.Wait while another owner holds
// it. The returned lease renews itself until Release; its Context is
// cancelled (cause ErrLost) if the lease is lost, so work done under it
// stops instead of racing a new holder.
func Acquire(ctx context.Context, opts Options) (*Lease, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = logrus.New()
	}
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	start := opts.Now()
	delay := 100 * time.Millisecond
	logged := false
	var id string
	var gen int64
	var prev *Holder
	var expires time.Time
	for {
		cur, err := Current(ctx, opts.Coll, opts.Name)
		if err != nil {
			return nil, err
		}
		now := opts.Now()
		if cur == nil || cur.Free(now) {
			gen = 1
			if cur != nil {
				gen = cur.Gen + 1
			}
			id = DocID(opts.Name, gen)
			expires = now.Add(opts.TTL)
			_, err := opts.Coll.InsertOne(ctx, Holder{
				ID: id, Name: opts.Name, Gen: gen, Owner: opts.Owner, Host: opts.Host,
				AcquiredAt: now, HeartbeatAt: now, ExpiresAt: expires,
			})
			if err == nil {
				if cur != nil && !cur.Released {
					prev = cur
				}
				break
			}
			if !servererr.IsDuplicateKey(err) {
				return nil, fmt.Errorf("acquire lock: %w", err)
			}
			continue // another runner took this generation first: look again
		}
		waited := now.Sub(start)
		if waited >= opts.Wait {
			return nil, &HeldError{Owner: cur.Owner, Host: cur.Host, Expires: cur.ExpiresAt, Waited: waited}
		}
		if !logged {
			opts.Log.WithFields(logrus.Fields{"holder": cur.Owner, "holder_host": cur.Host, "expires_at": cur.ExpiresAt.UTC()}).
				Info("another runner holds the migration lock; waiting")
			logged = true
		}
		sleep := min(delay, opts.Wait-waited)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(sleep):
		}
		delay = min(delay*2, MaxPoll)
	}
	// Older generations are history now; keep the collection small.
	_, _ = opts.Coll.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: opts.Name + "#"}, {Key: "$lt", Value: id}}}})

	l := &Lease{opts: opts, id: id, gen: gen, stop: make(chan struct{})}
	l.expires.Store(expires.UnixNano())
	l.ctx, l.cancel = context.WithCancelCause(context.Background())
	l.stopped.Add(1)
	go l.heartbeat()
	if prev != nil {
		l.took = endPrevious(ctx, opts, prev)
		if err := l.Err(); err != nil {
			return nil, errors.Join(err, l.Release(context.WithoutCancel(ctx)))
		}
	}
	return l, nil
}

// Took is what this holder did about the operations of a previous holder
// that did not release the lock; nil if it did.
func (l *Lease) Took() *Takeover { return l.took }

// Context is cancelled when the lease is lost or released.
func (l *Lease) Context() context.Context { return l.ctx }

// Owner is this holder's owner id.
func (l *Lease) Owner() string { return l.opts.Owner }

func (l *Lease) heartbeat() {
	defer l.stopped.Done()
	o := l.opts
	expires := l.Expires()
	t := time.NewTicker(o.Renew)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		now := o.Now()
		// A slow server may take longer than a heartbeat period to answer:
		// wait for it as long as the lease lasts, not just one period.
		ctx, cancel := context.WithTimeout(context.Background(), max(o.Renew, expires.Sub(now)))
		res, err := o.Coll.UpdateOne(ctx,
			bson.D{{Key: "_id", Value: l.id}, {Key: "owner", Value: o.Owner}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "heartbeat_at", Value: now}, {Key: "expires_at", Value: now.Add(o.TTL)}}}})
		var cur *Holder
		if err == nil {
			// Renew first, then look for a newer generation: a runner that
			// took over before our renewal is seen now, not a lease later.
			cur, err = Current(ctx, o.Coll, o.Name)
		}
		cancel()
		switch {
		case err == nil && res.MatchedCount == 1 && cur != nil && cur.ID == l.id:
			expires = now.Add(o.TTL)
			l.expires.Store(expires.UnixNano())
		case err == nil:
			o.Log.Error("migration lock was taken over by another runner; stopping work")
			l.cancel(ErrLost)
			return
		case o.Now().After(expires):
			o.Log.WithError(err).Error("could not renew the migration lock before it expired; stopping work")
			l.cancel(ErrLost)
			return
		default:
			o.Log.WithError(err).Warn("renewing the migration lock failed; retrying")
		}
	}
}

// Release stops the heartbeat and frees the lock if it is still ours.
func (l *Lease) Release(ctx context.Context) error {
	close(l.stop)
	l.stopped.Wait()
	lost := errors.Is(context.Cause(l.ctx), ErrLost)
	l.cancel(errors.New("lease released"))
	if lost {
		return ErrLost
	}
	// Marked released, not deleted: generations only grow, so an _id is
	// never reused by a later holder.
	release := func(ctx context.Context) error {
		_, err := l.opts.Coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: l.id}, {Key: "owner", Value: l.opts.Owner}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "released", Value: true}, {Key: "expires_at", Value: l.opts.Now()}}}})
		return err
	}
	var err error
	if l.opts.Retry != nil {
		err = l.opts.Retry.Do(ctx, "release lock", release)
	} else {
		err = release(ctx)
	}
	return retry.Wrap("release lock", err)
}
