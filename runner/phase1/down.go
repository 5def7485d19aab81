package phase1

import (
	"context"
	"fmt"
	"io"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/internal/sorted"
	"github.com/tenantmigrate/runner/runner/internal/writes"
	"github.com/tenantmigrate/runner/runner/retry"
)

// DownReport is what Down did (or, dry, would do).
type DownReport struct {
	DryRun bool `json:"dry_run,omitempty"`
	// TenantsDeleted are the tenant accounts the links named that the
	// runner wrote and nobody changed since.
	TenantsDeleted int64 `json:"tenants_deleted"`
	// KeptChanged are the tenant accounts the links named that were written
	// after every legacy account of their group: the service's since, kept.
	KeptChanged int64 `json:"tenants_kept_newer"`
	// Links are the links dropped with them.
	Links int64 `json:"links"`
}

// Print writes a human summary.
func (r *DownReport) Print(w io.Writer) {
	verb, links := "deleted", "dropped"
	if r.DryRun {
		verb, links = "would delete", "would drop"
	}
	fmt.Fprintf(w, "phase 1 down: %s %d tenant accounts its links name; kept %d written after their legacy accounts (the service's); %s the %d links\n",
		verb, r.TenantsDeleted, r.KeptChanged, links, r.Links)
}

// Counts are the report as the down's counts.
func (r *DownReport) Counts() count.Counts {
	return count.Counts{count.TenantsDeleted: r.TenantsDeleted, count.KeptNewer: r.KeptChanged}
}

// Notes say what the down kept.
func (r *DownReport) Notes() []string {
	if r.KeptChanged == 0 {
		return nil
	}
	return []string{fmt.Sprintf("kept %d tenant accounts written after their legacy accounts: the service's, not the runner's to delete", r.KeptChanged)}
}

// group is a tenant account phase 1 wrote and the legacy accounts its
// links name.
type group struct {
	tenant  model.ID
	members []model.ID
}

// Down undoes phase 1: it deletes the tenant accounts its links name that
// the runner wrote and nobody changed since (model.WrittenAfter: the service
// sets a later date_updated than any of the group's legacy accounts; those
// are kept and counted), then drops the links. Idempotent: a half-done
// Down is finished by running it again (the links go last). cfg needs DB,
// Names, Batch and Retry.
func Down(ctx context.Context, cfg Config) (*DownReport, error) {
	cfg.Env = cfg.Env.WithDefaults()
	rep := &DownReport{DryRun: cfg.DryRun}
	p := &run{cfg: cfg}
	tenants := cfg.DB.Collection(cfg.TenantsAccounts)
	links := cfg.DB.Collection(cfg.Links)
	dates := bson.D{{Key: model.FieldID, Value: 1}, {Key: model.FieldDateUpdated, Value: 1}}
	tenantDates := append(bson.D{{Key: model.FieldOrgID, Value: 1}}, dates...) // the shard key, for the delete
	del := writes.Batch[group]{Size: cfg.Batch, Flush: func(ctx context.Context, groups []group) error {
		var ids, members []model.ID
		for _, g := range groups {
			ids = append(ids, g.tenant)
			members = append(members, g.members...)
		}
		stored, err := findIDs(ctx, &cfg.Retry, tenants, ids, tenantDates, "read tenant accounts")
		if err != nil {
			return err
		}
		legacy, err := findIDs(ctx, &cfg.Retry, cfg.DB.Collection(cfg.Accounts), members, dates, "read legacy accounts")
		if err != nil {
			return err
		}
		var gone []model.TenantRef
		for _, g := range groups {
			t, ok := stored[g.tenant]
			if !ok {
				continue // deleted already
			}
			if model.WrittenAfter(t, latest(legacy, g.members)) {
				rep.KeptChanged++
				continue
			}
			gone = append(gone, model.RefOf(t))
		}
		if cfg.DryRun {
			rep.TenantsDeleted += int64(len(gone))
			return nil
		}
		n, err := writes.DeleteTenants(ctx, &cfg.Retry, tenants, cfg.ShardKey, gone)
		rep.TenantsDeleted += n
		return err
	}}
	var cur *group
	// By tenant, then _id: each tenant's links together, and a cursor
	// that can resume.
	byTenant := bson.D{{Key: "tenant_id", Value: 1}, {Key: "_id", Value: 1}}
	err := sorted.EachBy(ctx, links, nil, bson.D{{Key: "tenant_id", Value: 1}}, byTenant, p.read(), func(raw bson.Raw) error {
		id, ok := model.IDOf(raw.Lookup("tenant_id"))
		if !ok {
			return nil // a link phase 1 left out names no tenant
		}
		member, _ := model.IDOf(raw.Lookup(model.FieldID))
		rep.Links++
		if cur != nil && cur.tenant == id {
			cur.members = append(cur.members, member)
			return nil
		}
		if cur != nil {
			if err := del.Add(ctx, *cur); err != nil {
				return err
			}
		}
		cur = &group{tenant: id, members: []model.ID{member}}
		return nil
	})
	if err == nil && cur != nil {
		err = del.Add(ctx, *cur)
	}
	if err == nil {
		err = del.Close(ctx)
	}
	if err != nil {
		return rep, fmt.Errorf("phase 1 down: %w", err)
	}
	if cfg.DryRun {
		return rep, nil
	}
	if err := cfg.Retry.Do(ctx, "drop links", func(ctx context.Context) error { return links.Drop(ctx) }); err != nil {
		return rep, retry.Wrap("drop links", err)
	}
	return rep, nil
}

// latest is the latest date_updated of the accounts ids of legacy, the
// zero value if none has one.
func latest(legacy map[model.ID]bson.Raw, ids []model.ID) bson.RawValue {
	var out bson.RawValue
	var max int64
	for _, id := range ids {
		v := legacy[id].Lookup(model.FieldDateUpdated)
		if d, ok := v.DateTimeOK(); ok && (out.Type == 0 || d > max) {
			out, max = v, d
		}
	}
	return out
}
