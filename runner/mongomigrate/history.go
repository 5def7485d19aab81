package mongomigrate

// The history: one document per step and direction, which says when the
// step ran, how long, by whom, with what result.

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/runner/count"
)

// startStep records a step's start in its history document.
func (d *Driver) startStep(ctx context.Context, r *running) error {
	err := d.do(ctx, "record a step's start", func(ctx context.Context) error {
		return d.cfg.Store.write(ctx, d.cfg.Store.history(), HistoryID(r.version, r.direction),
			bson.D{
				{Key: "$set", Value: bson.D{
					{Key: "version", Value: r.version},
					{Key: "direction", Value: r.direction},
					{Key: "state", Value: StateRunning},
					{Key: "started_at", Value: r.started},
					{Key: "host", Value: d.cfg.Host},
					{Key: "owner", Value: d.cfg.Owner},
				}},
				{Key: "$unset", Value: bson.D{{Key: "ended_at", Value: ""}, {Key: "duration_ms", Value: ""}, {Key: "error", Value: ""}, {Key: "counts", Value: ""}, {Key: "notes", Value: ""}, {Key: "undone", Value: ""}}},
				{Key: "$inc", Value: bson.D{{Key: "attempts", Value: 1}}},
			})
	})
	if err != nil {
		return fmt.Errorf("record start of step %d: %w", r.version, err)
	}
	d.mu.Lock()
	d.cur = r
	d.mu.Unlock()
	return nil
}

func (d *Driver) finishStep(ctx context.Context, now time.Time) error {
	d.mu.Lock()
	r := d.cur
	d.cur = nil
	d.mu.Unlock()
	if r == nil {
		return nil // a force, or a migration without a body
	}
	set := bson.D{
		{Key: "state", Value: StateApplied},
		{Key: "ended_at", Value: now},
		{Key: "duration_ms", Value: now.Sub(r.started).Milliseconds()},
	}
	if r.result.Counts != nil {
		set = append(set, bson.E{Key: "counts", Value: r.result.Counts})
	}
	if len(r.result.Notes) > 0 {
		set = append(set, bson.E{Key: "notes", Value: r.result.Notes})
	}
	if err := d.setHistory(ctx, r, set); err != nil {
		return fmt.Errorf("record end of step %d: %w", r.version, err)
	}
	return nil
}

// setHistory sets fields of a running step's history document.
func (d *Driver) setHistory(ctx context.Context, r *running, set bson.D) error {
	return d.do(ctx, "write a step's history", func(ctx context.Context) error {
		return d.cfg.Store.write(ctx, d.cfg.Store.history(), HistoryID(r.version, r.direction), bson.D{{Key: "$set", Value: set}})
	})
}

// HistoryID is the _id of a step's history document.
func HistoryID(version int, direction Direction) string {
	return fmt.Sprintf("%d.%s", version, direction)
}

// History is one step's history document.
type History struct {
	ID         string       `bson:"_id" json:"-"`
	Version    int          `bson:"version" json:"version"`
	Direction  Direction    `bson:"direction" json:"direction"`
	State      HistoryState `bson:"state" json:"state"`
	Kind       Kind         `bson:"kind" json:"kind"`
	Name       string       `bson:"name" json:"name"`
	StartedAt  time.Time    `bson:"started_at" json:"started_at"`
	EndedAt    *time.Time   `bson:"ended_at,omitempty" json:"ended_at,omitempty"`
	DurationMS int64        `bson:"duration_ms" json:"duration_ms"`
	Host       string       `bson:"host" json:"host"`
	Owner      string       `bson:"owner" json:"owner"`
	Error      string       `bson:"error,omitempty" json:"error,omitempty"`
	Counts     count.Counts `bson:"counts,omitempty" json:"counts,omitempty"`
	Notes      []string     `bson:"notes,omitempty" json:"notes,omitempty"`
	// Attempts counts the step's starts; a start retried after a lost
	// reply may count twice.
	Attempts int    `bson:"attempts" json:"attempts"`
	Checksum string `bson:"checksum" json:"checksum"`
	// Undone: the tombstone of a step whose down ran, kept so that a
	// late write of an older runner cannot bring its history back; read
	// as no history.
	Undone bool `bson:"undone,omitempty" json:"-"`
}

// undoHistory leaves the tombstone of the history document id (fenced,
// like every bookkeeping write): its _id, generation and undone alone.
func (s *Store) undoHistory(ctx context.Context, id string) error {
	unset := bson.D{}
	for _, f := range []string{"version", "direction", "state", "kind", "name", "started_at", "ended_at", "duration_ms",
		"host", "owner", "error", "counts", "notes", "attempts", "checksum"} {
		unset = append(unset, bson.E{Key: f, Value: ""})
	}
	return s.write(ctx, s.history(), id, bson.D{{Key: "$set", Value: bson.D{{Key: "undone", Value: true}}}, {Key: "$unset", Value: unset}})
}
