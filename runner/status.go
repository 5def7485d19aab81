package runner

import (
	"context"
	"time"

	"github.com/tenantmigrate/runner/runner/catchup"
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

// Stage is where the database is in its move to the tenant accounts.
type Stage string

// The stages.
const (
	// StageMigrating: steps are pending, running or half done.
	StageMigrating Stage = "migrating"
	// StageFollowing: every step is applied; each boot (and `runner sync`,
	// `runner follow`) carries the legacy changes, until cutover.
	StageFollowing Stage = "following"
	// StageCutOver: `runner cutover` declared the legacy collection frozen.
	StageCutOver Stage = "cut over"
)

// Status is the whole of `runner status`.
type Status struct {
	Version int   `json:"version"`
	Dirty   bool  `json:"dirty"`
	Stage   Stage `json:"stage"`
	// CatchUp is where the catch-ups are (following, cut over); Lag, the
	// age of the oldest legacy change not yet carried at most: the time
	// since the last catch-up began.
	CatchUp *catchup.State `json:"catch_up,omitempty"`
	Lag     time.Duration  `json:"lag_ns,omitempty"`
	Steps   []StepStatus   `json:"steps"`
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
	st, err := r.m.store.State(ctx)
	if err != nil {
		return Status{}, err
	}
	hist, err := r.m.store.History(ctx)
	if err != nil {
		return Status{}, err
	}
	out := Status{Version: st.Version, Dirty: st.Dirty}
	for _, in := range r.m.cat {
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
	out.Stage = StageMigrating
	if last := len(r.m.cat) - 1; last >= 0 && !st.Dirty && st.Version == int(r.m.cat[last].Version) {
		cs, err := catchup.LoadState(ctx, r.m.store)
		if err != nil {
			return Status{}, err
		}
		out.Stage, out.CatchUp = StageFollowing, &cs
		switch {
		case !cs.CutOver.IsZero():
			out.Stage = StageCutOver
		case !cs.Watermark.IsZero():
			out.Lag = time.Since(cs.Watermark)
		}
	}
	h, err := r.m.store.Lock(ctx)
	if err != nil {
		return Status{}, err
	}
	if h != nil {
		out.Lock = &LockStatus{Owner: h.Owner, Host: h.Host, ExpiresAt: h.ExpiresAt, Free: h.Free(time.Now())}
	}
	return out, nil
}
