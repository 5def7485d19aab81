package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/runner/verify"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
)

// At every stage an operator can stop at, verify says how far the
// migration is and tells "not finished" (exit 7) from "broken" (exit 6),
// and a run's own verify holds only the applied steps to their promises.
func TestVerifyAtEveryStage(t *testing.T) {
	db := env.Database(t)
	exp := env.Load(t, db, gen.Options{Accounts: 1500, Seed: 7})
	ctx := context.Background()
	oneToOne := exp.Accounts - exp.GroupedAccounts
	var ao bson.M
	if err := db.Collection(names.ApplicationsOrganizations).FindOne(ctx, bson.D{{Key: "org_id", Value: bson.D{{Key: "$type", Value: "string"}}}}).Decode(&ao); err != nil {
		t.Fatal(err)
	}
	// An account phase 2 refuses (no identity), added after phase 1 ran.
	bad := bson.D{{Key: "_id", Value: "~bad"}, {Key: "app_org_id", Value: ao["_id"]}, {Key: "auth_types", Value: bson.A{}}}
	stages := []struct {
		name     string
		args     []string         // the operator's command before verify
		code     int              // its exit code
		before   func(*testing.T) // a change the service makes first
		stage    verify.Stage
		awaiting int
		verify   int // runner verify's exit code
	}{
		{name: "nothing applied", stage: verify.StageBeforePhase1, awaiting: exp.Accounts, verify: exitNotFinished},
		{name: "phase 1", args: []string{"--phase", "1"}, stage: verify.StageAfterPhase1, awaiting: oneToOne, verify: exitNotFinished},
		{name: "step 1 only (phase 1 undone)", args: []string{"down"}, stage: verify.StageBeforePhase1, awaiting: exp.Accounts, verify: exitNotFinished},
		{name: "phase 2", args: []string{"--phase", "2"}, stage: verify.StageComplete, verify: exitOK},
		{name: "phase 2 undone", args: []string{"down"}, stage: verify.StageAfterPhase1, awaiting: oneToOne, verify: exitNotFinished},
		{name: "failed phase 2", args: []string{"--phase", "2"}, code: exitFailed, before: func(t *testing.T) {
			if _, err := db.Collection(names.Accounts).InsertOne(ctx, bad); err != nil {
				t.Fatal(err)
			}
			env.Seeded(t, db)
		}, stage: verify.StageAfterPhase1, awaiting: oneToOne + 1, verify: exitNotFinished},
		{name: "a tenant account of phase 1 deleted", before: func(t *testing.T) {
			var link bson.M
			if err := db.Collection(names.Links).FindOne(ctx, bson.D{}).Decode(&link); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Collection(names.TenantsAccounts).DeleteOne(ctx, bson.D{{Key: "_id", Value: link["tenant_id"]}}); err != nil {
				t.Fatal(err)
			}
		}, stage: verify.StageAfterPhase1, awaiting: oneToOne + 1, verify: exitMismatch},
	}
	for _, s := range stages {
		if s.before != nil {
			s.before(t)
		}
		if s.args != nil {
			if r := runBin(t, db.Name(), nil, s.args...); r.code != s.code {
				t.Fatalf("%s: runner %s exited %d, want %d: %s", s.name, strings.Join(s.args, " "), r.code, s.code, lastLine(r.stderr))
			}
		}
		r := runBin(t, db.Name(), nil, "verify", "--json")
		var rep verify.Report
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("%s: verify --json: %v: %s", s.name, err, r.stdout)
		}
		if r.code != s.verify || rep.Stage != s.stage || rep.Awaiting.Count != s.awaiting {
			t.Errorf("%s: verify exited %d with stage %q, %d awaiting (%s); want %d, %q, %d",
				s.name, r.code, rep.Stage, rep.Awaiting.Count, lastLine(r.stderr), s.verify, s.stage, s.awaiting)
		}
		// The steps say what is pending and what awaits it. (The references
		// step has nothing to do here: no references are configured; the
		// lookup indexes' step moves no account: verify's stage is the
		// phases'.)
		pending, awaiting, failed := 0, 0, 0
		for _, st := range rep.Steps {
			if st.State == "failed" {
				failed++
			}
			if st.State != "applied" && st.Name != "references" && st.Name != "tenants_accounts_lookup_indexes" {
				pending++
			}
			if st.Applied != (st.State == "applied") {
				t.Errorf("%s: step %d is %q with applied=%v", s.name, st.Version, st.State, st.Applied)
			}
			awaiting += st.Awaiting
		}
		if s.code == exitFailed && failed != 1 {
			t.Errorf("%s: %d steps in state \"failed\" after a step failed; want its own state, failed", s.name, failed)
		}
		if (pending == 0) != (s.stage == verify.StageComplete) || awaiting != s.awaiting || len(rep.Steps) != latest(t) {
			t.Errorf("%s: steps %+v; want the pending ones, with %d awaiting", s.name, rep.Steps, s.awaiting)
		}
		text := runBin(t, db.Name(), nil, "verify")
		switch s.verify {
		case exitOK:
			if !strings.Contains(text.stdout, "verify: OK") {
				t.Errorf("%s: verify says %q", s.name, text.stdout)
			}
		case exitNotFinished:
			if !strings.Contains(text.stdout, "consistent, not finished") || strings.Contains(text.stdout, "MISMATCH") {
				t.Errorf("%s: verify says %q", s.name, text.stdout)
			}
		case exitMismatch:
			if !strings.Contains(text.stdout, "MISMATCH") {
				t.Errorf("%s: verify says %q", s.name, text.stdout)
			}
		}
		t.Logf("%s: exit %d, %s", s.name, r.code, lastLine(text.stdout))
	}
}
