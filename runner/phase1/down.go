package phase1

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/internal/sorted"
	"github.com/tenantmigrate/runner/runner/internal/writes"
	"github.com/tenantmigrate/runner/runner/retry"
)

// DownReport is what Down did.
type DownReport struct {
	// TenantsDeleted are the tenant accounts the links named.
	TenantsDeleted int64
}

// Counts are the report as the down's counts.
func (r *DownReport) Counts() count.Counts {
	return count.Counts{count.TenantsDeleted: r.TenantsDeleted}
}

// Notes: the counts say it all.
func (r *DownReport) Notes() []string { return nil }

// Down undoes phase 1: it deletes the tenant accounts its links name,
// then drops the links. Idempotent: a half-done Down is finished by
// running it again (the links go last). cfg needs DB, TenantsAccounts,
// Links, Batch and Retry.
func Down(ctx context.Context, cfg Config) (*DownReport, error) {
	cfg.Env = cfg.Env.WithDefaults()
	rep := &DownReport{}
	p := &run{cfg: cfg}
	tenants := cfg.DB.Collection(cfg.TenantsAccounts)
	links := cfg.DB.Collection(cfg.Links)
	del := writes.Batch[model.ID]{Size: cfg.Batch, Flush: func(ctx context.Context, ids []model.ID) error {
		n, err := writes.DeleteIDs(ctx, &cfg.Retry, tenants, ids)
		rep.TenantsDeleted += n
		return err
	}}
	var last model.ID
	// By tenant, then _id: each tenant once, and a cursor that can resume.
	byTenant := bson.D{{Key: "tenant_id", Value: 1}, {Key: "_id", Value: 1}}
	err := sorted.EachBy(ctx, links, nil, bson.D{{Key: "tenant_id", Value: 1}}, byTenant, p.read(), func(raw bson.Raw) error {
		id, ok := model.IDOf(raw.Lookup("tenant_id"))
		if !ok || id == last {
			return nil // a link phase 1 left out names no tenant
		}
		last = id
		return del.Add(ctx, id)
	})
	if err == nil {
		err = del.Close(ctx)
	}
	if err != nil {
		return rep, fmt.Errorf("phase 1 down: %w", err)
	}
	if err := cfg.Retry.Do(ctx, "drop links", func(ctx context.Context) error { return links.Drop(ctx) }); err != nil {
		return rep, retry.Wrap("drop links", err)
	}
	return rep, nil
}
