package model

import (
	"strings"

	"go.mongodb.org/mongo-driver/bson"
)

// Get is the value of d's field key, and whether d has it.
func Get(d bson.D, key string) (any, bool) {
	for _, e := range d {
		if e.Key == key {
			return e.Value, true
		}
	}
	return nil, false
}

// Set sets d's field key to v in place, keeping the field order, or
// appends it; it returns d, as append does.
func Set(d bson.D, key string, v any) bson.D {
	for i := range d {
		if d[i].Key == key {
			d[i].Value = v
			return d
		}
	}
	return append(d, bson.E{Key: key, Value: v})
}

// Lookup follows a dotted path through nested documents (not arrays).
func Lookup(v any, path string) (any, bool) {
	for _, p := range strings.Split(path, ".") {
		d, ok := v.(bson.D)
		if !ok {
			return nil, false
		}
		if v, ok = Get(d, p); !ok {
			return nil, false
		}
	}
	return v, true
}

// WrittenAfter says whether tenant, a stored tenant account, was written
// after date, the latest date_updated of its legacy accounts: its own
// date_updated is later, or it has one and they have none. The runner
// copies the legacy date; a service that writes a tenant account sets a
// later one. So this is the one test of "the service wrote it since":
// phase 1's replace and every down keep such a tenant account.
func WrittenAfter(tenant bson.Raw, date bson.RawValue) bool {
	t, ok := tenant.Lookup(FieldDateUpdated).DateTimeOK()
	if !ok {
		return false
	}
	d, ok := date.DateTimeOK()
	return !ok || t > d
}

// SourceNewer says whether a legacy account's date_updated is after its
// tenant account's, as phase 2's refresh compares them ($gt: a missing or
// null date is below every date): the legacy change is not carried yet.
// The catch-up and verify ask it of the same two dates.
func SourceNewer(legacy, tenant bson.RawValue) bool {
	l, ok := legacy.DateTimeOK()
	if !ok {
		return false
	}
	t, ok := tenant.DateTimeOK()
	return !ok || l > t
}
