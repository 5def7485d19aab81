package phase2

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
	"github.com/tenantmigrate/runner/runner/internal/writes"
)

// splitRange is PathSplit over one range: the refreshes, then the inserts.
// Refreshing first means the refresh pipeline reads only the tenant
// accounts that existed before the range's inserts (on a first run,
// phase 1's), and an account inserted now is as new as its source anyway.
// Its counts are exact as long as nothing else writes tenant accounts
// meanwhile: refreshes are the conditional writes that matched, inserts the
// growth of the tenant count.
func splitRange(ctx context.Context, cfg Config, valid []string, r *pipelines.Range, rep *Report, rc *rangeCounts) error {
	tenants := cfg.DB.Collection(cfg.Names.TenantsAccounts)
	n, err := refreshRange(ctx, cfg, valid, r)
	rc.refreshed += n
	if err != nil {
		return err
	}
	if err := rc.count(ctx, cfg, valid, r); err != nil {
		return err
	}
	taken, before, refreshed := rc.taken, rc.before, rc.refreshed
	err = runFitted(ctx, cfg, cfg.DB.Collection(cfg.Names.Accounts), func(r *pipelines.Range) any { return pipelines.Phase2Inserts(cfg.Names, cfg.ShardKey, valid, r) }, r)
	if err != nil {
		return fmt.Errorf("phase 2 insert pipeline: %w", err)
	}
	after, err := tenants.CountDocuments(ctx, r.IDFilter())
	if err != nil {
		return fmt.Errorf("count tenant accounts: %w", err)
	}
	inserted := max(after-before, 0)
	rep.Inserted += inserted
	rep.Refreshed += refreshed
	rep.Unchanged += max(taken-inserted-refreshed, 0)
	return nil
}

// refreshRange writes the refreshes Phase2Refreshes lists, a batch per
// round trip, each conditional on the stored tenant still being older
// (pipelines.RefreshFilter): a tenant the service wrote since the list was
// read is kept. It returns how many were written.
func refreshRange(ctx context.Context, cfg Config, valid []string, r *pipelines.Range) (int64, error) {
	tenants := cfg.DB.Collection(cfg.Names.TenantsAccounts)
	cur, err := tenants.Aggregate(ctx, pipelines.Phase2Refreshes(cfg.Names, valid, r),
		options.Aggregate().SetAllowDiskUse(true).SetBatchSize(int32(cfg.Batch)))
	if err != nil {
		return 0, fmt.Errorf("phase 2 refresh pipeline: %w", err)
	}
	defer cur.Close(ctx)
	var written int64
	batch := make([]mongo.WriteModel, 0, cfg.Batch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if cfg.beforeRefresh != nil {
			cfg.beforeRefresh()
		}
		res, err := writes.BulkWrite(ctx, &cfg.Retry, tenants, batch)
		if err != nil {
			return fmt.Errorf("refresh tenant accounts: %w", err)
		}
		written += res.MatchedCount
		batch = batch[:0]
		return nil
	}
	for cur.Next(ctx) {
		doc := append(bson.Raw(nil), cur.Current...)
		date, err := doc.LookupErr(model.FieldDateUpdated)
		if err != nil {
			continue // never listed: a missing date is never newer
		}
		batch = append(batch, mongo.NewReplaceOneModel().SetFilter(pipelines.RefreshFilter(cfg.ShardKey, doc.Lookup(model.FieldID), doc.Lookup(model.FieldOrgID), date)).SetReplacement(doc))
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return written, err
			}
		}
	}
	if err := cur.Err(); err != nil {
		return written, fmt.Errorf("phase 2 refresh pipeline: %w", err)
	}
	return written, flush()
}
