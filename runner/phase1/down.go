package phase1

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/internal/sorted"
	"github.com/tenantmigrate/runner/runner/internal/writes"
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
	var ids []model.ID
	flush := func() error {
		if len(ids) == 0 {
			return nil
		}
		n, err := writes.DeleteIDs(ctx, &cfg.Retry, tenants, ids)
		rep.TenantsDeleted += n
		ids = ids[:0]
		return err
	}
	var last model.ID
	// By tenant, then _id: each tenant once, and a cursor that can resume.
	byTenant := bson.D{{Key: "tenant_id", Value: 1}, {Key: "_id", Value: 1}}
	err := sorted.EachBy(ctx, links, nil, bson.D{{Key: "tenant_id", Value: 1}}, byTenant, p.read(), func(raw bson.Raw) error {
		id, ok := model.IDOf(raw.Lookup("tenant_id"))
		if !ok || id == last {
			return nil // a link phase 1 left out names no tenant
		}
		last = id
		if ids = append(ids, id); len(ids) >= cfg.Batch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return rep, fmt.Errorf("phase 1 down: %w", err)
	}
	if err := cfg.Retry.Do(ctx, "drop links", func(ctx context.Context) error { return links.Drop(ctx) }); err != nil {
		return rep, fmt.Errorf("drop links: %w", err)
	}
	return rep, nil
}
