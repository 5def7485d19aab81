package references

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
)

// checkpointID keys, in State, the checkpoint of a run that did not
// finish.
const checkpointID = "references_checkpoint"

type checkpoint struct {
	ID string `bson:"_id"`
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
	err := cfg.Retry.Do(ctx, "read the references checkpoint", func(ctx context.Context) error {
		cp = checkpoint{}
		err := cfg.DB.Collection(cfg.State).FindOne(ctx, bson.D{{Key: "_id", Value: checkpointID}}).Decode(&cp)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil
		}
		return err
	})
	if err != nil {
		return model.ID{}, fmt.Errorf("read the references checkpoint: %w", err)
	}
	if cp.Refs != refsKey(cfg.Refs) {
		return model.ID{}, nil
	}
	return cp.After, nil
}

func saveCheckpoint(ctx context.Context, cfg Config, after model.ID) error {
	cp := checkpoint{ID: checkpointID, Refs: refsKey(cfg.Refs), After: after}
	err := cfg.Retry.Do(ctx, "save the references checkpoint", func(ctx context.Context) error {
		_, err := cfg.DB.Collection(cfg.State).ReplaceOne(ctx, bson.D{{Key: "_id", Value: checkpointID}}, cp, options.Replace().SetUpsert(true))
		return err
	})
	if err != nil {
		return fmt.Errorf("save the references checkpoint: %w", err)
	}
	return nil
}

func clearCheckpoint(ctx context.Context, cfg Config) error {
	err := cfg.Retry.Do(ctx, "clear the references checkpoint", func(ctx context.Context) error {
		_, err := cfg.DB.Collection(cfg.State).DeleteOne(ctx, bson.D{{Key: "_id", Value: checkpointID}})
		return err
	})
	if err != nil {
		return fmt.Errorf("clear the references checkpoint: %w", err)
	}
	return nil
}
