package mongomigrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/runner/internal/servererr"
	"github.com/tenantmigrate/runner/runner/lease"
	"github.com/tenantmigrate/runner/runner/retry"
)

// Store is the runner's bookkeeping in the database, behind one type:
// golang-migrate's state, history and lock, which the Driver writes, and
// the steps' checkpoints and records, which the steps write through it.
// Nothing outside this package knows the fields of their documents.
//
// The collections are named from one prefix: <prefix>_state, _history and
// _lock (the driver's: Drop removes them); <prefix>_steps, the steps'
// values by key (checkpoints, what a step created), and <prefix>_<step>,
// a step's records (the steps': Drop leaves them, a step's down clears its
// own).
type Store struct {
	db     *mongo.Database
	prefix string
	// retry, if set, retries a transient error of every read and write.
	retry *retry.Policy
}

// NewStore is the bookkeeping of db under prefix; retry (nil: none)
// bounds the retries of its reads and writes.
func NewStore(db *mongo.Database, prefix string, retry *retry.Policy) *Store {
	return &Store{db: db, prefix: prefix, retry: retry}
}

func (s *Store) state() *mongo.Collection   { return s.db.Collection(s.prefix + "_state") }
func (s *Store) history() *mongo.Collection { return s.db.Collection(s.prefix + "_history") }
func (s *Store) lock() *mongo.Collection    { return s.db.Collection(s.prefix + "_lock") }
func (s *Store) steps() *mongo.Collection   { return s.db.Collection(s.prefix + "_steps") }

// owned are the collections golang-migrate's driver owns.
func (s *Store) owned() []*mongo.Collection {
	return []*mongo.Collection{s.state(), s.history(), s.lock()}
}

// WithRetry is the same store retrying within p: a step's run binds it to
// its own policy, so that the store's retries count with the run's.
func (s *Store) WithRetry(p retry.Policy) *Store {
	c := *s
	c.retry = &p
	return &c
}

// Records is the collection in which step keeps its records (what it
// changed, for its down).
func (s *Store) Records(step string) string { return s.prefix + "_" + step }

func (s *Store) do(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	if s.retry == nil {
		return fn(ctx)
	}
	return s.retry.Do(ctx, what, fn)
}

// State returns the stored state; version -1 when nothing was applied.
func (s *Store) State(ctx context.Context) (State, error) {
	var st State
	err := s.do(ctx, "read migration state", func(ctx context.Context) (err error) {
		st, err = ReadState(ctx, s.state())
		return err
	})
	return st, retry.Wrap("read migration state", err)
}

// History is every step's history document, by HistoryID.
func (s *Store) History(ctx context.Context) (map[string]History, error) {
	var out map[string]History
	err := s.readHistory(ctx, bson.D{}, nil, func() { out = map[string]History{} }, func(h History) { out[h.ID] = h })
	return out, err
}

// AppliedBy lists the steps owner applied (or undid) since start, in the
// order they started.
func (s *Store) AppliedBy(ctx context.Context, owner string, start time.Time) ([]History, error) {
	var out []History
	err := s.readHistory(ctx,
		bson.D{{Key: "owner", Value: owner}, {Key: "started_at", Value: bson.D{{Key: "$gte", Value: start.Truncate(time.Millisecond)}}}},
		options.Find().SetSort(bson.D{{Key: "started_at", Value: 1}}),
		func() { out = nil },
		func(h History) {
			if h.State == StateApplied {
				out = append(out, h)
			}
		})
	return out, err
}

// readHistory hands each history document of filter, in opts' order, to
// fn, reading again from the start (after reset) on a transient error.
func (s *Store) readHistory(ctx context.Context, filter bson.D, opts *options.FindOptions, reset func(), fn func(History)) error {
	err := s.do(ctx, "read history", func(ctx context.Context) error {
		reset()
		cur, err := s.history().Find(ctx, append(bson.D{{Key: "undone", Value: bson.D{{Key: "$ne", Value: true}}}}, filter...), opts)
		if err != nil {
			return err
		}
		defer cur.Close(ctx)
		for cur.Next(ctx) {
			var h History
			if err := cur.Decode(&h); err != nil {
				return err
			}
			fn(h)
		}
		return cur.Err()
	})
	return retry.Wrap("read history", err)
}

// LastError says why step's run in direction did not finish: its recorded
// error, or that its runner stopped while running it; "" if neither is
// known.
func (s *Store) LastError(ctx context.Context, step int, direction Direction) string {
	if direction == "" {
		direction = Up
	}
	var h History
	if err := s.history().FindOne(ctx, bson.D{{Key: "_id", Value: HistoryID(step, direction)}}).Decode(&h); err != nil || h.Undone {
		return ""
	}
	if h.Error != "" {
		return h.Error
	}
	if h.State == StateRunning {
		return "its runner (" + h.Owner + ") stopped while running it"
	}
	return ""
}

// Lock is the newest lease of the runners' lock, nil if none was ever
// taken.
func (s *Store) Lock(ctx context.Context) (*lease.Holder, error) {
	var h *lease.Holder
	err := s.do(ctx, "read lock", func(ctx context.Context) (err error) {
		h, err = lease.Current(ctx, s.lock(), LockName)
		return err
	})
	return h, retry.Wrap("read lock", err)
}

// stepDoc is one document of the steps' own: a value under its key, or
// the tombstone of a cleared one.
type stepDoc struct {
	Key     string    `bson:"_id"`
	Value   bson.Raw  `bson:"value,omitempty"`
	At      time.Time `bson:"at"`
	Gen     int64     `bson:"gen,omitempty"`
	Cleared bool      `bson:"cleared,omitempty"`
}

// Load decodes into v the value a step saved under key; false if there is
// none, or it was cleared. Under a lease, Load first claims the document
// for the lease's generation, so that no older holder (one paused past its
// lease) can move the value after it was read: a value is trusted only
// while no newer generation has written it. Builds before this store kept
// the same keys, whole documents, in the state collection: a value found
// only there is read from there, so a database they migrated resumes and
// undoes as they left it.
func (s *Store) Load(ctx context.Context, key string, v any) (bool, error) {
	var raw bson.Raw
	err := s.do(ctx, "read "+key, func(ctx context.Context) error {
		raw = nil
		if err := s.claim(ctx, s.steps(), key); err != nil {
			return err
		}
		var d stepDoc
		err := s.steps().FindOne(ctx, bson.D{{Key: "_id", Value: key}}).Decode(&d)
		if err == nil {
			if !d.Cleared {
				raw = d.Value
			}
			return nil
		}
		if !errors.Is(err, mongo.ErrNoDocuments) {
			return err
		}
		raw, err = s.state().FindOne(ctx, bson.D{{Key: "_id", Value: key}}).Raw()
		if errors.Is(err, mongo.ErrNoDocuments) {
			raw, err = nil, nil
		}
		return err
	})
	if err != nil {
		return false, retry.Wrap("read "+key, err)
	}
	if raw == nil {
		return false, nil
	}
	if err := bson.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("read %s: %w", key, err)
	}
	return true, nil
}

// Save stores v under key, fenced by the lease ctx carries.
func (s *Store) Save(ctx context.Context, key string, v any) error {
	raw, err := bson.Marshal(v)
	if err != nil {
		return fmt.Errorf("save %s: %w", key, err)
	}
	update := bson.D{
		// As a document: a bare bson.Raw would be stored as binary.
		{Key: "$set", Value: bson.D{{Key: "value", Value: bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: raw}}, {Key: "at", Value: time.Now().UTC()}}},
		{Key: "$unset", Value: bson.D{{Key: "cleared", Value: ""}}},
	}
	err = s.do(ctx, "save "+key, func(ctx context.Context) error {
		return s.write(ctx, s.steps(), key, update)
	})
	return retry.Wrap("save "+key, err)
}

// Clear clears the value under key (and an earlier build's). It leaves a
// tombstone, not a gap, fenced by the lease ctx carries: an older holder's
// late Save cannot bring the value back.
func (s *Store) Clear(ctx context.Context, key string) error {
	update := bson.D{
		{Key: "$set", Value: bson.D{{Key: "cleared", Value: true}, {Key: "at", Value: time.Now().UTC()}}},
		{Key: "$unset", Value: bson.D{{Key: "value", Value: ""}}},
	}
	err := s.do(ctx, "clear "+key, func(ctx context.Context) error {
		// An earlier build's first: killed in between, Load finds nothing
		// older than what was cleared.
		if _, err := s.state().DeleteOne(ctx, bson.D{{Key: "_id", Value: key}}); err != nil {
			return err
		}
		return s.write(ctx, s.steps(), key, update)
	})
	return retry.Wrap("clear "+key, err)
}

// FencedError is a write refused by the server because a newer lease
// generation than the writer's wrote the same document: the writer lost
// its lease (it was paused or cut off past it) and another runner owns the
// work. It wraps lease.ErrLost.
type FencedError struct {
	ID  string // the document's _id
	Gen int64  // the writer's generation
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("write of %s refused: a newer runner than this one (lease generation %d) has written it", e.ID, e.Gen)
}

func (e *FencedError) Unwrap() error { return lease.ErrLost }

// write is the one fenced write of the bookkeeping: update applied to
// document id of coll (created if missing), under the lease ctx carries.
// The lease's generation is in the filter and set by the update, so the
// server refuses it once a newer generation wrote the document, whatever
// the writer believes of its lease: the upsert then collides with the
// existing _id, which is the refusal. Without a lease (a test, a command
// run by hand without the lock) it is unfenced and leaves the generation
// as it is.
func (s *Store) write(ctx context.Context, coll *mongo.Collection, id string, update bson.D) error {
	l := lease.FromContext(ctx)
	filter := bson.D{{Key: "_id", Value: id}}
	if l != nil {
		filter = append(filter, fenceFilter(l.Gen()))
		update = withSet(update, bson.E{Key: "gen", Value: l.Gen()})
	}
	return lease.Do(ctx, func(ctx context.Context) error {
		_, err := coll.UpdateOne(ctx, filter, update, options.Update().SetUpsert(true))
		if l != nil && servererr.IsDuplicateKey(err) {
			return &FencedError{ID: id, Gen: l.Gen()}
		}
		return err
	})
}

// claim sets the generation of document id of coll, if there is one, to
// the lease's that ctx carries: from then on no older holder's write of it
// is taken. A newer generation's document is a FencedError.
func (s *Store) claim(ctx context.Context, coll *mongo.Collection, id string) error {
	l := lease.FromContext(ctx)
	if l == nil {
		return nil
	}
	return lease.Do(ctx, func(ctx context.Context) error {
		res, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, fenceFilter(l.Gen())},
			bson.D{{Key: "$set", Value: bson.D{{Key: "gen", Value: l.Gen()}}}})
		if err != nil {
			return err
		}
		if res.MatchedCount == 0 {
			n, err := coll.CountDocuments(ctx, bson.D{{Key: "_id", Value: id}})
			if err == nil && n > 0 {
				return &FencedError{ID: id, Gen: l.Gen()}
			}
			return err
		}
		return nil
	})
}

// fenceFilter matches a document no generation newer than gen wrote.
func fenceFilter(gen int64) bson.E {
	return bson.E{Key: "$or", Value: bson.A{
		bson.D{{Key: "gen", Value: bson.D{{Key: "$exists", Value: false}}}},
		bson.D{{Key: "gen", Value: bson.D{{Key: "$lte", Value: gen}}}},
	}}
}

// withSet is update with e added to its $set.
func withSet(update bson.D, e bson.E) bson.D {
	out := make(bson.D, 0, len(update)+1)
	found := false
	for _, op := range update {
		if op.Key == "$set" {
			set := append(append(bson.D{}, op.Value.(bson.D)...), e)
			op = bson.E{Key: "$set", Value: set}
			found = true
		}
		out = append(out, op)
	}
	if !found {
		out = append(out, bson.E{Key: "$set", Value: bson.D{e}})
	}
	return out
}
