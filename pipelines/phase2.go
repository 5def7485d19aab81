// Package pipelines holds the aggregation pipelines the runner sends and
// their Go twins: phase 1's identity pipeline (phase1.go) and, in this
// file, phase 2's.
//
// Phase 2 moves every legacy account that phase 1 did not merge one-to-one
// into a tenant account, inside the database: one aggregation on
// Names.Accounts that ends in a $merge into Names.TenantsAccounts. Everything
// a reviewer needs is in this file: the stages (Phase2), the dry-run variant
// (Phase2Preview), and the Go functions that must do exactly what the stages
// do (Invalid for stage 1, OneToOne for stages 5-6, Refresh for stage 7).
// pipelines/oracle_test.go checks the pipeline against these Go functions by
// evaluating the very pipeline Phase2 returns with an independent engine
// (mingo, see pipelines/oracle/eval.mjs).
//
// # Mapping, legacy account -> tenant account
//
//	legacy (accounts)             tenant (tenants_accounts)                 note
//	-----------------             -------------------------                 ----
//	_id                           _id                                       same value
//	app_org_id                    org_apps_memberships[0].app_org_id        gone from the top level
//	app_org_id -> the app-org's   org_id                                    $lookup in
//	  org_id                                                                applications_organizations
//	app_org_id + "_" + _id        org_apps_memberships[0].id                model.MembershipID
//	  ($toString: ObjectId hex)
//	permissions                   org_apps_memberships[0].permissions       model.AppLevelFields:
//	roles                         org_apps_memberships[0].roles             one level down, gone from
//	groups                        org_apps_memberships[0].groups            the top level; a missing
//	preferences                   org_apps_memberships[0].preferences       one stays missing, a null
//	most_recent_client_version    org_apps_memberships[0].most_recent_...   one stays null
//	any other field               the same field, value and position        person level: scopes,
//	                                                                        auth_types, mfa_types,
//	                                                                        username, external_ids,
//	                                                                        system_configs, profile,
//	                                                                        devices, anonymous,
//	                                                                        privacy, verified,
//	                                                                        is_following, the dates,
//	                                                                        and unknown fields
//
// Field order: the legacy fields in their order minus the removed ones;
// org_id and org_apps_memberships take the place of same-named legacy fields,
// otherwise they are appended, org_id first. A membership is ordered id,
// app_org_id, then the present app-level fields in model.AppLevelFields order.
//
// # Which accounts
//
// Stage 1 keeps the accounts the phases can migrate (Invalid is its Go twin):
// a string or ObjectId _id, an app_org_id among the app-orgs that exist and have an org,
// and a non-empty auth_types array of documents that each have a string
// auth_type_code and a non-empty string identifier. Stages 2-3 drop the
// accounts phase 1 merged (they have a link document). Stage 7 inserts a
// tenant that does not exist and replaces an existing one only when the legacy
// account was updated after it (Refresh), so a re-run writes nothing new and a
// tenant edited after its source is kept.
//
// # Server requirements
//
// $merge, $set and $unset need MongoDB 4.2 or later. $arrayElemAt is used
// instead of $first, which 4.2 lacks; $toString needs 4.0. The temporary
// fields are named _p2_*.
package pipelines

import (
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/model"
)

// Range restricts a run to a slice of legacy _ids in MongoDB's sort order
// (model.ID.Compare): _id > After (if After is not zero) and _id <= Through
// (if Through is not zero), over the _ids the phases migrate (strings, then
// ObjectIds). IDs, if not nil, restricts it to those _ids instead (the
// catch-up's changed accounts): a list, not a span.
type Range struct {
	After, Through model.ID
	IDs            []model.ID
}

// Temporary fields, removed by stage 6 (and, in the preview, never written).
const (
	tmpLink     = "_p2_link"     // stage 2: the link documents of the account
	tmpAppOrg   = "_p2_ao"       // stage 4: the app-org document of the account
	tmpExisting = "_p2_existing" // preview only: the existing tenant
	tmpSource   = "_p2_src"      // Phase2Refreshes only: the legacy account
)

// Outcomes counted by Phase2Preview, one per account that stage 6 emits.
const (
	OutcomeInsert    = "insert"    // no tenant with this _id: $merge inserts
	OutcomeRefresh   = "refresh"   // tenant older than its source: $merge replaces it
	OutcomeUnchanged = "unchanged" // tenant as new as or newer than its source: kept
)

// ErrInvalidData: legacy accounts the phases cannot migrate (Invalid gives
// each one's reason) were found, and they are not being skipped. Phase 1
// and phase 2 return errors that wrap it.
var ErrInvalidData = errors.New("legacy accounts cannot be migrated")

// Invalid reasons, the Go twin of stage 1. They name fields, never values.
const (
	ReasonID                 = "_id is not a string or an ObjectId"
	ReasonAppOrgType         = "app_org_id is missing or not a string"
	ReasonAppOrgUnknown      = "app_org_id names no app-org"
	ReasonAppOrgNoOrg        = "app-org has no org_id"
	ReasonAuthTypesType      = "auth_types is missing or not an array"
	ReasonAuthTypesEmpty     = "auth_types is empty"
	ReasonAuthTypeDoc        = "an auth_types entry is not a document"
	ReasonAuthTypeCode       = "an auth_types entry has no string auth_type_code"
	ReasonAuthTypeIdentifier = "an auth_types entry has no non-empty string identifier"
)

func d(k string, v any) bson.E { return bson.E{Key: k, Value: v} }

// Validity is stage 1's filter without a range: the accounts the phases can
// migrate. validAppOrgs are the app-org ids that exist and have a non-empty
// org_id. Written with query operators only (no $expr), so an index on _id
// or app_org_id can serve it. Notes on MongoDB's query semantics it relies on:
//   - {$type: "string"} also matches an array holding a string, hence the
//     explicit {$not: {$type: "array"}} / {$type: "array"} clauses;
//   - $elemMatch with field conditions only looks at the elements that are
//     documents, hence the separate "every element is a document" clause.
func Validity(validAppOrgs []string) bson.D {
	return validity(validAppOrgs, nil)
}

// ValidityIn is Validity restricted to the range r (nil: every account),
// exactly as stage 1 matches.
func ValidityIn(validAppOrgs []string, r *Range) bson.D {
	return validity(validAppOrgs, r)
}

// IDFilter selects the _ids of the range r in another collection keyed by
// legacy _id (the links, the tenant accounts); nil selects all.
func (r *Range) IDFilter() bson.D {
	if r == nil || r.IDs == nil && r.After.IsZero() && r.Through.IsZero() {
		return bson.D{}
	}
	return r.MigratedIDs()
}

// idKinds are the _id types the phases migrate, in MongoDB's sort order.
var idKinds = []struct {
	name   string // the $type alias
	sample model.ID
}{
	{"string", model.StringID("")},
	{"objectId", model.ObjectIDOf([12]byte{})},
}

// MigratedIDs selects the _ids the phases migrate (strings and ObjectIds)
// within the range; nil: every such _id. A
// query comparison matches only values of its operand's type (type
// bracketing: {$gt: "x"} matches no ObjectId), so a range that spans both
// types is a $or of one clause per type, each bounded only where a bound
// is of its type. Written with query operators only, so the _id index
// serves it.
func (r *Range) MigratedIDs() bson.D {
	if r != nil && r.IDs != nil {
		in := make(bson.A, len(r.IDs)) // never nil: {$in: []} matches nothing
		for i, id := range r.IDs {
			in[i] = id
		}
		return bson.D{d(model.FieldID, bson.D{d("$in", in)})}
	}
	var after, through model.ID
	if r != nil {
		after, through = r.After, r.Through
	}
	var clauses bson.A
	for _, k := range idKinds {
		kind := k.sample.IsObjectID()
		if !after.IsZero() && after.IsObjectID() && !kind || !through.IsZero() && !through.IsObjectID() && kind {
			continue // the range lies wholly on the other type's side
		}
		cond := bson.D{d("$type", k.name)}
		if !after.IsZero() && after.IsObjectID() == kind {
			cond = append(cond, d("$gt", after))
		}
		if !through.IsZero() && through.IsObjectID() == kind {
			cond = append(cond, d("$lte", through))
		}
		clauses = append(clauses, bson.D{d(model.FieldID, cond)})
	}
	switch len(clauses) {
	case 0:
		return bson.D{d(model.FieldID, bson.D{d("$in", bson.A{})})}
	case 1:
		return clauses[0].(bson.D)
	}
	return bson.D{d("$or", clauses)}
}

func validity(validAppOrgs []string, r *Range) bson.D {
	in := bson.A{} // never nil: {$in: null} is an error, {$in: []} matches nothing
	for _, ao := range validAppOrgs {
		in = append(in, ao)
	}
	notString := func(f string) bson.D { return bson.D{d(f, bson.D{d("$not", bson.D{d("$type", "string")})})} }
	isArray := func(f string) bson.D { return bson.D{d(f, bson.D{d("$type", "array")})} }
	badAuthType := bson.A{
		notString("auth_type_code"), isArray("auth_type_code"),
		notString("identifier"), isArray("identifier"),
		bson.D{d("identifier", "")},
	}
	return append(r.MigratedIDs(),
		d(model.FieldAppOrgID, bson.D{d("$type", "string"), d("$not", bson.D{d("$type", "array")}), d("$in", in)}),
		d(model.FieldAuthTypes, bson.D{d("$type", "array"), d("$ne", bson.A{})}),
		d("$and", bson.A{
			// every entry is a document ...
			bson.D{d(model.FieldAuthTypes, bson.D{d("$not", bson.D{d("$elemMatch", bson.D{d("$not", bson.D{d("$type", "object")})})})})},
			// ... with a string auth_type_code and a non-empty string identifier
			bson.D{d(model.FieldAuthTypes, bson.D{d("$not", bson.D{d("$elemMatch", bson.D{d("$or", badAuthType)})})})},
		}),
	)
}

// transform is stages 1-6: everything before the write.
func transform(n model.Names, validAppOrgs []string, r *Range) mongo.Pipeline {
	membership := bson.D{
		// model.MembershipID: an ObjectId _id as its hex digits
		d(model.FieldMembershipID, bson.D{d("$concat", bson.A{"$" + model.FieldAppOrgID, "_", bson.D{d("$toString", "$"+model.FieldID)}})}),
		d(model.FieldAppOrgID, "$"+model.FieldAppOrgID),
	}
	for _, f := range model.AppLevelFields { // permissions, roles, groups, preferences, most_recent_client_version
		membership = append(membership, d(f, "$"+f))
	}
	unset := bson.A{tmpLink, tmpAppOrg, model.FieldAppOrgID}
	for _, f := range model.AppLevelFields {
		unset = append(unset, f)
	}
	return mongo.Pipeline{
		// 1. the accounts the phases can migrate (and the range)
		{d("$match", validity(validAppOrgs, r))},
		// 2-3. not merged by phase 1: no link document for this legacy _id
		{d("$lookup", bson.D{d("from", n.Links), d("localField", model.FieldID), d("foreignField", "_id"), d("as", tmpLink)})},
		{d("$match", bson.D{d(tmpLink, bson.D{d("$size", 0)})})},
		// 4. the app-org of the account, for its org_id
		{d("$lookup", bson.D{d("from", n.ApplicationsOrganizations), d("localField", model.FieldAppOrgID), d("foreignField", "_id"), d("as", tmpAppOrg)})},
		// 5. org_id and the one membership
		{d("$set", bson.D{
			d(model.FieldOrgID, bson.D{d("$arrayElemAt", bson.A{"$" + tmpAppOrg + "." + model.FieldOrgID, 0})}),
			d(model.FieldMemberships, bson.A{membership}),
		})},
		// 6. what moved down a level, and the temporaries
		{d("$unset", unset)},
	}
}

// Phase2 is the pipeline run on n.Accounts. validAppOrgs are the app-org ids
// that exist and have a non-empty org_id (computed by the runner and embedded
// as a literal); r, if not nil, restricts the run to a range of _ids.
//
// Re-running it is safe: $merge is on _id (the unique default index), the
// tenant _id is the legacy _id, and whenMatched writes only when the legacy
// account is newer than the tenant, which it no longer is after the write.
// With a shard key (key), $merge is on it and _id (key.MergeOn), which a
// sharded target requires, backed by the unique index step 1 makes.
func Phase2(n model.Names, key model.ShardKey, validAppOrgs []string, r *Range) mongo.Pipeline {
	return append(transform(n, validAppOrgs, r),
		// 7. insert, or refresh a tenant only when its source is newer
		bson.D{d("$merge", bson.D{
			d("into", n.TenantsAccounts),
			d("on", key.MergeOn()),
			d("whenMatched", bson.A{
				bson.D{d("$replaceWith", bson.D{d("$cond", bson.D{
					d("if", bson.D{d("$gt", bson.A{"$$new." + model.FieldDateUpdated, "$" + model.FieldDateUpdated})}),
					d("then", "$$new"),
					d("else", "$$ROOT"),
				})})},
			}),
			d("whenNotMatched", "insert"),
		})},
	)
}

// Phase2Inserts is the first pipeline of the split path, for servers whose
// $merge takes no pipeline in whenMatched (FerretDB 2 / DocumentDB, Amazon
// DocumentDB): stages 1-6, then a $merge that inserts the tenants that do
// not exist and keeps every existing one as it is. Phase2Refreshes and
// RefreshFilter do the refreshes stage 7 of Phase2 does, so that the two
// together leave exactly the tenants Phase2 leaves.
func Phase2Inserts(n model.Names, key model.ShardKey, validAppOrgs []string, r *Range) mongo.Pipeline {
	return append(transform(n, validAppOrgs, r),
		bson.D{d("$merge", bson.D{
			d("into", n.TenantsAccounts),
			d("on", key.MergeOn()),
			d("whenMatched", "keepExisting"),
			d("whenNotMatched", "insert"),
		})},
	)
}

// Phase2Refreshes is the other pipeline of the split path, run on
// n.TenantsAccounts before Phase2Inserts: the tenants of the range whose
// legacy account is newer (Refresh), each as stages 1-6 make it anew. Only
// existing tenants are read, so on a first run it reads phase 1's few. The
// runner writes each with RefreshFilter, never blindly: the server still
// compares the dates at the write.
func Phase2Refreshes(n model.Names, validAppOrgs []string, r *Range) mongo.Pipeline {
	src := bson.D{d("$arrayElemAt", bson.A{"$" + tmpSource, 0})}
	return append(mongo.Pipeline{
		{d("$match", r.IDFilter())},
		{d("$project", bson.D{d(model.FieldDateUpdated, 1)})},
		{d("$lookup", bson.D{d("from", n.Accounts), d("localField", model.FieldID), d("foreignField", "_id"), d("as", tmpSource)})},
		// newer as stage 7 compares: $gt of the legacy date over the
		// tenant's; no legacy account is missing, which is never greater
		{d("$match", bson.D{d("$expr", bson.D{d("$gt", bson.A{
			bson.D{d("$let", bson.D{d("vars", bson.D{d("s", src)}), d("in", "$$s."+model.FieldDateUpdated)})},
			"$" + model.FieldDateUpdated,
		})})})},
		{d("$replaceWith", src)},
	}, transform(n, validAppOrgs, r)...)
}

// RefreshFilter selects the tenant id for a refresh by a tenant account
// whose date_updated is newDate: only while the stored tenant is older, as
// stage 7 compares ({$gt: [new, old]}), so a tenant written in between by a
// service is kept. newDate is the refreshing document's own value; org
// the tenant's org_id, which the filter carries with a shard key (key).
func RefreshFilter(key model.ShardKey, id, org, newDate bson.RawValue) bson.D {
	return key.Filter(id, org,
		d("$expr", bson.D{d("$gt", bson.A{bson.D{d("$literal", newDate)}, "$" + model.FieldDateUpdated})}))
}

// SameDateFilter selects the tenant id while its date_updated is still old
// (the zero RawValue: missing): the streaming path's refresh, conditional
// on the tenant it compared with (Refresh), for servers whose filters take
// no $expr comparison (FerretDB 1). A tenant whose date changed since is
// kept. org is the tenant's org_id, carried with a shard key (key).
func SameDateFilter(key model.ShardKey, id, org, old bson.RawValue) bson.D {
	var date bson.D
	switch old.Type {
	case 0:
		date = bson.D{d("$exists", false)}
	case bsontype.Null:
		date = bson.D{d("$type", "null")}
	default:
		date = bson.D{d("$eq", old)}
	}
	return key.Filter(id, org, d(model.FieldDateUpdated, date))
}

// Phase2Preview is Phase2 without the write: stages 1-6, then a $lookup of
// the existing tenant and a $group that counts what stage 7 would do,
// {_id: "insert"|"refresh"|"unchanged", n: count}, with the same comparison
// as stage 7. For --dry-run on servers with $lookup. It shares stages 1-6
// with Phase2 on purpose (a preview of another pipeline proves nothing), so it
// needs $set and $unset too: MongoDB 4.2 or later. Where the server has
// neither, the runner's Go fallback (Invalid, OneToOne, Refresh) counts.
func Phase2Preview(n model.Names, validAppOrgs []string, r *Range) mongo.Pipeline {
	existing := bson.D{d("$arrayElemAt", bson.A{"$" + tmpExisting, 0})}
	return append(transform(n, validAppOrgs, r),
		bson.D{d("$lookup", bson.D{d("from", n.TenantsAccounts), d("localField", "_id"), d("foreignField", "_id"), d("as", tmpExisting)})},
		bson.D{d("$group", bson.D{
			d("_id", bson.D{d("$switch", bson.D{
				d("branches", bson.A{
					bson.D{d("case", bson.D{d("$eq", bson.A{bson.D{d("$size", "$"+tmpExisting)}, 0})}), d("then", OutcomeInsert)},
					bson.D{d("case", bson.D{d("$gt", bson.A{
						"$" + model.FieldDateUpdated,
						bson.D{d("$let", bson.D{d("vars", bson.D{d("t", existing)}), d("in", "$$t."+model.FieldDateUpdated)})},
					})}), d("then", OutcomeRefresh)},
				}),
				d("default", OutcomeUnchanged),
			})}),
			d("n", bson.D{d("$sum", 1)}),
		})},
	)
}

// OneToOne is the Go transform of one legacy account into its tenant account:
// exactly what stages 1-6 produce for it, field order included, with org_id
// set to orgID (the app-org's org_id, which stage 4 looks up). It fails only
// when _id is not a string or an ObjectId or app_org_id is not a string
// (the membership id needs both; Invalid rejects such accounts first).
// Values are shared with legacy, not copied.
func OneToOne(legacy bson.D, orgID string) (bson.D, error) {
	idv, _ := model.Get(legacy, model.FieldID)
	id, ok := model.IDOfValue(idv)
	if !ok {
		return nil, errors.New("pipelines: one-to-one: " + ReasonID)
	}
	aov, _ := model.Get(legacy, model.FieldAppOrgID)
	appOrg, ok := aov.(string)
	if !ok {
		return nil, errors.New("pipelines: one-to-one: " + ReasonAppOrgType)
	}

	ms := bson.D{d(model.FieldMembershipID, model.MembershipID(appOrg, id)), d(model.FieldAppOrgID, appOrg)}
	for _, f := range model.AppLevelFields {
		if v, ok := model.Get(legacy, f); ok { // missing: omitted; null: kept
			ms = append(ms, d(f, v))
		}
	}
	memberships := bson.A{ms}

	removed := map[string]bool{tmpLink: true, tmpAppOrg: true, model.FieldAppOrgID: true}
	for _, f := range model.AppLevelFields {
		removed[f] = true
	}
	out := make(bson.D, 0, len(legacy)+2)
	var hasOrg, hasMs bool
	for _, e := range legacy {
		switch {
		case removed[e.Key]:
		case e.Key == model.FieldOrgID && !hasOrg: // $set replaces in place
			out = append(out, d(model.FieldOrgID, orgID))
			hasOrg = true
		case e.Key == model.FieldMemberships && !hasMs:
			out = append(out, d(model.FieldMemberships, memberships))
			hasMs = true
		case e.Key == model.FieldOrgID || e.Key == model.FieldMemberships:
			// a duplicate key: a server document never has one
		default:
			out = append(out, e)
		}
	}
	if !hasOrg {
		out = append(out, d(model.FieldOrgID, orgID))
	}
	if !hasMs {
		out = append(out, d(model.FieldMemberships, memberships))
	}
	return out, nil
}

// Invalid returns "" for an account the phases can migrate, else a short
// reason that names a field and never a value: the Go twin of stage 1
// (Validity). orgOf maps an app-org _id to its org_id; an app-org missing from
// it, or mapped to "", is not valid.
func Invalid(legacy bson.D, orgOf map[string]string) string {
	if v, _ := model.Get(legacy, model.FieldID); !isID(v) {
		return ReasonID
	}
	aov, _ := model.Get(legacy, model.FieldAppOrgID)
	ao, ok := aov.(string)
	if !ok {
		return ReasonAppOrgType
	}
	org, ok := orgOf[ao]
	if !ok {
		return ReasonAppOrgUnknown
	}
	if org == "" {
		return ReasonAppOrgNoOrg
	}
	atv, _ := model.Get(legacy, model.FieldAuthTypes)
	ats, ok := atv.(bson.A)
	if !ok {
		if s, isSlice := atv.([]any); isSlice {
			ats, ok = bson.A(s), true
		}
	}
	if !ok {
		return ReasonAuthTypesType
	}
	if len(ats) == 0 {
		return ReasonAuthTypesEmpty
	}
	for _, at := range ats {
		doc, ok := asDoc(at)
		if !ok {
			return ReasonAuthTypeDoc
		}
		if c, _ := model.Get(doc, "auth_type_code"); !isString(c) {
			return ReasonAuthTypeCode
		}
		if s, _ := model.Get(doc, "identifier"); !isString(s) || s.(string) == "" {
			return ReasonAuthTypeIdentifier
		}
	}
	return ""
}

// asDoc returns v as a bson.D if it is a document (decoded as bson.D, as
// bson.Unmarshal into a bson.D does, or a map or raw document built by hand).
func asDoc(v any) (bson.D, bool) {
	switch x := v.(type) {
	case bson.D:
		return x, true
	case bson.M, map[string]any, bson.Raw:
		var out bson.D
		raw, err := bson.Marshal(x)
		if err != nil || bson.Unmarshal(raw, &out) != nil {
			return nil, false
		}
		return out, true
	}
	return nil, false
}

func isString(v any) bool { _, ok := v.(string); return ok }

func isID(v any) bool { _, ok := model.IDOfValue(v); return ok }

// Refresh says what stage 7's whenMatched does with an existing tenant:
// true = replace it with incoming, false = keep it. It is
// {$gt: ["$$new.date_updated", "$date_updated"]}: MongoDB's aggregation $gt,
// which compares across types in BSON order (no type bracketing):
//
//	missing = undefined < null < numbers < string = symbol < object < array
//	< binData < ObjectId < bool < date < timestamp < regex < dbPointer
//	< javascript < javascriptWithScope, with minKey first and maxKey last.
//
// So a legacy account with any date_updated (even null) refreshes a tenant
// without one; one without date_updated never refreshes; equal dates keep the
// tenant. Within a type: numbers by value across int32/int64/double/decimal
// (NaN below all numbers), strings bytewise (no collation), documents field
// by field (type rank, then name, then value), arrays element by element,
// binData by length, subtype, bytes; timestamps unsigned; regexes by pattern
// then flags. DBPointer and code-with-scope are compared approximately (by
// their encoded bytes); they have no place in date_updated.
func Refresh(existing, incoming bson.D) bool {
	newV, newOK := model.Get(incoming, model.FieldDateUpdated)
	oldV, oldOK := model.Get(existing, model.FieldDateUpdated)
	return compareValues(newV, newOK, oldV, oldOK) > 0
}

// JSON renders a pipeline as relaxed Extended JSON, for logs and reviews.
func JSON(p mongo.Pipeline) string {
	stages := make(bson.A, len(p))
	for i, s := range p {
		stages[i] = s
	}
	b, err := bson.MarshalExtJSON(bson.D{d("pipeline", stages)}, false, false)
	if err != nil {
		return fmt.Sprintf("<pipeline: %v>", err)
	}
	return string(b)
}
