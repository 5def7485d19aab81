package references

import (
	"context"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/retry"
)

// unique is a unique index of a referencing collection that a rewrite can
// collide with: its key fields.
type unique []string

// refuseUnique marks, before anything is written, the plans whose
// rewritten document would take a key of a unique index that another
// document holds, or that an earlier plan of the chunk takes: the server
// would refuse them, and some engines (FerretDB 1) fail the whole command
// for one such document. The server's own refusal still catches a key
// written by the service in between.
func (c *collection) refuseUnique(ctx context.Context, plans []*plan) error {
	for _, u := range c.uniques {
		var or bson.A
		keys := map[string]*plan{}
		for _, p := range plans {
			if p.conflict != "" {
				continue
			}
			key, ok := p.key(u)
			if !ok {
				continue // an array or subdocument key: the server decides
			}
			k := string(encoded(key))
			if keys[k] != nil {
				p.conflict = ReasonUnique
				continue
			}
			keys[k] = p
			or = append(or, key)
		}
		if len(or) == 0 {
			continue
		}
		proj := bson.D{}
		for _, f := range u {
			proj = append(proj, bson.E{Key: f, Value: 1})
		}
		err := c.cfg.Retry.Do(ctx, "read "+c.coll.Name()+" by a unique key", func(ctx context.Context) error {
			cur, err := c.coll.Find(ctx, bson.D{{Key: "$or", Value: or}}, options.Find().SetProjection(proj))
			if err != nil {
				return err
			}
			defer cur.Close(ctx)
			for cur.Next(ctx) {
				var d bson.D
				if err := cur.Decode(&d); err != nil {
					return err
				}
				key, ok := keyOf(d, u)
				if !ok {
					continue
				}
				if p := keys[string(encoded(key))]; p != nil && idKey(docValue(d, "_id")) != idKey(p.id) {
					p.conflict = ReasonUnique
				}
			}
			return cur.Err()
		})
		if err != nil {
			return retry.Wrap("read "+c.coll.Name()+" by a unique key", err)
		}
	}
	return nil
}

// key is the plan's rewritten document's key of u, as a filter; false
// when a key field is an array or a subdocument.
func (p *plan) key(u unique) (bson.D, bool) {
	d := append(bson.D(nil), p.doc...)
	for _, e := range p.after {
		for i := range d {
			if d[i].Key == e.Key {
				d[i].Value = e.Value
			}
		}
	}
	return keyOf(d, u)
}

// keyOf is d's key of u as an equality filter; a missing field is null,
// as the index holds it. False when a key is not one scalar: an array on
// the way (a multikey index) or a subdocument, which the server decides.
func keyOf(d bson.D, u unique) (bson.D, bool) {
	key := bson.D{}
	for _, f := range u {
		v, ok := pathValue(d, strings.Split(f, "."))
		if !ok {
			return nil, false
		}
		key = append(key, bson.E{Key: f, Value: v})
	}
	return key, true
}

// pathValue follows a dotted path through subdocuments: nil when a field
// is absent (or the way goes through a scalar, which MongoDB indexes as
// null); false when it meets an array or ends at a subdocument.
func pathValue(d bson.D, path []string) (any, bool) {
	v, ok := model.Get(d, path[0])
	if !ok {
		return nil, true
	}
	switch x := v.(type) {
	case bson.A:
		return nil, false
	case bson.D:
		if len(path) == 1 {
			return nil, false
		}
		return pathValue(x, path[1:])
	}
	if len(path) == 1 {
		return v, true
	}
	return nil, true
}

// uniquesOf are the unique indexes whose keys include a field under one
// of tops.
func uniquesOf(specs []indexSpec, tops []string) []unique {
	var out []unique
	for _, s := range specs {
		// A sparse or partial index leaves documents out by rules of its
		// own: the server decides those.
		if !s.Unique || s.Sparse || len(s.Partial) > 0 {
			continue
		}
		var u unique
		touches := false
		for _, k := range s.Key {
			u = append(u, k.Key)
			top, _, _ := strings.Cut(k.Key, ".")
			touches = touches || slices.Contains(tops, top)
		}
		if touches {
			out = append(out, u)
		}
	}
	return out
}

type indexSpec struct {
	Key     bson.D   `bson:"key"`
	Unique  bool     `bson:"unique"`
	Sparse  bool     `bson:"sparse"`
	Partial bson.Raw `bson:"partialFilterExpression"`
}
