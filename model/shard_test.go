package model

import (
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
)

// The filters carry the shard key only with one, a missing org as null,
// and a delete of many one $or branch per org.
func TestShardKeyFilters(t *testing.T) {
	a, b := StringID("a"), StringID("b")
	for _, c := range []struct {
		name string
		got  any
		want string
	}{
		{"one, unsharded", Unsharded.Filter("x", "o1"), `[{_id x}]`},
		{"one, sharded", ShardByOrg.Filter("x", "o1", bson.E{Key: "d", Value: 1}), `[{org_id o1} {_id x} {d 1}]`},
		{"one, no org read", ShardByOrg.Filter("x", bson.RawValue{}), `[{org_id <nil>} {_id x}]`},
		{"many, unsharded", Unsharded.FilterIDs([]TenantRef{{a, "o1"}, {b, "o2"}}), fmt.Sprint(bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{a, b}}}}})},
		{"many, sharded", ShardByOrg.FilterIDs([]TenantRef{{a, "o1"}, {b, "o2"}, {StringID("c"), "o1"}}),
			fmt.Sprint(bson.D{{Key: "$or", Value: bson.A{
				bson.D{{Key: "org_id", Value: "o1"}, {Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{a, StringID("c")}}}}},
				bson.D{{Key: "org_id", Value: "o2"}, {Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{b}}}}},
			}}})},
		{"many, sharded, no org", ShardByOrg.FilterIDs([]TenantRef{{a, ""}}),
			fmt.Sprint(bson.D{{Key: "$or", Value: bson.A{
				bson.D{{Key: "org_id", Value: bson.D{{Key: "$in", Value: bson.A{nil, ""}}}}, {Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{a}}}}},
			}}})},
		{"merge on, unsharded", Unsharded.MergeOn(), "_id"},
		{"merge on, sharded", ShardByOrg.MergeOn(), "[org_id _id]"},
		{"unique key, sharded", ShardByOrg.UniqueKey(), "[{org_id 1} {_id 1}]"},
	} {
		if got := fmt.Sprint(c.got); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	for _, s := range []string{"", "org_id"} {
		if k, err := ParseShardKey(s); err != nil || string(k) != s {
			t.Errorf("ParseShardKey(%q) = %q, %v", s, k, err)
		}
	}
	for _, s := range []string{"_id", "org_id,_id", "ORG_ID"} {
		if _, err := ParseShardKey(s); err == nil {
			t.Errorf("ParseShardKey(%q) took it", s)
		}
	}
	tn, _ := bson.Marshal(bson.D{{Key: "_id", Value: "a"}, {Key: "org_id", Value: "o1"}})
	if r := RefOf(tn); r.ID != a || r.Org != "o1" {
		t.Errorf("RefOf = %+v", r)
	}
}
