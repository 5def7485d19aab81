package phase1

import (
	"context"
	"testing"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/progress"
	"github.com/tenantmigrate/runner/runner/step"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

// fixtureGroups are the fixture's merge groups as members, for benchmarks.
func fixtureGroups(b *testing.B, n int) [][]Member {
	b.Helper()
	opts := gen.Options{Accounts: n, Seed: 1}
	exp := gen.Expect(opts)
	groupOf := map[model.ID]int{}
	for i, g := range exp.Groups {
		for _, id := range g {
			groupOf[id] = i
		}
	}
	appOf := map[string]string{}
	for _, ao := range gen.AppOrgs(opts) {
		appOf[ao.ID] = ao.AppID
	}
	groups := make([][]Member, len(exp.Groups))
	enc := gen.NewEncoder()
	err := gen.Accounts(opts, func(a model.LegacyAccount) error {
		i, ok := groupOf[a.ID]
		if !ok {
			return nil
		}
		d, err := enc.D(a)
		if err != nil {
			return err
		}
		groups[i] = append(groups[i], Member{ID: a.ID, AppOrgID: a.AppOrgID, AppID: appOf[a.AppOrgID], DateCreated: a.DateCreated, Doc: d})
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return groups
}

// BenchmarkMerge merges the fixture's groups (mostly of 2-4 accounts).
func BenchmarkMerge(b *testing.B) {
	groups := fixtureGroups(b, 20000)
	r := Rules{}
	b.ResetTimer()
	accounts := 0
	for i := 0; i < b.N; i++ {
		g := groups[i%len(groups)]
		if _, err := r.Merge("org", g, r.Survivor(g, nil)); err != nil {
			b.Fatal(err)
		}
		accounts += len(g)
	}
	b.ReportMetric(float64(accounts)/b.Elapsed().Seconds(), "accounts/s")
}

// BenchmarkGrouping is pass 2 over the identity keys of 20,000 accounts:
// the union-find in memory, and label propagation over scratch tables on
// local disk (the dry run's; real runs use the server's collections).
func BenchmarkGrouping(b *testing.B) {
	opts := gen.Options{Accounts: 20000, Seed: 1}
	orgOf := map[string]string{}
	for _, ao := range gen.AppOrgs(opts) {
		orgOf[ao.ID] = ao.OrgID
	}
	var keys []keyDoc
	rules := Rules{IdentityCodes: gen.DefaultIdentityCodes()}
	table := newKeyTable(nil) // only its hash key: each iteration has a table of its own
	err := gen.Accounts(opts, func(a model.LegacyAccount) error {
		for _, at := range a.AuthTypes {
			if id, ok := rules.Identity(at.AuthTypeCode, at.Identifier, at.Unverified); ok {
				keys = append(keys, table.doc(orgOf[a.AppOrgID], id, a.ID))
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name  string
		limit int
	}{{"memory", 1 << 30}, {"tables", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				fs, err := newFileStore()
				if err != nil {
					b.Fatal(err)
				}
				p := &run{rep: &Report{GroupSizes: map[int]int{}}, store: fs,
					keys: &keyTable{t: fs.table("keys", "_id"), salt: table.salt}, cfg: Config{Env: step.Env{Log: testenv.Quiet(), Batch: 1000, Progress: progress.Discard{}}, MemoryGroupLimit: bc.limit}}
				if err := p.keys.add(context.Background(), keys); err != nil {
					b.Fatal(err)
				}
				if err := p.findGroups(context.Background()); err != nil {
					b.Fatal(err)
				}
				_ = fs.close(context.Background())
			}
			b.ReportMetric(float64(20000*b.N)/b.Elapsed().Seconds(), "accounts/s")
		})
	}
}
