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

// checkpointID keys, in State, the last link each collection is done to.
const checkpointID = "references_checkpoint"

type checkpoints struct {
	ID    string      `bson:"_id"`
	After []collAfter `bson:"after"`
}

type collAfter struct {
	// Collection is the collection and its configured fields
	// (checkpointKey): a run with other fields starts that collection over.
	Collection string   `bson:"c"`
	After      model.ID `bson:"after"`
}

// checkpointKey names the collection's work: its name and fields.
func (c *collection) checkpointKey() string {
	key := c.coll.Name()
	for _, f := range c.fields {
		key += "|" + f.Ref.Path
	}
	return key
}

func readCheckpoints(ctx context.Context, cfg Config) (checkpoints, error) {
	cp := checkpoints{ID: checkpointID}
	err := cfg.Retry.Do(ctx, "read the references checkpoint", func(ctx context.Context) error {
		err := cfg.DB.Collection(cfg.State).FindOne(ctx, bson.D{{Key: "_id", Value: checkpointID}}).Decode(&cp)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil
		}
		return err
	})
	if err != nil {
		return cp, fmt.Errorf("read the references checkpoint: %w", err)
	}
	return cp, nil
}

// checkpoint is the last link of the collection done by a run that did
// not finish; zero: start.
func (c *collection) checkpoint(ctx context.Context) (model.ID, error) {
	cp, err := readCheckpoints(ctx, c.cfg)
	for _, a := range cp.After {
		if a.Collection == c.checkpointKey() {
			return a.After, err
		}
	}
	return model.ID{}, err
}

func (c *collection) saveCheckpoint(ctx context.Context, after model.ID) error {
	cp, err := readCheckpoints(ctx, c.cfg)
	if err != nil {
		return err
	}
	found := false
	for i := range cp.After {
		if cp.After[i].Collection == c.checkpointKey() {
			cp.After[i].After, found = after, true
		}
	}
	if !found {
		cp.After = append(cp.After, collAfter{c.checkpointKey(), after})
	}
	err = c.cfg.Retry.Do(ctx, "save the references checkpoint", func(ctx context.Context) error {
		_, err := c.cfg.DB.Collection(c.cfg.State).ReplaceOne(ctx, bson.D{{Key: "_id", Value: checkpointID}}, cp, options.Replace().SetUpsert(true))
		return err
	})
	if err != nil {
		return fmt.Errorf("save the references checkpoint: %w", err)
	}
	return nil
}

func clearCheckpoints(ctx context.Context, cfg Config) error {
	err := cfg.Retry.Do(ctx, "clear the references checkpoint", func(ctx context.Context) error {
		_, err := cfg.DB.Collection(cfg.State).DeleteOne(ctx, bson.D{{Key: "_id", Value: checkpointID}})
		return err
	})
	if err != nil {
		return fmt.Errorf("clear the references checkpoint: %w", err)
	}
	return nil
}
