// Package sorted reads a collection in _id order for merge joins: the
// runner pairs documents of several collections by _id without a lookup per
// document (which some servers answer with a full scan each). OpenBy and
// EachBy read in another order, or in the server's own.
package sorted

import (
	"context"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
)

// Cursor is a cursor over documents in ascending _id order.
type Cursor struct {
	cur  *mongo.Cursor
	head bson.Raw
	id   model.ID
	// other: the head's _id is of a type no ID has; it matches no ID.
	other bool
	done  bool
}

// byID is the order of merge joins.
var byID = bson.D{{Key: "_id", Value: 1}}

// Open opens coll in _id order; filter and proj may be nil.
func Open(ctx context.Context, coll *mongo.Collection, filter, proj bson.D, batch int) (*Cursor, error) {
	return OpenBy(ctx, coll, filter, proj, byID, batch)
}

// OpenBy opens coll in the order of sort; nil is the order the server keeps
// the documents in, for a pass that joins nothing (a server that cannot
// sort from an index, FerretDB, reads the whole collection before the first
// document of any sorted read). A sort other than by _id may spill to disk.
// SkipTo works only in _id order.
func OpenBy(ctx context.Context, coll *mongo.Collection, filter, proj, sort bson.D, batch int) (*Cursor, error) {
	if filter == nil {
		filter = bson.D{}
	}
	opts := options.Find().SetBatchSize(int32(batch))
	if sort != nil {
		opts.SetSort(sort)
		if len(sort) != 1 || sort[0].Key != "_id" {
			opts.SetAllowDiskUse(true)
		}
	}
	if proj != nil {
		opts.SetProjection(proj)
	}
	cur, err := coll.Find(ctx, filter, opts)
	if err != nil {
		return nil, err
	}
	return &Cursor{cur: cur}, nil
}

// Each calls fn with every document in _id order; the document is valid
// only during the call.
func Each(ctx context.Context, coll *mongo.Collection, filter, proj bson.D, batch int, fn func(bson.Raw) error) error {
	return EachBy(ctx, coll, filter, proj, byID, batch, fn)
}

// EachBy is Each in the order of sort (see OpenBy).
func EachBy(ctx context.Context, coll *mongo.Collection, filter, proj, sort bson.D, batch int, fn func(bson.Raw) error) error {
	c, err := OpenBy(ctx, coll, filter, proj, sort, batch)
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
// _id is id, or nil. Calls must come with ascending ids (model.ID.Compare,
// the server's order). A document whose _id is neither a string nor an
// ObjectId is passed over: it matches no ID, and wherever the server sorts
// its type, passing it skips no ID. An error of the cursor is returned at
// once, never taken for the end: a join that read "no document" from a
// broken cursor would write the wrong thing.
func (c *Cursor) SkipTo(ctx context.Context, id model.ID) (bson.Raw, error) {
	for !c.done && (c.head == nil || c.other || c.id.Less(id)) {
		if !c.cur.Next(ctx) {
			c.done, c.head = true, nil
			if err := c.cur.Err(); err != nil {
				return nil, err
			}
			break
		}
		c.head = append(bson.Raw(nil), c.cur.Current...)
		c.id, c.other = model.IDOf(c.head.Lookup("_id"))
		c.other = !c.other
	}
	if err := c.cur.Err(); err != nil {
		return nil, err
	}
	if c.head != nil && c.id == id {
		return c.head, nil
	}
	return nil, nil
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
