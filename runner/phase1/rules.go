// Package phase1 merges the legacy accounts of one person within one
// organisation into one tenant account.
//
// This file holds every merge rule; phase1.go only finds the groups and
// writes what these rules produce.
//
// # Identity
//
// Two legacy accounts are the same person when their app-orgs belong to the
// same organisation and both hold one identity verified. An identity is an
// auth_types entry's (auth_type_code, identifier) for one of the identity
// codes (Rules.IdentityCodes), its identifier compared as Rules.Normalize
// says for its code: exactly, byte for byte, unless configured. The rule is
// applied transitively: a group is a connected component of accounts linked
// by identities they hold verified. The same identifier in two
// organisations is two people.
//
// An entry is verified only when its unverified field is missing, null or
// false (Verified): any other value links nobody. An unverified identifier
// proves nothing: an attacker can sign up first on one app with a victim's
// email, never confirm it, and wait for the merge ("pre-hijacked account");
// joining on it would hand the attacker the victim's data. So an identity
// links the accounts that hold it verified (Link); the accounts holding it
// only unverified stay apart, and are reported by legacy _id for review
// (Shared.HeldApart).
//
// Identifiers that differ only by case or Unicode form (equal in lower case
// and NFC: "Bob@x.com" and "bob@x.com") are two identities unless
// Rules.Normalize says otherwise for their code: whether they name one
// person depends on how the legacy service compared them at sign-in, which
// only the operator knows. Such identifiers held verified by two or more
// accounts are reported (Variants), so the operator sees what normalising
// would link before turning it on.
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
//	auth_types               united by login: the identity as compared (normalised as
//	                         configured), the exact (code, identifier) for other codes,
//	                         never the code alone; of the entries for one login the first
//	                         verified one is kept, else the first in rule order (each other
//	                         one that differs is a conflict naming the account kept and why)
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
// aside). Nothing is lost by it: every legacy account stays as it was in
// the legacy collection. Conflicts are counted and listed by field and
// legacy _ids, never by value, with the rule that decided (Why) and, for
// auth types, the account whose entry was kept.
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
	"golang.org/x/text/unicode/norm"

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
	// IdentityCodes are the auth_type_codes whose entries are identities.
	IdentityCodes []string
	// Normalize is how the identifiers of a code compare; a code it does
	// not name compares exactly.
	Normalize map[string]Normalization
	// MergeExisting merges a group whose accounts hold two or more tenant
	// accounts already (MergesTenants).
	MergeExisting bool
}

// MergesTenants says whether a group whose accounts hold `existing` tenant
// accounts already is merged. A group holding two or more is one a new
// shared identity links after they were migrated: the service may have
// written each of them since, so merging would overwrite or delete what it
// wrote. It is reported by the tenant accounts' _ids and left as it is,
// unless the operator said to merge such groups (identity.merge_existing,
// safe only while the service writes no tenant accounts).
func (r Rules) MergesTenants(existing int) bool { return existing < 2 || r.MergeExisting }

// KeepsStored says whether a stored tenant account stays as it is instead
// of being replaced by merged, the group's tenant account made anew: when
// the service wrote it after every legacy account of the group (its
// date_updated is later than merged's, the latest of theirs). The same
// rule as phase 2's refresh, but for a tie, which replaces: an account
// joining a group may be older than the tenant account it joins.
func KeepsStored(stored, merged bson.Raw) bool {
	return model.WrittenAfter(stored, merged.Lookup(model.FieldDateUpdated))
}

// Normalization is how the identifiers of one code are compared; the zero
// value compares them exactly.
type Normalization uint8

// The normalisations, which combine.
const (
	// LowerCase compares identifiers in lower case (Unicode's, not only
	// ASCII's).
	LowerCase Normalization = 1 << iota
	// UnicodeNFC compares identifiers in Unicode Normalization Form C, so
	// a precomposed "é" and "e" followed by a combining acute are one.
	UnicodeNFC
)

// variantForm is the form in which identifiers that differ only by case
// or Unicode form are equal.
const variantForm = LowerCase | UnicodeNFC

// Apply normalises an identifier: NFC, then lower case, then NFC again
// (lower-casing can leave a string that is not in NFC, and "I" with a
// combining dot must lower-case as the precomposed "İ" does).
func (n Normalization) Apply(s string) string {
	if n&UnicodeNFC != 0 {
		s = norm.NFC.String(s)
	}
	if n&LowerCase != 0 {
		s = strings.ToLower(s)
		if n&UnicodeNFC != 0 {
			s = norm.NFC.String(s)
		}
	}
	return s
}

// normalizationNames spell the normalisations as configuration does.
var normalizationNames = []struct {
	n    Normalization
	name string
}{{LowerCase, "lower_case"}, {UnicodeNFC, "unicode_nfc"}}

// String spells n as configuration does: "exact", or the normalisations
// joined by "+".
func (n Normalization) String() string {
	var parts []string
	for _, x := range normalizationNames {
		if n&x.n != 0 {
			parts = append(parts, x.name)
		}
	}
	if len(parts) == 0 {
		return "exact"
	}
	return strings.Join(parts, "+")
}

// Identity is one auth_types entry as grouping compares it.
type Identity struct {
	Code string
	// Key is the identifier as compared (Rules.Normalize).
	Key string
	// Variant is the Key in lower case and NFC: identities of one code
	// with one Variant but different Keys differ only by case or Unicode
	// form.
	Variant  string
	Verified bool
}

// Identity is the identity of one auth_types entry, false when its code is
// not an identity code. unverified is the entry's unverified field (nil
// when missing).
func (r Rules) Identity(code, identifier string, unverified any) (Identity, bool) {
	if !slices.Contains(r.IdentityCodes, code) {
		return Identity{}, false
	}
	key := r.Normalize[code].Apply(identifier)
	// The variant form of the key, not of the identifier: identifiers that
	// compare equal must fall in one class (NFC alone keeps "İ" and "I"
	// with a combining dot one, which lower case would tell apart).
	return Identity{Code: code, Key: key, Variant: variantForm.Apply(key), Verified: Verified(unverified)}, true
}

// Identities are the identities of a valid legacy account's auth_types
// (pipelines.Invalid checked their shape), in their order.
func (r Rules) Identities(authTypes bson.A) []Identity {
	var out []Identity
	for _, at := range authTypes {
		code, _ := model.Lookup(at, "auth_type_code")
		ident, _ := model.Lookup(at, "identifier")
		u, _ := model.Lookup(at, fieldUnverified)
		c, _ := code.(string)
		s, _ := ident.(string)
		if id, ok := r.Identity(c, s, u); ok {
			out = append(out, id)
		}
	}
	return out
}

// fieldUnverified is the auth_types entry's flag.
const fieldUnverified = "unverified"

// Verified says whether an entry whose unverified field holds v (nil when
// missing) is verified: only a missing, null or false one is. Any other
// value, a string or a number that a bad write left, fails closed.
func Verified(v any) bool {
	switch x := v.(type) {
	case nil, primitive.Null:
		return true
	case bool:
		return !x
	}
	return false
}

// Holder is one account holding an identity.
type Holder struct {
	ID       model.ID
	Verified bool
}

// Shared is what one identity does to the accounts that hold it.
type Shared struct {
	// Linked are the accounts it links, in _id order: those that hold it
	// verified, when they are two or more.
	Linked []model.ID
	// Verified are the accounts that hold it verified, in _id order
	// (Linked, or the one account).
	Verified []model.ID
	// HeldApart are the accounts that hold it only unverified, in _id
	// order, when another account holds it too: an unverified entry
	// would have linked them, and does not.
	HeldApart []model.ID
}

// Link applies the identity rule to the holders of one identity, in any
// order; an account may hold it more than once, and holds it verified if
// one of its entries is.
func Link(holders []Holder) Shared {
	verified := map[model.ID]bool{}
	for _, h := range holders {
		verified[h.ID] = verified[h.ID] || h.Verified
	}
	var s Shared
	for id, v := range verified {
		if v {
			s.Verified = append(s.Verified, id)
		} else {
			s.HeldApart = append(s.HeldApart, id)
		}
	}
	slices.SortFunc(s.Verified, model.ID.Compare)
	slices.SortFunc(s.HeldApart, model.ID.Compare)
	if len(s.Verified) >= 2 {
		s.Linked = s.Verified
	}
	if len(verified) < 2 {
		s.HeldApart = nil
	}
	return s
}

// Variants are the accounts that hold verified identities of one code and
// one Variant form, given per Key (the Shared.Verified of each identity):
// nil unless the Keys are two or more and the accounts too, so that
// normalising the code would link them.
func Variants(verifiedByKey [][]model.ID) []model.ID {
	keys := 0
	var accounts []model.ID
	for _, ids := range verifiedByKey {
		if len(ids) == 0 {
			continue
		}
		keys++
		accounts = append(accounts, ids...)
	}
	slices.SortFunc(accounts, model.ID.Compare)
	accounts = slices.Compact(accounts)
	if keys < 2 || len(accounts) < 2 {
		return nil
	}
	return accounts
}

// Conflict is two different values of one field in one group.
type Conflict struct {
	TenantID model.ID   `json:"tenant_id" bson:"tenant_id"`
	Field    string     `json:"field" bson:"field"`
	Sources  []model.ID `json:"legacy_ids" bson:"legacy_ids"`
	// Kept is the account whose value the tenant account holds, where one
	// account's entry is kept whole (auth types).
	Kept model.ID `json:"kept,omitzero" bson:"kept,omitempty"`
	Why  Why      `json:"why" bson:"why"`
}

// Why is the rule that decided a conflict.
type Why string

// The rules that decide conflicts.
const (
	// WhyRuleOrder: the survivor's value, or the first member's in rule
	// order, was kept.
	WhyRuleOrder Why = "rule_order"
	// WhyVerified: a verified auth type entry was kept over an unverified
	// one, whichever account survives.
	WhyVerified Why = "verified"
)

// Describe says the rule in words, for reports.
func (w Why) Describe() string {
	if w == WhyVerified {
		return "verified, over an unverified one"
	}
	return "the survivor's, or the first in rule order"
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
	var ats *authTypes
	if v, ok := model.Get(tenant, model.FieldAuthTypes); ok {
		ats = r.newAuthTypes(survivorID, v)
	}
	for _, m := range ordered[1:] {
		other, err := pipelines.OneToOne(m.Doc, orgID)
		if err != nil {
			return Merged{}, fmt.Errorf("account %s: %w", m.ID, err)
		}
		for _, e := range other {
			switch e.Key {
			case model.FieldID, model.FieldOrgID, model.FieldMemberships:
				continue
			case model.FieldAuthTypes:
				if ats.add(m.ID, e.Value) {
					continue
				}
			}
			cur, has := model.Get(tenant, e.Key)
			tenant = model.Set(tenant, e.Key, personRule(e.Key)(cur, has, e.Value, cs.field(e.Key, survivorID, m.ID)))
		}
	}
	if v, ok := ats.result(cs); ok {
		tenant = model.Set(tenant, model.FieldAuthTypes, v)
	}
	return Merged{Tenant: tenant, Links: links, Conflicts: cs.list}, nil
}

// authTypes unites the members' auth_types one entry per login, member by
// member in rule order, knowing which account each entry came from. A
// login is an identity as Rules.Identity compares it (normalised as
// configured), or, for a code that is no identity code, the exact (code,
// identifier). Of the entries for one login, the first verified one is
// kept, else the first: a verified entry beats an unverified one whichever
// account survives, so an unconfirmed credential never rides along with
// the proven one. Every other entry for it that says something different
// (its own id and dates aside) is a conflict naming the account kept and
// why: a credential is never dropped silently. The survivor's own list
// stays as it is, but for an entry a verified one replaces.
type authTypes struct {
	rules    Rules
	entries  bson.A     // the survivor's entries, then each new login's first
	from     []model.ID // the account of each entry
	slots    map[string]int
	rivals   map[int][]rival // entries of a login after its first, by slot
	notArray bool            // the survivor's value is not an array: the default rule applies
}

// rival is an entry for a login that already has one.
type rival struct {
	entry any
	from  model.ID
}

func (r Rules) newAuthTypes(survivor model.ID, v any) *authTypes {
	a := &authTypes{rules: r, slots: map[string]int{}, rivals: map[int][]rival{}}
	arr, ok := v.(bson.A)
	if !ok {
		a.notArray = true
		return a
	}
	for i, e := range arr {
		a.entries, a.from = append(a.entries, e), append(a.from, survivor)
		if _, dup := a.slots[a.login(e)]; !dup {
			a.slots[a.login(e)] = i
		}
	}
	return a
}

// add takes another member's auth_types; false when either value is not
// an array (the default rule then applies).
func (a *authTypes) add(id model.ID, v any) bool {
	arr, ok := v.(bson.A)
	if a == nil || a.notArray || !ok {
		return false
	}
	for _, e := range arr {
		k := a.login(e)
		if i, dup := a.slots[k]; dup {
			a.rivals[i] = append(a.rivals[i], rival{entry: e, from: id})
			continue
		}
		a.slots[k] = len(a.entries)
		a.entries, a.from = append(a.entries, e), append(a.from, id)
	}
	return true
}

// result picks each login's entry and records the conflicts; false when
// the default rule decided.
func (a *authTypes) result(cs *conflicts) (bson.A, bool) {
	if a == nil || a.notArray {
		return nil, false
	}
	out := slices.Clone(a.entries)
	slots := make([]int, 0, len(a.rivals))
	for i := range a.rivals {
		slots = append(slots, i)
	}
	slices.Sort(slots)
	for _, i := range slots {
		all := append([]rival{{entry: a.entries[i], from: a.from[i]}}, a.rivals[i]...)
		k := max(0, slices.IndexFunc(all, func(c rival) bool { return entryVerified(c.entry) }))
		kept := all[k]
		out[i] = kept.entry
		for j, c := range all {
			if j == k || equal(withoutBookkeeping(c.entry), withoutBookkeeping(kept.entry)) {
				continue
			}
			why := WhyRuleOrder
			if entryVerified(kept.entry) && !entryVerified(c.entry) {
				why = WhyVerified
			}
			cs.kept(model.FieldAuthTypes, kept.from, c.from, why)
		}
	}
	return out, true
}

// login is the key of an entry's login.
func (a *authTypes) login(v any) string {
	c, _ := model.Lookup(v, "auth_type_code")
	id, _ := model.Lookup(v, "identifier")
	code, _ := c.(string)
	ident, isString := id.(string)
	if isString {
		if idn, ok := a.rules.Identity(code, ident, nil); ok {
			return "i\x00" + code + "\x00" + idn.Key
		}
	}
	return "x\x00" + fmt.Sprint(c) + "\x00" + fmt.Sprint(id)
}

func entryVerified(v any) bool {
	u, _ := model.Lookup(v, fieldUnverified)
	return Verified(u)
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
	case "mfa_types":
		return unionBy(keyAt("id"))
	case "devices":
		return unionBy(keyAt("_id"))
	case "scopes":
		return unionBy(func(v any) string { return fmt.Sprint(v) })
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
		return unionBy(keyAt("_id"))
	case model.FieldRoles:
		return unionBy(keyAt("role._id"))
	case model.FieldGroups:
		return unionBy(keyAt("group._id"))
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

// unionBy unites arrays, de-duplicating elements by key (the first kept).
func unionBy(key func(any) string) rule {
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
			if _, dup := seen[key(v)]; dup {
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

// conflicts are a group's: one per field, and one per entry a field whose
// entries are kept whole (auth types) dropped.
type conflicts struct {
	tenant model.ID
	list   []Conflict
}

// field returns the clash callback for one field between two accounts.
func (c *conflicts) field(name string, a, b model.ID) func() {
	return func() {
		for i := range c.list {
			if c.list[i].Field == name && c.list[i].Kept.IsZero() {
				if !slices.Contains(c.list[i].Sources, b) {
					c.list[i].Sources = append(c.list[i].Sources, b)
				}
				return
			}
		}
		c.list = append(c.list, Conflict{TenantID: c.tenant, Field: name, Sources: []model.ID{a, b}, Why: WhyRuleOrder})
	}
}

// kept records that kept's entry of a field was kept over other's, for
// the reason why.
func (c *conflicts) kept(name string, kept, other model.ID, why Why) {
	sources := []model.ID{kept}
	if other != kept {
		sources = append(sources, other)
	}
	c.list = append(c.list, Conflict{TenantID: c.tenant, Field: name, Sources: sources, Kept: kept, Why: why})
}

func equal(a, b any) bool {
	ba, err1 := bson.Marshal(bson.D{{Key: "v", Value: a}})
	bb, err2 := bson.Marshal(bson.D{{Key: "v", Value: b}})
	return err1 == nil && err2 == nil && bytes.Equal(ba, bb)
}
