package runner_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/phase1"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

// The pre-hijacked account of the issue, as at boot: an attacker signs up
// first on app 2 with the victim's email, never confirms it, and waits for
// the merge. The two accounts stay two tenant accounts, each with its own
// credential; the run says so by legacy _id, and `runner status` keeps
// it. Beside them, one email in two cases and one in two Unicode forms stay
// apart and are reported as variants, until the operator turns
// normalisation on: then `runner --phase 1` merges them into the tenant
// accounts phase 2 made, and verify holds.
func TestIdentityIsASecurityBoundary(t *testing.T) {
	cfg, db := testConfig(t)
	ctx := context.Background()
	aos := gen.AppOrgs(gen.Options{})
	app1, app2 := aos[0].ID, ""
	var appOrgs []any
	for _, ao := range aos {
		appOrgs = append(appOrgs, ao)
		if ao.OrgID == aos[0].OrgID && ao.ID != app1 && app2 == "" {
			app2 = ao.ID
		}
	}
	if _, err := db.Collection(names.ApplicationsOrganizations).InsertMany(ctx, appOrgs); err != nil {
		t.Fatal(err)
	}
	day := func(d int) time.Time { return time.Date(2023, 1, d, 0, 0, 0, 0, time.UTC) }
	email := func(ident, cred string, unverified bool) bson.D {
		return bson.D{{Key: "id", Value: "at-" + cred}, {Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: ident},
			{Key: "credential_id", Value: cred}, {Key: "unverified", Value: unverified}}
	}
	acct := func(id, ao string, created int, verified bool, ats ...bson.D) any {
		a := bson.A{}
		for _, at := range ats {
			a = append(a, at)
		}
		return bson.D{{Key: "_id", Value: id}, {Key: "app_org_id", Value: ao}, {Key: "auth_types", Value: a},
			{Key: "verified", Value: verified}, {Key: "date_created", Value: day(created)}}
	}
	legacy := []any{
		acct("a1", app2, 2, false, email("victim@e.com", "cred-attacker", true)),
		acct("v1", app1, 20, true, email("victim@e.com", "cred-victim", false)),
		acct("c1", app1, 3, true, email("Bob@x.com", "cred-c1", false)),
		acct("c2", app2, 4, true, email("bob@x.com", "cred-c2", false)),
		acct("u1", app1, 5, true, email("jos\u00e9@x.org", "cred-u1", false)),
		acct("u2", app2, 6, true, email("jose\u0301@x.org", "cred-u2", false)),
	}
	if _, err := db.Collection(names.Accounts).InsertMany(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	env.Seeded(t, db)

	res, err := newRunner(t, cfg).Up(ctx)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	tenants := func() map[string]model.TenantAccount {
		out := map[string]model.TenantAccount{}
		for _, tn := range testenv.ReadAll[model.TenantAccount](t, db.Collection(names.TenantsAccounts)) {
			out[tn.ID.Text()] = tn
		}
		return out
	}
	got := tenants()
	if len(got) != len(legacy) {
		t.Fatalf("%d tenant accounts, want %d: one per legacy account, nobody merged", len(got), len(legacy))
	}
	for id, cred := range map[string]string{"a1": "cred-attacker", "v1": "cred-victim"} {
		tn := got[id]
		if len(tn.Memberships) != 1 || len(tn.AuthTypes) != 1 || tn.AuthTypes[0].CredentialID == nil || *tn.AuthTypes[0].CredentialID != cred {
			t.Errorf("tenant %s = %+v; want its own membership and its own credential %s", id, tn, cred)
		}
	}
	if got["a1"].Verified {
		t.Error("the attacker's tenant account says verified")
	}
	p1 := stepNamed(t, res, "phase1_merge_identities")
	if p1.Counts[count.UnverifiedShared] != 1 || p1.Counts[count.HeldApart] != 1 || p1.Counts[count.IdentityVariants] != 2 || p1.Counts[count.VariantAccounts] != 4 {
		t.Errorf("phase 1 counts %v; want 1 unverified identity holding 1 account apart, 2 variant classes of 4 accounts", p1.Counts)
	}
	st, err := newRunner(t, cfg).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var notes string
	for _, s := range st.Steps {
		if s.Identifier == "phase1_merge_identities" && s.Up != nil {
			notes = strings.Join(s.Up.Notes, "\n")
		}
	}
	for _, want := range []string{"email: held apart a1; verified by v1", "email: c1, c2", "email: u1, u2"} {
		if !strings.Contains(notes, want) {
			t.Errorf("runner status notes %q do not list %q", notes, want)
		}
	}
	for _, value := range []string{"victim@e.com", "bob@x.com", "Bob@x.com", "x.org"} {
		if strings.Contains(notes, value) {
			t.Errorf("runner status notes show an identifier (%s): %q", value, notes)
		}
	}

	// The operator turns normalisation on for email, and runs phase 1:
	// the accounts it links hold tenant accounts already, which are
	// reported, not merged (the service may have written them).
	cfg.Identity.Normalize.LowerCase = []string{"email"}
	cfg.Identity.Normalize.UnicodeNFC = []string{"email"}
	beforeMerge := tenants()
	res, err = newRunner(t, cfg).Phase(ctx, 1)
	if err != nil {
		t.Fatalf("Phase(1) with email normalised: %v", err)
	}
	if p1 = stepNamed(t, res, "phase1_merge_identities"); p1.Counts[count.NotMerged] != 2 || p1.Counts[count.TenantsSuperseded] != 0 {
		t.Errorf("phase 1 normalised: counts %v; want 2 groups not merged, nothing superseded", p1.Counts)
	}
	// The two groups left as they are were grouped, not merged.
	if m, ok := p1.Counts[count.MergedAccounts]; !ok || m != 0 || p1.Counts[count.GroupedAccounts] != 4 {
		t.Errorf("phase 1 normalised: %d accounts merged (counted: %v) of %d grouped; want the 4 accounts of the 2 groups not merged grouped, none merged", m, ok, p1.Counts[count.GroupedAccounts])
	}
	if got := tenants(); len(got) != len(beforeMerge) {
		t.Errorf("phase 1 normalised wrote: %d tenant accounts, %d before", len(got), len(beforeMerge))
	}
	// Before go-live, the operator says to merge them.
	cfg.Identity.MergeExisting = true
	r := newRunner(t, cfg)
	res, err = r.Phase(ctx, 1)
	if err != nil {
		t.Fatalf("Phase(1) with email normalised: %v", err)
	}
	p1 = stepNamed(t, res, "phase1_merge_identities")
	if p1.Counts[count.Groups] != 2 || p1.Counts[count.TenantsSuperseded] != 2 || p1.Counts[count.IdentityVariants] != 0 || p1.Counts[count.HeldApart] != 1 {
		t.Errorf("phase 1 again, normalised: counts %v; want 2 groups superseding 2 tenant accounts, no variant left, a1 still apart", p1.Counts)
	}
	got = tenants()
	c1 := got["c1"]
	if len(got) != 4 || len(c1.Memberships) != 2 || len(got["u1"].Memberships) != 2 ||
		len(c1.AuthTypes) != 1 || c1.AuthTypes[0].CredentialID == nil || *c1.AuthTypes[0].CredentialID != "cred-c1" {
		t.Errorf("tenant accounts after normalising = %v; want c1 and u1 with two memberships each and one email login each (the survivor's), a1 and v1 apart", got)
	}
	if p1.Counts[count.Conflicts] < 2 {
		t.Errorf("phase 1 counts %v; want the two dropped email entries as conflicts", p1.Counts)
	}
	if rep, err := r.Verify(ctx); err != nil || !rep.OK() {
		t.Errorf("verify after normalising: %+v, %v", rep, err)
	}

	// Normalisation off again: c1 and c2, u1 and u2 are two people each
	// once more. Phase 1 refuses, writing nothing, until the operator
	// undoes it; then a run gives what a first run gives.
	cfg.Identity.Normalize = phase1.Normalize{}
	r = newRunner(t, cfg)
	before := testenv.Dump(t, db.Collection(names.TenantsAccounts))
	_, err = r.Phase(ctx, 1)
	if !errors.Is(err, phase1.ErrRulesSplit) || !strings.Contains(err.Error(), "tenant c1: c1, c2") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Phase(1) after normalisation was turned off: %v; want one line of ErrRulesSplit naming tenant c1", err)
	}
	if fmt.Sprint(testenv.Dump(t, db.Collection(names.TenantsAccounts))) != fmt.Sprint(before) {
		t.Error("the refused phase 1 changed the tenant accounts")
	}
	for {
		res, err := r.Down(ctx)
		if err != nil {
			t.Fatalf("Down: %v", err)
		}
		if res.To < 2 {
			break
		}
	}
	if _, err := r.Up(ctx); err != nil {
		t.Fatalf("Up after undoing phase 1: %v", err)
	}
	if got := tenants(); len(got) != len(legacy) {
		t.Errorf("%d tenant accounts after undoing phase 1 and running again, want %d", len(got), len(legacy))
	}
	if rep, err := r.Verify(ctx); err != nil || !rep.OK() {
		t.Errorf("verify after undoing phase 1 and running again: %+v, %v", rep, err)
	}
}
