// Package lease is a lock held as a lease in one MongoDB document: it has an
// owner, an expiry and a heartbeat, so a killed holder blocks others for at
// most one lease, and a holder that loses its lease learns it and stops.
//
// It needs no transaction and no server-side clock: an acquire is one upsert
// whose filter matches only a free, expired or own lock; while the lock is
// held by someone else the upsert's insert collides on _id. Holders' clocks
// must agree to well within a lease.
package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
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
	ctx     context.Context
	cancel  context.CancelCauseFunc
	stop    chan struct{}
	stopped sync.WaitGroup
}

type doc struct {
	ID          string    `bson:"_id"`
	Owner       string    `bson:"owner"`
	Host        string    `bson:"host"`
	AcquiredAt  time.Time `bson:"acquired_at"`
	HeartbeatAt time.Time `bson:"heartbeat_at"`
	ExpiresAt   time.Time `bson:"expires_at"`
}

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
	start := opts.Now()
	delay := 100 * time.Millisecond
	logged := false
	for {
		held, err := tryAcquire(ctx, opts)
		if err != nil {
			return nil, err
		}
		if held == nil {
			break
		}
		waited := opts.Now().Sub(start)
		if waited >= opts.Wait {
			return nil, &HeldError{Owner: held.Owner, Host: held.Host, Expires: held.ExpiresAt, Waited: waited}
		}
		if !logged {
			opts.Log.WithFields(logrus.Fields{"holder": held.Owner, "holder_host": held.Host, "expires_at": held.ExpiresAt.UTC()}).
				Info("another runner holds the migration lock; waiting")
			logged = true
		}
		sleep := min(delay, opts.Wait-waited)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(sleep):
		}
		delay = min(delay*2, 2*time.Second)
	}

	l := &Lease{opts: opts, stop: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancelCause(context.Background())
	l.stopped.Add(1)
	go l.heartbeat()
	return l, nil
}

// tryAcquire returns nil, nil when the lock is now ours, or the holder.
func tryAcquire(ctx context.Context, o Options) (*doc, error) {
	now := o.Now()
	filter := bson.D{
		{Key: "_id", Value: o.Name},
		{Key: "$or", Value: bson.A{
			bson.D{{Key: "expires_at", Value: bson.D{{Key: "$lte", Value: now}}}},
			bson.D{{Key: "owner", Value: o.Owner}},
		}},
	}
	update := bson.D{{Key: "$set", Value: bson.D{
		{Key: "owner", Value: o.Owner},
		{Key: "host", Value: o.Host},
		{Key: "acquired_at", Value: now},
		{Key: "heartbeat_at", Value: now},
		{Key: "expires_at", Value: now.Add(o.TTL)},
	}}}
	_, err := o.Coll.UpdateOne(ctx, filter, update, options.Update().SetUpsert(true))
	if err == nil {
		return nil, nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return nil, fmt.Errorf("acquire lock: %w", err)
	}
	var held doc
	err = o.Coll.FindOne(ctx, bson.D{{Key: "_id", Value: o.Name}}).Decode(&held)
	if errors.Is(err, mongo.ErrNoDocuments) {
		// Released between our two calls: report it held for a moment, the
		// next try takes it.
		return &doc{Owner: "(just released)", ExpiresAt: now}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lock holder: %w", err)
	}
	return &held, nil
}

// Context is cancelled when the lease is lost or released.
func (l *Lease) Context() context.Context { return l.ctx }

// Owner is this holder's owner id.
func (l *Lease) Owner() string { return l.opts.Owner }

func (l *Lease) heartbeat() {
	defer l.stopped.Done()
	o := l.opts
	expires := o.Now().Add(o.TTL)
	t := time.NewTicker(o.Renew)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		now := o.Now()
		ctx, cancel := context.WithTimeout(context.Background(), o.Renew)
		res, err := o.Coll.UpdateOne(ctx,
			bson.D{{Key: "_id", Value: o.Name}, {Key: "owner", Value: o.Owner}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "heartbeat_at", Value: now}, {Key: "expires_at", Value: now.Add(o.TTL)}}}})
		cancel()
		switch {
		case err == nil && res.MatchedCount == 1:
			expires = now.Add(o.TTL)
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
	_, err := l.opts.Coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: l.opts.Name}, {Key: "owner", Value: l.opts.Owner}})
	if err != nil {
		return fmt.Errorf("release lock: %w", err)
	}
	return nil
}
