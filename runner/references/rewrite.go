package references

import (
	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/model"
)

// rewrite returns v, the value of a document's field, with every legacy
// account id found at path below it (through subdocuments and, at any
// level, arrays, as MongoDB's dotted paths go) replaced by what to maps it
// to, and how many ids it replaced. v itself is not changed. An empty path
// is v itself.
func rewrite(v any, path []string, to func(model.ID) (model.ID, bool)) (any, int) {
	switch x := v.(type) {
	case bson.A:
		// An array matches a path element by element, at any depth: a
		// reference stored in a list of ids is a reference too.
		var out bson.A
		n := 0
		for i, e := range x {
			ne, k := rewrite(e, path, to)
			if k > 0 && out == nil {
				out = append(bson.A(nil), x...)
			}
			if k > 0 {
				out[i], n = ne, n+k
			}
		}
		if out == nil {
			return v, 0
		}
		return out, n
	case bson.D:
		if len(path) == 0 {
			return v, 0
		}
		for i, e := range x {
			if e.Key != path[0] {
				continue
			}
			ne, k := rewrite(e.Value, path[1:], to)
			if k == 0 {
				return v, 0
			}
			out := append(bson.D(nil), x...)
			out[i].Value = ne
			return out, k
		}
		return v, 0
	}
	if len(path) > 0 {
		return v, 0
	}
	id, ok := model.IDOfValue(v)
	if !ok {
		return v, 0
	}
	if t, ok := to(id); ok && t != id {
		return t.Value(), 1
	}
	return v, 0
}

// idsAt calls fn with every legacy account id at path below v, as rewrite
// finds them.
func idsAt(v any, path []string, fn func(model.ID)) {
	switch x := v.(type) {
	case bson.A:
		for _, e := range x {
			idsAt(e, path, fn)
		}
		return
	case bson.D:
		if len(path) == 0 {
			return
		}
		for _, e := range x {
			if e.Key == path[0] {
				idsAt(e.Value, path[1:], fn)
				return
			}
		}
		return
	}
	if len(path) == 0 {
		if id, ok := model.IDOfValue(v); ok {
			fn(id)
		}
	}
}
