package catchup

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/internal/apporgs"
	"github.com/tenantmigrate/runner/runner/retry"
)

// The scope of a catch-up's phases must be whole for the identity rules:
// phase 1 over it must find the groups it would find over every account.
// A group is a connected component of accounts linked by identifiers,
// and a tenant account holds one; so the scope holds, with every account
// in it, every account that shares an identifier with it (verified or
// not: more is harmless, the rules decide) and every account of a tenant
// account it is in, to a fixed point. Each round reads by _id, by
// identifier and by tenant: indexed reads where the indexes are
// (checkIndexes says which are missing).

// idChunk bounds the _ids or identifiers of one $in.
const idChunk = 5000

// indexedIdentifierChunk bounds the identifiers of one $in over an index
// on auth_types.identifier. DocumentDB's $in over that multikey index costs
// more than linearly: 12,000 identifiers took 4.8 s in chunks of 5,000,
// 0.22 s in chunks of 500 (FerretDB 2, 1,000,000 accounts). Without the
// index each chunk reads every account, so there the fewer the better.
const indexedIdentifierChunk = 500

// scan reads what a catch-up needs of the legacy accounts and links.
type scan struct {
	cfg      Config
	accounts *mongo.Collection
	links    *mongo.Collection
	tenants  *mongo.Collection
	orgOf    map[string]string
	// identifierChunk bounds the identifiers of one $in: smaller where
	// they are indexed.
	identifierChunk int
	// leftAlone: tenant accounts whose own legacy account is gone (see
	// Report.LeftAlone); their accounts are kept out of the scope.
	leftAlone      int
	firstLeftAlone []model.ID
}

func newScan(cfg Config) *scan {
	return &scan{cfg: cfg, accounts: cfg.DB.Collection(cfg.Accounts), links: cfg.DB.Collection(cfg.Links),
		tenants: cfg.DB.Collection(cfg.TenantsAccounts), identifierChunk: idChunk}
}

// indexed tells the scan which of the cheapIndexes are missing.
func (s *scan) indexed(missing []string) {
	s.identifierChunk = idChunk
	if !slices.Contains(missing, identifierField) {
		s.identifierChunk = indexedIdentifierChunk
	}
}

func (s *scan) countLegacy(ctx context.Context) (int64, error) {
	var n int64
	err := s.cfg.Retry.Do(ctx, "count legacy accounts", func(ctx context.Context) (err error) {
		n, err = s.accounts.CountDocuments(ctx, bson.D{})
		return err
	})
	return n, retry.Wrap("count legacy accounts", err)
}

// changedSince are the legacy accounts updated or created at or after
// from, sorted, and how many of them were read: of those, only the ones
// not carried yet. A change read again within the margin was carried when
// the tenant account that holds it (its own, or its link's) is as new as
// it (phase 2 refreshes only an older one, and phase 1 writes the latest
// date of its accounts): the service writing a tenant account newer than
// its source keeps it so, as the phases do. newIDs are the pending ones
// that neither a link (of a merged or listed account) nor a tenant account
// of their own _id holds: new to the tenant accounts.
func (s *scan) changedSince(ctx context.Context, from time.Time) (pending, newIDs []model.ID, read int, err error) {
	filter := bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: model.FieldDateUpdated, Value: bson.D{{Key: "$gte", Value: from}}}},
		bson.D{{Key: model.FieldDateCreated, Value: bson.D{{Key: "$gte", Value: from}}}},
	}}}
	changed, err := s.dates(ctx, s.accounts, filter, "read changed legacy accounts")
	if err != nil || len(changed) == 0 {
		return nil, nil, 0, err
	}
	ids := slices.SortedFunc(maps.Keys(changed), model.ID.Compare)
	holder := map[model.ID]model.ID{} // account -> the tenant account that holds it
	linked := map[model.ID]bool{}     // accounts with a link, a tenant account or not
	for c := range slices.Chunk(ids, idChunk) {
		err := s.each(ctx, s.links, in(model.FieldID, c), bson.D{{Key: "tenant_id", Value: 1}}, "read links", func(raw bson.Raw) {
			a, _ := model.IDOf(raw.Lookup(model.FieldID))
			linked[a] = true
			if t, ok := model.IDOf(raw.Lookup("tenant_id")); ok {
				holder[a] = t
			}
		})
		if err != nil {
			return nil, nil, 0, err
		}
	}
	tenantIDs := map[model.ID]bool{}
	for _, id := range ids {
		if t, ok := holder[id]; ok {
			tenantIDs[t] = true
		} else {
			tenantIDs[id] = true
		}
	}
	tids := slices.SortedFunc(maps.Keys(tenantIDs), model.ID.Compare)
	tenantDate := map[model.ID]bson.RawValue{}
	for c := range slices.Chunk(tids, idChunk) {
		got, err := s.dates(ctx, s.tenants, in(model.FieldID, c), "read tenant accounts")
		if err != nil {
			return nil, nil, 0, err
		}
		maps.Copy(tenantDate, got)
	}
	for _, id := range ids {
		t, ok := holder[id]
		if !ok {
			t = id
		}
		td, held := tenantDate[t]
		if held && !model.SourceNewer(changed[id], td) {
			continue // carried already
		}
		pending = append(pending, id)
		if _, owns := tenantDate[id]; !linked[id] && !owns {
			newIDs = append(newIDs, id)
		}
	}
	return pending, newIDs, len(ids), nil
}

// dates reads the date_updated of the documents of coll that filter
// selects, by _id (a zero RawValue where there is none). A retry reads
// them all again.
func (s *scan) dates(ctx context.Context, coll *mongo.Collection, filter bson.D, what string) (map[model.ID]bson.RawValue, error) {
	out := map[model.ID]bson.RawValue{}
	err := s.each(ctx, coll, filter, bson.D{{Key: model.FieldDateUpdated, Value: 1}}, what, func(raw bson.Raw) {
		if id, ok := model.IDOf(raw.Lookup(model.FieldID)); ok {
			v := raw.Lookup(model.FieldDateUpdated)
			out[id] = bson.RawValue{Type: v.Type, Value: slices.Clone(v.Value)}
		}
	})
	return out, err
}

// each calls fn with every document of coll that filter selects,
// projected; fn must be idempotent (a retry reads them all again).
func (s *scan) each(ctx context.Context, coll *mongo.Collection, filter, proj bson.D, what string, fn func(bson.Raw)) error {
	err := s.cfg.Retry.Do(ctx, what, func(ctx context.Context) error {
		cur, err := coll.Find(ctx, filter, options.Find().SetProjection(proj).SetBatchSize(int32(s.cfg.Batch)))
		if err != nil {
			return err
		}
		defer cur.Close(ctx)
		for cur.Next(ctx) {
			fn(cur.Current)
		}
		return cur.Err()
	})
	return retry.Wrap(what, err)
}

// ids reads field (an _id) of the documents of coll that filter selects,
// sorted and unique. A retry reads them all again.
func (s *scan) ids(ctx context.Context, coll *mongo.Collection, filter bson.D, field, what string) ([]model.ID, error) {
	var out []model.ID
	err := s.each(ctx, coll, filter, bson.D{{Key: field, Value: 1}}, what, func(raw bson.Raw) {
		if id, ok := model.IDOf(raw.Lookup(field)); ok {
			out = append(out, id)
		}
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, model.ID.Compare)
	return slices.Compact(out), nil
}

// in is {field: {$in: ids}}.
func in[T any](field string, ids []T) bson.D {
	a := make(bson.A, len(ids))
	for i, id := range ids {
		a[i] = id
	}
	return bson.D{{Key: field, Value: bson.D{{Key: "$in", Value: a}}}}
}

// chunked reads ids by chunks of idChunk with read, and joins what it
// gives.
func chunked[T any](ctx context.Context, ids []T, read func(context.Context, []T) ([]model.ID, error)) ([]model.ID, error) {
	var out []model.ID
	for c := range slices.Chunk(ids, idChunk) {
		got, err := read(ctx, c)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	slices.SortFunc(out, model.ID.Compare)
	return slices.Compact(out), nil
}

// identityKey is an identity as the rules compare it, within its org.
type identityKey struct{ org, code, key string }

// whole is seed (and the accounts of the tenant accounts in tenants) made
// whole, sorted; whole is true when it grew past limit (the phases then run
// over every account).
func (s *scan) whole(ctx context.Context, seed, tenants []model.ID, limit int) (scope []model.ID, all bool, err error) {
	if len(seed) == 0 && len(tenants) == 0 {
		return nil, false, nil
	}
	if s.orgOf == nil {
		aos, err := apporgs.Read(ctx, s.cfg.DB.Collection(s.cfg.ApplicationsOrganizations))
		if err != nil {
			return nil, false, err
		}
		s.orgOf = aos.OrgOf()
	}
	inScope := map[model.ID]bool{}
	known := map[identityKey]bool{}
	seenTenant := map[model.ID]bool{}
	orphan := map[model.ID]bool{} // tenant accounts left alone
	frontier := slices.Clone(seed)
	tenantFrontier := slices.Clone(tenants)
	for len(frontier) > 0 || len(tenantFrontier) > 0 {
		var fresh []model.ID
		for _, id := range frontier {
			if !inScope[id] {
				inScope[id] = true
				fresh = append(fresh, id)
			}
		}
		if len(inScope) > limit {
			return nil, true, nil
		}
		// The identities of the new accounts, and the accounts sharing them.
		idents, raw, err := s.identities(ctx, fresh, known)
		if err != nil {
			return nil, false, err
		}
		sharing, err := s.sharing(ctx, idents, raw)
		if err != nil {
			return nil, false, err
		}
		// The tenant accounts of the new accounts (by link, or their own),
		// and those tenant accounts' other accounts.
		linkedTo, err := chunked(ctx, fresh, func(ctx context.Context, c []model.ID) ([]model.ID, error) {
			return s.ids(ctx, s.links, append(in(model.FieldID, c), bson.E{Key: "tenant_id", Value: bson.D{{Key: "$exists", Value: true}}}), "tenant_id", "read links")
		})
		if err != nil {
			return nil, false, err
		}
		var newTenants []model.ID
		for _, t := range slices.Concat(linkedTo, fresh, tenantFrontier) {
			if !seenTenant[t] {
				seenTenant[t] = true
				newTenants = append(newTenants, t)
			}
		}
		tenantFrontier = nil
		members, err := chunked(ctx, newTenants, func(ctx context.Context, c []model.ID) ([]model.ID, error) {
			return s.ids(ctx, s.links, in("tenant_id", c), model.FieldID, "read links by tenant")
		})
		if err != nil {
			return nil, false, err
		}
		// A tenant account whose own legacy account is gone (its survivor
		// was deleted) is left as it is: phase 1 would give its group a
		// new tenant account beside it.
		if err := s.findOrphans(ctx, linkedTo, orphan); err != nil {
			return nil, false, err
		}
		frontier = append(sharing, members...)
	}
	if len(orphan) > 0 {
		gone, err := chunked(ctx, slices.Collect(maps.Keys(orphan)), func(ctx context.Context, c []model.ID) ([]model.ID, error) {
			return s.ids(ctx, s.links, in("tenant_id", c), model.FieldID, "read links by tenant")
		})
		if err != nil {
			return nil, false, err
		}
		for _, id := range gone {
			delete(inScope, id)
		}
	}
	scope = slices.SortedFunc(maps.Keys(inScope), model.ID.Compare)
	return scope, false, nil
}

// findOrphans adds to orphan the tenants (named by links) that no legacy
// account of their _id holds any more.
func (s *scan) findOrphans(ctx context.Context, tenants []model.ID, orphan map[model.ID]bool) error {
	if len(tenants) == 0 {
		return nil
	}
	live, err := chunked(ctx, tenants, func(ctx context.Context, c []model.ID) ([]model.ID, error) {
		return s.ids(ctx, s.accounts, in(model.FieldID, c), model.FieldID, "read legacy accounts")
	})
	if err != nil {
		return err
	}
	for _, t := range tenants {
		if _, ok := slices.BinarySearchFunc(live, t, model.ID.Compare); ok || orphan[t] {
			continue
		}
		orphan[t] = true
		s.leftAlone++
		if len(s.firstLeftAlone) < 10 {
			s.firstLeftAlone = append(s.firstLeftAlone, t)
		}
	}
	return nil
}

// identities are the identities of the accounts ids that known does not
// hold yet (added to it), and their identifiers as stored.
func (s *scan) identities(ctx context.Context, ids []model.ID, known map[identityKey]bool) ([]identityKey, []string, error) {
	var keys []identityKey
	var raw []string
	for c := range slices.Chunk(ids, idChunk) {
		err := s.eachIdentity(ctx, in(model.FieldID, c), func(_ model.ID, k identityKey, identifier string) {
			if !known[k] {
				known[k] = true
				keys = append(keys, k)
				raw = append(raw, identifier)
			}
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return keys, raw, nil
}

// sharing are the accounts holding one of the identities keys. By the
// identifiers as stored, an indexed read; where the rules compare some
// code normalised, a variant is stored otherwise, so those are found by a
// read of every account holding that code.
func (s *scan) sharing(ctx context.Context, keys []identityKey, raw []string) ([]model.ID, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	want := map[identityKey]bool{}
	var exact []string
	normalised := map[string]bool{}
	for i, k := range keys {
		want[k] = true
		if s.cfg.Rules.Normalize[k.code] != 0 {
			normalised[k.code] = true
		} else {
			exact = append(exact, raw[i])
		}
	}
	var out []model.ID
	add := func(id model.ID, k identityKey, _ string) {
		if want[k] {
			out = append(out, id)
		}
	}
	for c := range slices.Chunk(slices.Compact(slices.Sorted(slices.Values(exact))), s.identifierChunk) {
		if err := s.eachIdentity(ctx, in(identifierField, c), add); err != nil {
			return nil, err
		}
	}
	if len(normalised) > 0 {
		codes := slices.Sorted(maps.Keys(normalised))
		if err := s.eachIdentity(ctx, in(model.FieldAuthTypes+".auth_type_code", codes), add); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, model.ID.Compare)
	return slices.Compact(out), nil
}

// eachIdentity calls fn with every identity (verified or not) of the
// valid-enough accounts filter selects: those whose app-org has an org.
// A retry may call fn again for the same identities: fn must be
// idempotent.
func (s *scan) eachIdentity(ctx context.Context, filter bson.D, fn func(model.ID, identityKey, string)) error {
	proj := bson.D{{Key: model.FieldAppOrgID, Value: 1}, {Key: model.FieldAuthTypes, Value: 1}}
	return retry.Wrap("read identities", s.cfg.Retry.Do(ctx, "read identities", func(ctx context.Context) error {
		cur, err := s.accounts.Find(ctx, filter, options.Find().SetProjection(proj).SetBatchSize(int32(s.cfg.Batch)))
		if err != nil {
			return err
		}
		defer cur.Close(ctx)
		for cur.Next(ctx) {
			var a struct {
				ID        bson.RawValue `bson:"_id"`
				AppOrgID  any           `bson:"app_org_id"`
				AuthTypes any           `bson:"auth_types"`
			}
			if err := bson.Unmarshal(cur.Current, &a); err != nil {
				return fmt.Errorf("decode account: %w", err)
			}
			id, ok := model.IDOf(a.ID)
			ao, isString := a.AppOrgID.(string)
			ats, isArray := a.AuthTypes.(bson.A)
			if !ok || !isString || !isArray || s.orgOf[ao] == "" {
				continue // bad data: the phase over the scope reports it
			}
			org := s.orgOf[ao]
			for _, at := range ats {
				code, _ := model.Lookup(at, "auth_type_code")
				identifier, _ := model.Lookup(at, "identifier")
				c, ok1 := code.(string)
				i, ok2 := identifier.(string)
				if !ok1 || !ok2 {
					continue
				}
				ident, ok := s.cfg.Rules.Identity(c, i, nil)
				if !ok {
					continue
				}
				fn(id, identityKey{org: org, code: ident.Code, key: ident.Key}, i)
			}
		}
		return cur.Err()
	}))
}

// cheapIndexes are the indexes of the legacy accounts that make a
// catch-up read only what it needs: the changes since the watermark, and
// the accounts sharing an identifier with them. The runner never writes
// the legacy collection, so it only names those missing.
var cheapIndexes = []string{model.FieldDateUpdated, model.FieldDateCreated, identifierField}

// identifierField is what the accounts sharing an identifier are read by.
const identifierField = model.FieldAuthTypes + ".identifier"

// missingIndexes are the cheapIndexes the legacy accounts have no index
// starting with; nil when the server does not say.
func (s *scan) missingIndexes(ctx context.Context) []string {
	cur, err := s.accounts.Indexes().List(ctx)
	if err != nil {
		return nil
	}
	defer cur.Close(ctx)
	first := map[string]bool{}
	for cur.Next(ctx) {
		if keys, ok := cur.Current.Lookup("key").DocumentOK(); ok {
			if elems, err := keys.Elements(); err == nil && len(elems) > 0 {
				first[elems[0].Key()] = true
			}
		}
	}
	var out []string
	for _, f := range cheapIndexes {
		if !first[f] {
			out = append(out, f)
		}
	}
	return out
}
