// Package join reads documents in key order with one document of
// look-ahead: the merge joins of phases 1 and 2, of phase 2's down and of
// verify (several collections read side by side in _id order, paired
// without a lookup per document, which some servers answer with a full
// scan each), and the passes that take adjacent documents of one key
// together (phase 1's identity keys, group labels and group members).
//
// Every call that reads returns the read's error. A join that took a
// broken cursor for its end would pair an account with "no document" and
// write the wrong thing; here it stops.
package join

import (
	"context"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/model"
)

// Rows is what a Stream reads: documents in ascending key order. A
// *sorted.Cursor is one, as is each of phase 1's scratch tables.
type Rows interface {
	// Next returns the next document, valid until the next call, or false
	// at the end or on an error (see Err).
	Next(ctx context.Context) (bson.Raw, bool)
	Err() error
	Close(ctx context.Context)
}

// Spec is how a Stream turns documents into values and orders them.
type Spec[T, K any] struct {
	// What the rows are, for errors: "read <What>: ...".
	What string
	// Decode makes a value of a document that is valid only during the
	// call; nil is bson.Unmarshal into a T.
	Decode func(bson.Raw) (T, error)
	// Key is a value's join key; Compare orders keys as the rows come.
	Key     func(T) K
	Compare func(a, b K) int
}

// Stream is rows read in key order, one value ahead. A value is read when
// a call needs it, so a read that fails fails the call that wanted what it
// would have read, not the one before.
type Stream[T, K any] struct {
	rows Rows
	spec Spec[T, K]
	head T
	has  bool
	// read: head holds the next value (or has says there is none).
	read bool
	err  error
}

// New reads rows as spec says. The Stream owns rows: Close closes them.
func New[T, K any](rows Rows, spec Spec[T, K]) *Stream[T, K] {
	if spec.Decode == nil {
		spec.Decode = func(raw bson.Raw) (T, error) {
			var v T
			err := bson.Unmarshal(raw, &v)
			return v, err
		}
	}
	return &Stream[T, K]{rows: rows, spec: spec}
}

// advance reads the next value into the head.
func (s *Stream[T, K]) advance(ctx context.Context) error {
	s.read = true
	var zero T
	s.head, s.has = zero, false
	if s.err != nil {
		return s.err
	}
	raw, ok := s.rows.Next(ctx)
	if !ok {
		if err := s.rows.Err(); err != nil {
			s.err = fmt.Errorf("read %s: %w", s.spec.What, err)
		}
		return s.err
	}
	v, err := s.spec.Decode(raw)
	if err != nil {
		s.err = fmt.Errorf("read %s: decode %v: %w", s.spec.What, raw.Lookup("_id"), err)
		return s.err
	}
	s.head, s.has = v, true
	return nil
}

// Peek returns the next value without taking it; false at the end.
func (s *Stream[T, K]) Peek(ctx context.Context) (T, bool, error) {
	if !s.read {
		if err := s.advance(ctx); err != nil {
			return s.head, false, err
		}
	}
	return s.head, s.has, s.err
}

// HeadKey is the key of the next value; false at the end.
func (s *Stream[T, K]) HeadKey(ctx context.Context) (K, bool, error) {
	v, ok, err := s.Peek(ctx)
	if !ok || err != nil {
		var zero K
		return zero, false, err
	}
	return s.spec.Key(v), true, nil
}

// Next takes the next value; false at the end.
func (s *Stream[T, K]) Next(ctx context.Context) (T, bool, error) {
	v, ok, err := s.Peek(ctx)
	if !ok || err != nil {
		return v, false, err
	}
	s.read = false
	return v, true, nil
}

// Seek drops every value whose key is below k and returns the next one,
// without taking it; false at the end. Calls must come with ascending
// keys.
func (s *Stream[T, K]) Seek(ctx context.Context, k K) (T, bool, error) {
	for {
		v, ok, err := s.Peek(ctx)
		if !ok || err != nil || s.spec.Compare(s.spec.Key(v), k) >= 0 {
			return v, ok, err
		}
		s.read = false
	}
}

// SkipTo is Seek, then the value only if its key is k.
func (s *Stream[T, K]) SkipTo(ctx context.Context, k K) (T, bool, error) {
	v, ok, err := s.Seek(ctx, k)
	if !ok || err != nil || s.spec.Compare(s.spec.Key(v), k) != 0 {
		var zero T
		return zero, false, err
	}
	return v, true, nil
}

// Take takes the next value if its key is k, and drops nothing else.
func (s *Stream[T, K]) Take(ctx context.Context, k K) (T, bool, error) {
	v, ok, err := s.Peek(ctx)
	if !ok || err != nil || s.spec.Compare(s.spec.Key(v), k) != 0 {
		var zero T
		return zero, false, err
	}
	s.read = false
	return v, true, nil
}

// Groups calls fn with each run of adjacent values of one key, in order.
// fn owns the slice. Its errors come back as they are.
func (s *Stream[T, K]) Groups(ctx context.Context, fn func([]T) error) error {
	var group []T
	for {
		v, ok, err := s.Next(ctx)
		if err != nil {
			return err
		}
		if len(group) > 0 && (!ok || s.spec.Compare(s.spec.Key(group[0]), s.spec.Key(v)) != 0) {
			if err := fn(group); err != nil {
				return err
			}
			group = nil
		}
		if !ok {
			return nil
		}
		group = append(group, v)
	}
}

// Err is the error that ended the stream, if any.
func (s *Stream[T, K]) Err() error { return s.err }

// Close closes the rows.
func (s *Stream[T, K]) Close(ctx context.Context) { s.rows.Close(ctx) }

// Keyed is what MinKey reads: a Stream of any value type.
type Keyed[K any] interface {
	HeadKey(ctx context.Context) (K, bool, error)
}

// MinKey is the smallest next key of the streams; false when all have
// ended.
func MinKey[K any](ctx context.Context, compare func(a, b K) int, ss ...Keyed[K]) (K, bool, error) {
	var best K
	found := false
	for _, s := range ss {
		k, ok, err := s.HeadKey(ctx)
		if err != nil {
			return best, false, err
		}
		if ok && (!found || compare(k, best) < 0) {
			best, found = k, true
		}
	}
	return best, found, nil
}

// Doc is a document read in _id order: its own copy of the bytes, and its
// _id as an ID. An _id of a type no ID has is the zero ID, which sorts
// below every ID: a Seek passes it over, wherever the server sorts its
// type, and it matches none.
type Doc struct {
	Raw bson.Raw
	ID  model.ID
}

// ByID reads rows in _id order as Docs, for SkipTo by ID.
func ByID(rows Rows, what string) *Stream[Doc, model.ID] {
	return New(rows, Spec[Doc, model.ID]{
		What: what,
		Decode: func(raw bson.Raw) (Doc, error) {
			id, _ := model.IDOf(raw.Lookup("_id"))
			return Doc{Raw: slices.Clone(raw), ID: id}, nil
		},
		Key:     func(d Doc) model.ID { return d.ID },
		Compare: model.ID.Compare,
	})
}
