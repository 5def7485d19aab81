package runner_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

// oidOf marks a case whose tenant is its one account's own ObjectId.
const oidOf = "its own ObjectId"

func mustID(t *testing.T, v any) model.ID {
	t.Helper()
	id, ok := model.IDOfValue(v)
	if !ok {
		t.Fatalf("%v is no ID", v)
	}
	return id
}

// A corpus of malformed and extreme legacy accounts, each with its asserted
// outcome: migrated (into the tenant named), or left out and reported.
func TestBadInputCorpus(t *testing.T) {
	cfg, db := testConfig(t)
	cfg.SkipInvalid = true
	ctx := context.Background()
	aos := gen.AppOrgs(gen.Options{})
	ao1, ao2 := aos[0].ID, ""
	for _, ao := range aos[1:] {
		if ao.OrgID == aos[0].OrgID {
			ao2 = ao.ID
			break
		}
	}
	var appOrgs []any
	for _, ao := range aos {
		appOrgs = append(appOrgs, ao)
	}
	appOrgs = append(appOrgs, bson.D{{Key: "_id", Value: "ao-orphan"}, {Key: "app_id", Value: "x"}})
	if _, err := db.Collection(names.ApplicationsOrganizations).InsertMany(ctx, appOrgs); err != nil {
		t.Fatal(err)
	}
	email := func(id string) bson.A {
		return bson.A{bson.D{{Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: id}}}
	}
	acct := func(id any, ao any, auth any, extra ...bson.E) bson.D {
		d := bson.D{{Key: "_id", Value: id}, {Key: "app_org_id", Value: ao}, {Key: "date_created", Value: time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)}}
		if auth != nil {
			d = append(d, bson.E{Key: "auth_types", Value: auth})
		}
		return append(d, extra...)
	}
	big := strings.Repeat("x", 15<<20)
	half := strings.Repeat("y", 9<<20)
	oidA, oidB := primitive.NewObjectID(), primitive.NewObjectID()
	oidB2 := oidB
	oidB2[4] ^= 0x80 // not the process's: no later NewObjectID is equal
	if oidB2.Hex() < oidB.Hex() {
		oidB, oidB2 = oidB2, oidB
	}
	cases := []struct {
		name   string
		docs   []bson.D
		tenant any // the tenant's _id; nil = not migrated, reported
	}{
		{"missing auth_types", []bson.D{acct("c-noauth", ao1, nil)}, nil},
		{"empty auth_types", []bson.D{acct("c-emptyauth", ao1, bson.A{})}, nil},
		{"null identifier", []bson.D{acct("c-nullid", ao1, bson.A{bson.D{{Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: nil}}})}, nil},
		{"empty identifier", []bson.D{acct("c-emptyid", ao1, email(""))}, nil},
		{"string where an array belongs", []bson.D{acct("c-stringauth", ao1, "email:x@y")}, nil},
		{"number _id", []bson.D{acct(int64(42), ao1, email("n42@x.org"))}, nil},
		{"binary _id", []bson.D{acct(primitive.Binary{Data: []byte("id")}, ao1, email("bin@x.org"))}, nil},
		{"document _id", []bson.D{acct(bson.D{{Key: "app", Value: "x"}}, ao1, email("doc@x.org"))}, nil},
		{"ObjectId _id", []bson.D{acct(primitive.NewObjectID(), ao1, email("oid@x.org"))}, oidOf},
		// one person, a string _id on one app and an ObjectId on another:
		// every string sorts before every ObjectId, so the string survives
		{"string and ObjectId _ids of one person", []bson.D{acct(oidA, ao1, email("mixed@x.org")), acct("c-mixed", ao2, email("mixed@x.org"))}, "c-mixed"},
		{"two ObjectId _ids of one person", []bson.D{acct(oidB, ao1, email("oids@x.org")), acct(oidB2, ao2, email("oids@x.org"))}, oidB},
		{"dangling app_org_id", []bson.D{acct("c-dangling", "ao-nowhere", email("d@x.org"))}, nil},
		{"app-org without org", []bson.D{acct("c-orphanorg", "ao-orphan", email("o@x.org"))}, nil},
		{"two accounts on one app-org", []bson.D{acct("c-dup-a", ao1, email("dup@x.org")), acct("c-dup-b", ao1, email("dup@x.org"))}, "c-dup-a"},
		{"near 16 MB", []bson.D{acct("c-big", ao1, email("big@x.org"), bson.E{Key: "preferences", Value: bson.D{{Key: "blob", Value: big}}})}, "c-big"},
		// Each fits; merged, one person's tenant account would not.
		{"group over 16 MB", []bson.D{
			acct("c-half-a", ao1, email("half@x.org"), bson.E{Key: "preferences", Value: bson.D{{Key: "a", Value: half}}}),
			acct("c-half-b", ao2, email("half@x.org"), bson.E{Key: "preferences", Value: bson.D{{Key: "b", Value: half}}}),
		}, nil},
		{"unicode everywhere", []bson.D{
			acct("c-ünï-çødé-名前", ao1, email("josé.müller@exämple.org"), bson.E{Key: "profile", Value: bson.D{{Key: "first_name", Value: "Zoë 🌟"}, {Key: "last_name", Value: "Ñandú"}}}),
			acct("c-ünï-çødé-2", ao2, email("josé.müller@exämple.org")),
		}, "c-ünï-çødé-2"},
	}
	var large []bson.D // one person with 1,000 accounts
	for i := 0; i < 1000; i++ {
		ao := ao1
		if i%2 == 1 {
			ao = ao2
		}
		large = append(large, acct(fmt.Sprintf("c-large-%04d", i), ao, email("many@x.org")))
	}
	cases = append(cases, struct {
		name   string
		docs   []bson.D
		tenant any
	}{"1,000 accounts of one person", large, "c-large-0000"})
	for i, c := range cases {
		if c.tenant == oidOf { // its own ObjectId
			cases[i].tenant = c.docs[0][0].Value
		}
	}
	for _, c := range cases {
		for _, d := range c.docs {
			if _, err := db.Collection(names.Accounts).InsertOne(ctx, d); err != nil {
				t.Fatalf("%s: insert: %v", c.name, err)
			}
		}
	}
	env.Seeded(t, db)
	legacy := testenv.Dump(t, db.Collection(names.Accounts))

	res, err := newRunner(t, cfg).Up(ctx)
	if res.Verify == nil {
		t.Fatalf("Up = %+v, %v; want the steps run and verified", res, err)
	}
	rep := res.Verify
	wantOut := 0
	for _, c := range cases {
		if c.tenant == nil {
			wantOut += len(c.docs)
		}
	}
	// Run with skip_invalid, the bad accounts and the group over 16 MB are
	// skipped as configured: listed, not a mismatch.
	if !slices.Contains(rep.SkippedInvalid.First, "c-half-a") || rep.Skipped.Count != 0 {
		t.Errorf("verify: the group over 16 MB is not among the skipped (%v; %d left out as a mismatch)", rep.SkippedInvalid.First, rep.Skipped.Count)
	}
	if rep.SkippedInvalid.Count != wantOut || rep.NotMigrated.Count != 0 || !rep.OK() {
		t.Errorf("verify: %d skipped, %d not migrated (want the %d bad accounts skipped), problem %q: %+v", rep.SkippedInvalid.Count, rep.NotMigrated.Count, wantOut, rep.Problem(), rep)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.tenant == nil {
				for _, d := range c.docs {
					if n, _ := db.Collection(names.TenantsAccounts).CountDocuments(ctx, bson.D{{Key: "_id", Value: d[0].Value}}); n != 0 {
						t.Errorf("bad account %v was migrated", d[0].Value)
					}
				}
				return
			}
			var tn model.TenantAccount
			if err := db.Collection(names.TenantsAccounts).FindOne(ctx, bson.D{{Key: "_id", Value: c.tenant}}).Decode(&tn); err != nil {
				t.Fatalf("tenant %v: %v", c.tenant, err)
			}
			if tn.ID != mustID(t, c.tenant) {
				t.Errorf("tenant %v read back with _id %s: the type changed", c.tenant, tn.ID)
			}
			// Each membership's id is its app-org's and one of its accounts'
			// _id as text (an ObjectId's hex digits).
			ids := map[string]bool{}
			for _, d := range c.docs {
				ids[model.MembershipID(d[1].Value.(string), mustID(t, d[0].Value))] = true
			}
			for _, m := range tn.Memberships {
				if !ids[m.ID] {
					t.Errorf("tenant %v: membership id %s is none of its accounts'", c.tenant, m.ID)
				}
			}
			appOrgs := map[string]bool{}
			for _, d := range c.docs {
				appOrgs[d[1].Value.(string)] = true
			}
			if len(tn.Memberships) != len(appOrgs) || len(tn.AuthTypes) != 1 {
				t.Errorf("tenant %v: %d memberships for %d app-orgs, %d auth types", c.tenant, len(tn.Memberships), len(appOrgs), len(tn.AuthTypes))
			}
			if len(c.docs) > 1 {
				n, _ := db.Collection(names.Links).CountDocuments(ctx, bson.D{{Key: "tenant_id", Value: c.tenant}})
				if n != int64(len(c.docs)) {
					t.Errorf("%d links to %v, want %d", n, c.tenant, len(c.docs))
				}
			}
		})
	}
	if got := testenv.Dump(t, db.Collection(names.Accounts)); fmt.Sprint(got) != fmt.Sprint(legacy) {
		t.Error("the legacy collection changed")
	}
}
