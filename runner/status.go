package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/golang-migrate/migrate/v4/source/iofs"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/migrations"
	"github.com/tenantmigrate/runner/runner/lease"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
)

// StepInfo describes one step of this build.
type StepInfo struct {
	Version    uint
	Identifier string
	Up         mongomigrate.Step
	Phase      int // 1 or 2 for the phase steps, else 0
	Checksum   string
	HasDown    bool
}

func (r *Runner) stepInfos() ([]StepInfo, error) {
	src, err := iofs.New(r.steps, ".")
	if err != nil {
		return nil, fmt.Errorf("read steps: %w", err)
	}
	defer src.Close()
	var out []StepInfo
	v, err := src.First()
	for err == nil {
		body, ident, rerr := src.ReadUp(v)
		if rerr != nil {
			return nil, fmt.Errorf("read step %d: %w", v, rerr)
		}
		b, rerr := io.ReadAll(body)
		body.Close()
		if rerr != nil {
			return nil, fmt.Errorf("read step %d: %w", v, rerr)
		}
		step, perr := mongomigrate.ParseStep(b, r.cfg.Collections)
		if perr != nil {
			return nil, fmt.Errorf("step %d (%s): %w", v, ident, perr)
		}
		sum := sha256.Sum256(b)
		info := StepInfo{Version: v, Identifier: ident, Up: step, Checksum: hex.EncodeToString(sum[:])}
		if step.Kind == mongomigrate.KindGo {
			info.Phase = migrations.PhaseOf(step.Name)
		}
		if down, _, derr := src.ReadDown(v); derr == nil {
			info.HasDown = true
			down.Close()
		}
		out = append(out, info)
		v, err = src.Next(v)
	}
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list steps: %w", err)
	}
	return out, nil
}

// StepStatus is one line of `runner status`.
type StepStatus struct {
	Version    uint                  `json:"version"`
	Identifier string                `json:"identifier"`
	Kind       string                `json:"kind"`
	Phase      int                   `json:"phase,omitempty"`
	State      string                `json:"state"` // pending, applied, running, failed; "down ..." for a down that did not finish
	Up         *mongomigrate.History `json:"up,omitempty"`
	Down       *mongomigrate.History `json:"down,omitempty"`
	// Changed is true when the step file differs from the one that ran.
	Changed bool `json:"changed,omitempty"`
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
	infos, err := r.stepInfos()
	if err != nil {
		return Status{}, err
	}
	st, err := mongomigrate.ReadState(ctx, r.db.Collection(r.cfg.Collections.State()))
	if err != nil {
		return Status{}, err
	}
	hist, err := r.history(ctx, bson.D{})
	if err != nil {
		return Status{}, err
	}
	out := Status{Version: st.Version, Dirty: st.Dirty}
	for _, in := range infos {
		s := StepStatus{Version: in.Version, Identifier: in.Identifier, Kind: in.Up.Kind, Phase: in.Phase, State: "pending"}
		// "reverted": how runners before this one recorded an undone step.
		if h, ok := hist[mongomigrate.HistoryID(int(in.Version), "up")]; ok && h.State != "reverted" {
			s.Up = &h
			s.State = h.State
			s.Changed = h.Checksum != "" && h.Checksum != in.Checksum && h.State == mongomigrate.StateApplied
		}
		if h, ok := hist[mongomigrate.HistoryID(int(in.Version), "down")]; ok {
			s.Down = &h
			if h.State != mongomigrate.StateApplied {
				s.State = "down " + h.State
			}
		}
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

func (r *Runner) history(ctx context.Context, filter bson.D) (map[string]mongomigrate.History, error) {
	cur, err := r.db.Collection(r.cfg.Collections.History()).Find(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	defer cur.Close(ctx)
	out := map[string]mongomigrate.History{}
	for cur.Next(ctx) {
		var h mongomigrate.History
		if err := cur.Decode(&h); err != nil {
			return nil, fmt.Errorf("read history: %w", err)
		}
		out[h.ID] = h
	}
	return out, cur.Err()
}

// stepsSince lists the steps this runner finished since start.
func (r *Runner) stepsSince(ctx context.Context, start time.Time) ([]StepResult, error) {
	names := map[uint]string{}
	if infos, err := r.stepInfos(); err == nil {
		for _, in := range infos {
			names[in.Version] = in.Identifier
		}
	}
	cur, err := r.db.Collection(r.cfg.Collections.History()).Find(context.WithoutCancel(ctx),
		bson.D{{Key: "owner", Value: r.owner}, {Key: "started_at", Value: bson.D{{Key: "$gte", Value: start.Truncate(time.Millisecond)}}}},
		options.Find().SetSort(bson.D{{Key: "started_at", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	defer cur.Close(ctx)
	var out []StepResult
	for cur.Next(ctx) {
		var h mongomigrate.History
		if err := cur.Decode(&h); err != nil {
			return nil, fmt.Errorf("read history: %w", err)
		}
		if h.State != mongomigrate.StateApplied {
			continue
		}
		name := h.Name
		if ident, ok := names[uint(h.Version)]; ok {
			name = ident
		}
		out = append(out, StepResult{Version: h.Version, Name: name, Direction: h.Direction,
			Duration: time.Duration(h.DurationMS) * time.Millisecond, Counts: h.Counts, Notes: h.Notes})
	}
	return out, cur.Err()
}

func (r *Runner) lastError(ctx context.Context, step int, direction string) string {
	if direction == "" {
		direction = "up"
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
