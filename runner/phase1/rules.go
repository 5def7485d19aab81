// Package phase1 merges the legacy accounts of one person within one
// organisation into one tenant account.
//
// This file holds every merge rule; phase1.go only finds the groups and
// writes what these rules produce.
//
// # Identity
//
// Two legacy accounts are the same person when their app-orgs belong to the
// same organisation and they share an (auth_type_code, identifier) pair for
// one of the configured identity codes. The rule is applied transitively: a
// group is a connected component of accounts linked by shared pairs. The
// same identifier in two organisations is two people.
//
// # Survivor
//
// The tenant account's _id is one member's legacy _id. If members already
// have tenant accounts (a re-run after new accounts appeared), the survivor
// is chosen among those, so a person never gets a second tenant account.
// Otherwise among all members. The order is: the app earliest in
// phase1.preferred_apps, then the oldest date_created, then the smallest _id
// in MongoDB's sort order (model.ID.Compare): a person may have a string _id
// on one app and an ObjectId on another, and every string sorts before
// every ObjectId, each kind byte by byte. The same order ranks the other
// members ("rule order").
//
// # Memberships
//
// One per distinct app_org_id. Its representative is the survivor if it is on
// that app-org, else the first member on it in rule order; its id is
// model.MembershipID(app_org_id, representative _id), phase 2's scheme (an
// ObjectId _id as its 24 hex digits). Accounts on the
// same app-org are united: permissions by _id, roles by role._id, groups by
// group._id (first occurrence in rule order kept), preferences key by key
// (the representative's value wins; a different value is a conflict), and
// the newest most_recent_client_version (dotted numeric comparison).
// Memberships are ordered: the survivor's first, then by app_org_id.
//
// # Person-level fields
//
// The tenant starts as phase 2's one-to-one transform of the survivor
// (pipelines.OneToOne), so a one-account group is exactly what phase 2
// writes. Then, member by member in rule order:
//
//	auth_types               united by (auth_type_code, identifier), never by code alone
//	mfa_types                united by id
//	devices                  united by _id
//	scopes                   united
//	external_ids,
//	system_configs           united key by key; survivor's value wins a clash (conflict)
//	profile                  survivor's, empty fields ("" or null) filled from the others
//	date_created             earliest
//	date_updated,
//	last_login_date,
//	last_access_token_date   latest
//	verified                 true if any is
//	anonymous                true only if all are
//	anything else, including fields the model does not know:
//	                         survivor's value; if missing or null, the first other member's
//
// A conflict is two different non-empty values where a rule keeps only one
// (a clash of keys, a profile field, a default-rule field, two auth type
// entries with the same pair but different contents, their own id and dates
// aside). Conflicts are counted
// and listed by field and legacy _ids, never by value.
package phase1

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
)

// Member is one legacy account of a group.
type Member struct {
	ID          model.ID
	AppOrgID    string
	AppID       string
	DateCreated time.Time // zero when missing: ranks last
	Doc         bson.D    // the legacy account as stored
}

// Rules are the configurable parts of the merge.
type Rules struct {
	// PreferredApps are app ids, most preferred first.
	PreferredApps []string
}

// Conflict is two different values of one field in one group.
type Conflict struct {
	TenantID model.ID   `json:"tenant_id" bson:"tenant_id"`
	Field    string     `json:"field" bson:"field"`
	Sources  []model.ID `json:"legacy_ids" bson:"legacy_ids"`
}

// Merged is what the rules make of one group.
type Merged struct {
	Tenant    bson.D
	Links     []model.Link
	Conflicts []Conflict
}

func (r Rules) appRank(appID string) int {
	if i := slices.Index(r.PreferredApps, appID); i >= 0 {
		return i
	}
	return len(r.PreferredApps)
}

// compare orders members by the survivor rule.
func (r Rules) compare(a, b Member) int {
	if c := cmp.Compare(r.appRank(a.AppID), r.appRank(b.AppID)); c != 0 {
		return c
	}
	switch {
	case a.DateCreated.IsZero() != b.DateCreated.IsZero():
		if a.DateCreated.IsZero() {
			return 1
		}
		return -1
	case !a.DateCreated.Equal(b.DateCreated):
		return a.DateCreated.Compare(b.DateCreated)
	}
	return a.ID.Compare(b.ID)
}

// Survivor picks the tenant account's _id: among members that already own a
// tenant account (hasTenant) if any, else among all.
func (r Rules) Survivor(members []Member, hasTenant func(id model.ID) bool) model.ID {
	var best *Member
	for pass := 0; pass < 2 && best == nil; pass++ {
		for i := range members {
			m := &members[i]
			if pass == 0 && (hasTenant == nil || !hasTenant(m.ID)) {
				continue
			}
			if best == nil || r.compare(*m, *best) < 0 {
				best = m
			}
		}
	}
	return best.ID
}

// Merge builds the tenant account of a group, its links and its conflicts.
func (r Rules) Merge(orgID string, members []Member, survivorID model.ID) (Merged, error) {
	ordered := slices.Clone(members)
	slices.SortFunc(ordered, func(a, b Member) int {
		switch {
		case a.ID == survivorID:
			return -1
		case b.ID == survivorID:
			return 1
		}
		return r.compare(a, b)
	})
	if len(ordered) == 0 || ordered[0].ID != survivorID {
		return Merged{}, fmt.Errorf("survivor %s is not a member of its group", survivorID)
	}
	cs := &conflicts{tenant: survivorID}

	// Memberships: one per app-org, representative first.
	byAppOrg := map[string][]Member{}
	var appOrgs []string
	for _, m := range ordered {
		if _, ok := byAppOrg[m.AppOrgID]; !ok {
			appOrgs = append(appOrgs, m.AppOrgID)
		}
		byAppOrg[m.AppOrgID] = append(byAppOrg[m.AppOrgID], m)
	}
	slices.SortFunc(appOrgs, func(a, b string) int {
		switch {
		case a == ordered[0].AppOrgID:
			return -1
		case b == ordered[0].AppOrgID:
			return 1
		}
		return strings.Compare(a, b)
	})
	var memberships bson.A
	var links []model.Link
	for _, ao := range appOrgs {
		group := byAppOrg[ao]
		ms, err := r.membership(group, cs)
		if err != nil {
			return Merged{}, err
		}
		memberships = append(memberships, ms)
		mid := model.MembershipID(ao, group[0].ID)
		for _, m := range group {
			links = append(links, model.Link{LegacyID: m.ID, TenantID: survivorID, OrgID: orgID, AppOrgID: ao, MembershipID: mid})
		}
	}
	slices.SortFunc(links, func(a, b model.Link) int { return a.LegacyID.Compare(b.LegacyID) })

	tenant, err := pipelines.OneToOne(ordered[0].Doc, orgID)
	if err != nil {
		return Merged{}, fmt.Errorf("account %s: %w", survivorID, err)
	}
	tenant = model.Set(tenant, model.FieldMemberships, memberships)
	for _, m := range ordered[1:] {
		other, err := pipelines.OneToOne(m.Doc, orgID)
		if err != nil {
			return Merged{}, fmt.Errorf("account %s: %w", m.ID, err)
		}
		for _, e := range other {
			switch e.Key {
			case model.FieldID, model.FieldOrgID, model.FieldMemberships:
				continue
			}
			cur, has := model.Get(tenant, e.Key)
			tenant = model.Set(tenant, e.Key, personRule(e.Key)(cur, has, e.Value, cs.field(e.Key, survivorID, m.ID)))
		}
	}
	return Merged{Tenant: tenant, Links: links, Conflicts: cs.list}, nil
}

// membership merges the app-level fields of the accounts of one app-org;
// group[0] is the representative.
func (r Rules) membership(group []Member, cs *conflicts) (bson.D, error) {
	rep := group[0]
	t, err := pipelines.OneToOne(rep.Doc, "")
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", rep.ID, err)
	}
	v, _ := model.Get(t, model.FieldMemberships)
	arr, _ := v.(bson.A)
	if len(arr) != 1 {
		return nil, fmt.Errorf("account %s: transform made %d memberships", rep.ID, len(arr))
	}
	ms, _ := arr[0].(bson.D)
	for _, m := range group[1:] {
		for _, f := range model.AppLevelFields {
			val, ok := model.Get(m.Doc, f)
			if !ok {
				continue
			}
			cur, has := model.Get(ms, f)
			ms = model.Set(ms, f, membershipRule(f)(cur, has, val, cs.field(model.FieldMemberships+"."+f, rep.ID, m.ID)))
		}
	}
	return ms, nil
}

// A rule combines the tenant's current value (has: present) with another
// member's value; clash records a conflict.
type rule func(cur any, has bool, other any, clash func()) any

func personRule(field string) rule {
	switch field {
	case model.FieldAuthTypes:
		return unionBy(func(v any) string {
			c, _ := model.Lookup(v, "auth_type_code")
			id, _ := model.Lookup(v, "identifier")
			return fmt.Sprint(c) + "\x00" + fmt.Sprint(id)
		}, true)
	case "mfa_types":
		return unionBy(keyAt("id"), false)
	case "devices":
		return unionBy(keyAt("_id"), false)
	case "scopes":
		return unionBy(func(v any) string { return fmt.Sprint(v) }, false)
	case "external_ids", "system_configs":
		return mergeDoc(false)
	case "profile":
		return mergeProfile
	case model.FieldDateCreated:
		return pickTime(true)
	case model.FieldDateUpdated, "last_login_date", "last_access_token_date":
		return pickTime(false)
	case "verified":
		return boolOp(true)
	case "anonymous":
		return boolOp(false)
	}
	return keepFirst
}

func membershipRule(field string) rule {
	switch field {
	case model.FieldPermissions:
		return unionBy(keyAt("_id"), false)
	case model.FieldRoles:
		return unionBy(keyAt("role._id"), false)
	case model.FieldGroups:
		return unionBy(keyAt("group._id"), false)
	case model.FieldPreferences:
		return mergeDoc(false)
	case model.FieldMostRecentClientVersion:
		return newestVersion
	}
	return keepFirst
}

// keepFirst keeps the current value; a missing or null one is filled.
func keepFirst(cur any, has bool, other any, clash func()) any {
	if !has || cur == nil {
		return other
	}
	if other != nil && !equal(cur, other) {
		clash()
	}
	return cur
}

// unionBy unites arrays, de-duplicating elements by key; with clashes, two
// elements with one key but different contents are a conflict.
func unionBy(key func(any) string, clashes bool) rule {
	return func(cur any, has bool, other any, clash func()) any {
		a, aok := cur.(bson.A)
		b, bok := other.(bson.A)
		if !aok || !bok {
			return keepFirst(cur, has, other, clash)
		}
		out := slices.Clone(a)
		seen := map[string]int{}
		for i, v := range out {
			if _, dup := seen[key(v)]; !dup {
				seen[key(v)] = i
			}
		}
		for _, v := range b {
			if i, dup := seen[key(v)]; dup {
				if clashes && !equal(withoutBookkeeping(out[i]), withoutBookkeeping(v)) {
					clash()
				}
				continue
			}
			seen[key(v)] = len(out)
			out = append(out, v)
		}
		return out
	}
}

// withoutBookkeeping drops an entry's own id and dates, which differ between
// accounts for the same login by nature: two entries for one pair clash only
// when what they say differs (credential, params, flags).
func withoutBookkeeping(v any) any {
	d, ok := v.(bson.D)
	if !ok {
		return v
	}
	out := make(bson.D, 0, len(d))
	for _, e := range d {
		switch e.Key {
		case "id", "date_created", "date_updated":
			continue
		}
		out = append(out, e)
	}
	return out
}

func keyAt(path string) func(any) string {
	return func(v any) string {
		k, ok := model.Lookup(v, path)
		if !ok {
			// No key: unite by whole value.
			b, _ := bson.Marshal(bson.D{{Key: "v", Value: v}})
			return "\x01" + string(b)
		}
		return fmt.Sprint(k)
	}
}

// mergeDoc unites documents key by key; with emptyFills, a current "" also
// counts as empty.
func mergeDoc(emptyFills bool) rule {
	return func(cur any, has bool, other any, clash func()) any {
		a, aok := cur.(bson.D)
		b, bok := other.(bson.D)
		if !aok || !bok {
			return keepFirst(cur, has, other, clash)
		}
		out := slices.Clone(a)
		for _, e := range b {
			v, ok := model.Get(out, e.Key)
			switch {
			case !ok || v == nil || emptyFills && v == "":
				out = model.Set(out, e.Key, e.Value)
			case e.Value == nil || emptyFills && e.Value == "":
			case !equal(v, e.Value):
				clash()
			}
		}
		return out
	}
}

// mergeProfile fills the survivor's empty profile fields; the profile's own
// id and dates stay the survivor's without counting as conflicts.
func mergeProfile(cur any, has bool, other any, clash func()) any {
	o, ok := other.(bson.D)
	if !ok {
		return keepFirst(cur, has, other, clash)
	}
	trimmed := make(bson.D, 0, len(o))
	for _, e := range o {
		switch e.Key {
		case "id", "date_created", "date_updated":
			if _, present := model.Lookup(cur, e.Key); present {
				continue
			}
		}
		trimmed = append(trimmed, e)
	}
	return mergeDoc(true)(cur, has, trimmed, clash)
}

// pickTime keeps the earliest (or latest) date; missing and null lose.
func pickTime(earliest bool) rule {
	return func(cur any, has bool, other any, clash func()) any {
		a, aok := cur.(primitive.DateTime)
		b, bok := other.(primitive.DateTime)
		switch {
		case !bok:
			return keepFirst(cur, has, other, clash)
		case !aok:
			if has && cur != nil {
				return keepFirst(cur, has, other, clash)
			}
			return other
		case earliest && b < a, !earliest && b > a:
			return other
		}
		return cur
	}
}

// boolOp is "any is true" (or) or "all are true" (and).
func boolOp(or bool) rule {
	return func(cur any, has bool, other any, clash func()) any {
		a, aok := cur.(bool)
		b, bok := other.(bool)
		if !aok || !bok {
			return keepFirst(cur, has, other, clash)
		}
		if or {
			return a || b
		}
		return a && b
	}
}

func newestVersion(cur any, has bool, other any, clash func()) any {
	a, aok := cur.(string)
	b, bok := other.(string)
	if !aok || !bok {
		return keepFirst(cur, has, other, clash)
	}
	if compareVersions(b, a) > 0 {
		return b
	}
	return a
}

// compareVersions compares dotted versions numerically part by part; a part
// that is not a number compares as text.
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(pa), len(pb)); i++ {
		if i >= len(pa) {
			return -1
		}
		if i >= len(pb) {
			return 1
		}
		na, ea := strconv.Atoi(pa[i])
		nb, eb := strconv.Atoi(pb[i])
		if ea == nil && eb == nil {
			if c := cmp.Compare(na, nb); c != 0 {
				return c
			}
			continue
		}
		if c := strings.Compare(pa[i], pb[i]); c != 0 {
			return c
		}
	}
	return 0
}

type conflicts struct {
	tenant model.ID
	list   []Conflict
}

// field returns the clash callback for one field between two accounts.
func (c *conflicts) field(name string, a, b model.ID) func() {
	return func() {
		for i := range c.list {
			if c.list[i].Field == name {
				if !slices.Contains(c.list[i].Sources, b) {
					c.list[i].Sources = append(c.list[i].Sources, b)
				}
				return
			}
		}
		c.list = append(c.list, Conflict{TenantID: c.tenant, Field: name, Sources: []model.ID{a, b}})
	}
}

func equal(a, b any) bool {
	ba, err1 := bson.Marshal(bson.D{{Key: "v", Value: a}})
	bb, err2 := bson.Marshal(bson.D{{Key: "v", Value: b}})
	return err1 == nil && err2 == nil && bytes.Equal(ba, bb)
}
