package pipelines

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/model"
)

type D = bson.D
type A = bson.A
type E = bson.E

func dt(ms int64) primitive.DateTime { return primitive.DateTime(ms) }

func mustDecimal(t *testing.T, s string) primitive.Decimal128 {
	t.Helper()
	x, err := primitive.ParseDecimal128(s)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// docEqual compares two documents exactly, field order included, through
// their BSON encoding.
func docEqual(t *testing.T, got, want D) bool {
	t.Helper()
	g, err := bson.Marshal(got)
	if err != nil {
		t.Fatalf("marshal got: %v", err)
	}
	w, err := bson.Marshal(want)
	if err != nil {
		t.Fatalf("marshal want: %v", err)
	}
	return string(g) == string(w)
}

func extJSON(t *testing.T, v D) string {
	t.Helper()
	b, err := bson.MarshalExtJSON(v, false, false)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOneToOne(t *testing.T) {
	perm := D{{Key: "_id", Value: "p1"}, {Key: "name", Value: "read"}}
	role := D{{Key: "role", Value: D{{Key: "_id", Value: "r1"}}}, {Key: "active", Value: true}, {Key: "admin_set", Value: false}}
	group := D{{Key: "group", Value: D{{Key: "_id", Value: "g1"}}}, {Key: "active", Value: true}}
	auth := D{{Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: "x@example.org"}}
	prefs := D{{Key: "language", Value: "en"}}
	oid, _ := primitive.ObjectIDFromHex("65f0c1a2b3c4d5e6f7a8b9c0")
	tests := []struct {
		name   string
		legacy D
		org    string
		want   D
	}{
		{
			name: "known fields",
			legacy: D{
				{Key: "_id", Value: "a1"}, {Key: "app_org_id", Value: "ao1"},
				{Key: "permissions", Value: A{perm}}, {Key: "roles", Value: A{role}}, {Key: "groups", Value: A{group}},
				{Key: "scopes", Value: A{"core:read"}}, {Key: "auth_types", Value: A{auth}},
				{Key: "preferences", Value: prefs}, {Key: "profile", Value: D{{Key: "first_name", Value: "Ann"}}},
				{Key: "verified", Value: true}, {Key: "date_created", Value: dt(1000)}, {Key: "date_updated", Value: dt(2000)},
				{Key: "most_recent_client_version", Value: "1.2.3"},
			},
			org: "org1",
			want: D{
				{Key: "_id", Value: "a1"},
				{Key: "scopes", Value: A{"core:read"}}, {Key: "auth_types", Value: A{auth}},
				{Key: "profile", Value: D{{Key: "first_name", Value: "Ann"}}},
				{Key: "verified", Value: true}, {Key: "date_created", Value: dt(1000)}, {Key: "date_updated", Value: dt(2000)},
				{Key: "org_id", Value: "org1"},
				{Key: "org_apps_memberships", Value: A{D{
					{Key: "id", Value: "ao1_a1"}, {Key: "app_org_id", Value: "ao1"},
					{Key: "permissions", Value: A{perm}}, {Key: "roles", Value: A{role}}, {Key: "groups", Value: A{group}},
					{Key: "preferences", Value: prefs}, {Key: "most_recent_client_version", Value: "1.2.3"},
				}}},
			},
		},
		{
			name: "unknown fields stay in place",
			legacy: D{
				{Key: "_id", Value: "a2"}, {Key: "legacy_flags", Value: D{{Key: "beta", Value: true}}},
				{Key: "app_org_id", Value: "ao1"}, {Key: "auth_types", Value: A{auth}},
				{Key: "import_batch", Value: int64(7)}, {Key: "roles", Value: A{}}, {Key: "zz_last", Value: 1.5},
			},
			org: "org1",
			want: D{
				{Key: "_id", Value: "a2"}, {Key: "legacy_flags", Value: D{{Key: "beta", Value: true}}},
				{Key: "auth_types", Value: A{auth}}, {Key: "import_batch", Value: int64(7)}, {Key: "zz_last", Value: 1.5},
				{Key: "org_id", Value: "org1"},
				{Key: "org_apps_memberships", Value: A{D{{Key: "id", Value: "ao1_a2"}, {Key: "app_org_id", Value: "ao1"}, {Key: "roles", Value: A{}}}}},
			},
		},
		{
			name:   "missing app-level fields are omitted",
			legacy: D{{Key: "_id", Value: "a3"}, {Key: "app_org_id", Value: "ao2"}, {Key: "auth_types", Value: A{auth}}},
			org:    "org2",
			want: D{
				{Key: "_id", Value: "a3"}, {Key: "auth_types", Value: A{auth}}, {Key: "org_id", Value: "org2"},
				{Key: "org_apps_memberships", Value: A{D{{Key: "id", Value: "ao2_a3"}, {Key: "app_org_id", Value: "ao2"}}}},
			},
		},
		{
			name: "null app-level fields stay null",
			legacy: D{
				{Key: "_id", Value: "a4"}, {Key: "app_org_id", Value: "ao2"}, {Key: "permissions", Value: nil},
				{Key: "auth_types", Value: A{auth}}, {Key: "most_recent_client_version", Value: nil},
			},
			org: "org2",
			want: D{
				{Key: "_id", Value: "a4"}, {Key: "auth_types", Value: A{auth}}, {Key: "org_id", Value: "org2"},
				{Key: "org_apps_memberships", Value: A{D{
					{Key: "id", Value: "ao2_a4"}, {Key: "app_org_id", Value: "ao2"},
					{Key: "permissions", Value: nil}, {Key: "most_recent_client_version", Value: nil},
				}}},
			},
		},
		{
			name: "legacy org_id and org_apps_memberships are replaced in place",
			legacy: D{
				{Key: "_id", Value: "a5"}, {Key: "org_id", Value: "stale"}, {Key: "app_org_id", Value: "ao1"},
				{Key: "org_apps_memberships", Value: "junk"}, {Key: "auth_types", Value: A{auth}},
			},
			org: "org1",
			want: D{
				{Key: "_id", Value: "a5"}, {Key: "org_id", Value: "org1"},
				{Key: "org_apps_memberships", Value: A{D{{Key: "id", Value: "ao1_a5"}, {Key: "app_org_id", Value: "ao1"}}}},
				{Key: "auth_types", Value: A{auth}},
			},
		},
		{
			name: "legacy org_apps_memberships only: in place, org_id appended",
			legacy: D{
				{Key: "_id", Value: "a6"}, {Key: "org_apps_memberships", Value: A{}}, {Key: "app_org_id", Value: "ao1"},
				{Key: "auth_types", Value: A{auth}},
			},
			org: "org1",
			want: D{
				{Key: "_id", Value: "a6"},
				{Key: "org_apps_memberships", Value: A{D{{Key: "id", Value: "ao1_a6"}, {Key: "app_org_id", Value: "ao1"}}}},
				{Key: "auth_types", Value: A{auth}}, {Key: "org_id", Value: "org1"},
			},
		},
		{
			name: "membership order is model.AppLevelFields order, whatever the legacy order",
			legacy: D{
				{Key: "most_recent_client_version", Value: "2.0.0"}, {Key: "preferences", Value: prefs},
				{Key: "_id", Value: "a7"}, {Key: "groups", Value: A{group}}, {Key: "app_org_id", Value: "ao3"},
				{Key: "roles", Value: A{role}}, {Key: "permissions", Value: A{perm}}, {Key: "auth_types", Value: A{auth}},
			},
			org: "org3",
			want: D{
				{Key: "_id", Value: "a7"}, {Key: "auth_types", Value: A{auth}}, {Key: "org_id", Value: "org3"},
				{Key: "org_apps_memberships", Value: A{D{
					{Key: "id", Value: "ao3_a7"}, {Key: "app_org_id", Value: "ao3"},
					{Key: "permissions", Value: A{perm}}, {Key: "roles", Value: A{role}}, {Key: "groups", Value: A{group}},
					{Key: "preferences", Value: prefs}, {Key: "most_recent_client_version", Value: "2.0.0"},
				}}},
			},
		},
		{
			name:   "temporary field names are removed as the pipeline's $unset does",
			legacy: D{{Key: "_id", Value: "a8"}, {Key: "_p2_ao", Value: 1}, {Key: "app_org_id", Value: "ao1"}, {Key: "auth_types", Value: A{auth}}},
			org:    "org1",
			want: D{
				{Key: "_id", Value: "a8"}, {Key: "auth_types", Value: A{auth}}, {Key: "org_id", Value: "org1"},
				{Key: "org_apps_memberships", Value: A{D{{Key: "id", Value: "ao1_a8"}, {Key: "app_org_id", Value: "ao1"}}}},
			},
		},
		{
			name:   "an ObjectId _id stays an ObjectId; the membership id has its hex digits",
			legacy: D{{Key: "_id", Value: oid}, {Key: "app_org_id", Value: "ao1"}, {Key: "auth_types", Value: A{auth}}},
			org:    "org1",
			want: D{
				{Key: "_id", Value: oid}, {Key: "auth_types", Value: A{auth}}, {Key: "org_id", Value: "org1"},
				{Key: "org_apps_memberships", Value: A{D{{Key: "id", Value: "ao1_65f0c1a2b3c4d5e6f7a8b9c0"}, {Key: "app_org_id", Value: "ao1"}}}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := extJSON(t, tt.legacy)
			got, err := OneToOne(tt.legacy, tt.org)
			if err != nil {
				t.Fatal(err)
			}
			if !docEqual(t, got, tt.want) {
				t.Errorf("OneToOne\n got  %s\n want %s", extJSON(t, got), extJSON(t, tt.want))
			}
			if after := extJSON(t, tt.legacy); after != before {
				t.Errorf("OneToOne modified its input:\n before %s\n after  %s", before, after)
			}
		})
	}
}

func TestOneToOneErrors(t *testing.T) {
	auth := A{D{{Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: "x"}}}
	tests := []struct {
		name   string
		legacy D
		want   string
	}{
		{"numeric _id", D{{Key: "_id", Value: int32(5)}, {Key: "app_org_id", Value: "ao1"}, {Key: "auth_types", Value: auth}}, ReasonID},
		{"missing _id", D{{Key: "app_org_id", Value: "ao1"}}, ReasonID},
		{"missing app_org_id", D{{Key: "_id", Value: "a"}}, ReasonAppOrgType},
		{"null app_org_id", D{{Key: "_id", Value: "a"}, {Key: "app_org_id", Value: nil}}, ReasonAppOrgType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := OneToOne(tt.legacy, "org")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestInvalid(t *testing.T) {
	orgOf := map[string]string{"ao1": "org1", "ao-no-org": ""}
	at := func(kv ...E) D { return D(kv) }
	good := at(E{Key: "auth_type_code", Value: "email"}, E{Key: "identifier", Value: "x@example.org"})
	acct := func(id any, ao any, ats any) D {
		d := D{{Key: "_id", Value: id}}
		if ao != nil {
			d = append(d, E{Key: "app_org_id", Value: ao})
		}
		if ats != nil {
			d = append(d, E{Key: "auth_types", Value: ats})
		}
		return d
	}
	tests := []struct {
		name   string
		legacy D
		want   string
	}{
		{"valid", acct("a", "ao1", A{good}), ""},
		{"valid, several auth types, empty code", acct("a", "ao1", A{good, at(E{Key: "auth_type_code", Value: ""}, E{Key: "identifier", Value: "u"})}), ""},
		{"valid, auth type as a map", acct("a", "ao1", A{bson.M{"auth_type_code": "phone", "identifier": "+1"}}), ""},
		{"numeric _id", acct(int32(12), "ao1", A{good}), ReasonID},
		{"ObjectId _id", acct(primitive.NewObjectID(), "ao1", A{good}), ""},
		{"binary _id", acct(primitive.Binary{Data: []byte("a")}, "ao1", A{good}), ReasonID},
		{"document _id", acct(D{{Key: "a", Value: "b"}}, "ao1", A{good}), ReasonID},
		{"missing app_org_id", acct("a", nil, A{good}), ReasonAppOrgType},
		{"app_org_id array", acct("a", A{"ao1"}, A{good}), ReasonAppOrgType},
		{"app_org_id symbol", acct("a", primitive.Symbol("ao1"), A{good}), ReasonAppOrgType},
		{"dangling app_org_id", acct("a", "ao-gone", A{good}), ReasonAppOrgUnknown},
		{"app-org without org", acct("a", "ao-no-org", A{good}), ReasonAppOrgNoOrg},
		{"missing auth_types", acct("a", "ao1", nil), ReasonAuthTypesType},
		{"auth_types a document", acct("a", "ao1", good), ReasonAuthTypesType},
		{"empty auth_types", acct("a", "ao1", A{}), ReasonAuthTypesEmpty},
		{"auth type null", acct("a", "ao1", A{good, nil}), ReasonAuthTypeDoc},
		{"auth type a string", acct("a", "ao1", A{"email"}), ReasonAuthTypeDoc},
		{"auth type an array", acct("a", "ao1", A{A{good}}), ReasonAuthTypeDoc},
		{"auth type without code", acct("a", "ao1", A{at(E{Key: "identifier", Value: "x"})}), ReasonAuthTypeCode},
		{"auth type code not a string", acct("a", "ao1", A{at(E{Key: "auth_type_code", Value: int32(1)}, E{Key: "identifier", Value: "x"})}), ReasonAuthTypeCode},
		{"auth type code an array", acct("a", "ao1", A{at(E{Key: "auth_type_code", Value: A{"email"}}, E{Key: "identifier", Value: "x"})}), ReasonAuthTypeCode},
		{"auth type without identifier", acct("a", "ao1", A{good, at(E{Key: "auth_type_code", Value: "email"})}), ReasonAuthTypeIdentifier},
		{"auth type with empty identifier", acct("a", "ao1", A{at(E{Key: "auth_type_code", Value: "email"}, E{Key: "identifier", Value: ""})}), ReasonAuthTypeIdentifier},
		{"auth type with null identifier", acct("a", "ao1", A{at(E{Key: "auth_type_code", Value: "email"}, E{Key: "identifier", Value: nil})}), ReasonAuthTypeIdentifier},
		{"auth type with array identifier", acct("a", "ao1", A{at(E{Key: "auth_type_code", Value: "email"}, E{Key: "identifier", Value: A{"x"}})}), ReasonAuthTypeIdentifier},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Invalid(tt.legacy, orgOf); got != tt.want {
				t.Errorf("Invalid = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRefresh(t *testing.T) {
	const missing = "<missing>"
	doc := func(v any) D {
		if s, ok := v.(string); ok && s == missing {
			return D{{Key: "_id", Value: "a"}}
		}
		return D{{Key: "_id", Value: "a"}, {Key: "date_updated", Value: v}}
	}
	t0 := time.Date(2023, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name               string
		existing, incoming any
		want               bool
	}{
		{"both missing", missing, missing, false},
		{"incoming missing, existing date", dt(5), missing, false},
		{"incoming missing, existing null", nil, missing, false},
		{"incoming null, existing missing (null > missing)", missing, nil, true},
		{"both null", nil, nil, false},
		{"incoming null, existing date", dt(5), nil, false},
		{"incoming date, existing missing", missing, dt(5), true},
		{"incoming date, existing null", nil, dt(5), true},
		{"incoming newer", dt(5), dt(6), true},
		{"incoming older", dt(6), dt(5), false},
		{"equal dates", dt(5), dt(5), false},
		{"negative dates", dt(-10), dt(-5), true},
		{"time.Time equal to DateTime", primitive.NewDateTimeFromTime(t0), t0, false},
		{"time.Time newer than DateTime", primitive.NewDateTimeFromTime(t0), t0.Add(time.Millisecond), true},
		{"date beats string", "2099-01-01", dt(0), true},
		{"string below date", dt(0), "2099-01-01", false},
		{"date beats number", int64(math.MaxInt64), dt(0), true},
		{"timestamp beats date", dt(math.MaxInt64), primitive.Timestamp{T: 1}, true},
		{"bool below date", dt(0), true, false},
		{"number beats null", nil, int32(0), true},
		{"numbers across types", 2.5, int64(3), true},
		{"numbers equal across types", int32(3), 3.0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Refresh(doc(tt.existing), doc(tt.incoming)); got != tt.want {
				t.Errorf("Refresh(existing %v, incoming %v) = %v, want %v", tt.existing, tt.incoming, got, tt.want)
			}
		})
	}
}

// TestCompareOrder checks the BSON order Refresh relies on: each value is
// smaller than the next, and equal to itself.
func TestCompareOrder(t *testing.T) {
	oid1, _ := primitive.ObjectIDFromHex("000000000000000000000001")
	oid2, _ := primitive.ObjectIDFromHex("000000000000000000000002")
	ascending := []any{
		primitive.MinKey{},
		nil,
		math.NaN(),
		math.Inf(-1),
		mustDecimal(t, "-1E+400"),
		int64(math.MinInt64),
		-1.5,
		int32(-1),
		mustDecimal(t, "-0.1"),
		int32(0),
		mustDecimal(t, "0.1"),
		0.30000000000000004,
		int64(1 << 53),
		float64(1<<53) * 2,
		int64(math.MaxInt64),
		mustDecimal(t, "1E+400"),
		math.Inf(1),
		"",
		"A",
		"a",
		"ab",
		"é",
		D{},
		D{{Key: "a", Value: int32(1)}},
		D{{Key: "a", Value: int32(2)}},
		D{{Key: "b", Value: int32(0)}},
		D{{Key: "a", Value: "x"}}, // value type rank decides before the name
		A{},
		A{int32(1)},
		A{int32(1), int32(0)},
		A{int32(2)},
		primitive.Binary{Data: []byte{9}},
		primitive.Binary{Subtype: 4, Data: []byte{0}},
		primitive.Binary{Data: []byte{0, 0}},
		oid1,
		oid2,
		false,
		true,
		dt(math.MinInt64),
		dt(-1),
		dt(0),
		dt(math.MaxInt64),
		primitive.Timestamp{T: 1, I: 5},
		primitive.Timestamp{T: 2, I: 0},
		primitive.Timestamp{T: math.MaxUint32, I: 0},
		primitive.Regex{Pattern: "a", Options: "i"},
		primitive.Regex{Pattern: "b"},
		primitive.JavaScript("x"),
		primitive.MaxKey{},
	}
	for i, a := range ascending {
		if c := compareValues(a, true, a, true); c != 0 {
			t.Errorf("compare(%#v, itself) = %d", a, c)
		}
		for j := i + 1; j < len(ascending); j++ {
			b := ascending[j]
			if c := compareValues(a, true, b, true); c != -1 {
				t.Errorf("compare(%#v, %#v) = %d, want -1", a, b, c)
			}
			if c := compareValues(b, true, a, true); c != 1 {
				t.Errorf("compare(%#v, %#v) = %d, want 1", b, a, c)
			}
		}
		if c := compareValues(nil, false, a, true); a != (primitive.MinKey{}) && c != -1 {
			t.Errorf("compare(missing, %#v) = %d, want -1", a, c)
		}
	}
	if c := compareValues(primitive.Undefined{}, true, nil, false); c != 0 {
		t.Errorf("compare(undefined, missing) = %d, want 0", c)
	}
	if c := compareValues(primitive.Symbol("a"), true, "a", true); c != 0 {
		t.Errorf("compare(symbol a, string a) = %d, want 0", c)
	}
	if c := compareValues(math.NaN(), true, mustDecimal(t, "NaN"), true); c != 0 {
		t.Errorf("compare(NaN, decimal NaN) = %d, want 0", c)
	}
}

// With the shard key, both $merge pipelines match on it and _id (what a
// sharded target requires); without it, on _id alone.
func TestMergeOnTheShardKey(t *testing.T) {
	n := model.DefaultNames()
	for _, c := range []struct {
		key  model.ShardKey
		want any
	}{
		{model.Unsharded, "_id"},
		{model.ShardByOrg, A{"org_id", "_id"}},
	} {
		for name, p := range map[string]mongo.Pipeline{"Phase2": Phase2(n, c.key, []string{"ao1"}, nil), "Phase2Inserts": Phase2Inserts(n, c.key, []string{"ao1"}, nil)} {
			merge := p[len(p)-1][0].Value.(D)
			on, _ := model.Get(merge, "on")
			if fmt.Sprint(on) != fmt.Sprint(c.want) {
				t.Errorf("%s with shard key %q: $merge on %v, want %v", name, c.key, on, c.want)
			}
		}
	}
}

// The pipeline carries the mapping the package comment documents: these
// checks tie the stages to model's field lists.
func TestPipelineShape(t *testing.T) {
	n := model.DefaultNames()
	p := Phase2(n, model.Unsharded, []string{"ao1"}, nil)
	var names []string
	for _, s := range p {
		if len(s) != 1 {
			t.Fatalf("stage with %d operators: %v", len(s), s)
		}
		names = append(names, s[0].Key)
	}
	if want := []string{"$match", "$lookup", "$match", "$lookup", "$set", "$unset", "$merge"}; !slices.Equal(names, want) {
		t.Fatalf("stages = %v, want %v", names, want)
	}

	set := p[4][0].Value.(D)
	ms := set[1].Value.(A)[0].(D)
	var msKeys []string
	for _, e := range ms {
		msKeys = append(msKeys, e.Key)
	}
	if want := append([]string{"id", "app_org_id"}, model.AppLevelFields...); !slices.Equal(msKeys, want) {
		t.Errorf("membership fields = %v, want %v", msKeys, want)
	}
	unset := p[5][0].Value.(A)
	for _, f := range append([]string{"_p2_link", "_p2_ao", "app_org_id"}, model.AppLevelFields...) {
		if !slices.Contains(unset, any(f)) {
			t.Errorf("$unset lacks %s", f)
		}
	}
	for _, f := range unset {
		if s := f.(string); !strings.HasPrefix(s, "_p2_") && s != "app_org_id" && !slices.Contains(model.AppLevelFields, s) {
			t.Errorf("$unset removes %s, which the mapping keeps", s)
		}
	}

	// Range only narrows stage 1's _id condition.
	ranged := Phase2(n, model.Unsharded, []string{"ao1"}, &Range{After: model.StringID("b"), Through: model.StringID("m")})
	id := ranged[0][0].Value.(D)[0].Value.(D)
	if want := (D{{Key: "$type", Value: "string"}, {Key: "$gt", Value: model.StringID("b")}, {Key: "$lte", Value: model.StringID("m")}}); !reflect.DeepEqual(id, want) {
		t.Errorf("ranged _id condition = %v, want %v", id, want)
	}
	if !reflect.DeepEqual(ranged[1:], p[1:]) {
		t.Error("a range changed stages after the first")
	}
	half := Phase2(n, model.Unsharded, []string{"ao1"}, &Range{Through: model.StringID("m")})
	if id := half[0][0].Value.(D)[0].Value.(D); len(id) != 2 || id[1].Key != "$lte" {
		t.Errorf("Through-only _id condition = %v", id)
	}

	// No valid app-org: $in [] (never null, which a server rejects).
	v := Validity(nil)
	if in := v[1].Value.(D)[2]; in.Key != "$in" || in.Value == nil || len(in.Value.(A)) != 0 {
		t.Errorf("Validity(nil) app_org_id condition = %v", v[1].Value)
	}

	// The pipeline marshals (every value is BSON-encodable).
	for _, pl := range []any{p, Phase2Preview(n, nil, &Range{After: model.StringID("x")})} {
		if _, err := bson.MarshalExtJSON(D{{Key: "p", Value: pl}}, true, false); err != nil {
			t.Errorf("marshal pipeline: %v", err)
		}
	}

	prev := Phase2Preview(n, []string{"ao1"}, nil)
	if len(prev) != 8 || prev[6][0].Key != "$lookup" || prev[7][0].Key != "$group" || !reflect.DeepEqual(prev[:6], p[:6]) {
		t.Errorf("preview is not stages 1-6 + $lookup + $group: %s", JSON(prev))
	}
}

// A query comparison matches only its operand's type, so a range is one
// clause per _id type it spans, each bounded by the bounds of its type.
func TestRangeMigratedIDs(t *testing.T) {
	oid := func(last byte) model.ID { return model.ObjectIDOf(primitive.ObjectID{11: last}) }
	str := func(t string) D { return D{{Key: "$type", Value: t}} }
	clause := func(cond D) D { return D{{Key: "_id", Value: cond}} }
	with := func(d D, k string, v any) D { return append(slices.Clone(d), bson.E{Key: k, Value: v}) }
	either := func(a, b D) D { return D{{Key: "$or", Value: A{a, b}}} }
	s, o := str("string"), str("objectId")
	for _, tt := range []struct {
		name string
		r    *Range
		want D
	}{
		{"all", nil, either(clause(s), clause(o))},
		{"open", &Range{}, either(clause(s), clause(o))},
		{"strings only", &Range{After: model.StringID("b"), Through: model.StringID("m")}, clause(with(with(s, "$gt", model.StringID("b")), "$lte", model.StringID("m")))},
		{"ObjectIds only", &Range{After: oid(1), Through: oid(9)}, clause(with(with(o, "$gt", oid(1)), "$lte", oid(9)))},
		{"from a string on", &Range{After: model.StringID("b")}, either(clause(with(s, "$gt", model.StringID("b"))), clause(o))},
		{"from an ObjectId on", &Range{After: oid(1)}, clause(with(o, "$gt", oid(1)))},
		{"through a string", &Range{Through: model.StringID("m")}, clause(with(s, "$lte", model.StringID("m")))},
		{"through an ObjectId", &Range{Through: oid(9)}, either(clause(s), clause(with(o, "$lte", oid(9))))},
		{"across the types", &Range{After: model.StringID("b"), Through: oid(9)}, either(clause(with(s, "$gt", model.StringID("b"))), clause(with(o, "$lte", oid(9))))},
		{"empty", &Range{After: oid(9), Through: model.StringID("m")}, D{{Key: "_id", Value: D{{Key: "$in", Value: A{}}}}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.MigratedIDs(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("MigratedIDs = %v, want %v", got, tt.want)
			}
		})
	}
	if got := (*Range)(nil).IDFilter(); len(got) != 0 {
		t.Errorf("nil IDFilter = %v, want {} (every document of a collection keyed by legacy _id)", got)
	}
}
