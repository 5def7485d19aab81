// Package sorted reads a collection in _id order for merge joins (package
// join pairs the documents), resuming a cursor that breaks. OpenBy and
// EachBy read in another order, or in the server's own.
package sorted

import (
	"context"
	"slices"

	"github.com/sirupsen/logrus"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/runner/internal/servererr"
	"github.com/tenantmigrate/runner/runner/retry"
)

// Options are how a cursor reads.
type Options struct {
	// Batch is the documents per round trip.
	Batch int
	// Retry, if set, resumes a sorted cursor that breaks for a transient
	// reason (servererr.IsTransient): it is opened again after the sort-key
	// values of the last document it delivered, so the reader sees every
	// document once, in order, as long as the sort is ascending on
	// top-level fields that end with _id (unique). A cursor in the
	// server's natural order cannot resume: its error is returned.
	Retry *retry.Policy
}

// Cursor is a cursor over documents in ascending _id order, or the order
// it was opened in; join.ByID reads one for merge joins.
type Cursor struct {
	cur *mongo.Cursor

	// to resume: what was opened, the last _id delivered, and the error
	// that ended the cursor if resuming did not help.
	coll    *mongo.Collection
	filter  bson.D
	find    *options.FindOptions
	retry   *retry.Policy
	keys    []string        // the sort keys, all ascending
	last    []bson.RawValue // their values in the last document delivered
	err     error
	resumes int
}

// byID is the order of merge joins.
func byID() bson.D { return bson.D{{Key: "_id", Value: 1}} }

// Open opens coll in _id order; filter and proj may be nil.
func Open(ctx context.Context, coll *mongo.Collection, filter, proj bson.D, o Options) (*Cursor, error) {
	return OpenBy(ctx, coll, filter, proj, byID(), o)
}

// OpenBy opens coll in the order of sort; nil is the order the server keeps
// the documents in, for a pass that joins nothing (a server that cannot
// sort from an index, FerretDB, reads the whole collection before the first
// document of any sorted read). A sort other than by _id may spill to disk.
func OpenBy(ctx context.Context, coll *mongo.Collection, filter, proj, sort bson.D, o Options) (*Cursor, error) {
	if filter == nil {
		filter = bson.D{}
	}
	opts := options.Find().SetBatchSize(int32(o.Batch))
	var keys []string
	if sort != nil {
		opts.SetSort(sort)
		if len(sort) != 1 || sort[0].Key != "_id" {
			opts.SetAllowDiskUse(true)
		}
		for _, e := range sort {
			keys = append(keys, e.Key)
			if e.Value != 1 {
				keys = nil
				break
			}
		}
		if len(keys) > 0 && keys[len(keys)-1] != "_id" {
			keys = nil // not unique: a resume could repeat or skip ties
		}
	}
	if proj != nil {
		opts.SetProjection(proj)
	}
	c := &Cursor{coll: coll, filter: filter, find: opts, keys: keys}
	if len(keys) > 0 {
		c.retry = o.Retry
	}
	open := func(ctx context.Context) error {
		cur, err := coll.Find(ctx, filter, opts)
		c.cur = cur
		return err
	}
	var err error
	if o.Retry != nil {
		err = o.Retry.Do(ctx, "open a cursor on "+coll.Name(), open)
	} else {
		err = open(ctx)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Each calls fn with every document in _id order; the document is valid
// only during the call.
func Each(ctx context.Context, coll *mongo.Collection, filter, proj bson.D, o Options, fn func(bson.Raw) error) error {
	return EachBy(ctx, coll, filter, proj, byID(), o, fn)
}

// EachBy is Each in the order of sort (see OpenBy).
func EachBy(ctx context.Context, coll *mongo.Collection, filter, proj, sort bson.D, o Options, fn func(bson.Raw) error) error {
	c, err := OpenBy(ctx, coll, filter, proj, sort, o)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	for {
		raw, ok := c.Next(ctx)
		if !ok {
			return c.Err()
		}
		if err := fn(raw); err != nil {
			return err
		}
	}
}

// next moves the driver's cursor to the next document, resuming after the
// last delivered _id when the cursor broke for a transient reason.
func (c *Cursor) next(ctx context.Context) bool {
	for {
		if c.err != nil {
			return false
		}
		if c.cur.Next(ctx) {
			if c.retry != nil {
				c.last = c.last[:0]
				for _, k := range c.keys {
					c.last = append(c.last, own(c.cur.Current.Lookup(k)))
				}
			}
			c.resumes = 0
			return true
		}
		err := c.cur.Err()
		if err == nil {
			return false
		}
		if c.retry == nil || !servererr.IsTransient(err) || ctx.Err() != nil {
			c.err = err
			return false
		}
		// Each resume that delivers nothing counts against the budget.
		if c.resumes++; c.resumes >= max(c.retry.Attempts, 1) {
			c.err = &retry.ExhaustedError{What: "resume a cursor on " + c.coll.Name(), Attempts: c.resumes, Err: err}
			return false
		}
		_ = c.cur.Close(ctx)
		filter := c.filter
		if len(c.last) > 0 {
			filter = bson.D{{Key: "$and", Value: bson.A{c.filter, afterKeys(c.keys, c.last)}}}
		}
		p := *c.retry
		if rerr := p.Do(ctx, "resume a cursor on "+c.coll.Name(), func(ctx context.Context) error {
			cur, err := c.coll.Find(ctx, filter, c.find)
			if err == nil {
				c.cur = cur
			}
			return err
		}); rerr != nil {
			c.err = rerr
			return false
		}
		if c.retry.Counter != nil {
			c.retry.Counter.Add()
		}
		if c.retry.Log != nil {
			c.retry.Log.WithFields(logrus.Fields{"collection": c.coll.Name(), "kind": servererr.Kind(err)}).Warn("cursor broke; resumed after the last document read")
		}
	}
}

// afterKeys selects the documents MongoDB sorts after one whose values of
// the ascending sort keys are last: greater on the first key, or equal on
// it and greater on the next, and so on.
func afterKeys(keys []string, last []bson.RawValue) bson.D {
	var or, equal bson.A
	for i, k := range keys {
		and := append(append(bson.A{}, equal...), after(k, last[i]))
		or = append(or, bson.D{{Key: "$and", Value: and}})
		equal = append(equal, same(k, last[i]))
	}
	return bson.D{{Key: "$or", Value: or}}
}

// after selects the values of field k MongoDB sorts after v: greater ones
// of its type ({$gt} matches only its own type), and every value of a type
// sorted after it. A missing field sorts as null.
func after(k string, v bson.RawValue) bson.D {
	t := v.Type
	if t == 0 {
		t = bsontype.Null
	}
	above := bson.D{{Key: k, Value: bson.D{{Key: "$type", Value: typesAfter(t)}}}}
	if t == bsontype.Null {
		return above
	}
	return bson.D{{Key: "$or", Value: bson.A{bson.D{{Key: k, Value: bson.D{{Key: "$gt", Value: v}}}}, above}}}
}

// same selects the values of field k equal to v; null also matches a
// missing field, as they sort together.
func same(k string, v bson.RawValue) bson.D {
	if v.Type == 0 || v.Type == bsontype.Null {
		return bson.D{{Key: k, Value: nil}}
	}
	return bson.D{{Key: k, Value: v}}
}

// typesAfter are the $type aliases of the _id types MongoDB sorts after
// type t (an _id is never an array, a regex or undefined; minKey and maxKey
// _ids are left out: FerretDB knows no alias for them, and no account has
// one).
func typesAfter(t bsontype.Type) bson.A {
	order := []struct {
		types []bsontype.Type
		alias []string
	}{
		{[]bsontype.Type{bsontype.MinKey}, nil},
		{[]bsontype.Type{bsontype.Null}, []string{"null"}},
		{[]bsontype.Type{bsontype.Double, bsontype.Int32, bsontype.Int64, bsontype.Decimal128}, []string{"number"}},
		{[]bsontype.Type{bsontype.String, bsontype.Symbol}, []string{"string"}},
		{[]bsontype.Type{bsontype.EmbeddedDocument}, []string{"object"}},
		{[]bsontype.Type{bsontype.Binary}, []string{"binData"}},
		{[]bsontype.Type{bsontype.ObjectID}, []string{"objectId"}},
		{[]bsontype.Type{bsontype.Boolean}, []string{"bool"}},
		{[]bsontype.Type{bsontype.DateTime}, []string{"date"}},
		{[]bsontype.Type{bsontype.Timestamp}, []string{"timestamp"}},
		{[]bsontype.Type{bsontype.MaxKey}, nil},
	}
	var out bson.A
	seen := false
	for _, o := range order {
		if seen {
			for _, a := range o.alias {
				out = append(out, a)
			}
		}
		if slices.Contains(o.types, t) {
			seen = true
		}
	}
	return out
}

func own(v bson.RawValue) bson.RawValue {
	v.Value = append([]byte(nil), v.Value...)
	return v
}

// Next returns the next document, valid until the next call, or false at
// the end (see Err).
func (c *Cursor) Next(ctx context.Context) (bson.Raw, bool) {
	if !c.next(ctx) {
		return nil, false
	}
	return c.cur.Current, true
}

// Err is the cursor's error, if any: the one that ended it, after any
// resume that did not help.
func (c *Cursor) Err() error {
	if c.err != nil {
		return c.err
	}
	return c.cur.Err()
}

// Close closes the cursor.
func (c *Cursor) Close(ctx context.Context) { _ = c.cur.Close(ctx) }
