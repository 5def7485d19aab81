// Package verify reconciles legacy accounts with tenant accounts without
// loading either collection: it streams both in _id order and checks each
// batch with primary-key lookups.
//
// A legacy account L is accounted for when exactly one tenant account holds
// it: the tenant named by L's link (written by phase 1) holds a membership
// for L's app-org, or, with no link, the tenant with _id L holds the
// membership MembershipID(L.app_org_id, L._id) (phase 2's one-to-one rule).
package verify

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
)

// Collections names what verify reads.
type Collections struct {
	Accounts                  string
	TenantsAccounts           string
	ApplicationsOrganizations string
	Links                     string
}

// Link is one document of the links collection: which tenant account a
// legacy account went into. Phase 1 writes one per account it merges.
type Link struct {
	LegacyID     string `bson:"_id"`
	TenantID     string `bson:"tenant_id"`
	OrgID        string `bson:"org_id"`
	AppOrgID     string `bson:"app_org_id"`
	MembershipID string `bson:"membership_id"`
}

// maxListed bounds the ids kept per problem in a report.
const maxListed = 10

// Problem is one kind of mismatch: how many, and the first ids.
type Problem struct {
	Count int      `json:"count"`
	First []string `json:"first_ids,omitempty"`
}

func (p *Problem) add(id string) {
	p.Count++
	if len(p.First) < maxListed {
		p.First = append(p.First, id)
	}
}

// OrgCounts compares one organisation's legacy accounts with what holds them.
type OrgCounts struct {
	Legacy   int `json:"legacy_accounts"`
	Migrated int `json:"migrated"`
	Tenants  int `json:"tenant_accounts"`
}

// Report is verify's result. Ids are legacy or tenant _ids, never personal data.
type Report struct {
	LegacyAccounts int                   `json:"legacy_accounts"`
	TenantAccounts int                   `json:"tenant_accounts"`
	Memberships    int                   `json:"memberships"`
	Linked         int                   `json:"linked_by_phase1"`
	OneToOne       int                   `json:"one_to_one"`
	PerOrg         map[string]*OrgCounts `json:"per_org"`

	NotMigrated    Problem `json:"not_migrated"`           // legacy accounts no tenant holds
	InTwoTenants   Problem `json:"in_two_tenants"`         // legacy accounts held twice
	NoAppOrg       Problem `json:"legacy_without_app_org"` // legacy app_org_id matches nothing
	OrphanTenants  Problem `json:"tenants_without_source"` // tenant _id is no legacy account
	OrphanMembers  Problem `json:"memberships_without_source"`
	DupMemberships Problem `json:"duplicate_membership_ids"`
	OrgMismatch    Problem `json:"org_mismatch"` // membership app-org of another org
	EmptyTenants   Problem `json:"tenants_without_membership"`
	DanglingLinks  Problem `json:"links_to_missing_tenants"`
}

// OK is true when every legacy account is in exactly one tenant account and
// every tenant account and membership has a legacy source.
func (r *Report) OK() bool { return r.Problem() == "" }

func (r *Report) problems() []struct {
	name string
	p    *Problem
} {
	return []struct {
		name string
		p    *Problem
	}{
		{"legacy accounts not migrated", &r.NotMigrated},
		{"legacy accounts in two tenant accounts", &r.InTwoTenants},
		{"legacy accounts whose app_org_id matches no app-org", &r.NoAppOrg},
		{"tenant accounts without a legacy source", &r.OrphanTenants},
		{"memberships without a legacy source", &r.OrphanMembers},
		{"duplicate membership ids", &r.DupMemberships},
		{"memberships of an app-org of another org", &r.OrgMismatch},
		{"tenant accounts without a membership", &r.EmptyTenants},
		{"links to missing tenant accounts", &r.DanglingLinks},
	}
}

// Problem names the first mismatch and its first ids, or "".
func (r *Report) Problem() string {
	for _, p := range r.problems() {
		if p.p.Count > 0 {
			return fmt.Sprintf("%d %s (first: %s)", p.p.Count, p.name, strings.Join(p.p.First, ", "))
		}
	}
	return ""
}

// Print writes a human summary.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "legacy accounts %d, tenant accounts %d, memberships %d (phase-1 links %d, one-to-one %d)\n",
		r.LegacyAccounts, r.TenantAccounts, r.Memberships, r.Linked, r.OneToOne)
	orgs := make([]string, 0, len(r.PerOrg))
	for o := range r.PerOrg {
		orgs = append(orgs, o)
	}
	sort.Strings(orgs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ORG\tLEGACY\tMIGRATED\tTENANTS")
	for _, o := range orgs {
		c := r.PerOrg[o]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", o, c.Legacy, c.Migrated, c.Tenants)
	}
	tw.Flush()
	for _, p := range r.problems() {
		if p.p.Count > 0 {
			fmt.Fprintf(w, "MISMATCH: %d %s (first: %s)\n", p.p.Count, p.name, strings.Join(p.p.First, ", "))
		}
	}
	if r.OK() {
		migrated := 100.0
		if r.LegacyAccounts > 0 {
			migrated = 100 * float64(r.Linked+r.OneToOne) / float64(r.LegacyAccounts)
		}
		fmt.Fprintf(w, "verify: OK: %.1f%% of legacy accounts migrated, 0 lost\n", migrated)
	}
}

type legacyRow struct {
	ID       string `bson:"_id"`
	AppOrgID string `bson:"app_org_id"`
}

type tenantRow struct {
	ID          string `bson:"_id"`
	OrgID       string `bson:"org_id"`
	Memberships []struct {
		ID       string `bson:"id"`
		AppOrgID string `bson:"app_org_id"`
	} `bson:"org_apps_memberships"`
}

// Progress is told how many documents verify has read so far.
type Progress func(read int)

// Run reconciles the collections, reading batch documents at a time.
func Run(ctx context.Context, db *mongo.Database, c Collections, batch int, progress Progress) (*Report, error) {
	if progress == nil {
		progress = func(int) {}
	}
	rep := &Report{PerOrg: map[string]*OrgCounts{}}
	orgOf, err := appOrgs(ctx, db.Collection(c.ApplicationsOrganizations))
	if err != nil {
		return nil, err
	}
	read := 0
	err = stream(ctx, db.Collection(c.Accounts), batch, bson.D{{Key: "app_org_id", Value: 1}}, func(rows []legacyRow) error {
		read += len(rows)
		progress(read)
		return checkLegacy(ctx, db, c, orgOf, rows, rep)
	})
	if err != nil {
		return nil, fmt.Errorf("verify legacy accounts: %w", err)
	}
	err = stream(ctx, db.Collection(c.TenantsAccounts), batch,
		bson.D{{Key: "org_id", Value: 1}, {Key: "org_apps_memberships.id", Value: 1}, {Key: "org_apps_memberships.app_org_id", Value: 1}},
		func(rows []tenantRow) error {
			read += len(rows)
			progress(read)
			return checkTenants(ctx, db, c, orgOf, rows, rep)
		})
	if err != nil {
		return nil, fmt.Errorf("verify tenant accounts: %w", err)
	}
	return rep, nil
}

func appOrgs(ctx context.Context, coll *mongo.Collection) (map[string]string, error) {
	// App-orgs number in the hundreds at most: one per app per org.
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "org_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("read app-orgs: %w", err)
	}
	var rows []model.ApplicationOrganization
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("read app-orgs: %w", err)
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.ID] = r.OrgID
	}
	return out, nil
}

// stream reads coll in _id order, batch documents at a time.
func stream[T any](ctx context.Context, coll *mongo.Collection, batch int, proj bson.D, fn func([]T) error) error {
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetProjection(proj).SetBatchSize(int32(batch)))
	if err != nil {
		return err
	}
	defer cur.Close(ctx)
	rows := make([]T, 0, batch)
	for cur.Next(ctx) {
		var row T
		if err := cur.Decode(&row); err != nil {
			return fmt.Errorf("decode %v: %w", cur.Current.Lookup("_id"), err)
		}
		rows = append(rows, row)
		if len(rows) == batch {
			if err := fn(rows); err != nil {
				return err
			}
			rows = rows[:0]
		}
	}
	if err := cur.Err(); err != nil {
		return err
	}
	if len(rows) > 0 {
		return fn(rows)
	}
	return nil
}

func byID[T any](ctx context.Context, coll *mongo.Collection, ids []string, proj bson.D, key func(T) string) (map[string]T, error) {
	out := make(map[string]T, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	opts := options.Find()
	if proj != nil {
		opts.SetProjection(proj)
	}
	cur, err := coll.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, opts)
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var row T
		if err := cur.Decode(&row); err != nil {
			return nil, err
		}
		out[key(row)] = row
	}
	return out, cur.Err()
}

var tenantProj = bson.D{{Key: "org_id", Value: 1}, {Key: "org_apps_memberships.id", Value: 1}, {Key: "org_apps_memberships.app_org_id", Value: 1}}

func checkLegacy(ctx context.Context, db *mongo.Database, c Collections, orgOf map[string]string, rows []legacyRow, rep *Report) error {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	links, err := byID(ctx, db.Collection(c.Links), ids, nil, func(l Link) string { return l.LegacyID })
	if err != nil {
		return fmt.Errorf("read links: %w", err)
	}
	want := append([]string(nil), ids...)
	for _, l := range links {
		want = append(want, l.TenantID)
	}
	tenants, err := byID(ctx, db.Collection(c.TenantsAccounts), want, tenantProj, func(t tenantRow) string { return t.ID })
	if err != nil {
		return fmt.Errorf("read tenant accounts: %w", err)
	}
	for _, r := range rows {
		rep.LegacyAccounts++
		org, ok := orgOf[r.AppOrgID]
		if !ok {
			rep.NoAppOrg.add(r.ID)
			org = "(no org)"
		}
		oc := rep.PerOrg[org]
		if oc == nil {
			oc = &OrgCounts{}
			rep.PerOrg[org] = oc
		}
		oc.Legacy++
		own, hasOwn := tenants[r.ID]
		ownHolds := hasOwn && holds(own, model.MembershipID(r.AppOrgID, r.ID), "")
		if l, linked := links[r.ID]; linked {
			t, ok := tenants[l.TenantID]
			switch {
			case !ok:
				rep.DanglingLinks.add(r.ID)
				rep.NotMigrated.add(r.ID)
			case !holds(t, "", r.AppOrgID):
				rep.NotMigrated.add(r.ID)
			case ownHolds && l.TenantID != r.ID:
				rep.InTwoTenants.add(r.ID)
			default:
				rep.Linked++
				oc.Migrated++
			}
			continue
		}
		if ownHolds {
			rep.OneToOne++
			oc.Migrated++
		} else {
			rep.NotMigrated.add(r.ID)
		}
	}
	return nil
}

// holds reports whether t has the membership id, or one for appOrgID.
func holds(t tenantRow, membershipID, appOrgID string) bool {
	for _, m := range t.Memberships {
		if (membershipID != "" && m.ID == membershipID) || (appOrgID != "" && m.AppOrgID == appOrgID) {
			return true
		}
	}
	return false
}

func checkTenants(ctx context.Context, db *mongo.Database, c Collections, orgOf map[string]string, rows []tenantRow, rep *Report) error {
	// Every membership id is app_org_id + "_" + a legacy _id: its source.
	var sources []string
	for _, t := range rows {
		sources = append(sources, t.ID)
		for _, m := range t.Memberships {
			if src, ok := strings.CutPrefix(m.ID, m.AppOrgID+"_"); ok {
				sources = append(sources, src)
			}
		}
	}
	legacy, err := byID(ctx, db.Collection(c.Accounts), sources, bson.D{{Key: "app_org_id", Value: 1}}, func(l legacyRow) string { return l.ID })
	if err != nil {
		return fmt.Errorf("read legacy accounts: %w", err)
	}
	links, err := byID(ctx, db.Collection(c.Links), sources, nil, func(l Link) string { return l.LegacyID })
	if err != nil {
		return fmt.Errorf("read links: %w", err)
	}
	for _, t := range rows {
		rep.TenantAccounts++
		if oc := rep.PerOrg[t.OrgID]; oc != nil {
			oc.Tenants++
		} else {
			rep.PerOrg[t.OrgID] = &OrgCounts{Tenants: 1}
		}
		if _, ok := legacy[t.ID]; !ok {
			rep.OrphanTenants.add(t.ID)
		}
		if len(t.Memberships) == 0 {
			rep.EmptyTenants.add(t.ID)
		}
		seen := map[string]bool{}
		for _, m := range t.Memberships {
			rep.Memberships++
			if seen[m.ID] {
				rep.DupMemberships.add(m.ID)
			}
			seen[m.ID] = true
			if orgOf[m.AppOrgID] != t.OrgID {
				rep.OrgMismatch.add(t.ID)
			}
			src, ok := strings.CutPrefix(m.ID, m.AppOrgID+"_")
			l, found := legacy[src]
			if !ok || !found || l.AppOrgID != m.AppOrgID {
				rep.OrphanMembers.add(m.ID)
				continue
			}
			// The source's own rule names the one tenant that may hold it.
			owner := src
			if link, linked := links[src]; linked {
				owner = link.TenantID
			}
			if owner != t.ID {
				rep.DupMemberships.add(m.ID)
			}
		}
	}
	return nil
}
