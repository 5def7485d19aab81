package runner

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/runner/lease"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
)

// StepStatus is one line of `runner status`.
type StepStatus struct {
	Version    uint                  `json:"version"`
	Identifier string                `json:"identifier"`
	Kind       mongomigrate.Kind     `json:"kind"`
	Phase      int                   `json:"phase,omitempty"`
	State      StepState             `json:"state"`
	Up         *mongomigrate.History `json:"up,omitempty"`
	Down       *mongomigrate.History `json:"down,omitempty"`
	// Changed is true when the step file differs from the one that ran.
	Changed bool `json:"changed,omitempty"`
}

// StepState is where `runner status` says a step is: pending, or its up's
// history state, or a down that did not finish.
type StepState string

// The states of a step.
const (
	StepPending StepState = "pending"
	StepApplied           = StepState(mongomigrate.StateApplied)
	StepRunning           = StepState(mongomigrate.StateRunning)
	StepFailed            = StepState(mongomigrate.StateFailed)
	// A down that is running, or failed.
	StepDownRunning = StepState("down " + mongomigrate.StateRunning)
	StepDownFailed  = StepState("down " + mongomigrate.StateFailed)
)

func (s StepState) String() string { return string(s) }

// stepState is a step's state from its up and down history documents
// (nil: none).
func stepState(up, down *mongomigrate.History) StepState {
	switch {
	case down != nil && down.State != mongomigrate.StateApplied:
		return StepState("down " + down.State)
	case up != nil:
		return StepState(up.State)
	}
	return StepPending
}

// Status is the whole of `runner status`.
type Status struct {
	Version int          `json:"version"`
	Dirty   bool         `json:"dirty"`
	Steps   []StepStatus `json:"steps"`
	// Lock is the current lease holder, if any.
	Lock *LockStatus `json:"lock,omitempty"`
}

// LockStatus describes the newest lease document.
type LockStatus struct {
	Owner     string    `json:"owner"`
	Host      string    `json:"host"`
	ExpiresAt time.Time `json:"expires_at"`
	Free      bool      `json:"free"`
}

// Status reads the applied version, each step's history and the lock.
func (r *Runner) Status(ctx context.Context) (Status, error) {
	st, err := r.state(ctx)
	if err != nil {
		return Status{}, err
	}
	hist, err := r.history(ctx, bson.D{})
	if err != nil {
		return Status{}, err
	}
	out := Status{Version: st.Version, Dirty: st.Dirty}
	for _, in := range r.cat {
		s := StepStatus{Version: in.Version, Identifier: in.Identifier, Kind: in.Up.Kind, Phase: in.Phase()}
		if h, ok := hist[mongomigrate.HistoryID(int(in.Version), mongomigrate.Up)]; ok && h.State != mongomigrate.StateReverted {
			s.Up = &h
			s.Changed = h.Checksum != "" && h.Checksum != in.Checksum && h.State == mongomigrate.StateApplied
		}
		if h, ok := hist[mongomigrate.HistoryID(int(in.Version), mongomigrate.Down)]; ok {
			s.Down = &h
		}
		s.State = stepState(s.Up, s.Down)
		out.Steps = append(out.Steps, s)
	}
	h, err := lease.Current(ctx, r.db.Collection(r.cfg.Collections.LockColl()), lockName)
	if err != nil {
		return Status{}, err
	}
	if h != nil {
		out.Lock = &LockStatus{Owner: h.Owner, Host: h.Host, ExpiresAt: h.ExpiresAt, Free: h.Free(time.Now())}
	}
	return out, nil
}

// state reads the migration state within the retry budget.
func (r *Runner) state(ctx context.Context) (mongomigrate.State, error) {
	var st mongomigrate.State
	p := r.retryPolicy()
	err := p.Do(ctx, "read migration state", func(ctx context.Context) (err error) {
		st, err = mongomigrate.ReadState(ctx, r.db.Collection(r.cfg.Collections.State()))
		return err
	})
	return st, err
}

// readHistory hands each history document of filter, in opts' order, to
// fn, reading again from the start (after reset) on a transient error.
func (r *Runner) readHistory(ctx context.Context, filter bson.D, opts *options.FindOptions, reset func(), fn func(mongomigrate.History)) error {
	p := r.retryPolicy()
	return p.Do(ctx, "read history", func(ctx context.Context) error {
		reset()
		cur, err := r.db.Collection(r.cfg.Collections.History()).Find(ctx, filter, opts)
		if err != nil {
			return fmt.Errorf("read history: %w", err)
		}
		defer cur.Close(ctx)
		for cur.Next(ctx) {
			var h mongomigrate.History
			if err := cur.Decode(&h); err != nil {
				return fmt.Errorf("read history: %w", err)
			}
			fn(h)
		}
		if err := cur.Err(); err != nil {
			return fmt.Errorf("read history: %w", err)
		}
		return nil
	})
}

func (r *Runner) history(ctx context.Context, filter bson.D) (map[string]mongomigrate.History, error) {
	var out map[string]mongomigrate.History
	err := r.readHistory(ctx, filter, nil, func() { out = map[string]mongomigrate.History{} }, func(h mongomigrate.History) { out[h.ID] = h })
	return out, err
}

// stepsSince lists the steps this runner finished since start.
func (r *Runner) stepsSince(ctx context.Context, start time.Time) ([]StepResult, error) {
	var out []StepResult
	err := r.readHistory(context.WithoutCancel(ctx),
		bson.D{{Key: "owner", Value: r.owner}, {Key: "started_at", Value: bson.D{{Key: "$gte", Value: start.Truncate(time.Millisecond)}}}},
		options.Find().SetSort(bson.D{{Key: "started_at", Value: 1}}),
		func() { out = nil },
		func(h mongomigrate.History) {
			if h.State != mongomigrate.StateApplied {
				return
			}
			name := h.Name
			if ident := r.cat.identifier(h.Version); ident != "" {
				name = ident
			}
			out = append(out, StepResult{Version: h.Version, Name: name, Direction: h.Direction,
				Duration: time.Duration(h.DurationMS) * time.Millisecond, Counts: h.Counts, Notes: h.Notes})
		})
	return out, err
}

func (r *Runner) lastError(ctx context.Context, step int, direction mongomigrate.Direction) string {
	if direction == "" {
		direction = mongomigrate.Up
	}
	var h mongomigrate.History
	err := r.db.Collection(r.cfg.Collections.History()).FindOne(ctx, bson.D{{Key: "_id", Value: mongomigrate.HistoryID(step, direction)}}).Decode(&h)
	if err != nil {
		return ""
	}
	if h.Error != "" {
		return h.Error
	}
	if h.State == mongomigrate.StateRunning {
		return "its runner (" + h.Owner + ") stopped while running it"
	}
	return ""
}
