package catchup

import (
	"context"
	"time"

	"github.com/tenantmigrate/runner/runner/step"
)

// stateKey keys the catch-up's state in the store.
const stateKey = "catchup"

// State is where the catch-ups are: what the next one reads from, and
// whether the database was cut over.
type State struct {
	// Watermark: the next catch-up reads the legacy accounts changed at
	// or after it, less the margin. Zero: none finished yet.
	Watermark time.Time `bson:"watermark" json:"watermark"`
	// Accounted is how many legacy accounts the tenant accounts held (or
	// listed as not migrated) after the last catch-up; -1: unknown. A
	// legacy count equal to it plus the new accounts means nothing was
	// deleted.
	Accounted    int64     `bson:"accounted" json:"accounted"`
	Syncs        int64     `bson:"syncs" json:"syncs"`
	LastSync     time.Time `bson:"last_sync" json:"last_sync"`
	LastFullPass time.Time `bson:"last_full_pass,omitempty" json:"last_full_pass,omitempty"`
	// CutOver: when `runner cutover` declared the legacy collection
	// frozen; zero: not cut over.
	CutOver time.Time `bson:"cut_over,omitempty" json:"cut_over,omitempty"`
}

// LoadState reads the state; a database never caught up has none.
func LoadState(ctx context.Context, store step.Store) (State, error) { return loadState(ctx, store) }

func loadState(ctx context.Context, store step.Store) (State, error) {
	st := State{Accounted: -1}
	if _, err := store.Load(ctx, stateKey, &st); err != nil {
		return State{}, err
	}
	return st, nil
}

func saveState(ctx context.Context, store step.Store, st State) error {
	return store.Save(ctx, stateKey, st)
}

// CutOver records that the legacy collection is frozen, at when: from then
// on no catch-up runs. Idempotent: the first time stays.
func CutOver(ctx context.Context, store step.Store, when time.Time) (State, error) {
	st, err := loadState(ctx, store)
	if err != nil {
		return st, err
	}
	if st.CutOver.IsZero() {
		st.CutOver = when.UTC()
		if err := saveState(ctx, store, st); err != nil {
			return st, err
		}
	}
	return st, nil
}

// Begin records, before the phases first migrate, how many legacy accounts
// there are: the first catch-up's count to compare with, instead of a
// pass over every _id. A state kept from before (a database migrated
// again after a down) is left as it is.
func Begin(ctx context.Context, store step.Store, legacy int64) error {
	var st State
	found, err := store.Load(ctx, stateKey, &st)
	if err != nil || found {
		return err
	}
	return saveState(ctx, store, State{Accounted: legacy})
}
