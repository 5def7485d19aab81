package model

import (
	"encoding/json"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// ID is the _id of a legacy account the phases migrate, and so of its
// tenant account and its link: a string or an ObjectId (the two kinds a
// service gives its accounts: chosen strings, or the driver's default).
// A tenant account keeps its legacy _id's value and type.
//
// IDs compare (Compare) as MongoDB sorts _ids without a collation: every
// string before every ObjectId (BSON's type order), strings byte by byte,
// ObjectIds by their 12 bytes. So a merge join over cursors sorted by _id on
// the server meets the IDs in the order Compare gives. The zero ID is no id
// (an open range bound, the tenant of a link phase 1 left out); it sorts
// before every ID.
//
// ID is comparable and can key a map. In a document it is its BSON value.
type ID struct {
	// key is the kind's BSON type byte, then the text: ordered bytewise
	// exactly as Compare orders IDs (0x02 < 0x07; lowercase hex keeps the
	// byte order of an ObjectId).
	key string
}

const (
	kindString   = byte(bsontype.String)
	kindObjectID = byte(bsontype.ObjectID)
)

// ErrIDType: a value that is neither a string nor an ObjectId where an ID
// belongs.
var ErrIDType = errors.New("_id is not a string or an ObjectId")

// StringID is the ID of a string _id.
func StringID(s string) ID { return ID{key: string(kindString) + s} }

// ObjectIDOf is the ID of an ObjectId _id.
func ObjectIDOf(oid primitive.ObjectID) ID { return ID{key: string(kindObjectID) + oid.Hex()} }

// IDOf is the ID of a BSON value, false for a value of another type.
func IDOf(v bson.RawValue) (ID, bool) {
	switch v.Type {
	case bsontype.String:
		s, ok := v.StringValueOK()
		return StringID(s), ok
	case bsontype.ObjectID:
		oid, ok := v.ObjectIDOK()
		return ObjectIDOf(oid), ok
	}
	return ID{}, false
}

// IDOfValue is the ID of a Go value as a decoded document holds it (a
// string or a primitive.ObjectID), or of a non-zero ID; false for any
// other.
func IDOfValue(v any) (ID, bool) {
	switch x := v.(type) {
	case ID:
		return x, !x.IsZero()
	case string:
		return StringID(x), true
	case primitive.ObjectID:
		return ObjectIDOf(x), true
	}
	return ID{}, false
}

// Key is the ID as a string that orders bytewise exactly as Compare orders
// IDs, for sort keys built by concatenation; IDFromKey reads it back. It is
// not the _id's text (see Text).
func (id ID) Key() string { return id.key }

// IDFromKey is the ID whose Key is k; false if k is no ID's key.
func IDFromKey(k string) (ID, bool) {
	switch {
	case k == "":
		return ID{}, true
	case k[0] == kindString:
		return ID{key: k}, true
	case k[0] == kindObjectID:
		if oid, err := primitive.ObjectIDFromHex(k[1:]); err == nil && oid.Hex() == k[1:] {
			return ID{key: k}, true
		}
	}
	return ID{}, false
}

// IsZero reports the zero ID (no id).
func (id ID) IsZero() bool { return id.key == "" }

// IsObjectID reports an ObjectId _id.
func (id ID) IsObjectID() bool { return id.key != "" && id.key[0] == kindObjectID }

// Text is the _id as a string: the string itself, or the ObjectId's 24 hex
// digits (what MongoDB's $toString gives). Membership ids are built from it.
func (id ID) Text() string {
	if id.key == "" {
		return ""
	}
	return id.key[1:]
}

// String shows the _id in reports and logs: a string as it is, an ObjectId
// as ObjectId(hex).
func (id ID) String() string {
	switch {
	case id.key == "":
		return "(no id)"
	case id.IsObjectID():
		return "ObjectId(" + id.Text() + ")"
	}
	return id.Text()
}

// Compare orders IDs as MongoDB sorts _ids (see ID): -1, 0 or +1.
func (id ID) Compare(other ID) int {
	switch {
	case id.key < other.key:
		return -1
	case id.key > other.key:
		return 1
	}
	return 0
}

// Less is Compare(other) < 0.
func (id ID) Less(other ID) bool { return id.key < other.key }

// Value is the _id as the driver encodes it: a string or a
// primitive.ObjectID; nil for the zero ID.
func (id ID) Value() any {
	switch {
	case id.key == "":
		return nil
	case id.IsObjectID():
		oid, _ := primitive.ObjectIDFromHex(id.Text())
		return oid
	}
	return id.Text()
}

// MarshalBSONValue writes the _id's own BSON value. The zero ID has none:
// a field that may hold it is omitempty.
func (id ID) MarshalBSONValue() (bsontype.Type, []byte, error) {
	switch {
	case id.key == "":
		return 0, nil, errors.New("model: the zero ID has no BSON value")
	case id.IsObjectID():
		oid, err := primitive.ObjectIDFromHex(id.Text())
		if err != nil {
			return 0, nil, fmt.Errorf("model: ID %q: %w", id.key, err)
		}
		return bsontype.ObjectID, bsoncore.AppendObjectID(nil, oid), nil
	}
	return bsontype.String, bsoncore.AppendString(nil, id.Text()), nil
}

// UnmarshalBSONValue reads a string or an ObjectId; null reads as the zero
// ID; any other type is ErrIDType.
func (id *ID) UnmarshalBSONValue(t bsontype.Type, data []byte) error {
	if t == bsontype.Null {
		*id = ID{}
		return nil
	}
	v, ok := IDOf(bson.RawValue{Type: t, Value: data})
	if !ok {
		return fmt.Errorf("%w (a %s)", ErrIDType, t)
	}
	*id = v
	return nil
}

// MarshalJSON writes a string _id as a JSON string and an ObjectId as
// Extended JSON, {"$oid": hex}; the zero ID as null.
func (id ID) MarshalJSON() ([]byte, error) {
	switch {
	case id.key == "":
		return []byte("null"), nil
	case id.IsObjectID():
		return json.Marshal(map[string]string{"$oid": id.Text()})
	}
	return json.Marshal(id.Text())
}

// UnmarshalJSON reads what MarshalJSON writes.
func (id *ID) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*id = ID{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*id = StringID(s)
		return nil
	}
	var o struct {
		OID string `json:"$oid"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return fmt.Errorf("model: ID: %w", err)
	}
	oid, err := primitive.ObjectIDFromHex(o.OID)
	if err != nil {
		return fmt.Errorf("model: ID: %w", err)
	}
	*id = ObjectIDOf(oid)
	return nil
}
