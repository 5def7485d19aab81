package main

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/catchup"
	"github.com/tenantmigrate/runner/runner/verify"
)

// CatchUpFigures are what the catch-up costs after the migration, as a
// rolling deploy's next boots pay it: a boot with nothing to carry, then a
// catch-up of ChangedPercent of the accounts changed by an old replica
// (edited, inserted, deleted), then verify.
type CatchUpFigures struct {
	// NoChange is `runner` (a boot) with nothing to carry, without the
	// indexes the catch-up names and then (NoChangeIndexed) with them.
	NoChange        Process `json:"no_change"`
	NoChangeIndexed Process `json:"no_change_indexed"`
	// IndexedSkipped: the server uses no index (the embedded FerretDB 1),
	// so NoChangeIndexed was not measured.
	IndexedSkipped bool `json:"indexed_skipped,omitempty"`
	// Changes is how many accounts the old replica took (changesFor), and
	// ChangesWhy why that many (none: the rest was not measured); Edited,
	// Inserted and Deleted are what it did with them, in OldReplicaSeconds.
	Changes           int     `json:"changes"`
	ChangesWhy        string  `json:"changes_why"`
	OldReplicaSeconds float64 `json:"old_replica_seconds"`
	Edited            int     `json:"edited"`
	Inserted          int     `json:"inserted"`
	Deleted           int     `json:"deleted"`
	// Sync is `runner sync` carrying them; Report what it said.
	Sync   Process        `json:"sync"`
	Report *catchUpReport `json:"report,omitempty"`
	// VerifyDone: verify after it says OK and finished (when Changes).
	VerifyDone    bool   `json:"verify_done"`
	VerifyProblem string `json:"verify_problem,omitempty"`
}

// catchUpReport is what loadtest reads of `runner sync --json`
// (catchup.Report; its phases' reports are left out).
type catchUpReport struct {
	Read     int    `json:"read"`
	Changed  int    `json:"changed"`
	New      int    `json:"new"`
	Scope    int    `json:"scope"`
	Whole    bool   `json:"whole"`
	FullPass bool   `json:"full_pass"`
	Deleted  int    `json:"deleted"`
	Took     string `json:"took"`
	// Stages are where the time went (catchup.Report's).
	Stages catchup.Stages `json:"stages,omitempty"`
}

// changedShare is the share of the accounts the old replica changes,
// unless told (--changes) or on the embedded server.
const changedShare = 0.01

// changesFor is how many accounts the old replica changes at this size,
// and why that many, in words for the summary. None, unless told, on the
// embedded FerretDB 1: there every read of a few accounts and every write
// by _id scans the collection, so a catch-up of 10 changes took 142 s at
// 20,000 accounts, 4 times the whole migration (36 s), and 1 % of 93,000
// had not even been written after 12 minutes.
func (h *harness) changesFor(accounts int) (int, string) {
	switch {
	case h.changes > 0:
		return h.changes, "as --changes says"
	case h.noIndexUse:
		return 0, "not on the embedded server, where each read of a few accounts and each write scans the collection (10 changes took 142 s at 20,000 accounts); --changes N measures it"
	}
	return max(int(float64(accounts)*changedShare), 5), "1 % of the accounts"
}

// catchUp measures the catch-up: a no-change boot, then, unless
// changesFor says none, the old replica's writes (3/5 edited, 1/5 new, 1/5
// deleted one-to-one accounts), `runner sync`, and `runner verify`.
func (h *harness) catchUp(ctx context.Context, accounts int) (*CatchUpFigures, error) {
	fmt.Fprintln(h.log, "runner (a boot with nothing to carry)...")
	f := &CatchUpFigures{}
	var err error
	if f.NoChange, err = h.runRunner(ctx, nil); err != nil {
		return f, err
	}
	if f.NoChange.ExitCode != runnerExitOK {
		return f, fmt.Errorf("the no-change boot exited with code %d (%s)", f.NoChange.ExitCode, runnerExitMeaning(f.NoChange.ExitCode))
	}
	// As the service's owner would, on the runner's advice; not on the
	// embedded FerretDB 1, which uses no index for these reads and took
	// over 20 minutes to build them at 93,000 accounts.
	if h.noIndexUse {
		f.IndexedSkipped = true
		fmt.Fprintln(h.log, "(no indexed boot: the embedded server uses no index)")
	} else {
		fmt.Fprintln(h.log, "indexing the legacy accounts' date_updated, date_created, auth_types.identifier; runner again...")
		for _, field := range []string{model.FieldDateUpdated, model.FieldDateCreated, model.FieldAuthTypes + ".identifier"} {
			if _, err := h.db.Collection(model.DefaultNames().Accounts).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: field, Value: 1}}}); err != nil {
				return f, fmt.Errorf("index %s: %w", field, err)
			}
		}
		if f.NoChangeIndexed, err = h.runRunner(ctx, nil); err != nil {
			return f, err
		}
	}
	f.Changes, f.ChangesWhy = h.changesFor(accounts)
	if f.Changes == 0 {
		fmt.Fprintln(h.log, "(no changes carried: "+f.ChangesWhy+")")
		return f, nil
	}
	fmt.Fprintf(h.log, "an old replica changes %d legacy accounts...\n", f.Changes)
	began := time.Now()
	err = h.oldReplica(ctx, f.Changes, f)
	f.OldReplicaSeconds = time.Since(began).Seconds()
	if h.loaded != nil {
		h.loaded()
	}
	if err != nil {
		return f, err
	}
	fmt.Fprintf(h.log, "runner sync --json (%d edited, %d new, %d deleted)...\n", f.Edited, f.Inserted, f.Deleted)
	rep := &catchUpReport{}
	if f.Sync, err = h.runJSON(ctx, rep, nil, "sync", "--json"); err != nil {
		return f, err
	}
	f.Report = rep
	var v verify.Report
	if _, err := h.runJSON(ctx, &v, []int{runnerExitMismatch, runnerExitNotFinished}, "verify", "--json"); err != nil {
		return f, err
	}
	f.VerifyDone, f.VerifyProblem = v.Done(), v.Problem()
	if !f.VerifyDone {
		return f, fmt.Errorf("verify after the catch-up: not done (%s; %d not carried)", v.Problem(), v.NotCarried())
	}
	return f, nil
}

// oldReplica writes n legacy accounts as an old replica would: edits with
// date_updated, new people, deletions of one-to-one accounts. The
// accounts it takes are spread over the collection (every k-th _id).
func (h *harness) oldReplica(ctx context.Context, n int, f *CatchUpFigures) error {
	names := model.DefaultNames()
	accounts := h.db.Collection(names.Accounts)
	total, err := accounts.CountDocuments(ctx, bson.D{})
	if err != nil {
		return err
	}
	step := max(int(total)/n, 1)
	var picked []bson.Raw
	cur, err := accounts.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).
		SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: model.FieldAppOrgID, Value: 1}}))
	if err != nil {
		return err
	}
	for i := 0; cur.Next(ctx) && len(picked) < n; i++ {
		if i%step == 0 {
			picked = append(picked, append(bson.Raw(nil), cur.Current...))
		}
	}
	if err := cur.Close(ctx); err != nil {
		return err
	}
	now := time.Now().UTC()
	links := h.db.Collection(names.Links)
	// Batched, one command each, as the embedded server scans its whole
	// collection for every write.
	var inserts []any
	var edits, deletes bson.A
	merged, err := linkedOf(ctx, links, picked)
	if err != nil {
		return err
	}
	for i, raw := range picked {
		id := raw.Lookup("_id")
		switch {
		case i%5 == 3:
			ao, _ := raw.Lookup(model.FieldAppOrgID).StringValueOK()
			inserts = append(inserts, bson.D{{Key: "_id", Value: fmt.Sprintf("loadtest-new-%06d", i)}, {Key: model.FieldAppOrgID, Value: ao},
				{Key: model.FieldAuthTypes, Value: bson.A{bson.D{{Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: fmt.Sprintf("loadtest-new-%06d@example.org", i)}}}},
				{Key: model.FieldDateCreated, Value: now}, {Key: model.FieldDateUpdated, Value: now}})
		case i%5 == 4 && !merged[id.String()]:
			deletes = append(deletes, id)
		default:
			edits = append(edits, id)
		}
	}
	f.Inserted, f.Edited, f.Deleted = len(inserts), len(edits), len(deletes)
	if len(inserts) > 0 {
		if _, err := accounts.InsertMany(ctx, inserts); err != nil {
			return fmt.Errorf("the old replica's inserts: %w", err)
		}
	}
	if _, err := accounts.UpdateMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: edits}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "username", Value: "edited"}, {Key: model.FieldDateUpdated, Value: now}}}}); err != nil {
		return fmt.Errorf("the old replica's edits: %w", err)
	}
	if _, err := accounts.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: deletes}}}}); err != nil {
		return fmt.Errorf("the old replica's deletions: %w", err)
	}
	return nil
}

// linkedOf says which of the accounts phase 1 merged (their deletion is
// left to the catch-up test, which checks what it leaves), by _id as text.
func linkedOf(ctx context.Context, links *mongo.Collection, accounts []bson.Raw) (map[string]bool, error) {
	ids := bson.A{}
	for _, raw := range accounts {
		ids = append(ids, raw.Lookup("_id"))
	}
	cur, err := links.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("read links: %w", err)
	}
	defer cur.Close(ctx)
	out := map[string]bool{}
	for cur.Next(ctx) {
		out[cur.Current.Lookup("_id").String()] = true
	}
	return out, cur.Err()
}
