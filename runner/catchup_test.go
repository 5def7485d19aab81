package runner_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner"
	"github.com/tenantmigrate/runner/runner/catchup"
	"github.com/tenantmigrate/runner/runner/config"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/phase1"
	"github.com/tenantmigrate/runner/runner/phase2"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

// oldReplica writes the legacy accounts as a service's old replica does
// during a rolling deploy: inserts, edits with date_updated, deletions,
// new app accounts of people already migrated (merged or not).
type oldReplica struct {
	t      *testing.T
	db     *mongo.Database
	opts   gen.Options
	now    time.Time
	serial int
}

func (o *oldReplica) accounts() *mongo.Collection { return o.db.Collection(names.Accounts) }

// appOrgBeside is an app-org of the org of appOrg other than those of
// taken, or "" when the org has none left.
func (o *oldReplica) appOrgBeside(appOrg string, taken map[string]bool) string {
	org := ""
	aos := gen.AppOrgs(o.opts)
	for _, ao := range aos {
		if ao.ID == appOrg {
			org = ao.OrgID
		}
	}
	for _, ao := range aos {
		if ao.OrgID == org && !taken[ao.ID] {
			return ao.ID
		}
	}
	return ""
}

// account reads a legacy account.
func (o *oldReplica) account(id any) bson.D {
	o.t.Helper()
	var d bson.D
	if err := o.accounts().FindOne(context.Background(), bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		o.t.Fatalf("read account %v: %v", id, err)
	}
	return d
}

// joiner inserts a new app account of the person of account id, on
// another app of the same org: the same auth types, verified as there.
func (o *oldReplica) joiner(id any, taken map[string]bool) (string, bool) {
	o.t.Helper()
	src := o.account(id)
	ao, _ := model.Get(src, model.FieldAppOrgID)
	other := o.appOrgBeside(ao.(string), taken)
	if other == "" {
		return "", false
	}
	o.serial++
	nid := fmt.Sprintf("zz-joiner-%03d", o.serial)
	ats, _ := model.Get(src, model.FieldAuthTypes)
	d := bson.D{{Key: "_id", Value: nid}, {Key: model.FieldAppOrgID, Value: other}, {Key: model.FieldAuthTypes, Value: ats},
		{Key: model.FieldDateCreated, Value: o.now}, {Key: model.FieldDateUpdated, Value: o.now}}
	if _, err := o.accounts().InsertOne(context.Background(), d); err != nil {
		o.t.Fatal(err)
	}
	return nid, true
}

// newcomer inserts a new person.
func (o *oldReplica) newcomer(appOrg string) string {
	o.t.Helper()
	o.serial++
	nid := fmt.Sprintf("zz-new-%03d", o.serial)
	d := bson.D{{Key: "_id", Value: nid}, {Key: model.FieldAppOrgID, Value: appOrg},
		{Key: model.FieldAuthTypes, Value: bson.A{bson.D{{Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: nid + "@example.org"}}}},
		{Key: "profile", Value: bson.D{{Key: "first_name", Value: "New"}}},
		{Key: model.FieldDateCreated, Value: o.now}, {Key: model.FieldDateUpdated, Value: o.now}}
	if _, err := o.accounts().InsertOne(context.Background(), d); err != nil {
		o.t.Fatal(err)
	}
	return nid
}

// edit renames the person of account id, with date_updated.
func (o *oldReplica) edit(id any) {
	o.t.Helper()
	o.serial++
	_, err := o.accounts().UpdateOne(context.Background(), bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "profile.first_name", Value: fmt.Sprintf("Edited %d", o.serial)}, {Key: model.FieldDateUpdated, Value: o.now}}}})
	if err != nil {
		o.t.Fatal(err)
	}
}

func (o *oldReplica) remove(id any) {
	o.t.Helper()
	if _, err := o.accounts().DeleteOne(context.Background(), bson.D{{Key: "_id", Value: id}}); err != nil {
		o.t.Fatal(err)
	}
}

// freshMigration is the oracle: the tenant accounts and links a fresh
// migration of db's legacy collections, as they are now, gives (dumped:
// each document's hash by _id), on a database of its own.
func freshMigration(t *testing.T, db *mongo.Database) (tenants, links map[string]string) {
	t.Helper()
	ctx := context.Background()
	cfg, fresh := testConfig(t)
	for _, c := range testenv.LegacyCollections() {
		cur, err := db.Collection(c).Find(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		var docs []any
		for cur.Next(ctx) {
			docs = append(docs, slices.Clone(cur.Current))
		}
		if len(docs) > 0 {
			if _, err := fresh.Collection(c).InsertMany(ctx, docs); err != nil {
				t.Fatal(err)
			}
		}
	}
	env.Seeded(t, fresh)
	r := newRunner(t, cfg)
	if _, err := r.Up(ctx); err != nil {
		t.Fatalf("the fresh migration: %v", err)
	}
	return testenv.Dump(t, fresh.Collection(names.TenantsAccounts)), testenv.Dump(t, fresh.Collection(names.Links))
}

// A catch-up after the old replicas' writes gives, document for document,
// the tenant accounts and links a fresh migration of the legacy collection
// as it is now gives, plus the service's own tenant account untouched: the
// new person, the new app accounts of people migrated (one-to-one and
// merged), the edit, and both kinds of deletion.
func TestCatchUpEqualsAFreshMigration(t *testing.T) {
	cfg, db := testConfig(t)
	ctx := context.Background()
	opts := gen.Options{Accounts: 1500, Seed: 17}
	env.Load(t, db, opts)
	r := newRunner(t, cfg)
	if _, err := r.Up(ctx); err != nil {
		t.Fatal(err)
	}
	// Go-live: the first catch-up (nothing to carry), then the service
	// writes too.
	if rep, err := r.Sync(ctx, runner.SyncOptions{}); err != nil || rep.Changed != 0 || rep.Deleted != 0 || rep.FullPass {
		t.Fatalf("the first catch-up = %+v, %v; want nothing to carry, told by the count taken before the migration", rep, err)
	}
	tenants := db.Collection(names.TenantsAccounts)
	// The service's own tenant account, created after go-live.
	var own bson.D
	if err := tenants.FindOne(ctx, bson.D{{Key: model.FieldMemberships, Value: bson.D{{Key: "$size", Value: 1}}}}).Decode(&own); err != nil {
		t.Fatal(err)
	}
	own = model.Set(own, model.FieldID, "svc-own-1")
	ms, _ := model.Get(own, model.FieldMemberships)
	m0 := ms.(bson.A)[0].(bson.D)
	own = model.Set(own, model.FieldMemberships, bson.A{model.Set(m0, model.FieldMembershipID, "svc-membership-1")})
	if _, err := tenants.InsertOne(ctx, own); err != nil {
		t.Fatal(err)
	}
	ownBefore := testenv.Dump(t, tenants)[`"svc-own-1"`]

	want, deleted := rollingChanges(t, db, opts)
	env.Seeded(t, db)
	// Verify before the catch-up: consistent, not finished (the changes
	// are not carried yet), and the service's own tenant account is no
	// mismatch.
	v, err := r.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK() || v.Done() || v.Deleted.Count != 2 || v.New.Count != len(want) || v.Stale.Count != 2 || v.ServiceTenants != 1 {
		t.Errorf("verify before the catch-up: ok %v done %v, %d deleted, %d new, %d stale not carried, %d service tenants (%s); want ok, not done, 2, %d, 2 (the one-to-one edit and the merged one), 1",
			v.OK(), v.Done(), v.Deleted.Count, v.New.Count, v.Stale.Count, v.ServiceTenants, v.Problem(), len(want))
	}

	rep, err := r.Sync(ctx, runner.SyncOptions{})
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	t.Logf("catch-up: %+v", *rep)
	if rep.Deleted != 2 || rep.New != len(want) {
		t.Errorf("catch-up found %d deleted and %d new accounts, want 2 and %d", rep.Deleted, rep.New, len(want))
	}
	gotTenants, gotLinks := testenv.Dump(t, tenants), testenv.Dump(t, db.Collection(names.Links))
	if gotTenants[`"svc-own-1"`] != ownBefore {
		t.Error("the service's own tenant account was changed")
	}
	delete(gotTenants, `"svc-own-1"`)
	wantTenants, wantLinks := freshMigration(t, db)
	// The one exception: a tenant account whose accounts are no longer
	// one person (the deleted account linked the others) is left as it
	// is but for the deleted membership, for an operator.
	p1, _ := rep.Phase1.(*phase1.Report)
	if p1 == nil || p1.Split != 1 {
		t.Fatalf("the catch-up left %v split tenant accounts, want 1 (the group that lost its link)", p1)
	}
	split := p1.FirstSplit[0]
	checkLeftSplit(t, db, split, deleted)
	skipSplit(split, gotTenants, gotLinks)
	skipSplit(split, wantTenants, wantLinks)
	diff(t, "tenant accounts", gotTenants, wantTenants)
	diff(t, "links", gotLinks, wantLinks)
	// All carried but the edit of the split tenant account's account,
	// which waits for an operator.
	if v, err = r.Verify(ctx); err != nil || !v.OK() || v.NotCarried() != 1 || v.Stale.Count != 1 || v.ServiceTenants != 1 {
		t.Errorf("verify after the catch-up: ok %v, %d not carried (%d stale), %d service tenants, %v (%s); want ok, 1 stale (the split one), 1",
			v.OK(), v.NotCarried(), v.Stale.Count, v.ServiceTenants, err, v.Problem())
	}

	// A catch-up with nothing new changes nothing.
	rep, err = r.Sync(ctx, runner.SyncOptions{})
	if err != nil {
		t.Fatalf("Sync again: %v", err)
	}
	again := testenv.Dump(t, tenants)
	delete(again, `"svc-own-1"`)
	skipSplit(split, again, map[string]string{})
	diff(t, "tenant accounts after a second catch-up", again, wantTenants)
	if rep.FullPass {
		t.Errorf("the second catch-up passed over every _id (%s); the count says nothing was deleted", rep.Why)
	}

	// Each down's dry run says what the down then does: deleting the
	// runner's tenant accounts, keeping the service's.
	for range 2 { // steps 5 and 4
		if _, err := r.Down(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []int{3, 2} {
		plan, err := r.PlanDown(ctx)
		if err != nil || len(plan.Steps) != 1 || int(plan.Steps[0].Version) != v {
			t.Fatalf("PlanDown at %d = %+v, %v", v, plan, err)
		}
		before := testenv.Dump(t, tenants)
		res, err := r.Down(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := res.Steps[0].Counts
		var wouldDelete, wouldKeep int64
		switch d := plan.Steps[0].Report.(type) {
		case *phase2.DownReport:
			wouldDelete, wouldKeep = d.TenantsDeleted, d.KeptChanged+d.KeptNoSource
			if d.KeptNoSource < 1 {
				t.Errorf("phase 2's down dry run keeps %d tenant accounts with no legacy account; want the service's", d.KeptNoSource)
			}
		case *phase1.DownReport:
			wouldDelete, wouldKeep = d.TenantsDeleted, d.KeptChanged
		default:
			t.Fatalf("step %d's down dry run is a %T", v, d)
		}
		kept, _ := got.Sum(count.KeptNewer, count.TenantsKeptNoSource)
		if got[count.TenantsDeleted] != wouldDelete || kept != wouldKeep || wouldDelete == 0 {
			t.Errorf("step %d: the dry run would delete %d and keep %d; the down deleted %d and kept %d", v, wouldDelete, wouldKeep, got[count.TenantsDeleted], kept)
		}
		if deleted := len(before) - len(testenv.Dump(t, tenants)); int64(deleted) != got[count.TenantsDeleted] {
			t.Errorf("step %d's down says it deleted %d tenant accounts; %d are gone", v, got[count.TenantsDeleted], deleted)
		}
	}
	if testenv.Dump(t, tenants)[`"svc-own-1"`] != ownBefore {
		t.Error("a down touched the service's own tenant account")
	}
}

// checkLeftSplit checks that the split tenant account holds its accounts
// but the deleted one.
func checkLeftSplit(t *testing.T, db *mongo.Database, split phase1.SplitTenant, deleted any) {
	t.Helper()
	var tn bson.M
	if err := db.Collection(names.TenantsAccounts).FindOne(context.Background(), bson.D{{Key: "_id", Value: split.Tenant}}).Decode(&tn); err != nil {
		t.Fatal(err)
	}
	ms := tn[model.FieldMemberships].(bson.A)
	if len(ms) != len(split.Accounts) {
		t.Errorf("the split tenant account holds %d memberships, want its %d accounts'", len(ms), len(split.Accounts))
	}
	for _, m := range ms {
		id := m.(bson.M)[model.FieldMembershipID].(string)
		if strings.HasSuffix(id, fmt.Sprint(deleted)) {
			t.Errorf("the deleted account's membership %s is still there", id)
		}
	}
}

// skipSplit drops a split tenant account and its links from dumps.
func skipSplit(split phase1.SplitTenant, tenants, links map[string]string) {
	for k := range tenants {
		for _, a := range split.Accounts {
			if k == idKey(a) {
				delete(tenants, k)
			}
		}
	}
	for _, a := range split.Accounts {
		delete(links, idKey(a))
	}
	delete(tenants, idKey(split.Tenant))
}

// idKey is an _id as testenv.Dump keys it.
func idKey(id model.ID) string {
	t, b, _ := bson.MarshalValue(id)
	return bson.RawValue{Type: t, Value: b}.String()
}

// rollingChanges are an old replica's writes after go-live: a new app
// account of a one-to-one person and of a merged one, a new person, an
// edit of each kind of person, the deletion of a one-to-one account and of
// a merged account that is not its tenant's first. It returns the new
// accounts the catch-up must carry and the deleted merged account.
func rollingChanges(t *testing.T, db *mongo.Database, opts gen.Options) (want []string, deletedMerged any) {
	t.Helper()
	ctx := context.Background()
	tenants := db.Collection(names.TenantsAccounts)
	// A fixed time after go-live, so that two runs write the same documents.
	o := &oldReplica{t: t, db: db, opts: opts, now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	// One-to-one people (a verified email, no link) and merged groups.
	var candidates, oneToOne []bson.M
	cur, err := tenants.Find(ctx, bson.D{{Key: model.FieldMemberships, Value: bson.D{{Key: "$size", Value: 1}}},
		{Key: "_id", Value: bson.D{{Key: "$ne", Value: "svc-own-1"}}}}, options.Find().SetLimit(200).SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cur.All(ctx, &candidates); err != nil {
		t.Fatal(err)
	}
	for _, c := range candidates {
		verified := false
		for _, at := range c["auth_types"].(bson.A) {
			m := at.(bson.M)
			verified = verified || m["auth_type_code"] == "email" && m["unverified"] != true
		}
		if verified && len(oneToOne) < 6 {
			oneToOne = append(oneToOne, c)
		}
	}
	if len(oneToOne) < 6 {
		t.Fatalf("one-to-one tenants with a verified email: %d", len(oneToOne))
	}
	var groups []bson.M
	cur, err = tenants.Find(ctx, bson.D{{Key: model.FieldMemberships + ".2", Value: bson.D{{Key: "$exists", Value: true}}}}, options.Find().SetLimit(3))
	if err != nil {
		t.Fatal(err)
	}
	if err := cur.All(ctx, &groups); err != nil || len(groups) < 2 {
		t.Fatalf("groups of three or more: %d, %v", len(groups), err)
	}
	takenOf := func(tn bson.M) map[string]bool {
		out := map[string]bool{}
		for _, m := range tn[model.FieldMemberships].(bson.A) {
			out[m.(bson.M)[model.FieldAppOrgID].(string)] = true
		}
		return out
	}
	if id, ok := o.joiner(oneToOne[0]["_id"], takenOf(oneToOne[0])); ok {
		want = append(want, id)
	}
	if id, ok := o.joiner(groups[0]["_id"], takenOf(groups[0])); ok {
		want = append(want, id)
	}
	want = append(want, o.newcomer(oneToOne[1][model.FieldMemberships].(bson.A)[0].(bson.M)[model.FieldAppOrgID].(string)))
	o.edit(oneToOne[2]["_id"])
	o.edit(groups[1]["_id"])
	o.remove(oneToOne[3]["_id"])
	// A member of a group of three or more that is not its first account.
	var link bson.M
	if err := db.Collection(names.Links).FindOne(ctx, bson.D{{Key: "tenant_id", Value: groups[1]["_id"]}, {Key: "_id", Value: bson.D{{Key: "$ne", Value: groups[1]["_id"]}}}}).Decode(&link); err != nil {
		t.Fatal(err)
	}
	o.remove(link["_id"])
	env.Seeded(t, db)
	return want, link["_id"]
}

// diff reports the documents two dumps disagree on.
func diff(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	var bad []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got[k] != want[k] {
			bad = append(bad, k+map[bool]string{true: " (missing)", false: " (differs)"}[got[k] == ""])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			bad = append(bad, k+" (extra)")
		}
	}
	if len(bad) > 0 {
		t.Errorf("%s differ from a fresh migration's in %d documents: %v", what, len(bad), bad[:min(len(bad), 10)])
	}
}

// writeKiller cancels a run after its k-th write to the tenant accounts or
// the links (0: never), and counts them.
type writeKiller struct {
	n      atomic.Int64
	killAt int64
	cancel context.CancelFunc
}

func (k *writeKiller) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		switch e.CommandName {
		case "insert", "update", "delete", "aggregate":
		default:
			return
		}
		coll, _ := e.Command.Lookup(e.CommandName).StringValueOK()
		if e.CommandName == "aggregate" && !strings.Contains(e.Command.String(), `"$merge"`) ||
			e.CommandName != "aggregate" && coll != names.TenantsAccounts && coll != names.Links {
			return
		}
		if n := k.n.Add(1); k.killAt > 0 && n == k.killAt {
			k.cancel()
		}
	}}
}

// A catch-up killed after any of its writes, then run again, ends with the
// tenant accounts and links of an uninterrupted catch-up, document for
// document.
func TestCatchUpKilledAnywhereThenRerun(t *testing.T) {
	opts := gen.Options{Accounts: 400, Seed: 17}
	// run migrates, goes live, writes the old replica's changes, then
	// catches up killed after write killAt (0: not killed) and again.
	run := func(t *testing.T, killAt int64) (tenants, links map[string]string, writes int64) {
		cfg, db := testConfig(t)
		ctx := context.Background()
		env.Load(t, db, opts)
		r := newRunner(t, cfg)
		if _, err := r.Boot(ctx); err != nil {
			t.Fatal(err)
		}
		rollingChanges(t, db, opts)
		kctx, cancel := context.WithCancel(ctx)
		defer cancel()
		k := &writeKiller{killAt: killAt, cancel: cancel}
		killed := newRunner(t, cfg, runner.WithCommandMonitor(k.monitor()))
		_, err := killed.Sync(kctx, runner.SyncOptions{})
		switch {
		case killAt > 0 && kctx.Err() == nil:
			t.Fatalf("the catch-up killed at write %d of %d was not killed", killAt, k.n.Load())
		case killAt == 0 && err != nil:
			t.Fatalf("Sync: %v", err)
		}
		if killAt > 0 {
			time.Sleep(300 * time.Millisecond) // its writes in flight land
			if _, err := r.Sync(ctx, runner.SyncOptions{}); err != nil {
				t.Fatalf("Sync after the kill at write %d: %v", killAt, err)
			}
		}
		return testenv.Dump(t, db.Collection(names.TenantsAccounts)), testenv.Dump(t, db.Collection(names.Links)), k.n.Load()
	}
	wantTenants, wantLinks, total := run(t, 0)
	if total < 4 {
		t.Fatalf("an uninterrupted catch-up made %d writes; want several kill points", total)
	}
	// Every kill point on a real engine; on the embedded one, whose every
	// run takes seconds, every other (the suite's time is CI's).
	step := int64(1)
	if !env.Real() {
		step = 2
	}
	for k := int64(1); k < total; k += step {
		t.Run(fmt.Sprintf("killed at write %d of %d", k, total), func(t *testing.T) {
			tenants, links, _ := run(t, k)
			diff(t, "tenant accounts", tenants, wantTenants)
			diff(t, "links", links, wantLinks)
		})
	}
}

// A rolling deploy with both writers at work: an old replica writes the
// legacy accounts (new people, new app accounts of migrated people,
// edits, deletions) while the new service writes tenant accounts of its
// own and updates others; meanwhile replicas boot (two at a time) and one
// follows. At cutover the tenant accounts are, document for document, a
// fresh migration of the final legacy collection plus the service's own
// writes: its tenant accounts as it wrote them, and the tenant accounts it
// updated as it left them. The oracle: the two writers work on disjoint
// people (the old replica on the accounts whose _id sorts in the first
// half of the one-to-one people it was given, the service on the second),
// so each tenant account is exactly one of the two.
func TestRollingDeployWithBothWriters(t *testing.T) {
	cfg, db := testConfig(t)
	cfg.CatchUp.Margin = time.Minute
	// The default lease: five runners and two writers share one embedded
	// server, whose single writer can hold a heartbeat back for seconds.
	cfg.Lock.Lease, cfg.Lock.Heartbeat, cfg.Lock.Wait = 30*time.Second, 10*time.Second, 2*time.Minute
	ctx := context.Background()
	opts := gen.Options{Accounts: 600, Seed: 23}
	env.Load(t, db, opts)
	if _, err := newRunner(t, cfg).Boot(ctx); err != nil {
		t.Fatal(err)
	}
	tenants, accounts := db.Collection(names.TenantsAccounts), db.Collection(names.Accounts)
	var people []bson.M // one-to-one people with a verified email
	cur, err := tenants.Find(ctx, bson.D{{Key: model.FieldMemberships, Value: bson.D{{Key: "$size", Value: 1}}}}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	for cur.Next(ctx) {
		var tn bson.M
		if err := cur.Decode(&tn); err != nil {
			t.Fatal(err)
		}
		for _, at := range tn["auth_types"].(bson.A) {
			if m := at.(bson.M); m["auth_type_code"] == "email" && m["unverified"] != true {
				people = append(people, tn)
				break
			}
		}
	}
	cur.Close(ctx)
	if len(people) < 80 {
		t.Fatalf("%d one-to-one people; want 80", len(people))
	}
	oldSide, newSide := people[:40], people[40:80]

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	// The old replica.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i, p := range oldSide {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			now := time.Now().UTC().Truncate(time.Millisecond)
			var err error
			switch i % 4 {
			case 0: // a new person
				id := fmt.Sprintf("zz-new-%03d", i)
				ao := p[model.FieldMemberships].(bson.A)[0].(bson.M)[model.FieldAppOrgID]
				_, err = accounts.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: model.FieldAppOrgID, Value: ao},
					{Key: model.FieldAuthTypes, Value: bson.A{bson.D{{Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: id + "@example.org"}}}},
					{Key: model.FieldDateCreated, Value: now}, {Key: model.FieldDateUpdated, Value: now}})
			case 1: // a new app account of a migrated person
				ao := p[model.FieldMemberships].(bson.A)[0].(bson.M)[model.FieldAppOrgID].(string)
				other := ""
				for _, a := range gen.AppOrgs(opts) {
					if a.OrgID == p[model.FieldOrgID] && a.ID != ao {
						other = a.ID
					}
				}
				if other == "" {
					continue
				}
				_, err = accounts.InsertOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("zz-joiner-%03d", i)}, {Key: model.FieldAppOrgID, Value: other},
					{Key: model.FieldAuthTypes, Value: p["auth_types"]}, {Key: model.FieldDateCreated, Value: now}, {Key: model.FieldDateUpdated, Value: now}})
			case 2: // an edit
				_, err = accounts.UpdateOne(ctx, bson.D{{Key: "_id", Value: p["_id"]}},
					bson.D{{Key: "$set", Value: bson.D{{Key: "profile.first_name", Value: fmt.Sprintf("Edited %d", i)}, {Key: model.FieldDateUpdated, Value: now}}}})
			case 3: // a deletion
				_, err = accounts.DeleteOne(ctx, bson.D{{Key: "_id", Value: p["_id"]}})
			}
			if err != nil {
				errs <- fmt.Errorf("the old replica: %w", err)
				return
			}
		}
	}()
	// The new service: tenant accounts of its own, and updates of others.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i, p := range newSide {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			now := time.Now().UTC().Truncate(time.Millisecond)
			var err error
			if i%2 == 0 {
				ms := p[model.FieldMemberships].(bson.A)[0].(bson.M)
				_, err = tenants.InsertOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("svc-%03d", i)}, {Key: model.FieldOrgID, Value: p[model.FieldOrgID]},
					{Key: model.FieldMemberships, Value: bson.A{bson.D{{Key: "id", Value: fmt.Sprintf("svc-membership-%03d", i)}, {Key: model.FieldAppOrgID, Value: ms[model.FieldAppOrgID]}}}},
					{Key: model.FieldDateCreated, Value: now}, {Key: model.FieldDateUpdated, Value: now}})
			} else {
				_, err = tenants.UpdateOne(ctx, bson.D{{Key: "_id", Value: p["_id"]}},
					bson.D{{Key: "$set", Value: bson.D{{Key: "service_note", Value: fmt.Sprintf("note %d", i)}, {Key: model.FieldDateUpdated, Value: now}}}})
			}
			if err != nil {
				errs <- fmt.Errorf("the service: %w", err)
				return
			}
		}
	}()
	// Replicas boot, two at a time, and one follows.
	fctx, stopFollow := context.WithCancel(ctx)
	followed := make(chan error, 1)
	go func() {
		followed <- newRunner(t, cfg).Follow(fctx, runner.FollowOptions{Interval: 100 * time.Millisecond})
	}()
	for range 3 {
		var boots sync.WaitGroup
		for range 2 {
			boots.Add(1)
			go func() {
				defer boots.Done()
				if _, err := newRunner(t, cfg).Boot(ctx); err != nil {
					errs <- fmt.Errorf("a boot: %w", err)
				}
			}()
		}
		boots.Wait()
		time.Sleep(200 * time.Millisecond)
	}
	wg.Wait()
	close(stop)
	time.Sleep(300 * time.Millisecond)
	stopFollow()
	if err := <-followed; err != nil {
		t.Errorf("follow: %v", err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	env.Seeded(t, db)
	// What the service left, as it left it.
	service := map[string]string{}
	for k, v := range testenv.Dump(t, tenants) {
		if strings.HasPrefix(k, `"svc-`) {
			service[k] = v
		}
	}
	for i, p := range newSide {
		if i%2 == 1 {
			k := idKeyOf(t, p["_id"])
			service[k] = testenv.Dump(t, tenants)[k]
		}
	}
	res, err := newRunner(t, cfg).Cutover(ctx)
	if err != nil {
		t.Fatalf("cutover: %v (%s)", err, res.Verify.Problem())
	}
	gotTenants, gotLinks := testenv.Dump(t, tenants), testenv.Dump(t, db.Collection(names.Links))
	wantTenants, wantLinks := freshMigration(t, db)
	maps.Copy(wantTenants, service)
	diff(t, "tenant accounts at cutover", gotTenants, wantTenants)
	diff(t, "links at cutover", gotLinks, wantLinks)
	if res.Verify.ServiceTenants != 20 || !res.Verify.Done() {
		t.Errorf("cutover's verify: %d service tenant accounts, done %v (%s); want 20, done", res.Verify.ServiceTenants, res.Verify.Done(), res.Verify.Problem())
	}
}

// idKeyOf is an _id decoded into a bson.M as testenv.Dump keys it.
func idKeyOf(t *testing.T, id any) string {
	t.Helper()
	typ, b, err := bson.MarshalValue(id)
	if err != nil {
		t.Fatal(err)
	}
	return bson.RawValue{Type: typ, Value: b}.String()
}

// Follow through connections reset again and again by a proxy: it keeps
// following (each catch-up retries within its budget, or the next one
// takes over), and once the faults stop it has carried the old replica's
// writes exactly as an undisturbed catch-up does.
func TestFollowSurvivesNetworkFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("injects faults for seconds")
	}
	ctx := context.Background()
	opts := gen.Options{Accounts: 400, Seed: 17}
	setup := func(t *testing.T) (config.Config, *mongo.Database) {
		cfg, db := testConfig(t)
		env.Load(t, db, opts)
		if _, err := newRunner(t, cfg).Boot(ctx); err != nil {
			t.Fatal(err)
		}
		rollingChanges(t, db, opts)
		return cfg, db
	}
	cleanCfg, clean := setup(t)
	if _, err := newRunner(t, cleanCfg).Sync(ctx, runner.SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	wantTenants, wantLinks := testenv.Dump(t, clean.Collection(names.TenantsAccounts)), testenv.Dump(t, clean.Collection(names.Links))

	cfg, db := setup(t)
	proxy, uri := env.Proxied(t, nil)
	cfg.MongoDB.URI, cfg.MongoDB.ConnectTimeout = uri, 5*time.Second
	cfg.Retry.Attempts, cfg.Retry.MaxElapsed = 30, time.Minute
	cfg.Retry.InitialWait, cfg.Retry.MaxWait = 50*time.Millisecond, 500*time.Millisecond
	cfg.Lock.Lease, cfg.Lock.Heartbeat = 20*time.Second, 2*time.Second
	r := newRunner(t, cfg)
	fctx, stopFollow := context.WithCancel(ctx)
	var rounds atomic.Int64
	followed := make(chan error, 1)
	go func() {
		followed <- r.Follow(fctx, runner.FollowOptions{Interval: time.Millisecond, Each: func(*catchup.Report, time.Duration) { rounds.Add(1) }})
	}()
	reset := toxic("reset_peer", `{"timeout":0}`, 300*time.Millisecond)
	faults := 0
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline) && (faults < 4 || rounds.Load() < 2); faults++ {
		time.Sleep(700 * time.Millisecond)
		reset(t, proxy)
	}
	// Faults over: the next catch-up carries whatever is left.
	for n, deadline := rounds.Load(), time.Now().Add(2*time.Minute); rounds.Load() < n+2 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	stopFollow()
	if err := <-followed; err != nil {
		t.Fatalf("follow through %d faults: %v", faults, err)
	}
	t.Logf("%d faults, %d catch-ups", faults, rounds.Load())
	diff(t, "tenant accounts after follow through faults", testenv.Dump(t, db.Collection(names.TenantsAccounts)), wantTenants)
	diff(t, "links after follow through faults", testenv.Dump(t, db.Collection(names.Links)), wantLinks)
}
