package mongomigrate

import (
	"context"

	"go.mongodb.org/mongo-driver/bson"
)

// WriteState and WriteHistory are the driver's writes of the version and of
// a history document, for the fence's tests.
func (s *Store) WriteState(ctx context.Context, update bson.D) error {
	return s.write(ctx, s.state(), stateID, update)
}

func (s *Store) WriteHistory(ctx context.Context, id string, update bson.D) error {
	return s.write(ctx, s.history(), id, update)
}

func (s *Store) UndoHistory(ctx context.Context, id string) error { return s.undoHistory(ctx, id) }
