// Package count names what a step reports it did. Every count a step
// writes to its history, and every count the summary, status and load test
// read back, is one of these names, declared once: a misspelt count is a
// compile error, not a "-" in the summary.
package count

import (
	"sort"
	"strings"
)

// Name is the name of one count, as the history stores it.
type Name string

// The counts of the steps. Their text is what the history documents and
// `runner status --json` carry: it never changes.
const (
	// AccountsRead: legacy accounts the step read (phase 1, phase 2).
	AccountsRead Name = "accounts_read"
	// InvalidSkipped: legacy accounts left unmigrated as bad data.
	InvalidSkipped Name = "invalid_skipped"
	// Retries: transient errors the step retried.
	Retries Name = "retries"
	// Commands: database commands a JSON step ran.
	Commands Name = "commands"

	// Phase 1.
	Groups          Name = "groups"
	GroupedAccounts Name = "grouped_accounts"
	// MergedAccounts: of the grouped accounts, those merged into one
	// tenant account (not those of groups left as they are: holding two
	// tenant accounts, split, or over 16 MB).
	MergedAccounts Name = "merged_accounts"
	LargestGroup   Name = "largest_group"
	Conflicts      Name = "conflicts"
	// SharedIdentities: identities that link two or more accounts.
	SharedIdentities Name = "shared_identities"
	// UnverifiedShared: identities two or more accounts hold, one of them
	// only unverified; HeldApart: the accounts those did not link.
	UnverifiedShared Name = "unverified_shared_identities"
	HeldApart        Name = "accounts_held_apart"
	// IdentityVariants: classes of identifiers that differ only by case or
	// Unicode form; VariantAccounts: their accounts.
	IdentityVariants  Name = "identifier_variants"
	VariantAccounts   Name = "variant_accounts"
	TenantsInserted   Name = "tenants_inserted"
	TenantsReplaced   Name = "tenants_replaced"
	TenantsUnchanged  Name = "tenants_unchanged"
	TenantsSuperseded Name = "tenants_superseded"
	LinksWritten      Name = "links_written"
	// NotMerged: groups a shared identity links whose accounts hold two or
	// more tenant accounts already, left for an operator (phase 1's
	// Rules.MergesTenants); KeptNewer: tenant accounts not replaced, or
	// not deleted by a down, because the service wrote them after their
	// legacy accounts (model.WrittenAfter).
	NotMerged Name = "groups_not_merged"
	KeptNewer Name = "tenants_kept_newer"

	// Phase 2. Refreshed and Unchanged where it told them apart, else
	// RefreshedOrUnchanged.
	Inserted             Name = "inserted"
	Refreshed            Name = "refreshed"
	Unchanged            Name = "unchanged"
	RefreshedOrUnchanged Name = "refreshed_or_unchanged"
	LeftToPhase1         Name = "left_to_phase1"

	// References (Conflicts too).
	DocumentsRewritten Name = "documents_rewritten"
	ChangedMeanwhile   Name = "changed_meanwhile"
	IDsReplaced        Name = "ids_replaced"

	// The catch-up (TenantsDeleted too). Changed: legacy accounts changed
	// since the last one; NewAccounts: of those, the ones no tenant account
	// held; Deleted: legacy accounts deleted since, whose memberships
	// (MembershipsRemoved) were removed; LeftAlone: tenant accounts whose
	// own legacy account was deleted, left as they are.
	Changed            Name = "changed"
	NewAccounts        Name = "new_accounts"
	Deleted            Name = "deleted"
	MembershipsRemoved Name = "memberships_removed"
	LeftAlone          Name = "tenants_left_alone"

	// Downs (KeptNewer too). TenantsKeptNoSource: tenant accounts a down
	// kept because no legacy account has their _id.
	TenantsDeleted      Name = "tenants_deleted"
	TenantsKeptNoSource Name = "tenants_kept_no_source"
	Restored            Name = "restored"
	ChangedSince        Name = "changed_since"
)

// skippedPrefix starts the names of the per-reason counts of skipped
// accounts.
const skippedPrefix = "skipped: "

// Skipped is the count of accounts skipped for reason (a bad-data reason
// of phase 1's).
func Skipped(reason string) Name { return Name(skippedPrefix + reason) }

// SkippedReason is the reason of a Skipped count, and whether n is one.
func (n Name) SkippedReason() (string, bool) { return strings.CutPrefix(string(n), skippedPrefix) }

// Counts are a step's counts by name.
type Counts map[Name]int64

// Sum adds the counts of names that c has; ok is false when it has none
// of them (the step has nothing to say about it).
func (c Counts) Sum(names ...Name) (n int64, ok bool) {
	for _, name := range names {
		if v, has := c[name]; has {
			n, ok = n+v, true
		}
	}
	return n, ok
}

// Names are c's names in order.
func (c Counts) Names() []Name {
	out := make([]Name, 0, len(c))
	for n := range c {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
