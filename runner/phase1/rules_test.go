package phase1

import (
	"reflect"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
)

func date(day int) primitive.DateTime {
	return primitive.NewDateTimeFromTime(time.Date(2020, 1, day, 0, 0, 0, 0, time.UTC))
}

func authType(code, identifier string) bson.D {
	return bson.D{{Key: "id", Value: code + "-" + identifier}, {Key: "auth_type_code", Value: code}, {Key: "identifier", Value: identifier}}
}

// sid is the ID of a string _id.
func sid(s string) model.ID { return model.StringID(s) }

// account builds a legacy account with a string or ObjectId _id; extra
// fields are appended in order.
func account(id any, appOrg string, created int, extra ...bson.E) Member {
	d := bson.D{{Key: "_id", Value: id}, {Key: "app_org_id", Value: appOrg}, {Key: "date_created", Value: date(created)}}
	d = append(d, extra...)
	mid, _ := model.IDOfValue(id)
	return Member{ID: mid, AppOrgID: appOrg, AppID: "app-" + appOrg, DateCreated: date(created).Time(), Doc: d}
}

func field(t *testing.T, d bson.D, path string) any {
	t.Helper()
	v, ok := model.Lookup(d, path)
	if !ok {
		t.Fatalf("no field %s in %v", path, d)
	}
	return v
}

func memberships(t *testing.T, d bson.D) []bson.D {
	t.Helper()
	var out []bson.D
	for _, m := range field(t, d, model.FieldMemberships).(bson.A) {
		out = append(out, m.(bson.D))
	}
	return out
}

func TestSurvivor(t *testing.T) {
	a := account("a", "ao1", 5)
	b := account("b", "ao2", 3)
	c := account("c", "ao3", 3)
	// ObjectIds sort after every string, whatever their digits.
	oid1, _ := primitive.ObjectIDFromHex("000000000000000000000001")
	oid2, _ := primitive.ObjectIDFromHex("000000000000000000000002")
	o1, o2 := account(oid1, "ao4", 3), account(oid2, "ao5", 3)
	z := account("zzz", "ao6", 3)
	tests := []struct {
		name      string
		rules     Rules
		members   []Member
		hasTenant map[model.ID]bool
		want      model.ID
	}{
		{"oldest date_created", Rules{}, []Member{a, b}, nil, sid("b")},
		{"smallest _id breaks a tie", Rules{}, []Member{c, b}, nil, sid("b")},
		{"preferred app first", Rules{PreferredApps: []string{"app-ao1"}}, []Member{a, b, c}, nil, sid("a")},
		{"second preferred app", Rules{PreferredApps: []string{"nope", "app-ao3"}}, []Member{a, b, c}, nil, sid("c")},
		{"existing tenant wins", Rules{}, []Member{a, b, c}, map[model.ID]bool{sid("c"): true}, sid("c")},
		{"rule among existing tenants", Rules{}, []Member{a, b, c}, map[model.ID]bool{sid("a"): true, sid("c"): true}, sid("c")},
		{"missing date ranks last", Rules{}, []Member{{ID: sid("0"), AppOrgID: "ao1"}, a}, nil, sid("a")},
		{"a string _id before an ObjectId", Rules{}, []Member{o1, z}, nil, sid("zzz")},
		{"ObjectIds by their bytes", Rules{}, []Member{o2, o1}, nil, model.ObjectIDOf(oid1)},
		{"an ObjectId account can survive", Rules{}, []Member{o1, a}, nil, model.ObjectIDOf(oid1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, order := range [][]Member{tt.members, reversed(tt.members)} {
				if got := tt.rules.Survivor(order, func(id model.ID) bool { return tt.hasTenant[id] }); got != tt.want {
					t.Errorf("Survivor = %s, want %s", got, tt.want)
				}
			}
		})
	}
}

func reversed(m []Member) []Member {
	out := make([]Member, len(m))
	for i := range m {
		out[len(m)-1-i] = m[i]
	}
	return out
}

// A one-account group is exactly phase 2's one-to-one transform.
func TestOneMemberGroupEqualsPhase2(t *testing.T) {
	m := account("a", "ao1", 1,
		bson.E{Key: "permissions", Value: bson.A{bson.D{{Key: "_id", Value: "p1"}}}},
		bson.E{Key: "auth_types", Value: bson.A{authType("email", "x@example.org")}},
		bson.E{Key: "legacy_flag", Value: "kept"})
	got, err := Rules{}.Merge("org1", []Member{m}, sid("a"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := pipelines.OneToOne(m.Doc, "org1")
	if err != nil {
		t.Fatal(err)
	}
	if !equal(got.Tenant, want) {
		t.Errorf("merge of one = %v\nOneToOne    = %v", got.Tenant, want)
	}
	if len(got.Links) != 1 || got.Links[0] != (model.Link{LegacyID: sid("a"), TenantID: sid("a"), OrgID: "org1", AppOrgID: "ao1", MembershipID: "ao1_a"}) {
		t.Errorf("links = %+v", got.Links)
	}
}

func TestMembershipsOnePerAppOrg(t *testing.T) {
	role := func(id string) bson.D {
		return bson.D{{Key: "role", Value: bson.D{{Key: "_id", Value: id}}}, {Key: "active", Value: true}}
	}
	a := account("a", "ao1", 2, bson.E{Key: "roles", Value: bson.A{role("r1"), role("r2")}},
		bson.E{Key: "preferences", Value: bson.D{{Key: "theme", Value: "dark"}, {Key: "lang", Value: "en"}}},
		bson.E{Key: "most_recent_client_version", Value: "1.9.0"})
	b := account("b", "ao1", 3, bson.E{Key: "roles", Value: bson.A{role("r2"), role("r3")}},
		bson.E{Key: "preferences", Value: bson.D{{Key: "theme", Value: "light"}, {Key: "font", Value: "big"}}},
		bson.E{Key: "most_recent_client_version", Value: "1.10.0"})
	c := account("c", "ao2", 1)
	got, err := Rules{}.Merge("org1", []Member{a, b, c}, sid("c"))
	if err != nil {
		t.Fatal(err)
	}
	ms := memberships(t, got.Tenant)
	if len(ms) != 2 {
		t.Fatalf("memberships = %v, want 2 (one per app-org)", ms)
	}
	if ms[0][0].Value != "ao2_c" || ms[1][0].Value != "ao1_a" {
		t.Errorf("membership ids = %v, %v; want ao2_c (survivor first) then ao1_a (oldest on ao1)", ms[0][0].Value, ms[1][0].Value)
	}
	roles := field(t, ms[1], "roles").(bson.A)
	var ids []any
	for _, r := range roles {
		v, _ := model.Lookup(r, "role._id")
		ids = append(ids, v)
	}
	if !reflect.DeepEqual(ids, []any{"r1", "r2", "r3"}) {
		t.Errorf("roles = %v, want r1 r2 r3 de-duplicated", ids)
	}
	prefs := field(t, ms[1], "preferences").(bson.D)
	if v, _ := model.Get(prefs, "theme"); v != "dark" {
		t.Errorf("preference theme = %v, want the representative's", v)
	}
	if v, _ := model.Get(prefs, "font"); v != "big" {
		t.Errorf("preference font = %v, want filled from the other account", v)
	}
	if v := field(t, ms[1], "most_recent_client_version"); v != "1.10.0" {
		t.Errorf("most_recent_client_version = %v, want the newest 1.10.0", v)
	}
	linkTo := map[string]string{}
	for _, l := range got.Links {
		linkTo[l.LegacyID.Text()] = l.MembershipID
		if l.TenantID != sid("c") {
			t.Errorf("link %+v does not point at the survivor", l)
		}
	}
	if !reflect.DeepEqual(linkTo, map[string]string{"a": "ao1_a", "b": "ao1_a", "c": "ao2_c"}) {
		t.Errorf("links = %v", linkTo)
	}
	if !hasConflict(got.Conflicts, "org_apps_memberships.preferences") {
		t.Errorf("conflicts = %+v, want the theme clash", got.Conflicts)
	}
}

func hasConflict(cs []Conflict, f string) bool {
	for _, c := range cs {
		if c.Field == f {
			return true
		}
	}
	return false
}

func TestPersonLevelRules(t *testing.T) {
	a := account("a", "ao1", 5,
		bson.E{Key: "auth_types", Value: bson.A{authType("email", "one@x.org"), authType("phone", "+1")}},
		bson.E{Key: "devices", Value: bson.A{bson.D{{Key: "_id", Value: "d1"}}}},
		bson.E{Key: "scopes", Value: bson.A{"s1"}},
		bson.E{Key: "external_ids", Value: bson.D{{Key: "uin", Value: "1"}}},
		bson.E{Key: "profile", Value: bson.D{{Key: "id", Value: "pa"}, {Key: "first_name", Value: "A"}, {Key: "phone", Value: ""}}},
		bson.E{Key: "verified", Value: false},
		bson.E{Key: "anonymous", Value: false},
		bson.E{Key: "date_updated", Value: date(6)},
		bson.E{Key: "username", Value: "alpha"},
		bson.E{Key: "unknown_field", Value: "from a"})
	b := account("b", "ao2", 7,
		bson.E{Key: "auth_types", Value: bson.A{authType("email", "one@x.org"), authType("email", "two@x.org")}},
		bson.E{Key: "devices", Value: bson.A{bson.D{{Key: "_id", Value: "d1"}}, bson.D{{Key: "_id", Value: "d2"}}}},
		bson.E{Key: "scopes", Value: bson.A{"s1", "s2"}},
		bson.E{Key: "external_ids", Value: bson.D{{Key: "uin", Value: "2"}, {Key: "net", Value: "n"}}},
		bson.E{Key: "profile", Value: bson.D{{Key: "id", Value: "pb"}, {Key: "first_name", Value: "B"}, {Key: "phone", Value: "555"}}},
		bson.E{Key: "verified", Value: true},
		bson.E{Key: "anonymous", Value: true},
		bson.E{Key: "date_updated", Value: date(9)},
		bson.E{Key: "last_login_date", Value: date(8)},
		bson.E{Key: "other_unknown", Value: int32(3)})
	got, err := Rules{}.Merge("org1", []Member{b, a}, sid("a"))
	if err != nil {
		t.Fatal(err)
	}
	tn := got.Tenant
	var pairs []string
	for _, at := range field(t, tn, "auth_types").(bson.A) {
		c, _ := model.Lookup(at, "auth_type_code")
		i, _ := model.Lookup(at, "identifier")
		pairs = append(pairs, c.(string)+":"+i.(string))
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"auth types by (code, identifier), second email kept", pairs, []string{"email:one@x.org", "phone:+1", "email:two@x.org"}},
		{"devices by _id", len(field(t, tn, "devices").(bson.A)), 2},
		{"scopes united", field(t, tn, "scopes"), bson.A{"s1", "s2"}},
		{"external id: survivor wins", field(t, tn, "external_ids.uin"), "1"},
		{"external id: filled", field(t, tn, "external_ids.net"), "n"},
		{"profile: survivor's name", field(t, tn, "profile.first_name"), "A"},
		{"profile: empty filled", field(t, tn, "profile.phone"), "555"},
		{"profile: survivor's id", field(t, tn, "profile.id"), "pa"},
		{"date_created earliest", field(t, tn, "date_created"), date(5)},
		{"date_updated latest", field(t, tn, "date_updated"), date(9)},
		{"last_login_date from the other", field(t, tn, "last_login_date"), date(8)},
		{"verified if any", field(t, tn, "verified"), true},
		{"anonymous only if all", field(t, tn, "anonymous"), false},
		{"username survivor", field(t, tn, "username"), "alpha"},
		{"unknown field kept", field(t, tn, "unknown_field"), "from a"},
		{"other's unknown field kept", field(t, tn, "other_unknown"), int32(3)},
		{"org", field(t, tn, "org_id"), "org1"},
		{"_id is the survivor's", field(t, tn, "_id"), "a"},
		{"no app_org_id at person level", func() bool { _, ok := model.Get(tn, "app_org_id"); return ok }(), false},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %#v, want %#v", tt.name, tt.got, tt.want)
		}
	}
	for _, f := range []string{"external_ids", "profile"} {
		if !hasConflict(got.Conflicts, f) {
			t.Errorf("no conflict recorded for %s: %+v", f, got.Conflicts)
		}
	}
	if hasConflict(got.Conflicts, "auth_types") || hasConflict(got.Conflicts, "date_updated") {
		t.Errorf("decided fields counted as conflicts: %+v", got.Conflicts)
	}
}

func TestAuthTypeClashIsAConflict(t *testing.T) {
	x := authType("email", "one@x.org")
	y := append(authType("email", "one@x.org"), bson.E{Key: "params", Value: bson.D{{Key: "k", Value: 1}}})
	a := account("a", "ao1", 1, bson.E{Key: "auth_types", Value: bson.A{x}})
	b := account("b", "ao2", 2, bson.E{Key: "auth_types", Value: bson.A{y}})
	got, err := Rules{}.Merge("o", []Member{a, b}, sid("a"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(field(t, got.Tenant, "auth_types").(bson.A)); n != 1 || !hasConflict(got.Conflicts, "auth_types") {
		t.Errorf("auth types %d, conflicts %+v; want one entry and a conflict", n, got.Conflicts)
	}
}

func TestMergeIsDeterministic(t *testing.T) {
	a := account("a", "ao1", 1, bson.E{Key: "scopes", Value: bson.A{"x"}})
	b := account("b", "ao2", 2, bson.E{Key: "scopes", Value: bson.A{"y"}})
	c := account("c", "ao1", 3, bson.E{Key: "scopes", Value: bson.A{"z"}})
	first, err := Rules{}.Merge("o", []Member{a, b, c}, sid("a"))
	if err != nil {
		t.Fatal(err)
	}
	for _, order := range [][]Member{{c, b, a}, {b, a, c}} {
		got, err := Rules{}.Merge("o", order, sid("a"))
		if err != nil {
			t.Fatal(err)
		}
		if !equal(got.Tenant, first.Tenant) || !reflect.DeepEqual(got.Links, first.Links) {
			t.Errorf("merge depends on input order:\n%v\n%v", got.Tenant, first.Tenant)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.10.0", "1.9.0", 1}, {"2.0", "2.0.0", -1}, {"1.2.3", "1.2.3", 0}, {"1.2.beta", "1.2.alpha", 1},
	}
	for _, tt := range tests {
		if got := compareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("compareVersions(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
