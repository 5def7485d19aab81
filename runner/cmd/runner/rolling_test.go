package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
)

// The rolling deploy, through the binary: a boot migrates; an old
// replica then writes a new app account of a migrated person, a new
// person and an edit; the next boot carries all three; follow carries a
// change as it comes and stops cleanly on SIGTERM; cutover freezes the
// legacy collection, and the boots after it carry nothing.
func TestRollingDeployThroughTheBinary(t *testing.T) {
	ctx := context.Background()
	db := env.Database(t)
	opts := gen.Options{Accounts: 300, Seed: 5}
	env.Load(t, db, opts)
	if r := runBin(t, db.Name(), nil); r.code != 0 || !strings.Contains(r.stdout, "verify: OK") {
		t.Fatalf("the first boot = %+v", r)
	}
	tenants, accounts := db.Collection(names.TenantsAccounts), db.Collection(names.Accounts)
	var p3 bson.M // a one-to-one person with a verified email
	cur, err := tenants.Find(ctx, bson.D{{Key: model.FieldMemberships, Value: bson.D{{Key: "$size", Value: 1}}}})
	if err != nil {
		t.Fatal(err)
	}
	var person bson.M
	for cur.Next(ctx) {
		var tn bson.M
		if err := cur.Decode(&tn); err != nil {
			t.Fatal(err)
		}
		for _, at := range tn["auth_types"].(bson.A) {
			if m := at.(bson.M); m["auth_type_code"] == "email" && m["unverified"] != true && person == nil {
				person = tn
			}
		}
		if p3 == nil && person != nil && tn["_id"] != person["_id"] {
			p3 = tn
		}
	}
	cur.Close(ctx)
	if person == nil || p3 == nil {
		t.Fatal("no one-to-one people to write about")
	}
	ao := person[model.FieldMemberships].(bson.A)[0].(bson.M)[model.FieldAppOrgID].(string)
	other := ""
	org := person[model.FieldOrgID]
	for _, a := range gen.AppOrgs(opts) {
		if a.OrgID == org && a.ID != ao {
			other = a.ID
		}
	}
	if other == "" {
		t.Fatal("no second app in the person's org")
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	mustInsert := func(d bson.D) {
		t.Helper()
		if _, err := accounts.InsertOne(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	mustInsert(bson.D{{Key: "_id", Value: "n1"}, {Key: model.FieldAppOrgID, Value: other}, {Key: model.FieldAuthTypes, Value: person["auth_types"]},
		{Key: model.FieldDateCreated, Value: now}, {Key: model.FieldDateUpdated, Value: now}})
	mustInsert(bson.D{{Key: "_id", Value: "n2"}, {Key: model.FieldAppOrgID, Value: ao},
		{Key: model.FieldAuthTypes, Value: bson.A{bson.D{{Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: "n2@example.org"}}}},
		{Key: model.FieldDateCreated, Value: now}, {Key: model.FieldDateUpdated, Value: now}})
	rename := func(name string) {
		t.Helper()
		if _, err := accounts.UpdateOne(ctx, bson.D{{Key: "_id", Value: p3["_id"]}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "profile.first_name", Value: name}, {Key: model.FieldDateUpdated, Value: time.Now().UTC()}}}}); err != nil {
			t.Fatal(err)
		}
		env.Seeded(t, db)
	}
	rename("Renamed")
	env.Seeded(t, db)

	// Before the next boot, verify says the changes are not carried yet.
	if r := runBin(t, db.Name(), nil, "verify"); r.code != 7 || !strings.Contains(r.stderr, "not carried yet") {
		t.Errorf("verify before the catch-up = %d %q; want 7, not carried yet", r.code, lastLine(r.stderr))
	}
	r := runBin(t, db.Name(), nil)
	if r.code != 0 || !strings.Contains(r.stdout, "no step to apply") || !strings.Contains(r.stdout, "catch-up: ") {
		t.Fatalf("the next boot = %+v", r)
	}
	var tn bson.M
	if err := tenants.FindOne(ctx, bson.D{{Key: "_id", Value: person["_id"]}}).Decode(&tn); err != nil || len(tn[model.FieldMemberships].(bson.A)) != 2 {
		t.Errorf("n1 is not a membership of its person's tenant account: %v, %v", tn[model.FieldMemberships], err)
	}
	if n, _ := tenants.CountDocuments(ctx, bson.D{{Key: "_id", Value: "n2"}}); n != 1 {
		t.Error("n2 has no tenant account")
	}
	firstName := func() any {
		var tn bson.M
		if err := tenants.FindOne(ctx, bson.D{{Key: "_id", Value: p3["_id"]}}).Decode(&tn); err != nil {
			t.Fatal(err)
		}
		return tn["profile"].(bson.M)["first_name"]
	}
	if got := firstName(); got != "Renamed" {
		t.Errorf("p3's tenant account has first name %v, want Renamed", got)
	}
	if r := runBin(t, db.Name(), nil, "verify"); r.code != 0 {
		t.Errorf("verify after the catch-up = %d %q", r.code, lastLine(r.stderr))
	}
	if r := runBin(t, db.Name(), nil, "status"); !strings.Contains(r.stdout, "stage: following") {
		t.Errorf("status = %q; want stage: following", r.stdout)
	}

	// follow carries the next edit as it comes, and stops on SIGTERM.
	follow := exec.Command(bin, "follow", "--interval", "200ms")
	follow.Dir = t.TempDir()
	follow.Env = append(os.Environ(), "RUNNER_MONGODB_URI="+env.URI, "RUNNER_MONGODB_DATABASE="+db.Name(), "RUNNER_LOG_FORMAT=json")
	var out, errb bytes.Buffer
	follow.Stdout, follow.Stderr = &out, &errb
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	rename("Followed")
	deadline := time.Now().Add(60 * time.Second)
	for firstName() != "Followed" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := firstName(); got != "Followed" {
		t.Errorf("follow did not carry the edit within 60 s: first name %v", got)
	}
	_ = follow.Process.Signal(syscall.SIGTERM)
	if err := follow.Wait(); err != nil {
		t.Errorf("follow after SIGTERM: %v; %s", err, errb.String())
	}
	if !strings.Contains(out.String(), "follow: stopped after") || !strings.Contains(out.String(), "lag ") {
		t.Errorf("follow printed %q; want each catch-up's lag and a last line", out.String())
	}

	// cutover: from then on the legacy collection is not carried.
	if r := runBin(t, db.Name(), nil, "cutover"); r.code != 0 || !strings.Contains(r.stdout, "cut over at") {
		t.Fatalf("cutover = %+v", r)
	}
	if r := runBin(t, db.Name(), nil, "status"); !strings.Contains(r.stdout, "stage: cut over") {
		t.Errorf("status after cutover = %q", r.stdout)
	}
	if r := runBin(t, db.Name(), nil, "sync"); r.code != 1 || !strings.Contains(lastLine(r.stderr), "cut over") {
		t.Errorf("sync after cutover = %d %q; want 1, cut over", r.code, lastLine(r.stderr))
	}
	rename("After cutover")
	if r := runBin(t, db.Name(), nil); r.code != 0 || strings.Contains(r.stdout, "catch-up:") {
		t.Errorf("a boot after cutover = %+v; want no catch-up", r)
	}
	if got := firstName(); got != "Followed" {
		t.Errorf("a boot after cutover carried an edit: first name %v", got)
	}
}
