package references

import (
	"context"

	"github.com/tenantmigrate/runner/model"
)

// checkpointKey keys, in the store, the checkpoint of a run that did not
// finish.
const checkpointKey = "references_checkpoint"

type checkpoint struct {
	// Refs are the references the run was configured with: a run with
	// others starts over.
	Refs string `bson:"refs"`
	// After is the last link all collections are done to.
	After model.ID `bson:"after"`
}

func refsKey(refs []Ref) string {
	key := ""
	for _, r := range refs {
		key += r.String() + ","
	}
	return key
}

// readCheckpoint is the last link a run with these references that did
// not finish got through; zero: start.
func readCheckpoint(ctx context.Context, cfg Config) (model.ID, error) {
	var cp checkpoint
	if _, err := cfg.Store.Load(ctx, checkpointKey, &cp); err != nil {
		return model.ID{}, err
	}
	if cp.Refs != refsKey(cfg.Refs) {
		return model.ID{}, nil
	}
	return cp.After, nil
}

func saveCheckpoint(ctx context.Context, cfg Config, after model.ID) error {
	return cfg.Store.Save(ctx, checkpointKey, checkpoint{Refs: refsKey(cfg.Refs), After: after})
}

func clearCheckpoint(ctx context.Context, cfg Config) error {
	return cfg.Store.Clear(ctx, checkpointKey)
}
