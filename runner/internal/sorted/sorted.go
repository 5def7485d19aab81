// Package sorted reads a collection in _id order for merge joins: the
// runner pairs documents of several collections by _id without a lookup per
// document (which some servers answer with a full scan each).
package sorted

import (
	"context"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// Cursor is a cursor over string _ids in ascending order.
type Cursor struct {
	cur  *mongo.Cursor
	head bson.Raw
	id   string
	done bool
}

// Open opens coll in _id order; filter and proj may be nil.
func Open(ctx context.Context, coll *mongo.Collection, filter, proj bson.D, batch int) (*Cursor, error) {
	if filter == nil {
		filter = bson.D{}
	}
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(int32(batch))
	if proj != nil {
		opts.SetProjection(proj)
	}
	cur, err := coll.Find(ctx, filter, opts)
	if err != nil {
		return nil, err
	}
	return &Cursor{cur: cur}, nil
}

// Each calls fn with every document in order; the document is valid only
// during the call.
func Each(ctx context.Context, coll *mongo.Collection, filter, proj bson.D, batch int, fn func(bson.Raw) error) error {
	c, err := Open(ctx, coll, filter, proj, batch)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	for c.cur.Next(ctx) {
		if err := fn(c.cur.Current); err != nil {
			return err
		}
	}
	return c.cur.Err()
}

// SkipTo advances past every _id below id and returns the document whose
// _id is id, or nil. Calls must come with ascending ids.
func (c *Cursor) SkipTo(ctx context.Context, id string) bson.Raw {
	for !c.done && (c.head == nil || c.id < id) {
		if !c.cur.Next(ctx) {
			c.done, c.head = true, nil
			break
		}
		c.head = append(bson.Raw(nil), c.cur.Current...)
		c.id, _ = c.head.Lookup("_id").StringValueOK()
	}
	if c.head != nil && c.id == id {
		return c.head
	}
	return nil
}

// Next returns the next document, valid until the next call, or false at
// the end (see Err). Not to be mixed with SkipTo.
func (c *Cursor) Next(ctx context.Context) (bson.Raw, bool) {
	if !c.cur.Next(ctx) {
		return nil, false
	}
	return c.cur.Current, true
}

// Err is the cursor's error, if any.
func (c *Cursor) Err() error { return c.cur.Err() }

// Close closes the cursor.
func (c *Cursor) Close(ctx context.Context) { _ = c.cur.Close(ctx) }
