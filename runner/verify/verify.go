// Package verify reconciles legacy accounts with tenant accounts without
// loading either collection: one pass of merge joins over four sorted
// streams (legacy accounts, links and tenant accounts by _id, links by
// tenant). It does no per-document lookups, which some servers (FerretDB)
// answer with a full scan each.
//
// A legacy account L is accounted for when exactly one tenant account holds
// it: the tenant named by L's link (written by phase 1) holds a membership
// for L's app-org, or, with no link, the tenant with _id L holds the
// membership MembershipID(L.app_org_id, L._id) (phase 2's one-to-one rule).
package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
	"github.com/tenantmigrate/runner/runner/internal/apporgs"
	"github.com/tenantmigrate/runner/runner/internal/join"
	"github.com/tenantmigrate/runner/runner/internal/sorted"
	"github.com/tenantmigrate/runner/runner/retry"
)

// Stage is how far the migration is: which phases are applied. Verify
// holds the applied ones to their promises; a legacy account that is in no
// tenant account yet, and that a pending phase will move, is awaiting it,
// not a mismatch. The zero value is the strict one: every phase applied.
type Stage int

const (
	// StageComplete: every phase applied; every legacy account must be in
	// exactly one tenant account.
	StageComplete Stage = iota
	// StageAfterPhase1: phase 1 applied, phase 2 pending: what phase 1
	// linked must be whole; the accounts it did not link await phase 2.
	StageAfterPhase1
	// StageBeforePhase1: no phase applied; every account awaits them.
	StageBeforePhase1
)

var stageNames = [...]string{StageComplete: "complete", StageAfterPhase1: "after phase 1", StageBeforePhase1: "before phase 1"}

func (s Stage) String() string {
	if s < 0 || int(s) >= len(stageNames) {
		return fmt.Sprintf("Stage(%d)", int(s))
	}
	return stageNames[s]
}

// MarshalText spells the stage by its name.
func (s Stage) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a stage's name.
func (s *Stage) UnmarshalText(b []byte) error {
	for i, n := range stageNames {
		if n == string(b) {
			*s = Stage(i)
			return nil
		}
	}
	return fmt.Errorf("unknown verify stage %q", b)
}

// StepState is one step of the migration as verify saw it: applied or
// not, and how many legacy accounts await it.
type StepState struct {
	Version int    `json:"version"`
	Name    string `json:"name"`
	// State is the step's state as `runner status` gives it.
	State string `json:"state"`
	// Applied: the step's promise holds. In any other state (pending,
	// failed, running, a down half done) it is pending.
	Applied  bool `json:"applied"`
	Awaiting int  `json:"awaiting,omitempty"`
}

// shown is the step's state as verify judges it: applied, or pending,
// with the step's own state when that says more.
func (s StepState) shown() string {
	const pending = "pending"
	switch {
	case s.Applied:
		return s.State
	case s.State == pending:
		return pending
	}
	return pending + " (" + s.State + ")"
}

// Options configure a run.
type Options struct {
	// Stage is what the promises are (see Stage); the zero value holds
	// every phase to its promise.
	Stage Stage
	// Batch is the documents per round trip.
	Batch int
	// Progress, if not nil, is told how far verify has read.
	Progress Progress
	// Retry, if set, resumes a stream that breaks for a transient reason
	// after the last document it read.
	Retry *retry.Policy
	// Live: every step is applied and the service writes the tenant
	// accounts too; CutOver: the legacy collection was declared frozen
	// (runner/catchup). Live, the memberships the service added to tenant
	// accounts are its own, and a legacy change not carried yet (an
	// account deleted, or newer than its tenant account) is "not
	// finished" until cutover, a mismatch after it.
	Live, CutOver bool
	// SkipInvalid: the phases skip the accounts they cannot migrate
	// (skip_invalid) and list them. Such an account in no tenant account
	// is counted as skipped, not a mismatch: the configuration asked for
	// it. Without it, each is a mismatch, as the phases would have stopped.
	SkipInvalid bool
}

// maxClassified bounds the accounts in no tenant account verify reads
// again to tell the invalid ones (skipped) from the others (a mismatch):
// past it, they count as mismatches.
const maxClassified = 100_000

// Link is one document of the links collection.
type Link = model.Link

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
	// Stage is how far the migration was held to be.
	Stage Stage `json:"stage"`
	// Steps, filled by the runner, are the steps and what awaits each.
	Steps          []StepState           `json:"steps,omitempty"`
	LegacyAccounts int                   `json:"legacy_accounts"`
	TenantAccounts int                   `json:"tenant_accounts"`
	Memberships    int                   `json:"memberships"`
	Linked         int                   `json:"linked_by_phase1"`
	OneToOne       int                   `json:"one_to_one"`
	PerOrg         map[string]*OrgCounts `json:"per_org"`
	// Retries, filled by the runner, are the transient errors verify read
	// through (a broken stream resumed, or a read done again).
	Retries int64 `json:"retries,omitempty"`

	// Awaiting are legacy accounts in no tenant account that a pending
	// phase will move: not a mismatch.
	Awaiting    Problem `json:"awaiting"`
	NotMigrated Problem `json:"not_migrated"` // legacy accounts no tenant holds
	// SkippedInvalid are legacy accounts in no tenant account that the
	// phases skipped as they were configured to (Options.SkipInvalid):
	// invalid, or in a group whose tenant account would pass 16 MB. Not a
	// mismatch; they stay listed until fixed.
	SkippedInvalid Problem `json:"skipped_invalid"`
	Skipped        Problem `json:"skipped_by_phase1"`      // of those, left out by phase 1 (too large a group)
	InTwoTenants   Problem `json:"in_two_tenants"`         // legacy accounts held twice
	NoAppOrg       Problem `json:"legacy_without_app_org"` // legacy app_org_id matches nothing
	OrphanTenants  Problem `json:"tenants_without_source"` // tenant _id is no legacy account
	OrphanMembers  Problem `json:"memberships_without_source"`
	DupMemberships Problem `json:"duplicate_membership_ids"`
	OrgMismatch    Problem `json:"org_mismatch"` // membership app-org of another org
	EmptyTenants   Problem `json:"tenants_without_membership"`
	DanglingLinks  Problem `json:"links_to_missing_tenants"`
	OrphanLinks    Problem `json:"links_without_legacy_account"`

	// The runner fills these once the references step is applied: the
	// documents of other collections whose configured fields still name an
	// account phase 1 merged away (First: collection/document), by
	// collection; and those a recorded conflict left as they are (not a
	// mismatch: the step listed them).
	StaleReferences Problem          `json:"references_to_merged_away"`
	ReferencesStale map[string]int64 `json:"references_stale_by_collection,omitempty"`
	ReferencesLeft  map[string]int64 `json:"references_left_by_collection,omitempty"`
	// ReferencesPending: references are configured and the references
	// step is not applied: not finished.
	ReferencesPending bool `json:"references_pending,omitempty"`

	// ServiceTenants are tenant accounts the service created (no legacy
	// source, no membership the runner makes); ServiceMemberships the
	// memberships the service added to tenant accounts (live only): its
	// own, never a mismatch.
	ServiceTenants     int `json:"service_tenant_accounts"`
	ServiceMemberships int `json:"service_memberships,omitempty"`
	// Deleted are memberships whose legacy account was deleted, and
	// Stale tenant accounts older than their legacy account: live, legacy
	// changes the catch-up has not carried yet (not finished); cut over,
	// a mismatch (in DeletedSince, StaleSince).
	Deleted     Problem `json:"deleted_not_carried"`
	New         Problem `json:"new_not_carried"`
	Stale       Problem `json:"stale_not_carried"`
	CutOver     bool    `json:"cut_over,omitempty"`
	DeletedLate Problem `json:"deleted_after_cutover"`
	StaleLate   Problem `json:"stale_after_cutover"`
}

// MarshalJSON adds the verdict to the report: ok (no mismatch), done
// (complete and consistent) and the problem, as the exit code says them.
func (r *Report) MarshalJSON() ([]byte, error) {
	type plain Report
	return json.Marshal(struct {
		OK      bool   `json:"ok"`
		Done    bool   `json:"done"`
		Problem string `json:"problem,omitempty"`
		*plain
	}{r.OK(), r.Done(), r.Problem(), (*plain)(r)})
}

// NotCarried is how many legacy changes the catch-up has not carried yet.
func (r *Report) NotCarried() int { return r.Deleted.Count + r.Stale.Count + r.New.Count }

// OK is true when the applied phases kept their promises: every legacy
// account is in exactly one tenant account or awaits a pending phase, and
// every tenant account and membership has a legacy source.
func (r *Report) OK() bool { return r.Problem() == "" }

// Done is true when the migration is complete and consistent: OK, with
// every phase applied and nothing awaiting.
func (r *Report) Done() bool {
	return r.OK() && r.Stage == StageComplete && r.Awaiting.Count == 0 && !r.ReferencesPending && r.NotCarried() == 0
}

func (r *Report) problems() []struct {
	name string
	p    *Problem
} {
	return []struct {
		name string
		p    *Problem
	}{
		{"legacy accounts not migrated", &r.NotMigrated},
		{"legacy accounts phase 1 left out (their merged tenant account would exceed 16 MB)", &r.Skipped},
		{"legacy accounts in two tenant accounts", &r.InTwoTenants},
		{"legacy accounts whose app_org_id matches no app-org", &r.NoAppOrg},
		{"tenant accounts without a legacy source", &r.OrphanTenants},
		{"memberships without a legacy source", &r.OrphanMembers},
		{"duplicate membership ids", &r.DupMemberships},
		{"memberships of an app-org of another org", &r.OrgMismatch},
		{"tenant accounts without a membership", &r.EmptyTenants},
		{"links to missing tenant accounts", &r.DanglingLinks},
		{"links without a legacy account", &r.OrphanLinks},
		{"documents whose references still name a merged-away account", &r.StaleReferences},
		{"memberships whose legacy account was deleted after cutover", &r.DeletedLate},
		{"tenant accounts older than their legacy account after cutover", &r.StaleLate},
	}
}

func sortedKeys(ms ...map[string]int64) []string {
	var out []string
	for _, m := range ms {
		for k := range m {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	slices.Sort(out)
	return out
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
	if r.ServiceTenants+r.ServiceMemberships > 0 {
		fmt.Fprintf(w, "the service's own: %d tenant accounts it created, %d memberships it added (not the runner's; never a mismatch)\n", r.ServiceTenants, r.ServiceMemberships)
	}
	if r.SkippedInvalid.Count > 0 {
		fmt.Fprintf(w, "skipped as configured (skip_invalid): %d legacy accounts the phases cannot migrate, in no tenant account until fixed (first: %s)\n", r.SkippedInvalid.Count, strings.Join(r.SkippedInvalid.First, ", "))
	}
	if r.Deleted.Count > 0 {
		fmt.Fprintf(w, "not carried yet: %d memberships whose legacy account was deleted (first: %s)\n", r.Deleted.Count, strings.Join(r.Deleted.First, ", "))
	}
	if r.New.Count > 0 {
		fmt.Fprintf(w, "not carried yet: %d legacy accounts in no tenant account (first: %s)\n", r.New.Count, strings.Join(r.New.First, ", "))
	}
	if r.Stale.Count > 0 {
		fmt.Fprintf(w, "not carried yet: %d tenant accounts older than their legacy account (first: %s)\n", r.Stale.Count, strings.Join(r.Stale.First, ", "))
	}
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
	if r.Retries > 0 {
		fmt.Fprintf(w, "read through %d transient errors (retried)\n", r.Retries)
	}
	for _, coll := range sortedKeys(r.ReferencesStale, r.ReferencesLeft) {
		fmt.Fprintf(w, "references in %s: %d still name a merged-away account, %d left as conflicts\n", coll, r.ReferencesStale[coll], r.ReferencesLeft[coll])
	}
	for _, s := range r.Steps {
		line := fmt.Sprintf("step %d %s: %s", s.Version, s.Name, s.shown())
		if s.Awaiting > 0 {
			line += fmt.Sprintf("; %d legacy accounts await it", s.Awaiting)
		}
		fmt.Fprintln(w, line)
	}
	for _, p := range r.problems() {
		if p.p.Count > 0 {
			fmt.Fprintf(w, "MISMATCH: %d %s (first: %s)\n", p.p.Count, p.name, strings.Join(p.p.First, ", "))
		}
	}
	migrated := 100.0
	if r.LegacyAccounts > 0 {
		migrated = 100 * float64(r.Linked+r.OneToOne) / float64(r.LegacyAccounts)
	}
	switch {
	case r.Done() && r.LegacyAccounts == 0:
		fmt.Fprintln(w, "verify: OK: the legacy collection is empty; there was nothing to migrate")
	case r.Done() && r.SkippedInvalid.Count > 0:
		fmt.Fprintf(w, "verify: OK: %.1f%% of legacy accounts migrated; the other %d were skipped as invalid (skip_invalid), listed above\n", migrated, r.SkippedInvalid.Count)
	case r.Done():
		fmt.Fprintf(w, "verify: OK: %.1f%% of legacy accounts migrated\n", migrated)
	case r.OK() && r.Awaiting.Count == 0 && !r.ReferencesPending && r.NotCarried() > 0:
		fmt.Fprintf(w, "verify: consistent, not finished: %.1f%% of legacy accounts migrated; %d legacy changes not carried yet (runner sync)\n", migrated, r.NotCarried())
	case r.OK() && r.Awaiting.Count == 0 && r.ReferencesPending:
		fmt.Fprintf(w, "verify: consistent, not finished: %.1f%% of legacy accounts migrated; the references step is pending (runner --references)\n", migrated)
	case r.OK():
		fmt.Fprintf(w, "verify: consistent, not finished (%s): %.1f%% of legacy accounts migrated, %d await the pending steps\n",
			r.Stage, migrated, r.Awaiting.Count)
	}
}

type legacyRow struct {
	RawID       bson.RawValue `bson:"_id"`
	AppOrgID    any           `bson:"app_org_id"`
	DateUpdated bson.RawValue `bson:"date_updated"`
}

// The join key of every stream is an _id's model.ID Key, which orders as
// the server sorts. No tenant or link has an _id of another type, so such
// a legacy account can only be reported: its key starts with a NUL byte,
// below every Key, and matches nothing.
func (r legacyRow) key() string {
	if id, ok := model.IDOf(r.RawID); ok {
		return id.Key()
	}
	return otherKey + r.RawID.String()
}

const otherKey = "\x00"

// display is how a key appears in a report.
func display(key string) string {
	if id, ok := model.IDFromKey(key); ok {
		return id.String()
	}
	return strings.TrimPrefix(key, otherKey)
}

type membershipRow struct {
	ID       string `bson:"id"`
	AppOrgID string `bson:"app_org_id"`
}

type tenantRow struct {
	ID          model.ID        `bson:"_id"`
	OrgID       string          `bson:"org_id"`
	Memberships []membershipRow `bson:"org_apps_memberships"`
	DateUpdated bson.RawValue   `bson:"date_updated"`
}

// Progress is told how many documents verify has read so far.
type Progress func(read int64)

// Run reconciles the collections.
func Run(ctx context.Context, db *mongo.Database, c model.Names, opts Options) (*Report, error) {
	progress, batch := opts.Progress, opts.Batch
	if progress == nil {
		progress = func(int64) {}
	}
	if batch <= 0 {
		batch = 1000
	}
	aos, err := apporgs.Read(ctx, db.Collection(c.ApplicationsOrganizations))
	if err != nil {
		return nil, err
	}
	s, err := openStreams(ctx, db, c, sorted.Options{Batch: batch, Retry: opts.Retry})
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer s.close(ctx)
	v := &verifier{rep: &Report{Stage: opts.Stage, PerOrg: map[string]*OrgCounts{}, CutOver: opts.CutOver}, orgOf: aos.OrgOf(), live: opts.Live || opts.CutOver,
		skipInvalid: opts.SkipInvalid}
	var read int64
	for {
		more, err := s.checkNext(ctx, v)
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		if !more {
			break
		}
		if read++; read%int64(batch) == 0 {
			progress(read)
		}
	}
	if err := s.danglingRest(ctx, v); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if err := v.classify(ctx, db.Collection(c.Accounts), opts.Retry); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	progress(read)
	return v.rep, nil
}

// classify reads again the accounts in no tenant account (SkipInvalid
// only): the invalid ones were skipped as configured; the others are what
// unheld said.
func (v *verifier) classify(ctx context.Context, accounts *mongo.Collection, policy *retry.Policy) error {
	if policy == nil {
		policy = &retry.Policy{}
	}
	proj := bson.D{{Key: model.FieldAppOrgID, Value: 1}, {Key: model.FieldAuthTypes, Value: 1}}
	for c := range slices.Chunk(v.unmigrated, classifyChunk) {
		invalid := map[string]bool{}
		err := policy.Do(ctx, "read accounts in no tenant account", func(ctx context.Context) error {
			ids := make(bson.A, len(c))
			for i, u := range c {
				ids[i] = u.raw
			}
			cur, err := accounts.Find(ctx, bson.D{{Key: model.FieldID, Value: bson.D{{Key: "$in", Value: ids}}}}, options.Find().SetProjection(proj))
			if err != nil {
				return err
			}
			defer cur.Close(ctx)
			for cur.Next(ctx) {
				var d bson.D
				if err := bson.Unmarshal(cur.Current, &d); err != nil {
					return err
				}
				if pipelines.Invalid(d, v.orgOf) != "" {
					invalid[cur.Current.Lookup(model.FieldID).String()] = true
				}
			}
			return cur.Err()
		})
		if err != nil {
			return err
		}
		for _, u := range c {
			if invalid[u.raw.String()] {
				v.rep.SkippedInvalid.add(u.shown)
			} else {
				u.valid.add(u.shown)
			}
		}
	}
	return nil
}

// classifyChunk bounds the _ids of one read of classify.
const classifyChunk = 500

// streams are the four sorted streams of the join.
type streams struct {
	legacy        *join.Stream[legacyRow, string]
	links         *join.Stream[Link, string]
	tenants       *join.Stream[tenantRow, string]
	linksByTenant *join.Stream[Link, string]
}

func openStreams(ctx context.Context, db *mongo.Database, c model.Names, ro sorted.Options) (s *streams, err error) {
	byID := bson.D{{Key: "_id", Value: 1}}
	s = &streams{}
	defer func() {
		if err != nil {
			s.close(ctx)
		}
	}()
	if s.legacy, err = open(ctx, db.Collection(c.Accounts), ro, "legacy accounts", byID,
		bson.D{{Key: "app_org_id", Value: 1}, {Key: "date_updated", Value: 1}}, legacyRow.key); err != nil {
		return nil, err
	}
	if s.links, err = open(ctx, db.Collection(c.Links), ro, "links", byID,
		nil, func(l Link) string { return l.LegacyID.Key() }); err != nil {
		return nil, err
	}
	if s.tenants, err = open(ctx, db.Collection(c.TenantsAccounts), ro, "tenant accounts", byID,
		bson.D{{Key: "org_id", Value: 1}, {Key: "org_apps_memberships.id", Value: 1}, {Key: "org_apps_memberships.app_org_id", Value: 1}, {Key: "date_updated", Value: 1}},
		func(t tenantRow) string { return t.ID.Key() }); err != nil {
		return nil, err
	}
	if s.linksByTenant, err = open(ctx, db.Collection(c.Links), ro, "links by tenant", bson.D{{Key: "tenant_id", Value: 1}, {Key: "_id", Value: 1}},
		nil, func(l Link) string { return l.TenantID.Key() }); err != nil {
		return nil, err
	}
	return s, nil
}

func open[T any](ctx context.Context, coll *mongo.Collection, ro sorted.Options, what string, sort, proj bson.D, key func(T) string) (*join.Stream[T, string], error) {
	cur, err := sorted.OpenBy(ctx, coll, nil, proj, sort, ro)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return join.New(cur, join.Spec[T, string]{What: what, Key: key, Compare: strings.Compare}), nil
}

func (s *streams) close(ctx context.Context) {
	if s.legacy != nil {
		s.legacy.Close(ctx)
	}
	if s.links != nil {
		s.links.Close(ctx)
	}
	if s.tenants != nil {
		s.tenants.Close(ctx)
	}
	if s.linksByTenant != nil {
		s.linksByTenant.Close(ctx)
	}
}

// checkNext checks the smallest _id left in the join; false when none is.
func (s *streams) checkNext(ctx context.Context, v *verifier) (bool, error) {
	id, ok, err := join.MinKey[string](ctx, strings.Compare, s.legacy, s.links, s.tenants)
	if err != nil || !ok {
		return false, err
	}
	l, hasL, err := s.legacy.Take(ctx, id)
	if err != nil {
		return false, err
	}
	k, hasK, err := s.links.Take(ctx, id)
	if err != nil {
		return false, err
	}
	t, hasT, err := s.tenants.Take(ctx, id)
	if err != nil {
		return false, err
	}
	var tl []Link
	if hasT {
		if tl, err = s.linksTo(ctx, id, v); err != nil {
			return false, err
		}
	}
	v.check(id, l, hasL, k, hasK, t, hasT, tl)
	return true, nil
}

// linksTo takes the links to tenant id; the links to tenants that sort
// before it name missing tenants.
func (s *streams) linksTo(ctx context.Context, id string, v *verifier) ([]Link, error) {
	var tl []Link
	for {
		lk, ok, err := s.linksByTenant.Peek(ctx)
		if err != nil || !ok || lk.TenantID.Key() > id {
			return tl, err
		}
		if _, _, err := s.linksByTenant.Next(ctx); err != nil {
			return tl, err
		}
		if lk.TenantID.Key() < id {
			v.danglingLink(lk)
		} else {
			tl = append(tl, lk)
		}
	}
}

// danglingRest reports the links left, to tenants after the last one,
// which name missing tenants.
func (s *streams) danglingRest(ctx context.Context, v *verifier) error {
	for {
		lk, ok, err := s.linksByTenant.Next(ctx)
		if err != nil || !ok {
			return err
		}
		v.danglingLink(lk)
	}
}

type verifier struct {
	rep   *Report
	orgOf map[string]string
	// live: the service writes tenant accounts (Options.Live or CutOver).
	live bool
	// A merged tenant account's date_updated is the latest of its legacy
	// accounts' (phase 1's rule), read at its own key, while its
	// accounts' come at theirs: mergedDate keeps the date of each merged
	// tenant account met (live only), memberDate the latest date of the
	// accounts of one not met yet. Both hold merged tenant accounts only.
	mergedDate map[string]bson.RawValue
	memberDate map[string]bson.RawValue
	// skipInvalid (Options.SkipInvalid): unmigrated are the accounts in
	// no tenant account, for classify.
	skipInvalid bool
	unmigrated  []unmigrated
}

// unmigrated is a legacy account in no tenant account: its _id as read,
// as shown, and what it is unless invalid.
type unmigrated struct {
	raw   bson.RawValue
	shown string
	valid *Problem
}

// unheld notes a legacy account in no tenant account: a valid one is p
// (not migrated, or new since the last catch-up); with SkipInvalid,
// classify tells the invalid ones, which the phases skip, apart.
func (v *verifier) unheld(raw bson.RawValue, shown string, p *Problem) {
	if v.skipInvalid && len(v.unmigrated) < maxClassified {
		v.unmigrated = append(v.unmigrated, unmigrated{raw: own(raw), shown: shown, valid: p})
		return
	}
	p.add(shown)
}

func own(v bson.RawValue) bson.RawValue {
	v.Value = slices.Clone(v.Value)
	return v
}

// memberFresh checks a merged account's date against its tenant
// account's, whichever of the two keys came first.
func (v *verifier) memberFresh(tenant model.ID, date bson.RawValue, shown string) {
	if !v.live {
		return
	}
	key := tenant.Key()
	if td, ok := v.mergedDate[key]; ok {
		if model.SourceNewer(date, td) {
			v.notCarried(&v.rep.Stale, &v.rep.StaleLate, shown)
		}
		return
	}
	if v.memberDate == nil {
		v.memberDate = map[string]bson.RawValue{}
	}
	if cur, ok := v.memberDate[key]; !ok || model.SourceNewer(date, cur) {
		v.memberDate[key] = date
	}
}

// mergedFresh notes a merged tenant account's date and checks the
// accounts of it met before.
func (v *verifier) mergedFresh(key string, date bson.RawValue, shown string) {
	if !v.live {
		return
	}
	if v.mergedDate == nil {
		v.mergedDate = map[string]bson.RawValue{}
	}
	v.mergedDate[key] = date
	if md, ok := v.memberDate[key]; ok {
		delete(v.memberDate, key)
		if model.SourceNewer(md, date) {
			v.notCarried(&v.rep.Stale, &v.rep.StaleLate, shown)
		}
	}
}

// notCarried counts a legacy change the catch-up has not carried: live,
// in p (not finished); cut over, in late (a mismatch).
func (v *verifier) notCarried(p, late *Problem, id string) {
	if v.rep.CutOver {
		late.add(id)
		return
	}
	p.add(id)
}

// noOrg names the row of accounts whose app_org_id names no app-org, or
// an app-org without an org.
const noOrg = "(no org)"

func (v *verifier) org(name string) *OrgCounts {
	if name == "" {
		name = noOrg
	}
	oc := v.rep.PerOrg[name]
	if oc == nil {
		oc = &OrgCounts{}
		v.rep.PerOrg[name] = oc
	}
	return oc
}

func (v *verifier) danglingLink(l Link) {
	switch {
	case l.Skipped != "" && v.skipInvalid:
		v.rep.SkippedInvalid.add(l.LegacyID.String())
		return
	case l.Skipped != "":
		v.rep.Skipped.add(l.LegacyID.String())
	default:
		v.rep.DanglingLinks.add(l.LegacyID.String())
	}
	v.rep.NotMigrated.add(l.LegacyID.String())
}

// check judges one _id, by its join key: as a legacy account, its link, and
// as a tenant account with the links that point at it.
func (v *verifier) check(key string, l legacyRow, hasL bool, k Link, hasK bool, t tenantRow, hasT bool, tl []Link) {
	rep := v.rep
	ao, _ := l.AppOrgID.(string)
	id, _ := model.IDFromKey(key) // zero for another type of _id
	shown := display(key)
	if hasL {
		rep.LegacyAccounts++
		org, known := v.orgOf[ao]
		if !known {
			org = noOrg
		}
		v.org(org).Legacy++
		unheld := false
		switch {
		case hasK && hasT && k.TenantID != id:
			// Merged into another tenant, yet still a tenant of its own.
			rep.InTwoTenants.add(shown)
		case hasK:
			// Judged with its tenant's links; its freshness against its
			// tenant account's date.
			if !k.TenantID.IsZero() {
				v.memberFresh(k.TenantID, l.DateUpdated, shown)
			}
		case hasT && holds(t, model.MembershipID(ao, id), ao):
			rep.OneToOne++
			v.org(org).Migrated++
		case !hasT && rep.Stage != StageComplete:
			// In no tenant account, and a pending phase moves it.
			rep.Awaiting.add(shown)
		case !hasT && v.live && !rep.CutOver:
			// New since the last catch-up.
			v.unheld(l.RawID, shown, &rep.New)
			unheld = true
		default:
			v.unheld(l.RawID, shown, &rep.NotMigrated)
			unheld = true
		}
		// Skipped as configured, an account of no app-org is classify's;
		// held by a tenant account, it is a mismatch whatever the setting.
		if !known && !(unheld && v.skipInvalid) {
			rep.NoAppOrg.add(shown)
		}
	} else if hasK && v.live {
		// Its legacy account was deleted since: the catch-up removes its
		// membership and link. Its tenant's pass counts that membership
		// as linked, this one takes it back, in whichever order.
		v.notCarried(&rep.Deleted, &rep.DeletedLate, shown)
		if !k.TenantID.IsZero() {
			rep.Linked--
			v.org(k.OrgID).Migrated--
		}
	} else if hasK {
		rep.OrphanLinks.add(shown)
	}
	if !hasT {
		return
	}
	rep.TenantAccounts++
	v.org(t.OrgID).Tenants++
	if !hasL && len(tl) == 0 && !holdsOwn(t, id) {
		// Created by the service: no legacy source, and none of the
		// memberships the runner makes.
		rep.ServiceTenants++
		return
	}
	if !hasL && !v.live {
		rep.OrphanTenants.add(shown)
	}
	if hasL && !hasK && holds(t, model.MembershipID(ao, id), ao) && model.SourceNewer(l.DateUpdated, t.DateUpdated) {
		v.notCarried(&rep.Stale, &rep.StaleLate, shown)
	}
	if len(tl) > 0 {
		v.mergedFresh(key, t.DateUpdated, shown)
	}
	if len(t.Memberships) == 0 {
		rep.EmptyTenants.add(shown)
	}
	referenced := map[string]bool{}
	for _, lk := range tl {
		if holds(t, lk.MembershipID, lk.AppOrgID) {
			referenced[lk.MembershipID] = true
			rep.Linked++
			v.org(t.OrgID).Migrated++
		} else {
			rep.NotMigrated.add(lk.LegacyID.String())
		}
	}
	own := ""
	switch {
	case hasL && !hasK:
		own = model.MembershipID(ao, id)
	case !hasL && !hasK && v.live:
		// Its legacy account was deleted since: the membership the runner
		// made of it is not carried yet.
		for _, m := range t.Memberships {
			if m.ID == model.MembershipID(m.AppOrgID, id) {
				own = m.ID
				v.notCarried(&rep.Deleted, &rep.DeletedLate, shown)
			}
		}
	}
	seen := map[string]bool{}
	for _, m := range t.Memberships {
		rep.Memberships++
		if seen[m.ID] {
			rep.DupMemberships.add(m.ID)
		}
		seen[m.ID] = true
		if org, ok := v.orgOf[m.AppOrgID]; !ok || org != t.OrgID {
			rep.OrgMismatch.add(shown)
		}
		switch {
		case referenced[m.ID] || m.ID == own:
		case v.live:
			rep.ServiceMemberships++ // the service added it
		default:
			rep.OrphanMembers.add(m.ID)
		}
	}
}

// holdsOwn reports whether t has a membership the runner makes of the
// legacy account of t's own _id (model.MembershipID).
func holdsOwn(t tenantRow, id model.ID) bool {
	for _, m := range t.Memberships {
		if m.ID == model.MembershipID(m.AppOrgID, id) {
			return true
		}
	}
	return false
}

// holds reports whether t has the membership id for appOrgID.
func holds(t tenantRow, membershipID, appOrgID string) bool {
	for _, m := range t.Memberships {
		if m.ID == membershipID && m.AppOrgID == appOrgID {
			return true
		}
	}
	return false
}
