package phase1

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/internal/apporgs"
	"github.com/tenantmigrate/runner/runner/internal/join"
	"github.com/tenantmigrate/runner/runner/internal/refusal"
	"github.com/tenantmigrate/runner/runner/internal/scratch"
	"github.com/tenantmigrate/runner/runner/internal/sorted"
	"github.com/tenantmigrate/runner/runner/step"
)

// How phase 1 runs, in four streaming passes that need no aggregation, no
// transaction and no per-document lookup (FerretDB answers each lookup with a
// full scan; MongoDB answers them all fast):
//
//  1. Scan the legacy accounts in any order; check each (bad data stops the
//     phase before anything is written, unless skipped); write one scratch
//     document per identity pair, _id = hash(org, code, identifier) + _id.
//     Hashing keeps identifiers out of the scratch collection.
//  2. Scan the scratch keys in _id order: accounts sharing a key are adjacent.
//     Connect them (groups.go); the components of two or more accounts are
//     the groups.
//  3. Scan the legacy accounts again, merge-joined with the links and the
//     tenant accounts, and copy each grouped account (with its existing link
//     and whether it owns a tenant account) to a second scratch collection,
//     keyed by group.
//  4. Scan the groups; merge each with the rules of rules.go; write the
//     tenant accounts and links that differ from what is there, delete
//     one-to-one tenant accounts the group supersedes.
//
// Every run rebuilds the scratch collections, and every write is keyed by a
// deterministic id and skipped when equal, so a run killed anywhere and run
// again ends exactly as an uninterrupted run. Memory holds a batch and a
// group (and, up to Config.MemoryGroupLimit, the accounts that share an
// identity): never the collection.

// Config configures a run.
type Config struct {
	// Env: phase 1 reads the accounts and app-orgs of Names and writes
	// the tenant accounts and links; its scratch collections, dropped
	// after a run, start with ScratchPrefix.
	step.Env
	// Rules are the merge rules, the identity codes and their
	// normalisation among them.
	Rules Rules
	// DryRun writes nothing to the server: the scratch tables are files on
	// local disk instead (scratch.go).
	DryRun bool
	// MemoryGroupLimit is how many accounts sharing identities grouping
	// holds in memory (about 150 bytes each); past it, and always at 0, it
	// groups in the scratch tables (see groups.go).
	MemoryGroupLimit int
	// Path is how to find and collect the groups (path.go); the zero
	// value probes the server. The server path groups in memory, so it
	// needs MemoryGroupLimit above 0; past the limit, or when the server
	// stops taking its pipeline half way, the run streams instead.
	Path Path
	// Total is the number of legacy accounts if known cheaply, else 0:
	// the total of the progress.
	Total int64
	// Scope, if not nil, restricts the run to these legacy _ids (the
	// catch-up's): every read of the accounts, links and tenant accounts
	// is of them only. The caller makes it whole: every account sharing
	// an identity with one of them, or a tenant account, is in it too.
	Scope []model.ID
	// LeaveSplit: a tenant account the identity rules now split (split.go)
	// is reported and left as it is, its accounts' groups unmerged,
	// instead of stopping the run: the catch-up's way, where a legacy
	// account deleted or edited since may have been what linked the
	// others, and the service may have written the tenant account since.
	LeaveSplit bool
}

// scope is the filter of the run's reads keyed by legacy _id; nil: all.
func (cfg Config) scope() bson.D {
	if cfg.Scope == nil {
		return nil
	}
	return (&pipelines.Range{IDs: cfg.Scope}).MigratedIDs()
}

// errNoLocalScratch: the runner could not make, write or read its scratch
// files on local disk ($TMPDIR), which the server path and a dry run sort
// in.
var errNoLocalScratch = errors.New("local scratch files ($TMPDIR)")

// maxListed bounds the ids a report lists per kind.
const maxListed = 10

// InvalidAccount is an account phase 1 cannot migrate.
type InvalidAccount struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// Report is what a run did (or, dry, would do).
type Report struct {
	DryRun bool `json:"dry_run"`
	// Path is the path the run took; ServerRefused why it streams where
	// it probed or tried the server path.
	Path          Path   `json:"path"`
	ServerRefused string `json:"server_path_refused,omitempty"`
	Accounts      int64  `json:"accounts_read"`
	// Identities are what the run saw of the identities: those that
	// link, those an unverified entry kept from linking, and the
	// identifiers that differ only by case or Unicode form.
	Identities IdentityReport `json:"identities"`
	// Normalized is how the identifiers of each normalised code compared
	// (identity.normalize); the others compared exactly.
	Normalized      map[string]string `json:"normalized,omitempty"`
	Groups          int               `json:"groups"`
	GroupedAccounts int               `json:"grouped_accounts"`
	// MergedAccounts are the grouped accounts merged into one tenant
	// account (a group left as it is counts in GroupedAccounts only).
	MergedAccounts int         `json:"merged_accounts"`
	GroupSizes     map[int]int `json:"group_sizes"`
	LargestGroup   int         `json:"largest_group"`
	// GroupedIn is where the groups were found: "memory", or the scratch
	// tables' place, "server" or "local disk" (in GroupingRounds rounds of
	// label propagation).
	GroupedIn       string           `json:"grouped_in,omitempty"`
	GroupingRounds  int              `json:"grouping_rounds,omitempty"`
	Invalid         int              `json:"invalid_accounts"`
	InvalidReasons  map[string]int   `json:"invalid_reasons,omitempty"`
	FirstInvalid    []InvalidAccount `json:"first_invalid,omitempty"`
	Conflicts       int              `json:"conflicts"`
	ConflictFields  map[string]int   `json:"conflicts_by_field,omitempty"`
	FirstConflicts  []Conflict       `json:"first_conflicts,omitempty"`
	TenantsInserted int              `json:"tenants_inserted"`
	TenantsReplaced int              `json:"tenants_replaced"`
	TenantsSame     int              `json:"tenants_unchanged"`
	Superseded      int              `json:"tenants_superseded"`
	// KeptNewer are tenant accounts a merge would have replaced that the
	// service wrote after every legacy account of the group: kept.
	KeptNewer int `json:"tenants_kept_newer,omitempty"`
	// NotMerged are the groups whose accounts hold two or more tenant
	// accounts already (Rules.MergesTenants): left as they are, listed by
	// their tenant accounts' _ids.
	NotMerged      int          `json:"groups_not_merged,omitempty"`
	FirstNotMerged [][]model.ID `json:"first_not_merged,omitempty"`
	// NewlyLinked (dry run) are accounts with no link that the run would
	// link (phase 2 leaves them from then on); NewlyLinkedOwnTenant, those
	// of them that hold a tenant account of their own. A dry run of phase
	// 2 before phase 1 is applied counts them as its own.
	NewlyLinked          int               `json:"newly_linked,omitempty"`
	NewlyLinkedOwnTenant int               `json:"newly_linked_own_tenant,omitempty"`
	LinksWritten         int               `json:"links_written"`
	LinksSame            int               `json:"links_unchanged"`
	Durations            map[string]string `json:"pass_durations"`
	// Split are the tenant accounts an earlier run merged that the identity
	// rules now split (split.go), SplitAccounts their legacy accounts.
	Split         int           `json:"split_tenants,omitempty"`
	SplitAccounts int           `json:"split_accounts,omitempty"`
	FirstSplit    []SplitTenant `json:"first_split,omitempty"`
	// SplitLeft: they were left as they are (Config.LeaveSplit), not a
	// reason to stop.
	SplitLeft bool `json:"split_left,omitempty"`
	// StopsOnInvalid: invalid accounts stop the phase (they are not
	// skipped); WouldStop: they do, or split tenant accounts do.
	StopsOnInvalid bool `json:"stops_on_invalid,omitempty"`
	WouldStop      bool `json:"would_stop,omitempty"`
}

// Print writes a human summary.
func (r *Report) Print(w io.Writer) {
	verb, replaced, left, superseded := "wrote", "replaced", "left", "superseded"
	if r.DryRun {
		verb, replaced, left, superseded = "would write", "would replace", "would leave", "would supersede"
	}
	sizes := make([]int, 0, len(r.GroupSizes))
	for n := range r.GroupSizes {
		sizes = append(sizes, n)
	}
	sort.Ints(sizes)
	var dist []string
	for _, n := range sizes {
		dist = append(dist, fmt.Sprintf("%d:%d", n, r.GroupSizes[n]))
	}
	if r.Groups == 0 {
		fmt.Fprintf(w, "phase 1: %d accounts read, no group of one person (no two accounts of an org share a verified identifier)\n", r.Accounts)
	} else {
		fmt.Fprintf(w, "phase 1: %d accounts read, %d groups of one person (%d accounts; sizes:groups %s; largest %d)\n",
			r.Accounts, r.Groups, r.GroupedAccounts, strings.Join(dist, " "), r.LargestGroup)
	}
	if r.Path == PathServer {
		fmt.Fprintln(w, "phase 1: identity entries read by a server-side pipeline, grouped accounts read by _id")
	}
	if len(r.Normalized) > 0 {
		codes := make([]string, 0, len(r.Normalized))
		for c, n := range r.Normalized {
			codes = append(codes, c+": "+n)
		}
		sort.Strings(codes)
		fmt.Fprintf(w, "phase 1: identifiers compared normalised (identity.normalize) for %s; the other codes exactly\n", strings.Join(codes, ", "))
	}
	r.Identities.print(w)
	if r.GroupedIn != "" && r.GroupedIn != "memory" {
		fmt.Fprintf(w, "phase 1: groups found in scratch tables (%s) in %d rounds\n", r.GroupedIn, r.GroupingRounds)
	}
	fmt.Fprintf(w, "phase 1: %s %d new tenant accounts, %s %d, %s %d unchanged, %s %d; %s %d links\n",
		verb, r.TenantsInserted, replaced, r.TenantsReplaced, left, r.TenantsSame, superseded, r.Superseded, verb, r.LinksWritten)
	fmt.Fprintf(w, "phase 1: %d conflicts (values a merge keeps one of; the legacy accounts keep every value)%s\n", r.Conflicts, formatMap(r.ConflictFields))
	for _, c := range r.FirstConflicts {
		kept := "value"
		if !c.Kept.IsZero() {
			kept = c.Kept.String() + "'s entry"
		}
		fmt.Fprintf(w, "    conflict in tenant %s, field %s, between %s: kept %s (%s)\n", c.TenantID, c.Field, joinIDs(c.Sources), kept, c.Why.Describe())
	}
	if r.KeptNewer > 0 {
		fmt.Fprintf(w, "phase 1: kept %d tenant accounts the service wrote after their legacy accounts (not replaced)\n", r.KeptNewer)
	}
	if r.NotMerged > 0 {
		fmt.Fprintf(w, "phase 1: %s, not merged: the service may have written each since (review them; identity.merge_existing merges them, safe only before the service writes tenant accounts):\n",
			plural(r.NotMerged, "1 group of one person holds two or more tenant accounts", fmt.Sprintf("%d groups of one person hold two or more tenant accounts", r.NotMerged)))
		for _, ids := range r.FirstNotMerged {
			fmt.Fprintf(w, "    tenant accounts %s\n", joinIDs(ids))
		}
	}
	if r.Split > 0 && r.SplitLeft {
		fmt.Fprintf(w, "phase 1: %d tenant accounts (%d legacy accounts) are no longer one person by the identity rules since their legacy accounts changed; left as they are, for an operator (the service may have written them):\n", r.Split, r.SplitAccounts)
		for _, s := range r.FirstSplit {
			fmt.Fprintf(w, "    %s\n", s)
		}
	} else if r.Split > 0 {
		fmt.Fprintf(w, "phase 1: %d tenant accounts an earlier run merged (%d legacy accounts) are no longer one person by these identity rules: the phase stops before it writes; undo phase 1 and run again, or restore the identity configuration that merged them:\n", r.Split, r.SplitAccounts)
		for _, s := range r.FirstSplit {
			fmt.Fprintf(w, "    %s\n", s)
		}
	}
	if r.Invalid > 0 {
		what := "skipped, not migrated"
		if r.StopsOnInvalid {
			what = "phase stops unless --skip-invalid"
		}
		fmt.Fprintf(w, "phase 1: %d accounts cannot be migrated (%s)%s\n", r.Invalid, what, formatMap(r.InvalidReasons))
		for _, a := range r.FirstInvalid {
			fmt.Fprintf(w, "    %s: %s\n", a.ID, a.Reason)
		}
	}
}

func joinIDs(ids []model.ID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	return strings.Join(s, ", ")
}

func formatMap(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// addWrites adds what one writer wrote and left as it was.
func (r *Report) addWrites(w *Report) {
	r.TenantsSame += w.TenantsSame
	r.TenantsReplaced += w.TenantsReplaced
	r.TenantsInserted += w.TenantsInserted
	r.Superseded += w.Superseded
	r.KeptNewer += w.KeptNewer
	r.LinksWritten += w.LinksWritten
	r.LinksSame += w.LinksSame
}

// Notes are the report's lines for the step's history: the path taken,
// why not the server's, and the identities an operator should review.
func (r *Report) Notes() []string {
	out := []string{fmt.Sprintf("path %s", r.Path)}
	if r.ServerRefused != "" {
		out = append(out, "server path not taken: "+r.ServerRefused)
	}
	if r.NotMerged > 0 {
		out = append(out, fmt.Sprintf("%d groups hold two or more tenant accounts, not merged: %s", r.NotMerged, listed(notMerged(r.FirstNotMerged))))
	}
	if r.Split > 0 && r.SplitLeft {
		out = append(out, fmt.Sprintf("%d tenant accounts are no longer one person since their legacy accounts changed, left as they are: %s", r.Split, listed(r.FirstSplit)))
	}
	return append(out, r.Identities.notes()...)
}

// notMerged are the listed groups as items of a note.
func notMerged(groups [][]model.ID) []idList {
	out := make([]idList, len(groups))
	for i, g := range groups {
		out[i] = idList(g)
	}
	return out
}

// idList is _ids as one item of a note.
type idList []model.ID

func (l idList) String() string { return "(" + joinIDs(l) + ")" }

// notesListed bounds the items a history note lists.
const notesListed = 3

// print writes the identity lines of a report.
func (r IdentityReport) print(w io.Writer) {
	fmt.Fprintf(w, "phase 1: %d identity entries read, %d identities link two or more accounts (only entries verified on every side link)\n", r.Entries, r.Shared)
	if r.Unverified > 0 {
		fmt.Fprintf(w, "phase 1: %d %s: they did not link the %d %s holding them only unverified (held apart by them, unless another verified identifier links them; review them: an unverified identifier proves nothing):\n",
			r.Unverified, plural(r.Unverified, "shared identity is", "shared identities are")+" unverified on some account", r.HeldApart, plural(r.HeldApart, "account", "accounts"))
		for _, u := range r.FirstUnverified {
			fmt.Fprintf(w, "    %s\n", u)
		}
	}
	if r.Variants > 0 {
		fmt.Fprintf(w, "phase 1: %d %s only by case or Unicode form, held verified by %d accounts; identity.normalize would link them:\n",
			r.Variants, plural(r.Variants, "set of identifiers differs", "sets of identifiers differ"), r.VariantAccounts)
		for _, v := range r.FirstVariants {
			fmt.Fprintf(w, "    %s\n", v)
		}
	}
}

// notes are the identity lines of a step's history.
func (r IdentityReport) notes() []string {
	var out []string
	if r.Unverified > 0 {
		out = append(out, fmt.Sprintf("%d shared identities unverified on some account held %d accounts apart (review them); first: %s",
			r.Unverified, r.HeldApart, listed(r.FirstUnverified)))
	}
	if r.Variants > 0 {
		out = append(out, fmt.Sprintf("%d sets of identifiers differ only by case or Unicode form (%d accounts; identity.normalize would link them); first: %s",
			r.Variants, r.VariantAccounts, listed(r.FirstVariants)))
	}
	return out
}

func listed[T fmt.Stringer](items []T) string {
	s := make([]string, 0, notesListed)
	for i, it := range items {
		if i == notesListed {
			s = append(s, "...")
			break
		}
		s = append(s, it.String())
	}
	return strings.Join(s, "; ")
}

func (u UnverifiedIdentity) String() string {
	s := fmt.Sprintf("%s: held apart %s", u.Code, joinIDs(u.HeldApart))
	if len(u.Verified) > 0 {
		s += "; verified by " + joinIDs(u.Verified)
	}
	return s
}

func (v IdentifierVariant) String() string { return fmt.Sprintf("%s: %s", v.Code, joinIDs(v.Accounts)) }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Counts flattens the report for the step history.
func (r *Report) Counts() count.Counts {
	c := count.Counts{
		count.AccountsRead:      r.Accounts,
		count.Groups:            int64(r.Groups),
		count.GroupedAccounts:   int64(r.GroupedAccounts),
		count.MergedAccounts:    int64(r.MergedAccounts),
		count.LargestGroup:      int64(r.LargestGroup),
		count.InvalidSkipped:    int64(r.Invalid),
		count.Conflicts:         int64(r.Conflicts),
		count.SharedIdentities:  int64(r.Identities.Shared),
		count.UnverifiedShared:  int64(r.Identities.Unverified),
		count.HeldApart:         int64(r.Identities.HeldApart),
		count.IdentityVariants:  int64(r.Identities.Variants),
		count.VariantAccounts:   int64(r.Identities.VariantAccounts),
		count.TenantsInserted:   int64(r.TenantsInserted),
		count.TenantsReplaced:   int64(r.TenantsReplaced),
		count.TenantsUnchanged:  int64(r.TenantsSame),
		count.TenantsSuperseded: int64(r.Superseded),
		count.LinksWritten:      int64(r.LinksWritten),
		count.NotMerged:         int64(r.NotMerged),
		count.KeptNewer:         int64(r.KeptNewer),
	}
	for reason, n := range r.InvalidReasons {
		c[count.Skipped(reason)] = int64(n)
	}
	return c
}

// InvalidError lists the legacy accounts phase 1 cannot migrate; it wraps
// pipelines.ErrInvalidData, one sentinel for both phases.
type InvalidError struct{ Report *Report }

func (e *InvalidError) Error() string {
	reasons := make([]string, 0, len(e.Report.InvalidReasons))
	for r, n := range e.Report.InvalidReasons {
		reasons = append(reasons, fmt.Sprintf("%s: %d", r, n))
	}
	sort.Strings(reasons)
	ids := make([]string, len(e.Report.FirstInvalid))
	for i, a := range e.Report.FirstInvalid {
		ids[i] = a.ID
	}
	return fmt.Sprintf("%d %s (%s; first: %s); nothing was written: fix them, or run with --skip-invalid to migrate the others",
		e.Report.Invalid, pipelines.ErrInvalidData, strings.Join(reasons, ", "), strings.Join(ids, ", "))
}

func (e *InvalidError) Unwrap() error { return pipelines.ErrInvalidData }

// Run runs phase 1.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.Env = cfg.Env.WithDefaults()
	appOrgs, err := apporgs.Read(ctx, cfg.DB.Collection(cfg.ApplicationsOrganizations))
	if err != nil {
		return nil, err
	}
	path, why := cfg.Path, ""
	switch {
	case cfg.DryRun:
		path = PathStream // a dry run writes nothing, not even a probe's scratch
	case cfg.MemoryGroupLimit == 0 && path == PathServer:
		return nil, errors.New("phase 1: the server path groups in memory: it needs a memory group limit above 0")
	case cfg.MemoryGroupLimit == 0:
		path, why = PathStream, "phase1.memory_group_limit is 0: grouping in memory is off"
	case path == PathProbe:
		start := time.Now()
		if why, err = probe(ctx, cfg); err != nil {
			return nil, fmt.Errorf("phase 1: %w", err)
		}
		path = PathServer
		if why != "" {
			path = PathStream
		}
		cfg.Log.WithFields(logrus.Fields{"path": path, "took": time.Since(start).Round(time.Millisecond).String()}).Info("phase 1: path chosen by a probe of the server")
	}
	if path == PathServer {
		rep, err := runPath(ctx, cfg, appOrgs, PathServer)
		forced := cfg.Path == PathServer
		switch {
		case errors.Is(err, errOverBudget):
			why = fmt.Sprintf("more than phase1.memory_group_limit (%d) accounts share identities", cfg.MemoryGroupLimit)
		case (errors.Is(err, errServerRefused) || errors.Is(err, errNoLocalScratch)) && !forced:
			why = refusal.OneLine(err.Error())
		default:
			return rep, err
		}
		cfg.Log.WithField("why", why).Warn("phase 1: taking the streaming path")
		path = PathStream
	}
	rep, err := runPath(ctx, cfg, appOrgs, path)
	if rep != nil {
		rep.ServerRefused = why
	}
	return rep, err
}

// pass is one pass of a path.
type pass struct {
	name string
	fn   func(context.Context) error
}

// runPath runs the passes of one path from the start, with a report of its
// own.
func runPath(ctx context.Context, cfg Config, appOrgs apporgs.Set, path Path) (*Report, error) {
	rep := &Report{DryRun: cfg.DryRun, Path: path, GroupSizes: map[int]int{}, InvalidReasons: map[string]int{},
		ConflictFields: map[string]int{}, Durations: map[string]string{}}
	for code, n := range cfg.Rules.Normalize {
		if n != 0 {
			if rep.Normalized == nil {
				rep.Normalized = map[string]string{}
			}
			rep.Normalized[code] = n.String()
		}
	}
	p := &run{cfg: cfg, rep: rep, appOrgs: appOrgs}
	if err := p.openStore(ctx, path); err != nil {
		return nil, fmt.Errorf("phase 1: %w", err)
	}
	defer func() { _ = p.store.close(context.WithoutCancel(ctx)) }()
	passes := p.serverPasses()
	if path == PathStream {
		passes = []pass{
			{"1 identities", p.scanIdentities},
			{"2 groups", p.findGroups},
			{"2b links", p.checkLinks},
			{"3 collect", p.collectMembers},
			{"4 merge", p.mergeGroups},
		}
	}
	for _, ps := range passes {
		start := time.Now()
		cfg.Log.WithFields(logrus.Fields{"pass": ps.name, "path": path}).Info("phase 1: pass started")
		if err := ps.fn(ctx); err != nil {
			var ie *InvalidError
			var se *SplitError
			if errors.As(err, &ie) || errors.As(err, &se) || errors.Is(err, errOverBudget) || errors.Is(err, errServerRefused) || errors.Is(err, errNoLocalScratch) {
				return rep, err
			}
			return rep, fmt.Errorf("phase 1: pass %s: %w", ps.name, err)
		}
		rep.Durations[ps.name] = time.Since(start).Round(time.Millisecond).String()
		cfg.Log.WithFields(logrus.Fields{"pass": ps.name, "duration": rep.Durations[ps.name]}).Info("phase 1: pass finished")
	}
	if err := p.store.close(ctx); err != nil {
		return rep, fmt.Errorf("phase 1: %w", err)
	}
	return rep, nil
}

// openStore makes the scratch tables of a path: on local disk for the
// server path (it keeps only its keys there) and for a dry run, which
// writes nothing to the server; else in collections of the database.
func (p *run) openStore(ctx context.Context, path Path) error {
	if p.cfg.DryRun || path == PathServer {
		fs, err := newFileStore()
		if err != nil {
			return err
		}
		p.store = fs
	} else {
		// Scratch names are new for every run: a killed run's writes still
		// in flight on the server land in its own scratch, never in ours.
		if err := scratch.Drop(ctx, p.cfg.DB, p.cfg.ScratchPrefix+"_p1_", ""); err != nil {
			return err
		}
		p.store = &collStore{db: p.cfg.DB, prefix: p.cfg.ScratchPrefix + "_p1_", runID: scratch.RunID(), read: p.read()}
	}
	p.keys = newKeyTable(p.store.table("keys", "_id"))
	p.groups = &groupTable{t: p.store.table("groups", "g", "_id")}
	return nil
}

type run struct {
	cfg     Config
	rep     *Report
	appOrgs apporgs.Set
	store   scratchStore
	keys    *keyTable
	groups  *groupTable
	// lookup gives the accounts that share an identity their group key
	// (the smallest _id of the group); grouped is how many they are.
	lookup  groupLookup
	grouped int
	// members are the server path's grouped accounts (by group).
	members []member
	// split are the tenant accounts left as they are (Config.LeaveSplit).
	split map[model.ID]bool
}

// read is how the passes read: a batch per round trip, cursors in _id
// order resumed after a transient break.
func (p *run) read() sorted.Options { return sorted.Options{Batch: p.cfg.Batch, Retry: &p.cfg.Retry} }

// keyDoc is one identity entry of one account, in the scratch keys. Its
// _id is the hash of the entry's variant class (org, code, Identity.Variant),
// then the hash of its identity (org, code, Identity.Key), then '0' when
// the entry is verified or '1', then the account's ID Key: sorted, the
// entries of one class are adjacent, within it those of one identity,
// verified first, account by account. Hashing keeps identifiers out of the
// scratch tables.
type keyDoc struct {
	ID   string `bson:"_id"`
	Code string `bson:"c"` // the auth_type_code, for reports
	// A is the account _id, the end of ID: not stored, as every account has
	// a key document per identity (the largest scratch table).
	A model.ID `bson:"-"`
}

const (
	classLen = 32            // hex digits of the variant class's hash
	identLen = classLen + 16 // and of the identity's: the identity within its class
	hashLen  = identLen + 1  // and the verification flag; the account's Key follows
)

// doc is the key document of one identity entry of an account.
func (k *keyTable) doc(org string, id Identity, acct model.ID) keyDoc {
	flag := "0"
	if !id.Verified {
		flag = "1"
	}
	return keyDoc{ID: k.hash(org, id.Code, id.Variant)[:classLen] + k.hash(org, id.Code, id.Key)[:identLen-classLen] + flag + acct.Key(), Code: id.Code, A: acct}
}

// hash is keyed with the table's own random key: a plain hash of a phone
// number is undone by trying every number, and the table lives on local
// disk or in a scratch collection for the length of a run.
func (k *keyTable) hash(org, code, identifier string) string {
	h := hmac.New(sha256.New, k.salt)
	h.Write([]byte(org + "\x00" + code + "\x00" + identifier))
	return hex.EncodeToString(h.Sum(nil))
}

func (k keyDoc) class() string    { return k.ID[:classLen] }
func (k keyDoc) identity() string { return k.ID[:identLen] }
func (k keyDoc) verified() bool   { return k.ID[identLen] == '0' }

// IdentityReport is what phase 1 saw of the identities, the same on both
// paths. Accounts are listed by legacy _id, never by identifier.
type IdentityReport struct {
	// Entries are the identity entries read (auth_types entries of valid
	// accounts with an identity code).
	Entries int64 `json:"entries"`
	// Shared are the identities that link two or more accounts.
	Shared int `json:"shared"`
	// Unverified are the identities two or more accounts hold, one of them
	// only unverified; HeldApart sums, over them, the accounts that hold
	// it only unverified, which it does not link (an account counted once
	// per identity).
	Unverified      int                  `json:"unverified"`
	HeldApart       int                  `json:"accounts_held_apart"`
	FirstUnverified []UnverifiedIdentity `json:"first_unverified,omitempty"`
	// Variants are the classes of verified identifiers of one code that
	// differ only by case or Unicode form and are held by two or more
	// accounts; VariantAccounts sums their accounts. Normalising the code
	// (identity.normalize) would link them.
	Variants        int                 `json:"variants"`
	VariantAccounts int                 `json:"variant_accounts"`
	FirstVariants   []IdentifierVariant `json:"first_variants,omitempty"`
}

// UnverifiedIdentity is one identity that an unverified entry kept from
// linking: its code and its accounts.
type UnverifiedIdentity struct {
	Code      string     `json:"code"`
	Verified  []model.ID `json:"verified_by,omitempty"`
	HeldApart []model.ID `json:"held_apart"`
}

// IdentifierVariant is one class of identifiers that differ only by case
// or Unicode form: its code and the accounts holding them verified.
type IdentifierVariant struct {
	Code     string     `json:"code"`
	Accounts []model.ID `json:"accounts"`
}

// noteShared counts one identity.
func (r *IdentityReport) noteShared(code string, sh Shared) {
	if len(sh.Linked) > 0 {
		r.Shared++
	}
	if len(sh.HeldApart) == 0 {
		return
	}
	r.Unverified++
	r.HeldApart += len(sh.HeldApart)
	r.FirstUnverified = smallest(r.FirstUnverified, UnverifiedIdentity{Code: code, Verified: firstIDs(sh.Verified), HeldApart: firstIDs(sh.HeldApart)},
		func(u UnverifiedIdentity) string {
			return idsKey(u.HeldApart) + "\x01" + idsKey(u.Verified) + "\x01" + u.Code
		})
}

// smallest adds item to a list that keeps the maxListed items of smallest
// key, in key order: the keys are scanned in the order of their keyed
// hashes, new for every run, and a report must list the same items on
// every run and path.
func smallest[T any](list []T, item T, key func(T) string) []T {
	i, _ := slices.BinarySearchFunc(list, key(item), func(x T, k string) int { return strings.Compare(key(x), k) })
	if i >= maxListed {
		return list
	}
	list = slices.Insert(list, i, item)
	if len(list) > maxListed {
		list = list[:maxListed]
	}
	return list
}

// noteVariants counts one variant class (nil: not one).
func (r *IdentityReport) noteVariants(code string, accounts []model.ID) {
	if len(accounts) == 0 {
		return
	}
	r.Variants++
	r.VariantAccounts += len(accounts)
	r.FirstVariants = smallest(r.FirstVariants, IdentifierVariant{Code: code, Accounts: firstIDs(accounts)},
		func(v IdentifierVariant) string { return idsKey(v.Accounts) + "\x01" + v.Code })
}

// idsKey orders lists of ids as their ids order.
func idsKey(ids []model.ID) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(id.Key())
		b.WriteByte(0)
	}
	return b.String()
}

// firstIDs bounds the ids a report lists for one item.
func firstIDs(ids []model.ID) []model.ID {
	if len(ids) > maxListed {
		return ids[:maxListed:maxListed]
	}
	return slices.Clip(ids)
}

// pass 1
func (p *run) scanIdentities(ctx context.Context) error {
	orgOf := p.appOrgs.OrgOf()
	proj := bson.D{{Key: "app_org_id", Value: 1}, {Key: "auth_types", Value: 1}}
	keys := newKeyWriter(p.keys, p.cfg.Batch, &p.rep.Identities)
	task := p.cfg.Progress.Start("phase 1: identities", p.cfg.Total)
	defer task.Done()
	// Natural order: this pass joins nothing.
	err := sorted.EachBy(ctx, p.cfg.DB.Collection(p.cfg.Accounts), p.cfg.scope(), proj, nil, p.read(), func(raw bson.Raw) error {
		p.rep.Accounts++
		task.Add(1)
		var d bson.D
		if err := bson.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("decode account: %w", err)
		}
		if reason := pipelines.Invalid(d, orgOf); reason != "" {
			p.invalid(idString(raw.Lookup("_id")), reason)
			return nil
		}
		id, _ := model.Get(d, model.FieldID)
		ao, _ := model.Get(d, model.FieldAppOrgID)
		acct, _ := model.IDOfValue(id)
		ats, _ := model.Get(d, model.FieldAuthTypes)
		for _, ident := range p.cfg.Rules.Identities(ats.(bson.A)) {
			if err := keys.add(ctx, p.keys.doc(orgOf[ao.(string)], ident, acct)); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = keys.flush(ctx)
	}
	if err != nil {
		return err
	}
	if p.rep.Invalid > 0 && !p.cfg.SkipInvalid {
		p.rep.StopsOnInvalid, p.rep.WouldStop = true, true
		if !p.cfg.DryRun {
			return &InvalidError{Report: p.rep}
		}
	}
	return nil
}

// keyWriter batches identity entries into the keys table, counting them.
type keyWriter struct {
	keys  *keyTable
	batch int
	buf   []keyDoc
	rep   *IdentityReport
}

func newKeyWriter(keys *keyTable, batch int, rep *IdentityReport) *keyWriter {
	return &keyWriter{keys: keys, batch: batch, buf: make([]keyDoc, 0, batch), rep: rep}
}

func (w *keyWriter) add(ctx context.Context, k keyDoc) error {
	w.buf = append(w.buf, k)
	w.rep.Entries++
	if len(w.buf) >= w.batch {
		return w.flush(ctx)
	}
	return nil
}

func (w *keyWriter) flush(ctx context.Context) error {
	err := w.keys.add(ctx, w.buf)
	w.buf = w.buf[:0]
	return err
}

func (p *run) invalid(id, reason string) { p.rep.noteInvalid(id, reason) }

// noteInvalid counts an account that cannot be migrated, listing the first
// few.
func (r *Report) noteInvalid(id, reason string) {
	r.Invalid++
	r.InvalidReasons[reason]++
	if len(r.FirstInvalid) < maxListed {
		r.FirstInvalid = append(r.FirstInvalid, InvalidAccount{ID: id, Reason: reason})
	}
}

// idString shows an _id of any type, for reports.
func idString(v bson.RawValue) string {
	if id, ok := model.IDOf(v); ok {
		return id.String()
	}
	return v.String()
}

// groupDoc is one account of one group, in the scratch groups.
type groupDoc struct {
	ID        model.ID    `bson:"_id"` // account _id
	G         model.ID    `bson:"g"`   // group key
	Doc       bson.Raw    `bson:"doc"`
	Link      *model.Link `bson:"link,omitempty"`
	HasTenant bool        `bson:"t"`
}

// pass 3
func (p *run) collectMembers(ctx context.Context) error {
	if p.grouped == 0 {
		return nil
	}
	defer p.lookup.close(ctx)
	linkRows, err := sorted.Open(ctx, p.cfg.DB.Collection(p.cfg.Links), p.cfg.scope(), nil, p.read())
	if err != nil {
		return fmt.Errorf("read links: %w", err)
	}
	links := join.ByID(linkRows, "links")
	defer links.Close(ctx)
	tenantRows, err := sorted.Open(ctx, p.cfg.DB.Collection(p.cfg.TenantsAccounts), p.cfg.scope(), bson.D{{Key: "_id", Value: 1}}, p.read())
	if err != nil {
		return fmt.Errorf("read tenant accounts: %w", err)
	}
	tenants := join.ByID(tenantRows, "tenant accounts")
	defer tenants.Close(ctx)
	buf := make([]groupDoc, 0, p.cfg.Batch)
	task := p.cfg.Progress.Start("phase 1: collect groups", p.cfg.Total)
	defer task.Done()
	err = sorted.Each(ctx, p.cfg.DB.Collection(p.cfg.Accounts), p.cfg.scope(), nil, p.read(), func(raw bson.Raw) error {
		task.Add(1)
		id, ok := model.IDOf(raw.Lookup("_id"))
		if !ok {
			return nil
		}
		g, grouped, err := p.lookup.group(ctx, id)
		if err != nil {
			return err
		}
		link, hasLink, err := links.SkipTo(ctx, id)
		if err != nil {
			return err
		}
		_, hasTenant, err := tenants.SkipTo(ctx, id)
		if err != nil {
			return err
		}
		if !grouped {
			return nil
		}
		gd := groupDoc{ID: id, G: g, Doc: raw, HasTenant: hasTenant}
		if hasLink {
			var l model.Link
			if err := bson.Unmarshal(link.Raw, &l); err != nil {
				return fmt.Errorf("decode link %s: %w", id, err)
			}
			gd.Link = &l
		}
		buf = append(buf, gd)
		if len(buf) >= p.cfg.Batch {
			if err := p.groups.put(ctx, buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		return nil
	})
	if err != nil {
		return err
	}
	return p.groups.put(ctx, buf)
}

// maxDocument is MongoDB's document size limit.
const maxDocument = 16 * 1024 * 1024

// ReasonTooLarge is why a group too large for one document is left out.
const ReasonTooLarge = "merged tenant account over the 16 MB document limit"

// tooLarge handles a group whose tenant account would not fit in one
// document: by default the phase stops; skipping invalid data, the group's
// accounts get links that say so, which keep phase 2 from moving them one
// by one into several tenant accounts, and they stay listed as not
// migrated. Accounts the group already had in a tenant account stay there.
func (p *run) tooLarge(docs []groupDoc, org string, survivor model.ID, size int, w *writer) error {
	if !p.cfg.SkipInvalid && p.cfg.DryRun {
		// A dry run reports it as it reports an invalid account: the run
		// would stop.
		for _, gd := range docs {
			p.invalid(gd.ID.String(), ReasonTooLarge)
		}
		p.rep.StopsOnInvalid, p.rep.WouldStop = true, true
		return nil
	}
	if !p.cfg.SkipInvalid {
		return fmt.Errorf("%w: the group of %d accounts with tenant %s would be %d bytes, over MongoDB's 16 MB document limit; run with --skip-invalid to migrate the others and leave this group listed as not migrated",
			pipelines.ErrInvalidData, len(docs), survivor, size)
	}
	for _, gd := range docs {
		p.invalid(gd.ID.String(), ReasonTooLarge)
		if (gd.Link != nil && gd.Link.Skipped == "") || gd.HasTenant {
			continue
		}
		ao, _ := gd.Doc.Lookup("app_org_id").StringValueOK()
		l := model.Link{LegacyID: gd.ID, OrgID: org, AppOrgID: ao, Skipped: ReasonTooLarge}
		if gd.Link != nil && *gd.Link == l {
			w.rep.LinksSame++
			continue
		}
		p.newlyLinked(gd.Link, false)
		w.link(l, gd.Link != nil, false)
	}
	return nil
}

// pass 4
func (p *run) mergeGroups(ctx context.Context) error {
	if err := p.indexLinks(ctx); err != nil {
		return err
	}
	w := newWriter(p.cfg, p.rep)
	task := p.cfg.Progress.Start("phase 1: merge groups", int64(p.grouped))
	defer task.Done()
	err := p.groups.groups(ctx, func(members []groupDoc) error {
		task.Add(int64(len(members)))
		p.count(members)
		if err := p.mergeOne(members, w); err != nil {
			return err
		}
		if w.pending() >= p.cfg.Batch {
			return w.flush(ctx)
		}
		return nil
	})
	if err != nil {
		return err
	}
	p.cfg.Log.WithFields(logrus.Fields{"groups": p.rep.Groups, "accounts": p.rep.GroupedAccounts, "largest": p.rep.LargestGroup}).Info("phase 1: groups merged")
	return w.flush(ctx)
}

// indexLinks indexes the links by tenant: verify and the service read them
// so.
func (p *run) indexLinks(ctx context.Context) error {
	if p.cfg.DryRun {
		return nil
	}
	_, err := p.cfg.DB.Collection(p.cfg.Links).Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "tenant_id", Value: 1}}, Options: options.Index().SetName("tenant_id"),
	})
	if err != nil {
		return fmt.Errorf("index links by tenant: %w", err)
	}
	return nil
}

// newlyLinked counts, in a dry run, an account that would be linked and
// had no link.
func (p *run) newlyLinked(old *model.Link, ownTenant bool) {
	if old != nil || !p.cfg.DryRun {
		return
	}
	p.rep.NewlyLinked++
	if ownTenant {
		p.rep.NewlyLinkedOwnTenant++
	}
}

// count adds a group to the report's sizes.
func (p *run) count(members []groupDoc) {
	n := len(members)
	p.rep.Groups++
	p.rep.GroupedAccounts += n
	p.rep.GroupSizes[n]++
	p.rep.LargestGroup = max(p.rep.LargestGroup, n)
}

// tenantsOf are the _ids of the tenant accounts the accounts of a group
// hold already.
func tenantsOf(docs []groupDoc) []model.ID {
	var ids []model.ID
	for _, gd := range docs {
		if gd.HasTenant {
			ids = append(ids, gd.ID)
		}
	}
	return ids
}

func (p *run) mergeOne(docs []groupDoc, w *writer) error {
	members := make([]Member, len(docs))
	hasTenant := map[model.ID]bool{}
	org := ""
	for i, gd := range docs {
		var d bson.D
		if err := bson.Unmarshal(gd.Doc, &d); err != nil {
			return fmt.Errorf("decode account %s: %w", gd.ID, err)
		}
		ao, _ := model.Get(d, model.FieldAppOrgID)
		dc, _ := model.Get(d, model.FieldDateCreated)
		m := Member{ID: gd.ID, AppOrgID: ao.(string), Doc: d}
		if t, ok := dc.(primitive.DateTime); ok {
			m.DateCreated = t.Time()
		}
		m.AppID = p.appOrgs[m.AppOrgID].AppID
		org = p.appOrgs[m.AppOrgID].OrgID
		members[i] = m
		hasTenant[gd.ID] = gd.HasTenant
	}
	for _, gd := range docs {
		if gd.Link != nil && p.split[gd.Link.TenantID] {
			return nil // its tenant account is split: left as it is
		}
	}
	if existing := tenantsOf(docs); !p.cfg.Rules.MergesTenants(len(existing)) {
		p.rep.NotMerged++
		if len(p.rep.FirstNotMerged) < maxListed {
			p.rep.FirstNotMerged = append(p.rep.FirstNotMerged, existing)
		}
		return nil
	}
	survivor := p.cfg.Rules.Survivor(members, func(id model.ID) bool { return hasTenant[id] })
	merged, err := p.cfg.Rules.Merge(org, members, survivor)
	if err != nil {
		return fmt.Errorf("group of %s: %w", survivor, err)
	}
	for _, c := range merged.Conflicts {
		p.rep.Conflicts++
		p.rep.ConflictFields[c.Field]++
		if len(p.rep.FirstConflicts) < maxListed {
			p.rep.FirstConflicts = append(p.rep.FirstConflicts, c)
		}
	}
	raw, err := bson.Marshal(merged.Tenant)
	if err != nil {
		return fmt.Errorf("tenant %s: %w", survivor, err)
	}
	if len(raw) > maxDocument {
		return p.tooLarge(docs, org, survivor, len(raw), w)
	}
	p.rep.MergedAccounts += len(docs)
	sum := sha256.Sum256(raw)
	hash := hex.EncodeToString(sum[:16])
	old := map[model.ID]*model.Link{}
	for _, gd := range docs {
		old[gd.ID] = gd.Link
		if gd.HasTenant && gd.ID != survivor {
			w.supersede(model.TenantRef{ID: gd.ID, Org: org})
		}
	}
	prev := old[survivor]
	inserted := false
	switch {
	case hasTenant[survivor] && prev != nil && prev.TenantHash == hash:
		w.rep.TenantsSame++
	case hasTenant[survivor]:
		w.compareTenant(survivor, raw)
	default:
		w.insertTenant(raw)
		inserted = true
	}
	for _, l := range merged.Links {
		if l.LegacyID == survivor {
			l.TenantHash = hash
		}
		if o := old[l.LegacyID]; o != nil && *o == l {
			w.rep.LinksSame++
			continue
		}
		p.newlyLinked(old[l.LegacyID], hasTenant[l.LegacyID])
		w.link(l, old[l.LegacyID] != nil, inserted)
	}
	return nil
}
