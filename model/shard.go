package model

import (
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
)

// ShardKey is the shard key of the tenant accounts (tenants.shard_key):
// none, or org_id, the field the service reads them by. A sharded
// collection changes what the server accepts: a unique index needs the
// shard key as its prefix, $merge's `on` must hold every shard-key field,
// and a write of one document is sent to its one shard only when its filter
// carries the whole shard key (which older servers require). Every write
// of the runner to the tenant accounts goes through Filter, FilterIDs and
// MergeOn, so that the one setting shapes them all.
type ShardKey string

const (
	// Unsharded: the tenant accounts are not sharded (the default).
	Unsharded ShardKey = ""
	// ShardByOrg: sharded on {org_id: 1}.
	ShardByOrg ShardKey = FieldOrgID
)

// ParseShardKey reads tenants.shard_key.
func ParseShardKey(s string) (ShardKey, error) {
	switch k := ShardKey(s); k {
	case Unsharded, ShardByOrg:
		return k, nil
	}
	return "", fmt.Errorf("%q is not a shard key the runner can write to: org_id (ranged, {org_id: 1}), or empty when tenants_accounts is not sharded", s)
}

// Fields are the shard key's fields, in order (none when unsharded).
func (k ShardKey) Fields() []string {
	if k == Unsharded {
		return nil
	}
	return []string{string(k)}
}

// Sharded reports whether there is a shard key.
func (k ShardKey) Sharded() bool { return k != Unsharded }

// Filter selects the tenant account id of the org org: {_id: id}, or with
// the shard key {org_id: org, _id: id}. more are added after them (a
// condition on the date, for a conditional write).
func (k ShardKey) Filter(id, org any, more ...bson.E) bson.D {
	f := make(bson.D, 0, 2+len(more))
	if k.Sharded() {
		f = append(f, bson.E{Key: string(k), Value: orgValue(org)})
	}
	f = append(f, bson.E{Key: FieldID, Value: id})
	return append(f, more...)
}

// orgValue is org as a filter takes it: a tenant account read without an
// org_id (one the service wrote so) is matched by null, which matches a
// missing field, and never sent as an empty value the driver refuses.
func orgValue(org any) any {
	switch o := org.(type) {
	case bson.RawValue:
		if o.Type == 0 {
			return nil
		}
	case nil:
		return nil
	}
	return org
}

// TenantRef names a tenant account with its shard-key value: what a write
// of one tenant account needs to be sent to its shard.
type TenantRef struct {
	ID ID
	// Org is its org_id; "" for one read without a string org_id, which
	// FilterIDs matches as missing, null or "".
	Org string
}

// FilterIDs selects the tenant accounts refs: {_id: {$in: ...}}, or with
// the shard key one branch per org, {$or: [{org_id: o, _id: {$in: ...}},
// ...]}, so that a sharded cluster sends each branch to its own shard.
func (k ShardKey) FilterIDs(refs []TenantRef) bson.D {
	if !k.Sharded() {
		ids := make(bson.A, len(refs))
		for i, r := range refs {
			ids[i] = r.ID
		}
		return bson.D{{Key: FieldID, Value: bson.D{{Key: "$in", Value: ids}}}}
	}
	var orgs []string
	byOrg := map[string]bson.A{}
	for _, r := range refs {
		if _, ok := byOrg[r.Org]; !ok {
			orgs = append(orgs, r.Org)
		}
		byOrg[r.Org] = append(byOrg[r.Org], r.ID)
	}
	or := make(bson.A, len(orgs))
	for i, o := range orgs {
		var org any = o
		if o == "" {
			org = bson.D{{Key: "$in", Value: bson.A{nil, ""}}}
		}
		or[i] = k.Filter(bson.D{{Key: "$in", Value: byOrg[o]}}, org)
	}
	return bson.D{{Key: "$or", Value: or}}
}

// MergeOn is $merge's `on`: "_id", or the shard key's fields and _id,
// which a unique index on exactly those fields must back (UniqueKey).
func (k ShardKey) MergeOn() any {
	if !k.Sharded() {
		return FieldID
	}
	on := bson.A{}
	for _, f := range k.Fields() {
		on = append(on, f)
	}
	return append(on, FieldID)
}

// UniqueKey is the unique index a sharded target needs for $merge's `on`
// (MergeOn): {org_id: 1, _id: 1}; nil when unsharded (the default _id
// index serves). It makes a pair unique, not an _id across shards: the
// runner writes each tenant account in its own org only.
func (k ShardKey) UniqueKey() bson.D {
	if !k.Sharded() {
		return nil
	}
	var key bson.D
	for _, f := range k.Fields() {
		key = append(key, bson.E{Key: f, Value: 1})
	}
	return append(key, bson.E{Key: FieldID, Value: 1})
}

// UnmarshalText reads the key from configuration (ParseShardKey).
func (k *ShardKey) UnmarshalText(b []byte) error {
	v, err := ParseShardKey(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// RefOf is the TenantRef of a tenant account as read (its _id and org_id;
// a read for a write must project both).
func RefOf(tenant bson.Raw) TenantRef {
	id, _ := IDOf(tenant.Lookup(FieldID))
	org, _ := tenant.Lookup(FieldOrgID).StringValueOK()
	return TenantRef{ID: id, Org: org}
}
