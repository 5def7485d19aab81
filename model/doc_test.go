package model_test

import (
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/model"
)

func TestGetSetLookup(t *testing.T) {
	d := bson.D{{Key: "a", Value: 1}, {Key: "p", Value: bson.D{{Key: "q", Value: bson.D{{Key: "r", Value: "deep"}}}}}}
	for _, tt := range []struct {
		path string
		want any
		ok   bool
	}{
		{"a", 1, true},
		{"p.q.r", "deep", true},
		{"p.q.x", nil, false},
		{"a.b", nil, false}, // through a scalar
		{"z", nil, false},
	} {
		if got, ok := model.Lookup(d, tt.path); ok != tt.ok || got != tt.want {
			t.Errorf("Lookup(%q) = %v, %v; want %v, %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
	d = model.Set(d, "a", 2)
	d = model.Set(d, "b", 3)
	if len(d) != 3 || d[0].Key != "a" || d[0].Value != 2 || d[2].Key != "b" {
		t.Errorf("after Set: %v; want a replaced in place and b appended", d)
	}
	if v, ok := model.Get(d, "b"); !ok || v != 3 {
		t.Errorf("Get(b) = %v, %v", v, ok)
	}
}

func TestWrittenAfter(t *testing.T) {
	at := func(sec int64) bson.RawValue {
		_, raw, _ := bson.MarshalValue(time.Unix(sec, 0).UTC())
		return bson.RawValue{Type: bson.TypeDateTime, Value: raw}
	}
	doc := func(sec int64) bson.Raw {
		raw, _ := bson.Marshal(bson.D{{Key: model.FieldDateUpdated, Value: time.Unix(sec, 0).UTC()}})
		return raw
	}
	none, _ := bson.Marshal(bson.D{})
	for _, tt := range []struct {
		name   string
		tenant bson.Raw
		date   bson.RawValue
		want   bool
	}{
		{"later than its legacy accounts", doc(20), at(10), true},
		{"as old as them: the runner's", doc(10), at(10), false},
		{"older: the runner's, not refreshed yet", doc(5), at(10), false},
		{"dated, they are not", doc(5), bson.RawValue{}, true},
		{"undated", none, at(10), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := model.WrittenAfter(tt.tenant, tt.date); got != tt.want {
				t.Errorf("WrittenAfter = %v, want %v", got, tt.want)
			}
		})
	}
}

func date(t time.Time) bson.RawValue {
	typ, b, _ := bson.MarshalValue(t)
	return bson.RawValue{Type: typ, Value: b}
}

// A change is carried when its tenant account is as new as it: phase 2
// refreshes only an older one ($gt), and a missing date is older than any.
func TestSourceNewer(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	null := bson.RawValue{Type: bson.TypeNull}
	for _, tt := range []struct {
		name           string
		legacy, tenant bson.RawValue
		want           bool
	}{
		{"legacy after tenant", date(t0.Add(time.Millisecond)), date(t0), true},
		{"same date", date(t0), date(t0), false},
		{"tenant after legacy (the service wrote it)", date(t0), date(t0.Add(time.Second)), false},
		{"tenant without a date", date(t0), bson.RawValue{}, true},
		{"tenant with a null date", date(t0), null, true},
		{"legacy without a date", bson.RawValue{}, date(t0), false},
		{"neither", bson.RawValue{}, bson.RawValue{}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := model.SourceNewer(tt.legacy, tt.tenant); got != tt.want {
				t.Errorf("SourceNewer = %v, want %v", got, tt.want)
			}
		})
	}
}
