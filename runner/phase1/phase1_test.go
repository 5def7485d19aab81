package phase1_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
	"github.com/tenantmigrate/runner/runner/phase1"
	"github.com/tenantmigrate/runner/runner/step"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

var env *testenv.Env

// names are the collections every test of this package uses.
var names = model.DefaultNames()

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

func config(db *mongo.Database) phase1.Config {
	return phase1.Config{
		Env:   step.Env{DB: db, Names: names, ScratchPrefix: "migrations", Batch: 500, Log: testenv.Quiet(), ShardKey: env.ShardKey},
		Rules: phase1.Rules{IdentityCodes: gen.DefaultIdentityCodes()},
	}
}

// eachPath runs a test on the streaming path, and on the server path where
// the server takes it (the embedded FerretDB 1 does not: its probe's
// refusal is TestServerPathWritesWhatStreamingWrites's).
func eachPath(t *testing.T, fn func(t *testing.T, config func(*mongo.Database) phase1.Config)) {
	t.Run("stream", func(t *testing.T) { fn(t, config) })
	t.Run("server", func(t *testing.T) {
		if !env.Real() {
			t.Skip("the embedded FerretDB 1 refuses the server path")
		}
		fn(t, func(db *mongo.Database) phase1.Config {
			cfg := onServerPath(config(db))
			cfg.Path = phase1.PathServer
			return cfg
		})
	})
}

func load(t *testing.T, db *mongo.Database, n int) gen.Expectations {
	t.Helper()
	return env.Load(t, db, gen.Options{Accounts: n, Seed: 3})
}

func collections(t *testing.T, db *mongo.Database) []string {
	t.Helper()
	got, err := db.ListCollectionNames(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	return got
}

func TestPhase1OnFixture(t *testing.T) {
	db := env.Database(t)
	exp := load(t, db, 4000)
	ctx := context.Background()
	legacyBefore := testenv.Dump(t, db.Collection(names.Accounts))

	// Dry run first: it must write nothing to the server; its scratch
	// tables are files, removed at the end.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	before := collections(t, db)
	dry := config(db)
	dry.DryRun = true
	drep, err := phase1.Run(ctx, dry)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if got := collections(t, db); !slices.Equal(got, before) {
		t.Fatalf("dry run changed the collections: %v -> %v", before, got)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 || drep.GroupedIn != "local disk" {
		t.Errorf("dry run grouped in %q and left %d entries in its temporary directory; want local disk, none left", drep.GroupedIn, len(left))
	}
	if drep.Groups != len(exp.Groups) || drep.TenantsInserted != len(exp.Groups) {
		t.Errorf("dry run: %d groups, %d would be inserted; fixture expects %d groups", drep.Groups, drep.TenantsInserted, len(exp.Groups))
	}

	rep, err := phase1.Run(ctx, config(db))
	if err != nil {
		t.Fatalf("phase 1: %v", err)
	}
	if rep.Groups != len(exp.Groups) || rep.GroupedAccounts != exp.GroupedAccounts || rep.TenantsInserted != len(exp.Groups) || rep.LinksWritten != exp.GroupedAccounts {
		t.Errorf("report = %+v; fixture expects %d groups of %d accounts", rep, len(exp.Groups), exp.GroupedAccounts)
	}
	if !identitiesAsExpected(rep.Identities, exp) {
		t.Errorf("identities = %+v; the fixture expects %d unverified shared identities holding %d accounts apart, %d variant classes of %d accounts",
			rep.Identities, exp.UnverifiedIdentities, exp.HeldApartAccounts, exp.IdentifierVariants, exp.VariantAccounts)
	}
	if exp.UnverifiedIdentities == 0 || exp.IdentifierVariants == 0 {
		t.Errorf("the fixture lost its unverified or variant identifiers: %+v", exp)
	}
	// The dry run said what the run did.
	said := func(r *phase1.Report) string {
		return fmt.Sprint(r.Groups, r.GroupedAccounts, r.GroupSizes, r.LargestGroup, r.Conflicts, r.ConflictFields, r.FirstConflicts,
			r.TenantsInserted, r.TenantsReplaced, r.LinksWritten, r.GroupingRounds, r.Identities)
	}
	if said(drep) != said(rep) {
		t.Errorf("dry run said %s, the run did %s", said(drep), said(rep))
	}

	// Links describe exactly the fixture's groups.
	links := testenv.ReadAll[model.Link](t, db.Collection(names.Links))
	byTenant := map[model.ID][]model.ID{}
	for _, l := range links {
		byTenant[l.TenantID] = append(byTenant[l.TenantID], l.LegacyID)
	}
	var groups [][]model.ID
	mixed := 0
	for tenant, ids := range byTenant {
		slices.SortFunc(ids, model.ID.Compare)
		if !slices.Contains(ids, tenant) {
			t.Errorf("tenant %s is not one of its group's accounts %v", tenant, ids)
		}
		if ids[len(ids)-1].IsObjectID() {
			mixed++
		}
		groups = append(groups, ids)
	}
	slices.SortFunc(groups, func(a, b []model.ID) int { return a[0].Compare(b[0]) })
	if mixed == 0 {
		t.Error("no group holds an ObjectId _id: the fixture lost its mix")
	}
	if fmt.Sprint(groups) != fmt.Sprint(exp.Groups) {
		t.Errorf("groups from links differ from the fixture's expectation (%d vs %d groups)", len(groups), len(exp.Groups))
	}

	// One membership per distinct app-org in every tenant.
	tenants := testenv.ReadAll[model.TenantAccount](t, db.Collection(names.TenantsAccounts))
	appOrgsOf := map[model.ID]map[string]bool{}
	for _, l := range links {
		if appOrgsOf[l.TenantID] == nil {
			appOrgsOf[l.TenantID] = map[string]bool{}
		}
		appOrgsOf[l.TenantID][l.AppOrgID] = true
	}
	for _, tn := range tenants {
		if len(tn.Memberships) != len(appOrgsOf[tn.ID]) {
			t.Errorf("tenant %s has %d memberships for %d app-orgs", tn.ID, len(tn.Memberships), len(appOrgsOf[tn.ID]))
		}
		seen := map[string]bool{}
		for _, at := range tn.AuthTypes {
			k := at.AuthTypeCode + "\x00" + at.Identifier
			if seen[k] {
				t.Errorf("tenant %s repeats an auth type", tn.ID)
			}
			seen[k] = true
		}
	}

	// A second run changes nothing.
	tenantsAfter, linksAfter := testenv.Dump(t, db.Collection(names.TenantsAccounts)), testenv.Dump(t, db.Collection(names.Links))
	rep2, err := phase1.Run(ctx, config(db))
	if err != nil {
		t.Fatal(err)
	}
	if rep2.TenantsInserted+rep2.TenantsReplaced+rep2.LinksWritten+rep2.Superseded != 0 || rep2.TenantsSame != len(exp.Groups) {
		t.Errorf("second run wrote: %+v", rep2)
	}
	if !maps(testenv.Dump(t, db.Collection(names.TenantsAccounts)), tenantsAfter) || !maps(testenv.Dump(t, db.Collection(names.Links)), linksAfter) {
		t.Errorf("second run changed tenants or links")
	}
	if !maps(testenv.Dump(t, db.Collection(names.Accounts)), legacyBefore) {
		t.Errorf("phase 1 changed the legacy accounts")
	}
	for _, c := range collections(t, db) {
		if strings.HasPrefix(c, "migrations_p1_") {
			t.Errorf("scratch collection left behind: %s", c)
		}
	}
}

func maps(a, b map[string]string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// A run cancelled at many points and run again ends as an uninterrupted run.
func TestPhase1InterruptedThenRerun(t *testing.T) {
	eachPath(t, func(t *testing.T, config func(*mongo.Database) phase1.Config) {
		clean := env.Database(t)
		load(t, clean, 3000)
		if _, err := phase1.Run(context.Background(), config(clean)); err != nil {
			t.Fatal(err)
		}
		want := [2]map[string]string{testenv.Dump(t, clean.Collection(names.TenantsAccounts)), testenv.Dump(t, clean.Collection(names.Links))}

		db := env.Database(t)
		load(t, db, 3000)
		// Measure a full run, then cut runs short at growing fractions of it.
		start := time.Now()
		if _, err := phase1.Run(context.Background(), config(db)); err != nil {
			t.Fatal(err)
		}
		full := time.Since(start)
		for _, coll := range []string{names.TenantsAccounts, names.Links} {
			if err := db.Collection(coll).Drop(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		interrupted := 0
		for _, frac := range []float64{0.1, 0.3, 0.5, 0.7, 0.85, 0.95} {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(frac*float64(full)))
			_, err := phase1.Run(ctx, config(db))
			cancel()
			if err != nil {
				interrupted++
			}
		}
		if interrupted == 0 {
			t.Fatalf("no run was interrupted: the test proves nothing")
		}
		if _, err := phase1.Run(context.Background(), config(db)); err != nil {
			t.Fatal(err)
		}
		got := [2]map[string]string{testenv.Dump(t, db.Collection(names.TenantsAccounts)), testenv.Dump(t, db.Collection(names.Links))}
		if !maps(got[0], want[0]) || !maps(got[1], want[1]) {
			t.Errorf("after %d interrupted runs and a re-run: %d tenants, %d links; an uninterrupted run gives %d, %d (or contents differ)",
				interrupted, len(got[0]), len(got[1]), len(want[0]), len(want[1]))
		}
	})
}

func TestPhase1BadData(t *testing.T) {
	eachPath(t, func(t *testing.T, config func(*mongo.Database) phase1.Config) {
		db := env.Database(t)
		load(t, db, 500)
		ctx := context.Background()
		bad := []any{
			bson.D{{Key: "_id", Value: "bad-appOrg"}, {Key: "app_org_id", Value: "nope"}, {Key: "auth_types", Value: bson.A{bson.D{{Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: "x@y"}}}}},
			bson.D{{Key: "_id", Value: "bad-noauth"}, {Key: "app_org_id", Value: gen.AppOrgs(gen.Options{})[0].ID}},
		}
		if _, err := db.Collection(names.Accounts).InsertMany(ctx, bad); err != nil {
			t.Fatal(err)
		}
		env.Seeded(t, db)
		before := collections(t, db)
		_, err := phase1.Run(ctx, config(db))
		var ie *phase1.InvalidError
		if !errors.As(err, &ie) || !errors.Is(err, pipelines.ErrInvalidData) || ie.Report.Invalid != 2 {
			t.Fatalf("phase 1 over bad data: err = %v, want InvalidError for 2 accounts", err)
		}
		if got := collections(t, db); !slices.Equal(got, before) {
			t.Errorf("phase 1 wrote despite bad data: %v -> %v", before, got)
		}
		cfg := config(db)
		cfg.SkipInvalid = true
		rep, err := phase1.Run(ctx, cfg)
		if err != nil || rep.Invalid != 2 || len(rep.FirstInvalid) != 2 || rep.TenantsInserted == 0 {
			t.Fatalf("with SkipInvalid: %+v, %v", rep, err)
		}
	})
}

// A person who gains an account after phase 1 joins their tenant account.
func TestPhase1JoinsNewAccount(t *testing.T) {
	eachPath(t, func(t *testing.T, config func(*mongo.Database) phase1.Config) {
		db := env.Database(t)
		ctx := context.Background()
		aos := []any{bson.D{{Key: "_id", Value: "ao1"}, {Key: "app_id", Value: "app1"}, {Key: "org_id", Value: "o"}},
			bson.D{{Key: "_id", Value: "ao2"}, {Key: "app_id", Value: "app2"}, {Key: "org_id", Value: "o"}},
			bson.D{{Key: "_id", Value: "ao3"}, {Key: "app_id", Value: "app3"}, {Key: "org_id", Value: "o"}}}
		if _, err := db.Collection(names.ApplicationsOrganizations).InsertMany(ctx, aos); err != nil {
			t.Fatal(err)
		}
		acct := func(id, ao string, day int) bson.D {
			return bson.D{{Key: "_id", Value: id}, {Key: "app_org_id", Value: ao},
				{Key: "auth_types", Value: bson.A{bson.D{{Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: "p@x.org"}}}},
				{Key: "date_created", Value: time.Date(2020, 1, day, 0, 0, 0, 0, time.UTC)}}
		}
		if _, err := db.Collection(names.Accounts).InsertMany(ctx, []any{acct("b", "ao1", 2), acct("c", "ao2", 3)}); err != nil {
			t.Fatal(err)
		}
		env.Seeded(t, db)
		if _, err := phase1.Run(ctx, config(db)); err != nil {
			t.Fatal(err)
		}
		// Account "a" is older: by the rule alone it would be the survivor, but
		// "b" already owns the tenant account.
		if _, err := db.Collection(names.Accounts).InsertOne(ctx, acct("a", "ao3", 1)); err != nil {
			t.Fatal(err)
		}
		env.Seeded(t, db)
		rep, err := phase1.Run(ctx, config(db))
		if err != nil {
			t.Fatal(err)
		}
		if rep.TenantsReplaced != 1 || rep.TenantsInserted != 0 {
			t.Errorf("re-run = %+v, want the existing tenant replaced", rep)
		}
		n, _ := db.Collection(names.TenantsAccounts).CountDocuments(ctx, bson.D{})
		var tn model.TenantAccount
		if err := db.Collection(names.TenantsAccounts).FindOne(ctx, bson.D{}).Decode(&tn); err != nil {
			t.Fatal(err)
		}
		if n != 1 || tn.ID != model.StringID("b") || len(tn.Memberships) != 3 {
			t.Errorf("%d tenants; tenant %s with %d memberships; want one tenant b with 3", n, tn.ID, len(tn.Memberships))
		}
	})
}

// A group whose tenant account would pass 16 MB stops the phase, or with
// SkipInvalid is left out with links that say why (keeping phase 2 from
// moving its accounts one by one), and a re-run writes nothing more.
func TestPhase1GroupTooLarge(t *testing.T) {
	eachPath(t, func(t *testing.T, config func(*mongo.Database) phase1.Config) {
		db := env.Database(t)
		ctx := context.Background()
		aos := []any{bson.D{{Key: "_id", Value: "ao1"}, {Key: "app_id", Value: "app1"}, {Key: "org_id", Value: "o"}},
			bson.D{{Key: "_id", Value: "ao2"}, {Key: "app_id", Value: "app2"}, {Key: "org_id", Value: "o"}}}
		if _, err := db.Collection(names.ApplicationsOrganizations).InsertMany(ctx, aos); err != nil {
			t.Fatal(err)
		}
		half := strings.Repeat("y", 9<<20)
		for i, ao := range []string{"ao1", "ao2"} {
			d := bson.D{{Key: "_id", Value: fmt.Sprintf("big-%d", i)}, {Key: "app_org_id", Value: ao},
				{Key: "auth_types", Value: bson.A{bson.D{{Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: "p@x.org"}}}},
				{Key: "preferences", Value: bson.D{{Key: fmt.Sprintf("k%d", i), Value: half}}}}
			if _, err := db.Collection(names.Accounts).InsertOne(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		env.Seeded(t, db)
		// A dry run says the run would stop, as for an invalid account.
		dry := config(db)
		dry.DryRun = true
		if rep, err := phase1.Run(ctx, dry); err != nil || !rep.WouldStop || rep.InvalidReasons[phase1.ReasonTooLarge] != 2 {
			t.Fatalf("dry run: err %v, report %+v; want no error, would stop, 2 accounts too large", err, rep)
		}
		_, err := phase1.Run(ctx, config(db))
		if !errors.Is(err, pipelines.ErrInvalidData) || !strings.Contains(err.Error(), "16 MB") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("err = %v; want one line naming the 16 MB limit", err)
		}
		cfg := config(db)
		cfg.SkipInvalid = true
		for run := 0; run < 2; run++ {
			rep, err := phase1.Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if rep.InvalidReasons[phase1.ReasonTooLarge] != 2 || rep.TenantsInserted != 0 || rep.LinksWritten+rep.LinksSame != 2 || (run == 1 && rep.LinksWritten != 0) {
				t.Errorf("run %d: %+v", run, rep)
			}
		}
		links := testenv.ReadAll[model.Link](t, db.Collection(names.Links))
		n, _ := db.Collection(names.TenantsAccounts).CountDocuments(ctx, bson.D{})
		if len(links) != 2 || !links[0].TenantID.IsZero() || links[0].Skipped != phase1.ReasonTooLarge || n != 0 {
			t.Errorf("links %+v, %d tenants; want 2 links that say why, no tenant", links, n)
		}
	})
}

// Down deletes the tenant accounts phase 1's links name and then the
// links, and only those: a one-to-one tenant account stays; run twice it
// does nothing more.
func TestDownUndoesPhase1(t *testing.T) {
	db := env.Database(t)
	exp := load(t, db, 800)
	ctx := context.Background()
	if _, err := phase1.Run(ctx, config(db)); err != nil {
		t.Fatal(err)
	}
	other := bson.D{{Key: "_id", Value: "one-to-one"}, {Key: "org_id", Value: "o"}}
	if _, err := db.Collection(names.TenantsAccounts).InsertOne(ctx, other); err != nil {
		t.Fatal(err)
	}
	legacy := testenv.Dump(t, db.Collection(names.Accounts))
	for i, want := range []int64{int64(len(exp.Groups)), 0} {
		rep, err := phase1.Down(ctx, config(db))
		if err != nil || rep.TenantsDeleted != want {
			t.Fatalf("down %d = %+v, %v; want %d tenant accounts deleted", i+1, rep, err, want)
		}
	}
	if n, _ := db.Collection(names.TenantsAccounts).CountDocuments(ctx, bson.D{}); n != 1 {
		t.Errorf("%d tenant accounts after down, want only the one-to-one one", n)
	}
	if got, _ := db.ListCollectionNames(ctx, bson.D{{Key: "name", Value: names.Links}}); len(got) != 0 {
		t.Error("the links are still there")
	}
	if fmt.Sprint(testenv.Dump(t, db.Collection(names.Accounts))) != fmt.Sprint(legacy) {
		t.Error("down changed the legacy accounts")
	}
}

// identitiesAsExpected compares what a run saw of the identities with the
// fixture's own count, made from the documents by gen.Expect.
func identitiesAsExpected(r phase1.IdentityReport, exp gen.Expectations) bool {
	return r.Unverified == exp.UnverifiedIdentities && r.HeldApart == exp.HeldApartAccounts &&
		r.Variants == exp.IdentifierVariants && r.VariantAccounts == exp.VariantAccounts
}

// Normalising a code's identifiers links the accounts whose identifiers
// differ only by case or Unicode form, and nothing else: on both paths the
// groups are those gen.Expect finds with the same normalisation, the
// unverified identifiers still link nobody, and no variant is left to
// report. The case and Unicode variants of the fixture stay apart without
// it (TestPhase1OnFixture).
func TestNormalizedIdentifiersLink(t *testing.T) {
	eachPath(t, func(t *testing.T, config func(*mongo.Database) phase1.Config) {
		opts := gen.Options{Accounts: 3000, Seed: 3, LowerCase: []string{"email"}, UnicodeNFC: []string{"email"}}
		db := env.Database(t)
		exp := env.Load(t, db, opts)
		plain := gen.Expect(gen.Options{Accounts: opts.Accounts, Seed: opts.Seed})
		if len(exp.Groups) <= len(plain.Groups) || plain.IdentifierVariants == 0 {
			t.Fatalf("normalising gives %d groups, exact %d (%d variants): the fixture lost its variants", len(exp.Groups), len(plain.Groups), plain.IdentifierVariants)
		}
		cfg := config(db)
		cfg.Rules.Normalize = map[string]phase1.Normalization{"email": phase1.LowerCase | phase1.UnicodeNFC}
		rep, err := phase1.Run(context.Background(), cfg)
		if err != nil {
			t.Fatalf("phase 1: %v", err)
		}
		if got := linkGroups(t, db); fmt.Sprint(got) != fmt.Sprint(exp.Groups) {
			t.Errorf("path %s: %d groups from links, the fixture expects %d with email normalised", rep.Path, len(got), len(exp.Groups))
		}
		if rep.Normalized["email"] != "lower_case+unicode_nfc" || len(rep.Normalized) != 1 {
			t.Errorf("the report says the normalisation was %v", rep.Normalized)
		}
		if !identitiesAsExpected(rep.Identities, exp) || rep.Identities.Variants != 0 {
			t.Errorf("path %s: identities = %+v; the fixture expects %+v", rep.Path, rep.Identities, exp)
		}

		// Normalisation turned off again: the tenant accounts it merged
		// are no longer one person. Phase 1 refuses before it writes, and
		// its dry run says the same.
		before := [2]map[string]string{testenv.Dump(t, db.Collection(names.TenantsAccounts)), testenv.Dump(t, db.Collection(names.Links))}
		cfg.Rules.Normalize = nil
		split := len(exp.Groups) - len(plain.Groups)
		_, err = phase1.Run(context.Background(), cfg)
		var se *phase1.SplitError
		if !errors.As(err, &se) || !errors.Is(err, phase1.ErrRulesSplit) || se.Report.Split < split || se.Report.Split > len(exp.Groups) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("phase 1 with normalisation off again: err = %v; want a one-line ErrRulesSplit naming at least %d tenant accounts", err, split)
		}
		after := [2]map[string]string{testenv.Dump(t, db.Collection(names.TenantsAccounts)), testenv.Dump(t, db.Collection(names.Links))}
		if !maps(after[0], before[0]) || !maps(after[1], before[1]) {
			t.Error("the refused run wrote tenant accounts or links")
		}
		cfg.DryRun = true
		dry, err := phase1.Run(context.Background(), cfg)
		if err != nil || dry.Split != se.Report.Split || dry.SplitAccounts != se.Report.SplitAccounts || !dry.WouldStop || fmt.Sprint(dry.FirstSplit) != fmt.Sprint(se.Report.FirstSplit) {
			t.Errorf("dry run: %+v, %v; want the run's %d split tenant accounts, stopping", dry, err, se.Report.Split)
		}
	})
}

// A database a build before the identity rules migrated: it merged the
// pre-hijacked account a1 with its victim v1 on an email a1 never
// confirmed. Phase 1 now refuses to write over that merge, naming it, on
// both paths and in the dry run; it never reports a1 "held apart" while
// the merge stands.
func TestAnEarlierMergeOnAnUnverifiedIdentifierIsRefused(t *testing.T) {
	eachPath(t, func(t *testing.T, config func(*mongo.Database) phase1.Config) {
		ctx := context.Background()
		db := env.Database(t)
		aos := gen.AppOrgs(gen.Options{})
		var appOrgs []any
		app1, app2 := aos[0], model.ApplicationOrganization{}
		for _, ao := range aos {
			appOrgs = append(appOrgs, ao)
			if ao.OrgID == app1.OrgID && ao.ID != app1.ID && app2.ID == "" {
				app2 = ao
			}
		}
		email := func(cred string, unverified bool) bson.E {
			return bson.E{Key: "auth_types", Value: bson.A{bson.D{{Key: "id", Value: cred}, {Key: "auth_type_code", Value: "email"},
				{Key: "identifier", Value: "victim@e.com"}, {Key: "credential_id", Value: cred}, {Key: "unverified", Value: unverified}}}}
		}
		created := func(day int) bson.E {
			return bson.E{Key: "date_created", Value: time.Date(2023, 1, day, 0, 0, 0, 0, time.UTC)}
		}
		a1 := bson.D{{Key: "_id", Value: "a1"}, {Key: "app_org_id", Value: app2.ID}, email("cred-attacker", true), created(2)}
		v1 := bson.D{{Key: "_id", Value: "v1"}, {Key: "app_org_id", Value: app1.ID}, email("cred-victim", false), created(20)}
		if _, err := db.Collection(names.ApplicationsOrganizations).InsertMany(ctx, appOrgs); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Collection(names.Accounts).InsertMany(ctx, []any{a1, v1}); err != nil {
			t.Fatal(err)
		}
		env.Seeded(t, db)
		// What the earlier build wrote: one tenant account, a1's, with both.
		members := []phase1.Member{
			{ID: model.StringID("a1"), AppOrgID: app2.ID, AppID: app2.AppID, DateCreated: time.Date(2023, 1, 2, 0, 0, 0, 0, time.UTC), Doc: a1},
			{ID: model.StringID("v1"), AppOrgID: app1.ID, AppID: app1.AppID, DateCreated: time.Date(2023, 1, 20, 0, 0, 0, 0, time.UTC), Doc: v1},
		}
		merged, err := phase1.Rules{}.Merge(app1.OrgID, members, model.StringID("a1"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Collection(names.TenantsAccounts).InsertOne(ctx, merged.Tenant); err != nil {
			t.Fatal(err)
		}
		for _, l := range merged.Links {
			if _, err := db.Collection(names.Links).InsertOne(ctx, l); err != nil {
				t.Fatal(err)
			}
		}
		before := testenv.Dump(t, db.Collection(names.TenantsAccounts))

		cfg := config(db)
		_, err = phase1.Run(ctx, cfg)
		if !errors.Is(err, phase1.ErrRulesSplit) || !strings.Contains(err.Error(), "tenant a1: a1, v1") {
			t.Fatalf("phase 1 over the earlier merge: err = %v; want ErrRulesSplit naming tenant a1: a1, v1", err)
		}
		if !maps(testenv.Dump(t, db.Collection(names.TenantsAccounts)), before) {
			t.Error("the refused run changed the tenant accounts")
		}
		cfg.DryRun = true
		dry, err := phase1.Run(ctx, cfg)
		if err != nil || dry.Split != 1 || dry.SplitAccounts != 2 || !dry.WouldStop {
			t.Errorf("dry run: %+v, %v; want the one split tenant account, stopping", dry, err)
		}
		var out strings.Builder
		dry.Print(&out)
		if !strings.Contains(out.String(), "tenant a1: a1, v1") || strings.Contains(out.String(), "victim@e.com") {
			t.Errorf("dry run report:\n%s\nwant the split tenant by _id, never the identifier", out.String())
		}
	})
}

// Two accounts that both have a tenant account (phase 2 moved them one to
// one; then normalisation linked them) are not merged by default: the
// service may have written both. They are reported by the tenant accounts'
// _ids, and nothing is written. With identity.merge_existing the merge
// deletes the superseded one before it replaces the survivor's, under the
// unique index of membership ids; killed between the two, a run ends as an
// uninterrupted one.
func TestKilledBetweenSupersedeAndReplace(t *testing.T) {
	eachPath(t, func(t *testing.T, config func(*mongo.Database) phase1.Config) {
		ctx := context.Background()
		app1, app2, appOrgs := twoAppsOfOneOrg()
		acct := func(id, ao, ident string, day int) bson.D {
			return bson.D{{Key: "_id", Value: id}, {Key: "app_org_id", Value: ao}, {Key: "date_created", Value: time.Date(2023, 1, day, 0, 0, 0, 0, time.UTC)},
				{Key: "auth_types", Value: bson.A{bson.D{{Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: ident}}}}}
		}
		accounts := []bson.D{acct("c1", app1.ID, "Bob@x.com", 3), acct("c2", app2.ID, "bob@x.com", 4)}
		prepare := func(t *testing.T) *mongo.Database {
			db := env.Database(t)
			if _, err := db.Collection(names.ApplicationsOrganizations).InsertMany(ctx, appOrgs); err != nil {
				t.Fatal(err)
			}
			for _, a := range accounts {
				tn, err := pipelines.OneToOne(a, app1.OrgID) // as phase 2 moved them
				if err != nil {
					t.Fatal(err)
				}
				if _, err := db.Collection(names.Accounts).InsertOne(ctx, a); err != nil {
					t.Fatal(err)
				}
				if _, err := db.Collection(names.TenantsAccounts).InsertOne(ctx, tn); err != nil {
					t.Fatal(err)
				}
			}
			env.Seeded(t, db)
			if _, err := db.Collection(names.TenantsAccounts).Indexes().CreateOne(ctx, mongo.IndexModel{
				Keys: bson.D{{Key: "org_apps_memberships.id", Value: 1}}, Options: options.Index().SetUnique(true)}); err != nil {
				t.Fatal(err)
			}
			return db
		}
		dump := func(t *testing.T, db *mongo.Database) [2]map[string]string {
			return [2]map[string]string{testenv.Dump(t, db.Collection(names.TenantsAccounts)), testenv.Dump(t, db.Collection(names.Links))}
		}
		db := prepare(t)
		before := dump(t, db)
		cfg := config(db)
		cfg.Rules.Normalize = map[string]phase1.Normalization{"email": phase1.LowerCase}
		rep, err := phase1.Run(ctx, cfg)
		if err != nil || rep.NotMerged != 1 || len(rep.FirstNotMerged) != 1 || fmt.Sprint(rep.FirstNotMerged[0]) != "[c1 c2]" {
			t.Fatalf("phase 1 without identity.merge_existing: %v, %d not merged %v; want c1 and c2 listed", err, rep.NotMerged, rep.FirstNotMerged)
		}
		if got := dump(t, db); !maps(got[0], before[0]) || !maps(got[1], before[1]) {
			t.Errorf("phase 1 without identity.merge_existing wrote: %v\nbefore: %v", got, before)
		}
		run := func(t *testing.T, db *mongo.Database) [2]map[string]string {
			cfg := config(db)
			cfg.Rules.Normalize = map[string]phase1.Normalization{"email": phase1.LowerCase}
			cfg.Rules.MergeExisting = true
			rep, err := phase1.Run(ctx, cfg)
			if err != nil {
				t.Fatalf("phase 1: %v", err)
			}
			if rep.Groups != 1 {
				t.Errorf("%d groups, want c1 and c2 as one", rep.Groups)
			}
			return [2]map[string]string{testenv.Dump(t, db.Collection(names.TenantsAccounts)), testenv.Dump(t, db.Collection(names.Links))}
		}
		want := run(t, prepare(t))
		if len(want[0]) != 1 || len(want[1]) != 2 {
			t.Fatalf("uninterrupted: %d tenant accounts, %d links; want c1's, holding both", len(want[0]), len(want[1]))
		}
		db = prepare(t)
		// Killed after the flush's first write: c2's tenant account is gone.
		if _, err := db.Collection(names.TenantsAccounts).DeleteOne(ctx, bson.D{{Key: "_id", Value: "c2"}}); err != nil {
			t.Fatal(err)
		}
		if got := run(t, db); !maps(got[0], want[0]) || !maps(got[1], want[1]) {
			t.Errorf("after the kill: %v\nuninterrupted: %v", got, want)
		}
	})
}

// A dry run that skips invalid accounts but stops on split tenant accounts
// says each for what it is.
func TestReportSaysWhatStops(t *testing.T) {
	for _, tt := range []struct {
		name string
		rep  phase1.Report
		want string
	}{
		{"invalid skipped, split stops", phase1.Report{Invalid: 1, Split: 1, WouldStop: true}, "(skipped, not migrated)"},
		{"invalid stops", phase1.Report{Invalid: 1, StopsOnInvalid: true, WouldStop: true}, "(phase stops unless --skip-invalid)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			tt.rep.Print(&out)
			if !strings.Contains(out.String(), "1 accounts cannot be migrated "+tt.want) {
				t.Errorf("report:\n%s\nwant %q", out.String(), tt.want)
			}
		})
	}
}

// twoAppsOfOneOrg are two app-orgs of the fixture's first organisation,
// and every app-org of the fixture, to insert.
func twoAppsOfOneOrg() (app1, app2 model.ApplicationOrganization, all []any) {
	aos := gen.AppOrgs(gen.Options{})
	app1 = aos[0]
	for _, ao := range aos {
		all = append(all, ao)
		if ao.OrgID == app1.OrgID && ao.ID != app1.ID && app2.ID == "" {
			app2 = ao
		}
	}
	return app1, app2, all
}
