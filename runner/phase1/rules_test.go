package phase1

import (
	"context"
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

// entry is an auth_types entry; unverified, when given, is its unverified
// field.
func entry(code, identifier string, unverified ...any) bson.D {
	e := authType(code, identifier)
	for _, u := range unverified {
		e = append(e, bson.E{Key: "unverified", Value: u})
	}
	return e
}

// holding is an account of org "o" with these auth_types entries.
type holding struct {
	id      string
	entries []bson.D
}

// groupsOf groups accounts by the identity rules, through the very scan of
// the keys both paths run, and returns the groups and what the scan saw.
func groupsOf(t *testing.T, r Rules, accounts []holding) ([][]string, IdentityReport) {
	t.Helper()
	ctx := context.Background()
	keys := newKeyTable(&memTable{})
	for _, a := range accounts {
		ats := bson.A{}
		for _, e := range a.entries {
			ats = append(ats, e)
		}
		var docs []keyDoc
		for _, id := range r.Identities(ats) {
			docs = append(docs, keys.doc("o", id, sid(a.id)))
		}
		if err := keys.add(ctx, docs); err != nil {
			t.Fatal(err)
		}
	}
	uf := newComponents(0)
	rep, err := keys.scan(ctx, func(_ string, linked []model.ID) error {
		for _, a := range linked[1:] {
			uf.union(linked[0], a)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var groups [][]string
	for _, m := range uf.members() {
		if len(groups) == 0 || groups[len(groups)-1][0] != m.G.Text() {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], m.ID.Text())
	}
	return groups, rep
}

// Who is linked to whom: only identities held verified on every side link,
// and identifiers compare as configured per code.
func TestIdentityLinks(t *testing.T) {
	codes := []string{"email", "phone"}
	exact := Rules{IdentityCodes: codes}
	lower := Rules{IdentityCodes: codes, Normalize: map[string]Normalization{"email": LowerCase}}
	nfc := Rules{IdentityCodes: codes, Normalize: map[string]Normalization{"email": UnicodeNFC}}
	both := Rules{IdentityCodes: codes, Normalize: map[string]Normalization{"email": LowerCase | UnicodeNFC}}
	const precomposed, decomposed = "jos\u00e9@x.org", "jose\u0301@x.org"
	tests := []struct {
		name     string
		rules    Rules
		accounts []holding
		groups   [][]string
		// unverified identities, accounts held apart, variant classes
		unverified, heldApart, variants int
	}{
		{"verified on both sides links", exact, []holding{
			{"a", []bson.D{entry("email", "v@x.org")}}, {"b", []bson.D{entry("email", "v@x.org", false)}},
		}, [][]string{{"a", "b"}}, 0, 0, 0},
		{"unverified on one side: the pre-hijacked account stays apart", exact, []holding{
			{"a1", []bson.D{entry("email", "victim@e.com", true)}}, {"v1", []bson.D{entry("email", "victim@e.com")}},
		}, nil, 1, 1, 0},
		{"unverified on both sides", exact, []holding{
			{"a", []bson.D{entry("email", "v@x.org", true)}}, {"b", []bson.D{entry("email", "v@x.org", true)}},
		}, nil, 1, 2, 0},
		{"two verified and one unverified: the two link", exact, []holding{
			{"a", []bson.D{entry("email", "v@x.org")}}, {"b", []bson.D{entry("email", "v@x.org")}}, {"c", []bson.D{entry("email", "v@x.org", true)}},
		}, [][]string{{"a", "b"}}, 1, 1, 0},
		{"a chain with one unverified link is cut there", exact, []holding{
			{"a", []bson.D{entry("email", "v@x.org")}},
			{"b", []bson.D{entry("email", "v@x.org"), entry("phone", "+1")}},
			{"c", []bson.D{entry("phone", "+1", true)}},
		}, [][]string{{"a", "b"}}, 1, 1, 0},
		{"an account holding it verified once holds it verified", exact, []holding{
			{"a", []bson.D{entry("email", "v@x.org", true), entry("email", "v@x.org")}}, {"b", []bson.D{entry("email", "v@x.org")}},
		}, [][]string{{"a", "b"}}, 0, 0, 0},
		{"an unverified field that is not a boolean fails closed", exact, []holding{
			{"a", []bson.D{entry("email", "v@x.org", "no")}}, {"b", []bson.D{entry("email", "v@x.org", int32(0))}}, {"c", []bson.D{entry("email", "v@x.org", nil)}},
		}, nil, 1, 2, 0},
		{"case differs: two people by default, counted as variants", exact, []holding{
			{"a", []bson.D{entry("email", "Bob@x.com")}}, {"b", []bson.D{entry("email", "bob@x.com")}},
		}, nil, 0, 0, 1},
		{"case differs, email in lower case: one person", lower, []holding{
			{"a", []bson.D{entry("email", "Bob@x.com")}}, {"b", []bson.D{entry("email", "bob@x.com")}},
		}, [][]string{{"a", "b"}}, 0, 0, 0},
		{"lower case is per code: phone compares exactly", lower, []holding{
			{"a", []bson.D{entry("phone", "ext-A")}}, {"b", []bson.D{entry("phone", "ext-a")}},
		}, nil, 0, 0, 1},
		{"Unicode form differs: two people by default, counted as variants", exact, []holding{
			{"a", []bson.D{entry("email", precomposed)}}, {"b", []bson.D{entry("email", decomposed)}},
		}, nil, 0, 0, 1},
		{"Unicode form differs, email in NFC: one person", nfc, []holding{
			{"a", []bson.D{entry("email", precomposed)}}, {"b", []bson.D{entry("email", decomposed)}},
		}, [][]string{{"a", "b"}}, 0, 0, 0},
		{"NFC does not fold case: still a variant", nfc, []holding{
			{"a", []bson.D{entry("email", "Bob@x.com")}}, {"b", []bson.D{entry("email", "bob@x.com")}},
		}, nil, 0, 0, 1},
		{"both normalisations: case and form fold together, no variant left", both, []holding{
			{"a", []bson.D{entry("email", "JOS\u00c9@x.org")}}, {"b", []bson.D{entry("email", decomposed)}}, {"c", []bson.D{entry("email", precomposed)}},
		}, [][]string{{"a", "b", "c"}}, 0, 0, 0},
		{"NFC: a dotted capital I, precomposed or not, is one identity", nfc, []holding{
			{"a", []bson.D{entry("email", "\u0130x@x.org")}}, {"b", []bson.D{entry("email", "I\u0307x@x.org")}},
		}, [][]string{{"a", "b"}}, 0, 0, 0},
		{"both normalisations: a dotted capital I lower-cases the same either way", both, []holding{
			{"a", []bson.D{entry("email", "\u0130x@x.org")}}, {"b", []bson.D{entry("email", "I\u0307x@x.org")}}, {"c", []bson.D{entry("email", "ix@x.org")}},
		}, [][]string{{"a", "b", "c"}}, 0, 0, 0},
		{"exact: a dotted capital I in two forms is a variant", exact, []holding{
			{"a", []bson.D{entry("email", "\u0130x@x.org")}}, {"b", []bson.D{entry("email", "I\u0307x@x.org")}},
		}, nil, 0, 0, 1},
		{"a normalised identity links only verified holders", lower, []holding{
			{"a", []bson.D{entry("email", "Victim@e.com", true)}}, {"b", []bson.D{entry("email", "victim@e.com")}},
		}, nil, 1, 1, 0},
		{"variants held unverified are not counted", exact, []holding{
			{"a", []bson.D{entry("email", "Bob@x.com", true)}}, {"b", []bson.D{entry("email", "bob@x.com")}},
		}, nil, 0, 0, 0},
		{"variants of one account link nobody new", exact, []holding{
			{"a", []bson.D{entry("email", "Bob@x.com"), entry("email", "bob@x.com")}},
		}, nil, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			groups, rep := groupsOf(t, tt.rules, tt.accounts)
			if !reflect.DeepEqual(groups, tt.groups) {
				t.Errorf("groups = %v, want %v", groups, tt.groups)
			}
			if rep.Unverified != tt.unverified || rep.HeldApart != tt.heldApart || rep.Variants != tt.variants {
				t.Errorf("report: %d unverified identities, %d accounts held apart, %d variants; want %d, %d, %d (%+v)",
					rep.Unverified, rep.HeldApart, rep.Variants, tt.unverified, tt.heldApart, tt.variants, rep)
			}
			for _, u := range rep.FirstUnverified {
				if u.Code == "" || len(u.HeldApart) == 0 {
					t.Errorf("unverified identity listed without its code or accounts: %+v", u)
				}
			}
		})
	}
}

// Within a merged group a verified auth type entry beats an unverified one
// for the same pair, whichever account survives, and the conflict says
// which account's entry was kept and why.
func TestVerifiedEntryWins(t *testing.T) {
	cred := func(e bson.D, c string) bson.D { return append(e, bson.E{Key: "credential_id", Value: c}) }
	phone := entry("phone", "+1")
	tests := []struct {
		name     string
		survivor string // the oldest account survives
		a, b     bson.D // email entries of a (created day 1) and b (day 2)
		wantCred string
		kept     string
		why      Why
	}{
		{"survivor unverified, other verified", "a", cred(entry("email", "v@x.org", true), "cred-a"), cred(entry("email", "v@x.org"), "cred-b"), "cred-b", "b", WhyVerified},
		{"survivor verified, other unverified", "a", cred(entry("email", "v@x.org"), "cred-a"), cred(entry("email", "v@x.org", true), "cred-b"), "cred-a", "a", WhyVerified},
		{"both verified: the survivor's", "a", cred(entry("email", "v@x.org"), "cred-a"), cred(entry("email", "v@x.org"), "cred-b"), "cred-a", "a", WhyRuleOrder},
		{"both unverified: the survivor's", "a", cred(entry("email", "v@x.org", true), "cred-a"), cred(entry("email", "v@x.org", true), "cred-b"), "cred-a", "a", WhyRuleOrder},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := account("a", "ao1", 1, bson.E{Key: "auth_types", Value: bson.A{phone, tt.a}})
			b := account("b", "ao2", 2, bson.E{Key: "auth_types", Value: bson.A{phone, tt.b}})
			for _, order := range [][]Member{{a, b}, {b, a}} {
				got, err := Rules{}.Merge("o", order, Rules{}.Survivor(order, nil))
				if err != nil {
					t.Fatal(err)
				}
				ats := field(t, got.Tenant, "auth_types").(bson.A)
				if len(ats) != 2 {
					t.Fatalf("auth types = %v, want the phone and one email", ats)
				}
				if c, _ := model.Lookup(ats[1], "credential_id"); c != tt.wantCred {
					t.Errorf("email entry kept has credential %v, want %s", c, tt.wantCred)
				}
				var cf *Conflict
				for i := range got.Conflicts {
					if got.Conflicts[i].Field == "auth_types" {
						cf = &got.Conflicts[i]
					}
				}
				if cf == nil || cf.Kept != sid(tt.kept) || cf.Why != tt.why || len(cf.Sources) != 2 {
					t.Errorf("conflict = %+v, want auth_types between a and b, %s's kept (%s)", cf, tt.kept, tt.why)
				}
			}
		})
	}
	// Three members: each dropped entry is a conflict of its own, naming
	// the entry kept and why that one.
	three := []struct {
		name       string
		a, b, c    bool // verified
		wantCred   string
		wantWhy    map[string]Why // dropped account -> why
		normalised bool
	}{
		{"a verified entry beats the survivor's and another unverified one", false, false, true, "cred-c", map[string]Why{"a": WhyVerified, "b": WhyVerified}, false},
		{"the survivor's verified entry beats an unverified one, and a verified one by rule order", true, false, true, "cred-a", map[string]Why{"b": WhyVerified, "c": WhyRuleOrder}, false},
		{"with email in lower case, Bob@, bob@ and BOB@ are one login", true, true, false, "cred-a", map[string]Why{"b": WhyRuleOrder, "c": WhyVerified}, true},
	}
	for _, tt := range three {
		t.Run(tt.name, func(t *testing.T) {
			rules, idents := Rules{}, [3]string{"v@x.org", "v@x.org", "v@x.org"}
			if tt.normalised {
				rules = Rules{IdentityCodes: []string{"email"}, Normalize: map[string]Normalization{"email": LowerCase}}
				idents = [3]string{"Bob@x.org", "bob@x.org", "BOB@x.org"}
			}
			var members []Member
			for i, v := range []bool{tt.a, tt.b, tt.c} {
				id := string(rune('a' + i))
				members = append(members, account(id, "ao"+id, i+1, bson.E{Key: "auth_types", Value: bson.A{phone, cred(entry("email", idents[i], !v), "cred-"+id)}}))
			}
			got, err := rules.Merge("o", members, sid("a"))
			if err != nil {
				t.Fatal(err)
			}
			ats := field(t, got.Tenant, "auth_types").(bson.A)
			if cr, _ := model.Lookup(ats[1], "credential_id"); len(ats) != 2 || cr != tt.wantCred {
				t.Errorf("auth types %v; want the phone and the entry with %s", ats, tt.wantCred)
			}
			why := map[string]Why{}
			for _, c := range got.Conflicts {
				if c.Field != "auth_types" || len(c.Sources) != 2 || c.Sources[0] != c.Kept || c.Kept.Text() != tt.wantCred[len("cred-"):] {
					t.Errorf("conflict %+v does not name the kept entry's account first", c)
					continue
				}
				why[c.Sources[1].Text()] = c.Why
			}
			if !reflect.DeepEqual(why, tt.wantWhy) {
				t.Errorf("conflicts by dropped account %v, want %v", why, tt.wantWhy)
			}
		})
	}
}
