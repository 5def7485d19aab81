package phase2

import (
	"context"
	"fmt"
	"io"
	"slices"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/internal/join"
	"github.com/tenantmigrate/runner/runner/internal/sorted"
	"github.com/tenantmigrate/runner/runner/internal/writes"
)

// createdKey starts the store's keys of the collections phase 2 created
// (ensureCollections), so that Down removes them and nothing else.
const createdKey = "phase2_created"

// DownReport is what Down did (or, dry, would do).
type DownReport struct {
	DryRun bool `json:"dry_run,omitempty"`
	// TenantsDeleted are the one-to-one tenant accounts removed: those the
	// runner wrote that nobody changed since.
	TenantsDeleted int64 `json:"tenants_deleted"`
	// KeptChanged are one-to-one tenant accounts kept because they were
	// written after their legacy account (the service wrote them since
	// the runner did); KeptNoSource those kept because no legacy account
	// has their _id (the service created them, or their legacy account
	// was deleted since): neither is the runner's to delete.
	KeptChanged  int64 `json:"tenants_kept_newer"`
	KeptNoSource int64 `json:"tenants_kept_no_source"`
	// Dropped are the collections phase 2 had created, removed empty.
	Dropped []string `json:"dropped,omitempty"`
}

// Print writes a human summary.
func (r *DownReport) Print(w io.Writer) {
	verb := "deleted"
	if r.DryRun {
		verb = "would delete"
	}
	fmt.Fprintf(w, "phase 2 down: %s %d one-to-one tenant accounts the runner wrote; kept %d written after their legacy account and %d with no legacy account (the service's)\n",
		verb, r.TenantsDeleted, r.KeptChanged, r.KeptNoSource)
}

// Counts are the report as the down's counts.
func (r *DownReport) Counts() count.Counts {
	return count.Counts{count.TenantsDeleted: r.TenantsDeleted, count.KeptNewer: r.KeptChanged, count.TenantsKeptNoSource: r.KeptNoSource}
}

// Notes say what the down kept, and name the collections it dropped.
func (r *DownReport) Notes() []string {
	var notes []string
	if r.KeptChanged+r.KeptNoSource > 0 {
		notes = append(notes, fmt.Sprintf("kept %d tenant accounts written after their legacy account and %d with no legacy account: the service's, not the runner's to delete", r.KeptChanged, r.KeptNoSource))
	}
	for _, name := range r.Dropped {
		notes = append(notes, "dropped "+name+", which phase 2 had created, empty")
	}
	return notes
}

// Down undoes phase 2: it deletes the one-to-one tenant accounts (those
// with no link for their own _id) that the runner wrote and nobody changed
// since, clears the checkpoint, and drops the collections phase 2
// created, if they are still empty (a collection that phase 1 has written
// to since is phase 1's). A tenant account is the runner's while its
// legacy account (the same _id) exists and it is not newer than it: the
// runner copies the legacy date_updated, and a service that writes a
// tenant account sets a later one. The others are kept and counted.
// Idempotent: a half-done Down is finished by running it again. cfg needs
// DB, Names, Store, Batch.
func Down(ctx context.Context, cfg Config) (*DownReport, error) {
	cfg = cfg.withDefaults()
	rep := &DownReport{DryRun: cfg.DryRun}
	tenants := cfg.DB.Collection(cfg.Names.TenantsAccounts)
	byID := bson.D{{Key: "_id", Value: 1}}
	var joins []*join.Stream[join.Doc, model.ID]
	for _, j := range []struct {
		coll string
		proj bson.D
	}{{cfg.Names.Links, byID}, {cfg.Names.Accounts, bson.D{{Key: "_id", Value: 1}, {Key: model.FieldDateUpdated, Value: 1}}}} {
		rows, err := sorted.Open(ctx, cfg.DB.Collection(j.coll), nil, j.proj, cfg.read())
		if err != nil {
			return rep, fmt.Errorf("read %s: %w", j.coll, err)
		}
		s := join.ByID(rows, j.coll)
		defer s.Close(ctx)
		joins = append(joins, s)
	}
	links, legacy := joins[0], joins[1]
	del := writes.Batch[model.TenantRef]{Size: cfg.Batch, Flush: func(ctx context.Context, refs []model.TenantRef) error {
		if cfg.DryRun {
			rep.TenantsDeleted += int64(len(refs))
			return nil
		}
		n, err := writes.DeleteTenants(ctx, &cfg.Retry, tenants, cfg.ShardKey, refs)
		rep.TenantsDeleted += n
		if err != nil {
			return fmt.Errorf("delete tenant accounts: %w", err)
		}
		return nil
	}}
	proj := bson.D{{Key: "_id", Value: 1}, {Key: model.FieldOrgID, Value: 1}, {Key: model.FieldDateUpdated, Value: 1}}
	err := sorted.Each(ctx, tenants, nil, proj, cfg.read(), func(raw bson.Raw) error {
		id, ok := model.IDOf(raw.Lookup("_id"))
		if !ok {
			return nil
		}
		if _, linked, err := links.SkipTo(ctx, id); err != nil || linked {
			return err
		}
		src, found, err := legacy.SkipTo(ctx, id)
		switch {
		case err != nil:
			return err
		case !found:
			rep.KeptNoSource++
			return nil
		case model.WrittenAfter(raw, src.Raw.Lookup(model.FieldDateUpdated)):
			rep.KeptChanged++
			return nil
		}
		return del.Add(ctx, model.TenantRef{ID: id, Org: model.RefOf(raw).Org})
	})
	if err == nil {
		err = del.Close(ctx)
	}
	if err != nil {
		return rep, err
	}
	if cfg.DryRun {
		return rep, nil
	}
	if err := clearCheckpoint(ctx, cfg); err != nil {
		return rep, err
	}
	return rep, dropCreated(ctx, cfg, rep)
}

// created is what the store keeps of a collection phase 2 created: one
// value per collection, written whole, so no two writes race to update one
// list. Builds before the store kept one list under createdKey.
type created struct {
	Collection  string   `bson:"collection,omitempty"`
	Collections []string `bson:"collections,omitempty"`
}

func createdKeyOf(name string) string { return createdKey + ":" + name }

// recordCreated notes name as a collection phase 2 created, before it
// creates it: a run killed in between leaves a name whose collection does
// not exist, which dropCreated passes over.
func recordCreated(ctx context.Context, cfg Config, name string) error {
	if err := cfg.Store.Save(ctx, createdKeyOf(name), created{Collection: name}); err != nil {
		return fmt.Errorf("record created collection: %w", err)
	}
	return nil
}

// dropCreated drops the collections phase 2 created that are still empty.
func dropCreated(ctx context.Context, cfg Config, rep *DownReport) error {
	var names, keys []string
	var old created
	found, err := cfg.Store.Load(ctx, createdKey, &old)
	if err != nil {
		return err
	}
	if found {
		names, keys = append(names, old.Collections...), append(keys, createdKey)
	}
	for _, name := range cfg.creates() {
		var c created
		found, err := cfg.Store.Load(ctx, createdKeyOf(name), &c)
		if err != nil {
			return err
		}
		if found && !slices.Contains(names, name) {
			names = append(names, name)
		}
		if found {
			keys = append(keys, createdKeyOf(name))
		}
	}
	for _, name := range names {
		coll := cfg.DB.Collection(name)
		n, err := coll.CountDocuments(ctx, bson.D{}, options.Count().SetLimit(1))
		if err != nil {
			return fmt.Errorf("count %s: %w", name, err)
		}
		if n > 0 {
			continue // written since: not phase 2's to remove
		}
		if err := coll.Drop(ctx); err != nil {
			return fmt.Errorf("drop %s: %w", name, err)
		}
		rep.Dropped = append(rep.Dropped, name)
	}
	for _, key := range keys {
		if err := cfg.Store.Clear(ctx, key); err != nil {
			return err
		}
	}
	return nil
}
