package phase1_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/phase1"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

// linkGroups reads the groups phase 1 wrote: the legacy ids of each tenant,
// sorted, groups sorted by their first id.
func linkGroups(t *testing.T, db *mongo.Database) [][]model.ID {
	t.Helper()
	links := testenv.ReadAll[model.Link](t, db.Collection(names.Links))
	byTenant := map[model.ID][]model.ID{}
	for _, l := range links {
		byTenant[l.TenantID] = append(byTenant[l.TenantID], l.LegacyID)
	}
	var groups [][]model.ID
	for _, ids := range byTenant {
		slices.SortFunc(ids, model.ID.Compare)
		groups = append(groups, ids)
	}
	slices.SortFunc(groups, func(a, b []model.ID) int { return a[0].Compare(b[0]) })
	return groups
}

// Grouping in memory, on the server, and in memory until the limit is
// passed end in the same tenants and links, equal to the fixture's groups.
func TestGroupingInMemoryAndOnTheServerAgree(t *testing.T) {
	var want [2]map[string]string
	for i, c := range []struct {
		name  string
		limit int
	}{
		{"on the server", 0},
		{"in memory", 1 << 20},
		{"past the memory limit", 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := env.Database(t)
			exp := load(t, db, 2000)
			cfg := config(db)
			cfg.MemoryGroupLimit = c.limit
			rep, err := phase1.Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := linkGroups(t, db); fmt.Sprint(got) != fmt.Sprint(exp.Groups) {
				t.Errorf("%d groups from links; the fixture expects %d (or members differ)", len(got), len(exp.Groups))
			}
			if where := map[bool]string{true: "server", false: "memory"}[c.limit < 1000]; rep.GroupedIn != where {
				t.Errorf("grouped in %q, want %q", rep.GroupedIn, where)
			}
			if rep.Groups != len(exp.Groups) || rep.GroupedAccounts != exp.GroupedAccounts {
				t.Errorf("report: %d groups of %d accounts; want %d of %d", rep.Groups, rep.GroupedAccounts, len(exp.Groups), exp.GroupedAccounts)
			}
			got := [2]map[string]string{testenv.Dump(t, db.Collection(names.TenantsAccounts)), testenv.Dump(t, db.Collection(names.Links))}
			if i == 0 {
				want = got
			} else if !maps(got[0], want[0]) || !maps(got[1], want[1]) {
				t.Errorf("tenants or links differ from grouping on the server")
			}
		})
	}
}

// Identity chains: each account shares one identifier with the next only,
// so the whole chain is one person, found only by following it to its end.
// The smallest _id sits at the far end so the label has the longest way to
// travel; a second chain of another org with the same identifiers stays
// apart; a lone account stays alone.
func TestGroupingFollowsLongChains(t *testing.T) {
	const n = 25
	for _, limit := range []int{0, 1 << 20} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			db := env.Database(t)
			ctx := context.Background()
			aos := []any{
				bson.D{{Key: "_id", Value: "ao1"}, {Key: "app_id", Value: "app1"}, {Key: "org_id", Value: "o1"}},
				bson.D{{Key: "_id", Value: "ao2"}, {Key: "app_id", Value: "app2"}, {Key: "org_id", Value: "o1"}},
				bson.D{{Key: "_id", Value: "ao3"}, {Key: "app_id", Value: "app3"}, {Key: "org_id", Value: "o2"}},
			}
			if _, err := db.Collection(names.ApplicationsOrganizations).InsertMany(ctx, aos); err != nil {
				t.Fatal(err)
			}
			email := func(i int) bson.D {
				return bson.D{{Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: fmt.Sprintf("p%d@x.org", i)}}
			}
			var docs []any
			var chain, other []string
			for i := 0; i < n; i++ {
				// _ids descend along the chain: "c-24" is the first link.
				id := fmt.Sprintf("c-%02d", n-1-i)
				chain = append(chain, id)
				ao := []string{"ao1", "ao2"}[i%2]
				docs = append(docs, bson.D{{Key: "_id", Value: id}, {Key: "app_org_id", Value: ao},
					{Key: "auth_types", Value: bson.A{email(i), email(i + 1)}},
					{Key: "date_created", Value: time.Date(2020, 1, 1+i, 0, 0, 0, 0, time.UTC)}})
				if i < 3 {
					oid := fmt.Sprintf("o2-%d", i)
					other = append(other, oid)
					docs = append(docs, bson.D{{Key: "_id", Value: oid}, {Key: "app_org_id", Value: "ao3"},
						{Key: "auth_types", Value: bson.A{email(i), email(i + 1)}},
						{Key: "date_created", Value: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)}})
				}
			}
			docs = append(docs, bson.D{{Key: "_id", Value: "lone"}, {Key: "app_org_id", Value: "ao1"},
				{Key: "auth_types", Value: bson.A{email(1000)}}})
			if _, err := db.Collection(names.Accounts).InsertMany(ctx, docs); err != nil {
				t.Fatal(err)
			}
			env.Seeded(t, db)
			cfg := config(db)
			cfg.MemoryGroupLimit = limit
			rep, err := phase1.Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if limit == 0 && (rep.GroupedIn != "server" || rep.GroupingRounds < n-1) {
				t.Errorf("grouped in %q in %d rounds; want on the server, one round per link of the chain", rep.GroupedIn, rep.GroupingRounds)
			}
			slices.Sort(chain)
			slices.Sort(other)
			want := [][]string{chain, other}
			sort.Slice(want, func(i, j int) bool { return want[i][0] < want[j][0] })
			if got := linkGroups(t, db); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("groups = %v\nwant %v", got, want)
			}
		})
	}
}
