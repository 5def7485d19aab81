package verify_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/verify"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

var colls = model.DefaultNames()

func legacy(id, appOrg string) bson.D {
	return bson.D{{Key: "_id", Value: id}, {Key: "app_org_id", Value: appOrg}}
}

func tenant(id, org string, memberships ...[2]string) bson.D {
	ms := bson.A{}
	for _, m := range memberships {
		ms = append(ms, bson.D{{Key: "id", Value: m[0]}, {Key: "app_org_id", Value: m[1]}})
	}
	return bson.D{{Key: "_id", Value: id}, {Key: "org_id", Value: org}, {Key: "org_apps_memberships", Value: ms}}
}

func link(legacyID, tenantID, appOrg string) bson.D {
	return bson.D{{Key: "_id", Value: legacyID}, {Key: "tenant_id", Value: tenantID}, {Key: "org_id", Value: "o1"},
		{Key: "app_org_id", Value: appOrg}, {Key: "membership_id", Value: appOrg + "_" + legacyID}}
}

func TestVerify(t *testing.T) {
	merged := func() ([]bson.D, []bson.D, []bson.D) {
		return []bson.D{legacy("A", "ao1"), legacy("B", "ao2")},
			[]bson.D{tenant("A", "o1", [2]string{"ao1_A", "ao1"}, [2]string{"ao2_B", "ao2"})},
			[]bson.D{link("A", "A", "ao1"), link("B", "A", "ao2")}
	}
	tests := []struct {
		name    string
		build   func() (accounts, tenants, links []bson.D)
		problem func(*verify.Report) *verify.Problem // nil: must be OK
		check   func(*verify.Report) bool
	}{
		{name: "one-to-one", build: func() ([]bson.D, []bson.D, []bson.D) {
			return []bson.D{legacy("A", "ao1"), legacy("C", "ao3")},
				[]bson.D{tenant("A", "o1", [2]string{"ao1_A", "ao1"}), tenant("C", "o2", [2]string{"ao3_C", "ao3"})}, nil
		}, check: func(r *verify.Report) bool { return r.OneToOne == 2 && r.PerOrg["o2"].Migrated == 1 }},
		{name: "merged by phase 1", build: merged,
			check: func(r *verify.Report) bool { return r.Linked == 2 && r.OneToOne == 0 && r.Memberships == 2 }},
		{name: "not migrated", build: func() ([]bson.D, []bson.D, []bson.D) {
			return []bson.D{legacy("A", "ao1"), legacy("B", "ao1")}, []bson.D{tenant("A", "o1", [2]string{"ao1_A", "ao1"})}, nil
		}, problem: func(r *verify.Report) *verify.Problem { return &r.NotMigrated }},
		{name: "stale tenant of a merged account", build: func() ([]bson.D, []bson.D, []bson.D) {
			a, ts, l := merged()
			return a, append(ts, tenant("B", "o1", [2]string{"ao2_B", "ao2"})), l
		}, problem: func(r *verify.Report) *verify.Problem { return &r.InTwoTenants }},
		{name: "tenant without legacy", build: func() ([]bson.D, []bson.D, []bson.D) {
			a, ts, l := merged()
			return a, append(ts, tenant("Z", "o1", [2]string{"ao1_Z", "ao1"})), l
		}, problem: func(r *verify.Report) *verify.Problem { return &r.OrphanTenants }},
		{name: "membership of another org", build: func() ([]bson.D, []bson.D, []bson.D) {
			return []bson.D{legacy("A", "ao3")}, []bson.D{tenant("A", "o1", [2]string{"ao3_A", "ao3"})}, nil
		}, problem: func(r *verify.Report) *verify.Problem { return &r.OrgMismatch }},
		{name: "extra membership", build: func() ([]bson.D, []bson.D, []bson.D) {
			return []bson.D{legacy("A", "ao1")}, []bson.D{tenant("A", "o1", [2]string{"ao1_A", "ao1"}, [2]string{"ao2_X", "ao2"})}, nil
		}, problem: func(r *verify.Report) *verify.Problem { return &r.OrphanMembers }},
		{name: "link to a missing tenant", build: func() ([]bson.D, []bson.D, []bson.D) {
			a, ts, l := merged()
			return append(a, legacy("D", "ao1")), ts, append(l, link("D", "Q", "ao1"))
		}, problem: func(r *verify.Report) *verify.Problem { return &r.DanglingLinks }},
		{name: "link whose membership is missing", build: func() ([]bson.D, []bson.D, []bson.D) {
			a, _, l := merged()
			return a, []bson.D{tenant("A", "o1", [2]string{"ao1_A", "ao1"})}, l
		}, problem: func(r *verify.Report) *verify.Problem { return &r.NotMigrated }},
		{name: "duplicate membership id", build: func() ([]bson.D, []bson.D, []bson.D) {
			return []bson.D{legacy("A", "ao1")}, []bson.D{tenant("A", "o1", [2]string{"ao1_A", "ao1"}, [2]string{"ao1_A", "ao1"})}, nil
		}, problem: func(r *verify.Report) *verify.Problem { return &r.DupMemberships }},
		{name: "unknown app-org", build: func() ([]bson.D, []bson.D, []bson.D) {
			return []bson.D{legacy("A", "nope")}, nil, nil
		}, problem: func(r *verify.Report) *verify.Problem { return &r.NoAppOrg }},
		{name: "link without legacy", build: func() ([]bson.D, []bson.D, []bson.D) {
			a, ts, l := merged()
			return a, ts, append(l, link("0", "A", "ao1"))
		}, problem: func(r *verify.Report) *verify.Problem { return &r.OrphanLinks }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := env.Database(t)
			ctx := context.Background()
			appOrgs := []any{
				bson.D{{Key: "_id", Value: "ao1"}, {Key: "org_id", Value: "o1"}},
				bson.D{{Key: "_id", Value: "ao2"}, {Key: "org_id", Value: "o1"}},
				bson.D{{Key: "_id", Value: "ao3"}, {Key: "org_id", Value: "o2"}},
			}
			if _, err := db.Collection(colls.ApplicationsOrganizations).InsertMany(ctx, appOrgs); err != nil {
				t.Fatal(err)
			}
			accounts, tenants, links := tt.build()
			for coll, docs := range map[string][]bson.D{colls.Accounts: accounts, colls.TenantsAccounts: tenants, colls.Links: links} {
				for _, d := range docs {
					if _, err := db.Collection(coll).InsertOne(ctx, d); err != nil {
						t.Fatal(err)
					}
				}
			}
			env.Seeded(t, db)
			rep, err := verify.Run(ctx, db, colls, verify.Options{Batch: 2})
			if err != nil {
				t.Fatal(err)
			}
			if tt.problem == nil {
				if !rep.OK() || !tt.check(rep) || rep.LegacyAccounts != len(accounts) {
					t.Errorf("report = %+v (problem %q)", rep, rep.Problem())
				}
				return
			}
			if p := tt.problem(rep); p.Count == 0 || len(p.First) == 0 || rep.OK() {
				t.Errorf("problem not found; report = %+v", rep)
			}
		})
	}
}

// Accounts whose app-org names no org, or no app-org at all, share one
// "(no org)" row of the org table: no row with a blank name.
func TestNoOrgIsOneRow(t *testing.T) {
	db := env.Database(t)
	ctx := context.Background()
	if _, err := db.Collection(colls.ApplicationsOrganizations).InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: "ao1"}, {Key: "org_id", Value: "o1"}},
		bson.D{{Key: "_id", Value: "ao4"}, {Key: "org_id", Value: ""}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection(colls.Accounts).InsertMany(ctx, []any{legacy("A", "ao1"), legacy("E", "ao4"), legacy("F", "nope")}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection(colls.TenantsAccounts).InsertOne(ctx, tenant("A", "o1", [2]string{"ao1_A", "ao1"})); err != nil {
		t.Fatal(err)
	}
	env.Seeded(t, db)
	rep, err := verify.Run(ctx, db, colls, verify.Options{Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, blank := rep.PerOrg[""]; blank || rep.PerOrg["(no org)"] == nil || rep.PerOrg["(no org)"].Legacy != 2 {
		t.Errorf("org rows: %v; want one (no org) row of 2 legacy accounts and no blank one", rep.PerOrg)
	}
}

// Verify's JSON carries its verdict: ok, done and the problem.
func TestJSONHasTheVerdict(t *testing.T) {
	for _, tt := range []struct {
		rep      verify.Report
		ok, done bool
	}{
		{verify.Report{Stage: verify.StageComplete}, true, true},
		{verify.Report{Stage: verify.StageComplete, NotMigrated: verify.Problem{Count: 1, First: []string{"a"}}}, false, false},
	} {
		b, err := json.Marshal(&tt.rep)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			OK      *bool  `json:"ok"`
			Done    *bool  `json:"done"`
			Problem string `json:"problem"`
			Stage   string `json:"stage"`
		}
		if err := json.Unmarshal(b, &got); err != nil || got.OK == nil || *got.OK != tt.ok || got.Done == nil || *got.Done != tt.done ||
			(tt.ok != (got.Problem == "")) || got.Stage == "" {
			t.Errorf("JSON %s; want ok %v, done %v, the problem if any, and the report's fields", b, tt.ok, tt.done)
		}
	}
}

// With skip_invalid, the accounts the phases skip (invalid, or in a group
// over 16 MB) are counted as skipped, not a mismatch; a valid account in no
// tenant account is still one, and so is a held account of no app-org.
// Without it, all are mismatches.
func TestSkippedInvalidIsNoMismatch(t *testing.T) {
	db := env.Database(t)
	ctx := context.Background()
	if _, err := db.Collection(colls.ApplicationsOrganizations).InsertOne(ctx, bson.D{{Key: "_id", Value: "ao1"}, {Key: "org_id", Value: "o1"}}); err != nil {
		t.Fatal(err)
	}
	valid := append(legacy("G", "ao1"), bson.E{Key: "auth_types", Value: bson.A{bson.D{{Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: "g@x.org"}}}})
	// K is held by a tenant account, but its app-org is gone: a mismatch
	// whatever skip_invalid says.
	if _, err := db.Collection(colls.Accounts).InsertMany(ctx, []any{legacy("A", "ao1"), legacy("F", "nope"), valid, legacy("H", "ao1"), legacy("K", "gone")}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection(colls.TenantsAccounts).InsertMany(ctx, []any{tenant("A", "o1", [2]string{"ao1_A", "ao1"}), tenant("K", "o1", [2]string{"gone_K", "gone"})}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection(colls.Links).InsertOne(ctx, bson.D{{Key: "_id", Value: "H"}, {Key: "org_id", Value: "o1"}, {Key: "app_org_id", Value: "ao1"},
		{Key: "skipped", Value: "merged tenant account over the 16 MB document limit"}}); err != nil {
		t.Fatal(err)
	}
	env.Seeded(t, db)
	skip, err := verify.Run(ctx, db, colls, verify.Options{Batch: 2, SkipInvalid: true})
	if err != nil {
		t.Fatal(err)
	}
	if skip.SkippedInvalid.Count != 2 || skip.NotMigrated.Count != 1 || skip.NotMigrated.First[0] != "G" || skip.NoAppOrg.Count != 1 || skip.NoAppOrg.First[0] != "K" || skip.Skipped.Count != 0 {
		t.Errorf("skip_invalid: %+v; want F and H skipped, G not migrated, K of no app-org", skip)
	}
	strict, err := verify.Run(ctx, db, colls, verify.Options{Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	if strict.SkippedInvalid.Count != 0 || strict.NotMigrated.Count != 3 || strict.NoAppOrg.Count != 2 || strict.Skipped.Count != 1 {
		t.Errorf("without skip_invalid: %+v; want F, G and H not migrated", strict)
	}
}
