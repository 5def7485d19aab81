// Package catchup carries the legacy accounts' changes since the last
// catch-up into the tenant accounts, once the migration steps are applied
// and until cutover: what a rolling deploy's old replicas still write to
// the legacy collection reaches the new model at the next boot (or
// `runner sync`).
//
// A catch-up reads only what changed: the legacy accounts whose
// date_updated or date_created is at or after the watermark of the last
// catch-up, less a margin for clock skew and writes in flight. It makes
// that set whole for the identity rules (scope.go: every account sharing
// an identifier with one of them, every account of a tenant account one of
// them is in, to a fixed point) and runs phase 1 and phase 2 over it
// alone, with their own rules: a new person gets a tenant account, a new
// app account of a merged person becomes a membership by phase 1's rules,
// an edit refreshes conditionally (a tenant account the service wrote
// after its source is kept), a group whose accounts already hold two
// tenant accounts is reported, not merged. Deletions are found from _ids
// alone (deletions.go): by a count where it can tell nothing was deleted,
// else by one sorted pass over the _ids.
//
// Like a step, a catch-up runs under the lease, and every write of it is
// idempotent or conditional: killed anywhere and run again, it ends as an
// uninterrupted one. The watermark moves only once a catch-up finished.
package catchup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/phase1"
	"github.com/tenantmigrate/runner/runner/step"
)

// Options is the catch-up's section of the configuration (catchup.*).
type Options struct {
	// Margin is subtracted from the watermark when reading changes: the
	// clock skew between the services and the runner, and how long a
	// write may be in flight, at most.
	Margin time.Duration `mapstructure:"margin"`
	// MaxScope bounds the legacy accounts a catch-up runs the phases over
	// by _id; past it, it runs both phases whole (the same result, at the
	// cost of a full pass).
	MaxScope int `mapstructure:"max_scope"`
}

// DefaultOptions are the catch-up's defaults; config.yaml documents the
// same.
func DefaultOptions() Options { return Options{Margin: 5 * time.Minute, MaxScope: 50000} }

// Validate names the first bad key.
func (o Options) Validate() error {
	switch {
	case o.Margin < 0:
		return &step.OptionError{Key: "catchup.margin", Msg: "must not be negative"}
	case o.MaxScope < 1:
		return &step.OptionError{Key: "catchup.max_scope", Msg: "must be at least 1"}
	}
	return nil
}

// Phase is a phase run over some legacy accounts only (phase1.Step and
// phase2.Step); nil scope: every account.
type Phase interface {
	Scoped(ctx context.Context, env step.Env, scope []model.ID) (step.Report, error)
}

// Config configures a catch-up.
type Config struct {
	step.Env
	Options
	// Rules are phase 1's: which identifiers link accounts.
	Rules phase1.Rules
	// Phase1 and Phase2 run the phases over the scope.
	Phase1, Phase2 Phase
	// Since is where the first catch-up reads changes from: when the
	// migration started (the first applied phase's start).
	Since time.Time
	// Full looks for deleted accounts with the pass over every _id even
	// where the count says none was deleted (cutover, `runner sync
	// --full`).
	Full bool
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
}

// Report is what a catch-up did.
type Report struct {
	// From is the time changes were read from (the watermark less the
	// margin); Read the legacy accounts changed since, Changed those of
	// them not carried yet (the others were, by an earlier catch-up: the
	// margin reads them again).
	From    time.Time `json:"from"`
	Read    int       `json:"read"`
	Changed int       `json:"changed"`
	// New are the changed accounts no tenant account held before.
	New int `json:"new"`
	// Scope is how many accounts the phases ran over (Changed made whole
	// for the identity rules); Whole: too many, they ran over all.
	Scope int  `json:"scope"`
	Whole bool `json:"whole,omitempty"`
	// FullPass: deletions were looked for with the pass over every _id
	// (the count did not rule them out, or Full); Why says why.
	FullPass bool   `json:"full_pass"`
	Why      string `json:"full_pass_why,omitempty"`
	// Deleted are legacy accounts deleted since: each one's membership
	// was removed (MembershipsRemoved), and the tenant accounts left with
	// none deleted (TenantsDeleted).
	Deleted            int `json:"deleted"`
	MembershipsRemoved int `json:"memberships_removed"`
	TenantsDeleted     int `json:"tenants_deleted"`
	// LeftAlone are tenant accounts whose first account (the one whose
	// _id they have) was deleted from the legacy collection: they keep
	// their _id and other accounts, and later changes of those accounts
	// are not carried; FirstLeftAlone lists some.
	LeftAlone      int        `json:"left_alone,omitempty"`
	FirstLeftAlone []model.ID `json:"first_left_alone,omitempty"`
	// Phase1 and Phase2 are the phases' reports over the scope.
	Phase1 step.Report `json:"phase1,omitempty"`
	Phase2 step.Report `json:"phase2,omitempty"`
	// MissingIndexes name the legacy fields with no index that would make
	// a catch-up read only what it needs (each reads every account).
	MissingIndexes []string `json:"missing_indexes,omitempty"`
	// Watermark is where the next catch-up reads from (less the margin).
	Watermark time.Time `json:"watermark"`
	Took      string    `json:"took"`
	// Stages are where the time went, in order.
	Stages Stages `json:"stages,omitempty"`
}

// Stages are the parts of a catch-up in order; String says where the time
// went: "changes 0.10 s, deletions 2.31 s, ...".
type Stages []Stage

func (ss Stages) String() string {
	var parts []string
	for _, st := range ss {
		parts = append(parts, fmt.Sprintf("%s %.2f s", st.Name, st.Seconds))
	}
	return strings.Join(parts, ", ")
}

// Stage is one part of a catch-up and how long it took.
type Stage struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// The stages of a catch-up, in order.
const (
	StageChanges   = "changes"
	StageDeletions = "deletions"
	StageScope     = "scope"
	StagePhase1    = "phase 1"
	StagePhase2    = "phase 2"
)

// stage records that the stage name ended now, having begun at *since, and
// moves *since on.
func (r *Report) stage(name string, since *time.Time) {
	now := time.Now()
	r.Stages = append(r.Stages, Stage{Name: name, Seconds: now.Sub(*since).Seconds()})
	*since = now
}

// Counts flattens the report (the phases' counts included).
func (r *Report) Counts() count.Counts {
	c := count.Counts{
		count.Changed:            int64(r.Changed),
		count.NewAccounts:        int64(r.New),
		count.Deleted:            int64(r.Deleted),
		count.MembershipsRemoved: int64(r.MembershipsRemoved),
		count.TenantsDeleted:     int64(r.TenantsDeleted),
	}
	if r.LeftAlone > 0 {
		c[count.LeftAlone] = int64(r.LeftAlone)
	}
	for _, p := range []step.Report{r.Phase1, r.Phase2} {
		if p == nil {
			continue
		}
		for n, v := range p.Counts() {
			if n != count.AccountsRead {
				c[n] += v
			}
		}
	}
	return c
}

// Notes are what an operator should look at.
func (r *Report) Notes() []string {
	var out []string
	if r.LeftAlone > 0 {
		out = append(out, fmt.Sprintf("%d tenant accounts lost their first legacy account (the one whose _id they have) and were left as they are; first: %v", r.LeftAlone, r.FirstLeftAlone))
	}
	for _, p := range []step.Report{r.Phase1, r.Phase2} {
		if p != nil {
			out = append(out, p.Notes()...)
		}
	}
	return out
}

// Print writes a human summary.
func (r *Report) Print(w io.Writer) {
	scope := fmt.Sprintf("%d accounts (the changed ones and those sharing an identifier or a tenant account with them)", r.Scope)
	if r.Whole {
		scope = "every account (more than catchup.max_scope)"
	}
	fmt.Fprintf(w, "catch-up: %d legacy accounts changed since %s, %d of them not carried yet (%d new to the tenant accounts); phases run over %s\n",
		r.Read, r.From.Format(time.RFC3339), r.Changed, r.New, scope)
	how := "the count rules them out"
	if r.FullPass {
		how = "one pass over the _ids: " + r.Why
	}
	fmt.Fprintf(w, "catch-up: %d legacy accounts deleted (%s): %d memberships removed, %d tenant accounts left with none deleted\n",
		r.Deleted, how, r.MembershipsRemoved, r.TenantsDeleted)
	if len(r.MissingIndexes) > 0 {
		fmt.Fprintf(w, "catch-up: no index on the legacy accounts' %v: each catch-up reads every account; create one on each to make it read only what changed\n", r.MissingIndexes)
	}
	if r.LeftAlone > 0 {
		fmt.Fprintf(w, "catch-up: %d tenant accounts lost the legacy account whose _id they have; left as they are (first: %v)\n", r.LeftAlone, r.FirstLeftAlone)
	}
	if p, ok := r.Phase1.(*phase1.Report); ok && p != nil {
		p.Print(w)
	}
	if p, ok := r.Phase2.(interface{ Print(io.Writer) }); ok && r.Phase2 != nil {
		p.Print(w)
	}
	if len(r.Stages) > 0 {
		fmt.Fprintf(w, "catch-up: took %s (%s)\n", r.Took, r.Stages)
	}
}

// ErrCutOver: the database was cut over; the legacy collection is frozen
// and nothing is carried any more.
var ErrCutOver = errors.New("cut over: the legacy collection is no longer carried")

// Run is one catch-up, as a linear script: the state, the changes, the
// deletions, the scope, the phases, the new state.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.Env = cfg.Env.WithDefaults()
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	start := now()
	st, err := loadState(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	if !st.CutOver.IsZero() {
		return nil, ErrCutOver
	}
	from := cfg.Since
	if !st.Watermark.IsZero() {
		from = st.Watermark
	}
	from = from.Add(-cfg.Margin)
	rep := &Report{From: from.UTC()}
	// The watermark of the next catch-up is taken before anything is read:
	// a change made while this one runs is read again next time.
	mark := start.UTC()

	s := newScan(cfg)
	since := time.Now()
	rep.MissingIndexes = s.missingIndexes(ctx)
	s.indexed(rep.MissingIndexes)
	if len(rep.MissingIndexes) > 0 {
		cfg.Log.WithField("fields", rep.MissingIndexes).Warn("catch-up: the legacy accounts have no index on these fields, so each catch-up reads every account; an index on each (created by the service's owner: the runner never writes the legacy collection) makes it read only what changed")
	}
	legacyCount, err := s.countLegacy(ctx)
	if err != nil {
		return rep, err
	}
	changed, newIDs, read, err := s.changedSince(ctx, from)
	if err != nil {
		return rep, err
	}
	rep.Read, rep.Changed, rep.New = read, len(changed), len(newIDs)
	rep.stage(StageChanges, &since)

	// Deletions: the count tells when there can be none.
	d := deletions{cfg: cfg, rep: rep}
	accounted := st.Accounted + int64(len(newIDs))
	switch {
	case cfg.Full:
		rep.FullPass, rep.Why = true, "asked for"
	case st.Accounted < 0:
		rep.FullPass, rep.Why = true, "the first catch-up of a database migrated without its count"
	case legacyCount != accounted:
		rep.FullPass, rep.Why = true, fmt.Sprintf("%d legacy accounts where %d were expected", legacyCount, accounted)
	}
	var unseen []model.ID
	if rep.FullPass {
		// Every legacy account the pass saw is held after this catch-up,
		// and so is every new one it did not see (inserted after it).
		if unseen, accounted, err = d.fullPass(ctx, newIDs); err != nil {
			return rep, err
		}
		rep.stage(StageDeletions, &since)
	}

	// The scope: the changed accounts, those the pass found unheld, and
	// the accounts of the tenant accounts that lost one, made whole.
	scope, whole, err := s.whole(ctx, slices.Concat(changed, unseen), d.remaining, cfg.MaxScope)
	if err != nil {
		return rep, err
	}
	rep.LeftAlone, rep.FirstLeftAlone = s.leftAlone, s.firstLeftAlone
	rep.stage(StageScope, &since)
	if len(scope) > 0 || whole {
		var ids []model.ID
		if whole {
			rep.Whole = true
		} else {
			ids = scope
			rep.Scope = len(scope)
		}
		if rep.Phase1, err = cfg.Phase1.Scoped(ctx, cfg.Env, ids); err != nil {
			return rep, fmt.Errorf("catch-up: %w", err)
		}
		rep.stage(StagePhase1, &since)
		if rep.Phase2, err = cfg.Phase2.Scoped(ctx, cfg.Env, ids); err != nil {
			return rep, fmt.Errorf("catch-up: %w", err)
		}
		rep.stage(StagePhase2, &since)
	}
	st.Watermark, st.Accounted, st.LastSync = mark, accounted, now().UTC()
	st.Syncs++
	if rep.FullPass {
		st.LastFullPass = st.LastSync
	}
	if err := saveState(ctx, cfg.Store, st); err != nil {
		return rep, err
	}
	rep.Watermark = mark
	rep.Took = now().Sub(start).Round(time.Millisecond).String()
	cfg.Log.WithFields(logrus.Fields{"changed": rep.Changed, "new": rep.New, "scope": rep.Scope, "deleted": rep.Deleted,
		"full_pass": rep.FullPass, "took": rep.Took}).Info("catch-up done")
	return rep, nil
}
