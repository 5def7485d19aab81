package catchup

import (
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
)

func date(t time.Time) bson.RawValue {
	typ, b, _ := bson.MarshalValue(t)
	return bson.RawValue{Type: typ, Value: b}
}

// A change is carried when its tenant account is as new as it: phase 2
// refreshes only an older one ($gt), and a missing date is older than any.
func TestNewer(t *testing.T) {
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
			if got := newer(tt.legacy, tt.tenant); got != tt.want {
				t.Errorf("newer = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tt := range []struct {
		o   Options
		key string
	}{
		{DefaultOptions(), ""},
		{Options{Margin: -time.Second, MaxScope: 1}, "catchup.margin"},
		{Options{MaxScope: 0}, "catchup.max_scope"},
	} {
		err := tt.o.Validate()
		if (err == nil) != (tt.key == "") || err != nil && !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%+v: Validate = %v, want an error naming %q", tt.o, err, tt.key)
		}
	}
}
