package catchup

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/internal/join"
	"github.com/tenantmigrate/runner/runner/internal/sorted"
	"github.com/tenantmigrate/runner/runner/internal/writes"
	"github.com/tenantmigrate/runner/runner/retry"
)

// A legacy account deleted since the last catch-up loses its membership:
// the runner removes it from the tenant account that holds it (by its
// membership id, a targeted $pull: whatever else the service wrote there
// stays), deletes the tenant account if that left it with none, then
// deletes the account's link. Each write is idempotent, in that order, so
// a catch-up killed between them finds the link again and finishes.
//
// They are found from _ids alone, in one pass: the legacy _ids, the links
// and the tenant accounts, merge-joined in _id order. A link whose legacy
// account is gone is a deleted account; so is a tenant account with no
// link of its _id and no legacy account of it, when it holds the
// membership phase 2 made of that account. A tenant account that holds
// no such membership was created by the service: its own, never touched.
// A legacy _id that neither a link nor a tenant account holds is an
// account no catch-up saw (its dates were not set, or older than the
// margin): it goes into the scope.

// deletions finds and carries the deleted accounts.
type deletions struct {
	cfg Config
	rep *Report
	// remaining are the tenant accounts that lost an account and still
	// hold others: phase 1 merges those again, without it.
	remaining []model.ID
}

// pulls and their tenants' deletes go per batch; the links after them.
type deleteBatch struct {
	pulls []membershipOf
	links []model.ID
	// linkHolds names, by link, the membership that must be gone before
	// the link goes.
	linkHolds map[model.ID]membershipOf
}

// membershipOf names one membership of one tenant account.
type membershipOf struct {
	tenant model.ID
	id     string
}

// fullPass runs the pass; unseen are the legacy accounts nothing holds,
// accounted how many legacy accounts the tenant accounts hold (or list)
// after this catch-up: every one the pass saw, and the new ones it did
// not see (inserted after it read past them).
func (d *deletions) fullPass(ctx context.Context, newIDs []model.ID) (unseen []model.ID, accounted int64, err error) {
	read := sorted.Options{Batch: d.cfg.Batch, Retry: &d.cfg.Retry}
	open := func(name string, proj bson.D, what string) (*join.Stream[join.Doc, model.ID], error) {
		rows, err := sorted.Open(ctx, d.cfg.DB.Collection(name), nil, proj, read)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		// Read ahead, the server reads the three side by side.
		return join.ByID(sorted.ReadAhead(ctx, rows, 2), what), nil
	}
	legacy, err := open(d.cfg.Accounts, bson.D{{Key: model.FieldID, Value: 1}}, "legacy accounts")
	if err != nil {
		return nil, 0, err
	}
	defer legacy.Close(ctx)
	links, err := open(d.cfg.Links, nil, "links")
	if err != nil {
		return nil, 0, err
	}
	defer links.Close(ctx)
	tenants, err := open(d.cfg.TenantsAccounts, bson.D{{Key: model.FieldMemberships + "." + model.FieldMembershipID, Value: 1},
		{Key: model.FieldMemberships + "." + model.FieldAppOrgID, Value: 1}}, "tenant accounts")
	if err != nil {
		return nil, 0, err
	}
	defer tenants.Close(ctx)
	sawNew := 0
	var b deleteBatch
	for {
		k, ok, err := join.MinKey[model.ID](ctx, model.ID.Compare, legacy, links, tenants)
		if err != nil {
			return nil, 0, err
		}
		if !ok {
			break
		}
		_, isLegacy, err := legacy.Take(ctx, k)
		if err != nil {
			return nil, 0, err
		}
		link, isLinked, err := links.Take(ctx, k)
		if err != nil {
			return nil, 0, err
		}
		tenant, isTenant, err := tenants.Take(ctx, k)
		if err != nil {
			return nil, 0, err
		}
		switch {
		case isLegacy:
			accounted++
			if _, ok := slices.BinarySearchFunc(newIDs, k, model.ID.Compare); ok {
				sawNew++
			}
			if !isLinked && !isTenant {
				unseen = append(unseen, k)
			}
		case isLinked:
			if err := d.deletedLinked(link, &b); err != nil {
				return nil, 0, err
			}
		case isTenant:
			d.deletedOneToOne(k, tenant, &b)
		}
		if len(b.pulls)+len(b.links) >= d.cfg.Batch {
			if err := d.flush(ctx, &b); err != nil {
				return nil, 0, err
			}
		}
	}
	if err := d.flush(ctx, &b); err != nil {
		return nil, 0, err
	}
	return unseen, accounted + int64(len(newIDs)-sawNew), nil
}

// deletedLinked: a phase-1 account whose legacy account is gone.
func (d *deletions) deletedLinked(doc join.Doc, b *deleteBatch) error {
	var l model.Link
	if err := bson.Unmarshal(doc.Raw, &l); err != nil {
		return fmt.Errorf("decode link %s: %w", doc.ID, err)
	}
	d.rep.Deleted++
	b.links = append(b.links, l.LegacyID)
	if l.TenantID.IsZero() { // a link that lists the account as not migrated
		return nil
	}
	d.pull(b, l.TenantID, l.MembershipID)
	if b.linkHolds == nil {
		b.linkHolds = map[model.ID]membershipOf{}
	}
	b.linkHolds[l.LegacyID] = membershipOf{tenant: l.TenantID, id: l.MembershipID}
	if l.TenantID != l.LegacyID {
		d.remaining = append(d.remaining, l.TenantID)
	}
	return nil
}

// deletedOneToOne: a tenant account with no link of its _id nor legacy
// account; the runner's when it holds the membership phase 2 made.
func (d *deletions) deletedOneToOne(id model.ID, doc join.Doc, b *deleteBatch) {
	ms, _ := doc.Raw.Lookup(model.FieldMemberships).ArrayOK()
	vals, _ := ms.Values()
	for _, v := range vals {
		m, ok := v.DocumentOK()
		if !ok {
			continue
		}
		mid, _ := m.Lookup(model.FieldMembershipID).StringValueOK()
		ao, _ := m.Lookup(model.FieldAppOrgID).StringValueOK()
		if mid == model.MembershipID(ao, id) {
			d.rep.Deleted++
			d.pull(b, id, mid)
			return
		}
	}
	// the service's own tenant account
}

func (d *deletions) pull(b *deleteBatch, tenant model.ID, membership string) {
	b.pulls = append(b.pulls, membershipOf{tenant: tenant, id: membership})
}

// flush writes a batch: the pulls, then the deletes of the tenant
// accounts they emptied, then the links.
func (d *deletions) flush(ctx context.Context, b *deleteBatch) error {
	tenants := d.cfg.DB.Collection(d.cfg.TenantsAccounts)
	if len(b.pulls) > 0 {
		pulls, deletes, err := d.pullsOf(ctx, b.pulls)
		if err != nil {
			return err
		}
		if len(pulls) > 0 {
			res, err := writes.BulkWrite(ctx, &d.cfg.Retry, tenants, pulls)
			if err != nil {
				return fmt.Errorf("remove memberships: %w", err)
			}
			d.rep.MembershipsRemoved += int(res.ModifiedCount)
		}
		if len(deletes) > 0 {
			res, err := writes.BulkWrite(ctx, &d.cfg.Retry, tenants, deletes)
			if err != nil {
				return fmt.Errorf("delete tenant accounts left with no membership: %w", err)
			}
			d.rep.TenantsDeleted += int(res.DeletedCount)
			d.rep.MembershipsRemoved += int(res.DeletedCount)
		}
	}
	links, err := d.linksDone(ctx, b)
	if err != nil {
		return err
	}
	if _, err := writes.DeleteIDs(ctx, &d.cfg.Retry, d.cfg.DB.Collection(d.cfg.Links), links); err != nil {
		return fmt.Errorf("delete links: %w", err)
	}
	*b = deleteBatch{}
	return nil
}

// linksDone are the links of b whose membership is gone: a membership the
// service changed since it was read is not pulled (its value as read is no
// longer there), and its link stays for the next pass to try again, so no
// membership is ever left without the link that names its source.
func (d *deletions) linksDone(ctx context.Context, b *deleteBatch) ([]model.ID, error) {
	if len(b.linkHolds) == 0 {
		return b.links, nil
	}
	var tenants []model.ID
	for _, m := range b.linkHolds {
		tenants = append(tenants, m.tenant)
	}
	held := map[membershipOf]bool{}
	err := d.cfg.Retry.Do(ctx, "read tenant accounts", func(ctx context.Context) error {
		clear(held)
		cur, err := d.cfg.DB.Collection(d.cfg.TenantsAccounts).Find(ctx, in(model.FieldID, tenants),
			options.Find().SetProjection(bson.D{{Key: model.FieldMemberships + "." + model.FieldMembershipID, Value: 1}}))
		if err != nil {
			return err
		}
		defer cur.Close(ctx)
		for cur.Next(ctx) {
			id, _ := model.IDOf(cur.Current.Lookup(model.FieldID))
			arr, _ := cur.Current.Lookup(model.FieldMemberships).ArrayOK()
			vals, _ := arr.Values()
			for _, v := range vals {
				if doc, ok := v.DocumentOK(); ok {
					mid, _ := doc.Lookup(model.FieldMembershipID).StringValueOK()
					held[membershipOf{tenant: id, id: mid}] = true
				}
			}
		}
		return cur.Err()
	})
	if err != nil {
		return nil, retry.Wrap("read tenant accounts", err)
	}
	var out []model.ID
	for _, l := range b.links {
		if m, ok := b.linkHolds[l]; ok && held[m] {
			continue
		}
		out = append(out, l)
	}
	return out, nil
}

// pullsOf are the writes that remove the memberships ms: a tenant
// account's last membership goes with the tenant account (a delete while
// it holds that one alone: an empty membership array would be a key of
// the unique index on the memberships' ids, which a second one would
// collide with); another is pulled by its value as stored ($pull by a
// condition is not on every engine: FerretDB 1 takes only an equal value).
// A membership no longer there (an earlier, killed catch-up removed it)
// needs no write.
func (d *deletions) pullsOf(ctx context.Context, ms []membershipOf) (pulls, deletes []mongo.WriteModel, err error) {
	ids := make([]model.ID, 0, len(ms))
	for _, m := range ms {
		ids = append(ids, m.tenant)
	}
	stored := map[model.ID]bson.Raw{}
	err = d.cfg.Retry.Do(ctx, "read tenant accounts", func(ctx context.Context) error {
		cur, err := d.cfg.DB.Collection(d.cfg.TenantsAccounts).Find(ctx, in(model.FieldID, ids),
			options.Find().SetProjection(bson.D{{Key: model.FieldOrgID, Value: 1}, {Key: model.FieldMemberships, Value: 1}}))
		if err != nil {
			return err
		}
		defer cur.Close(ctx)
		for cur.Next(ctx) {
			id, _ := model.IDOf(cur.Current.Lookup(model.FieldID))
			stored[id] = slices.Clone(cur.Current)
		}
		return cur.Err()
	})
	if err != nil {
		return nil, nil, retry.Wrap("read tenant accounts", err)
	}
	gone := map[model.ID]map[string]bool{}
	for _, m := range ms {
		if gone[m.tenant] == nil {
			gone[m.tenant] = map[string]bool{}
		}
		gone[m.tenant][m.id] = true
	}
	for _, t := range slices.SortedFunc(maps.Keys(gone), model.ID.Compare) {
		raw, ok := stored[t]
		if !ok {
			continue // deleted already
		}
		org := raw.Lookup(model.FieldOrgID) // the shard key, in every write's filter
		arr, _ := raw.Lookup(model.FieldMemberships).ArrayOK()
		vals, _ := arr.Values()
		var removed []bson.Raw
		for _, v := range vals {
			doc, ok := v.DocumentOK()
			if !ok {
				continue
			}
			if mid, _ := doc.Lookup(model.FieldMembershipID).StringValueOK(); gone[t][mid] {
				removed = append(removed, doc)
			}
		}
		if len(removed) == 0 {
			continue
		}
		if len(removed) == len(vals) {
			// Every membership goes: the tenant account too, while it
			// holds those alone.
			holds := bson.A{}
			for _, doc := range removed {
				holds = append(holds, bson.D{{Key: model.FieldMemberships + "." + model.FieldMembershipID, Value: doc.Lookup(model.FieldMembershipID)}})
			}
			deletes = append(deletes, mongo.NewDeleteOneModel().SetFilter(d.cfg.ShardKey.Filter(t, org,
				bson.E{Key: model.FieldMemberships, Value: bson.D{{Key: "$size", Value: len(vals)}}}, bson.E{Key: "$and", Value: holds})))
			continue
		}
		for _, doc := range removed {
			pulls = append(pulls, mongo.NewUpdateOneModel().
				SetFilter(d.cfg.ShardKey.Filter(t, org, bson.E{Key: model.FieldMemberships + "." + model.FieldMembershipID, Value: doc.Lookup(model.FieldMembershipID)})).
				SetUpdate(bson.D{{Key: "$pull", Value: bson.D{{Key: model.FieldMemberships, Value: bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: doc}}}}}))
		}
	}
	return pulls, deletes, nil
}
