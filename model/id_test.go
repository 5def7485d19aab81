package model_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/tenantmigrate/runner/model"
)

func oid(t *testing.T, h string) primitive.ObjectID {
	t.Helper()
	o, err := primitive.ObjectIDFromHex(h)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// An ID goes through BSON, JSON and its Key as the value and type it came
// with, and its text is what $toString gives.
func TestIDRoundTrips(t *testing.T) {
	o := oid(t, "65f0c1a2b3c4d5e6f7a8b9c0")
	for _, tt := range []struct {
		name   string
		value  any
		text   string
		shown  string
		isOID  bool
		asJSON string
	}{
		{"string", "acct-1", "acct-1", "acct-1", false, `"acct-1"`},
		{"empty string", "", "", "", false, `""`},
		{"string of hex digits", "65f0c1a2b3c4d5e6f7a8b9c0", "65f0c1a2b3c4d5e6f7a8b9c0", "65f0c1a2b3c4d5e6f7a8b9c0", false, `"65f0c1a2b3c4d5e6f7a8b9c0"`},
		{"ObjectId", o, "65f0c1a2b3c4d5e6f7a8b9c0", "ObjectId(65f0c1a2b3c4d5e6f7a8b9c0)", true, `{"$oid":"65f0c1a2b3c4d5e6f7a8b9c0"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := model.IDOfValue(tt.value)
			if !ok || id.IsZero() || id.Text() != tt.text || id.String() != tt.shown || id.IsObjectID() != tt.isOID {
				t.Fatalf("ID of %v = %q (text %q, shown %q, ObjectId %v)", tt.value, id.Key(), id.Text(), id.String(), id.IsObjectID())
			}
			if id.Value() != tt.value {
				t.Errorf("Value() = %#v, want %#v", id.Value(), tt.value)
			}
			raw, err := bson.Marshal(bson.D{{Key: "_id", Value: id}})
			if err != nil {
				t.Fatal(err)
			}
			want, _ := bson.Marshal(bson.D{{Key: "_id", Value: tt.value}})
			if !slices.Equal(raw, want) {
				t.Errorf("marshalled %v, want %v", bson.Raw(raw), bson.Raw(want))
			}
			var back struct {
				ID model.ID `bson:"_id"`
			}
			if err := bson.Unmarshal(raw, &back); err != nil || back.ID != id {
				t.Errorf("unmarshalled %v, %v; want %v", back.ID, err, id)
			}
			if fromRaw, ok := model.IDOf(bson.Raw(raw).Lookup("_id")); !ok || fromRaw != id {
				t.Errorf("IDOf = %v, %v", fromRaw, ok)
			}
			if k, ok := model.IDFromKey(id.Key()); !ok || k != id {
				t.Errorf("IDFromKey(Key) = %v, %v", k, ok)
			}
			j, err := json.Marshal(id)
			if err != nil || string(j) != tt.asJSON {
				t.Errorf("JSON = %s, %v; want %s", j, err, tt.asJSON)
			}
			var fromJSON model.ID
			if err := json.Unmarshal(j, &fromJSON); err != nil || fromJSON != id {
				t.Errorf("from JSON = %v, %v", fromJSON, err)
			}
		})
	}
	if model.StringID("ab") == model.ObjectIDOf(o) || model.StringID(o.Hex()) == model.ObjectIDOf(o) {
		t.Error("a string and an ObjectId are one ID")
	}
	if got := model.MembershipID("ao1", model.ObjectIDOf(o)); got != "ao1_65f0c1a2b3c4d5e6f7a8b9c0" {
		t.Errorf("membership id of an ObjectId = %s", got)
	}
}

// Compare is MongoDB's order of _ids: strings byte by byte, then
// ObjectIds by their bytes.
func TestIDOrder(t *testing.T) {
	ordered := []model.ID{
		model.StringID(""), model.StringID("A"), model.StringID("a"), model.StringID("ab"), model.StringID("b"),
		model.StringID("ffffffffffffffffffffffff"), model.StringID("é"), model.StringID("名"),
		model.ObjectIDOf(oid(t, "000000000000000000000000")), model.ObjectIDOf(oid(t, "00000000000000000000000a")),
		model.ObjectIDOf(oid(t, "0a0000000000000000000000")), model.ObjectIDOf(oid(t, "a00000000000000000000000")),
		model.ObjectIDOf(oid(t, "ffffffffffffffffffffffff")),
	}
	for i := range ordered {
		for j := range ordered {
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got := ordered[i].Compare(ordered[j]); got != want || ordered[i].Less(ordered[j]) != (want < 0) {
				t.Errorf("Compare(%s, %s) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
		if !(model.ID{}).Less(ordered[i]) {
			t.Errorf("the zero ID is not below %s", ordered[i])
		}
	}
}

// Values of other types are no IDs; the zero ID has no BSON value.
func TestIDRefusesOtherTypes(t *testing.T) {
	for _, v := range []any{int32(1), int64(1), 1.5, true, nil, primitive.Binary{Data: []byte("x")}, bson.D{{Key: "a", Value: 1}}, model.ID{}} {
		if id, ok := model.IDOfValue(v); ok {
			t.Errorf("IDOfValue(%#v) = %v", v, id)
		}
		raw, err := bson.Marshal(bson.D{{Key: "_id", Value: v}})
		if err != nil {
			continue
		}
		var back struct {
			ID model.ID `bson:"_id"`
		}
		err = bson.Unmarshal(raw, &back)
		if v == nil || v == (model.ID{}) {
			continue
		}
		if !errors.Is(err, model.ErrIDType) {
			t.Errorf("unmarshal of %#v into an ID: %v, want ErrIDType", v, err)
		}
	}
	if _, err := bson.Marshal(bson.D{{Key: "_id", Value: model.ID{}}}); err == nil {
		t.Error("the zero ID marshalled")
	}
	var omitted struct {
		ID model.ID `bson:"tenant_id,omitempty"`
	}
	if raw, err := bson.Marshal(omitted); err != nil || len(bson.Raw(raw).Lookup("tenant_id").Value) != 0 {
		t.Errorf("a zero omitempty ID: %v, %v; want the field left out", bson.Raw(raw), err)
	}
	for _, k := range []string{"x", "\x07zz", "\x0765F0C1A2B3C4D5E6F7A8B9C0"} {
		if _, ok := model.IDFromKey(k); ok {
			t.Errorf("IDFromKey(%q) took a key no ID has", k)
		}
	}
}
