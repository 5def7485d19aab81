package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/tenantmigrate/runner/runner"
)

// report is what loadtest prints: where the figures were taken, the figures,
// whether they pass and what went wrong.
type report struct {
	Server   string `json:"server"`
	Database string `json:"database"`
	// ShardKey is the runner's tenants.shard_key ("" none).
	ShardKey string `json:"shard_key,omitempty"`
	Figures
	Passed bool     `json:"passed"`
	Errors []string `json:"errors,omitempty"`
}

func newReport(h *harness, f Figures, err error) report {
	r := report{Server: h.server, Database: h.db.Name(), ShardKey: string(h.shardKey), Figures: f, Passed: err == nil && f.Passed()}
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			r.Errors = append(r.Errors, oneLine(line))
		}
	}
	return r
}

// printJSON writes v (a report, or a sweep's) as one indented JSON object.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printSummary writes the figures one per line, "name: value"; the parts
// measure did not reach are left out.
func printSummary(w io.Writer, r report) error {
	var b strings.Builder
	line := func(name, format string, args ...any) {
		fmt.Fprintf(&b, "%-21s%s\n", name+":", fmt.Sprintf(format, args...))
	}
	line("server", "%s", r.Server)
	line("database", "%s", r.Database)
	if r.ShardKey != "" {
		line("shard key", "%s   (tenants.shard_key; sharded before the migration on a mongos)", r.ShardKey)
	}
	line("accounts", "%d", r.Accounts)
	line("seed", "%d", r.Seed)
	if l := r.Load; l != nil {
		line("load seconds", "%.1f   (%.0f accounts/s)", l.Seconds, l.AccountsPerSecond)
	}
	base := 0.0
	if bl := r.Baseline; bl != nil {
		base = bl.Seconds
		line("baseline seconds", "%.1f   (%s of the same collection, same server)", bl.Seconds, bl.Method)
	}
	if ic := r.IndexedCopy; ic != nil && ic.Seconds > 0 {
		ratio := ""
		if p2, ok := r.stepSeconds(3); ok {
			ratio = fmt.Sprintf("; phase 2 is %.2fx it", p2/ic.Seconds)
		}
		line("tenant copy seconds", "%.1f   (%s of the tenant accounts, same server, after the run: the server's cost of writing them%s)", ic.Seconds, ic.Method, ratio)
	}
	if bp := r.BarePipeline; bp != nil && bp.Seconds > 0 {
		ratio := ""
		if base > 0 {
			ratio = fmt.Sprintf("; %.2fx baseline", bp.Seconds/base)
		}
		line("bare pipeline seconds", "%.1f   (%s, same server, after the run: the pipeline's own cost%s)", bp.Seconds, bp.Method, ratio)
	}
	if s := r.Status; s != nil {
		for _, st := range s.Steps {
			ratio := ""
			if base > 0 && st.State == runner.StepApplied {
				ratio = fmt.Sprintf("  [%.2fx baseline]", st.Seconds/base)
			}
			fmt.Fprintf(&b, "step %d %s: %s%s\n", st.Version, st.Identifier, stepText(st), ratio)
			for _, n := range st.Notes {
				fmt.Fprintf(&b, "  step %d: %s\n", st.Version, n)
			}
		}
		if s.Dirty {
			line("state", "dirty: a step was left half done")
		}
		if all, ok := r.allStepsSeconds(); ok {
			ratio := ""
			if base > 0 {
				ratio = fmt.Sprintf("   [%.2fx baseline; target %gx: %s]", all/base, baselineTarget, metText(all/base <= baselineTarget))
			}
			line("all steps seconds", "%.2f%s", all, ratio)
		}
	}
	if p1, ok := r.phase1Reported(); ok {
		x := r.Phase1Expected
		line("phase 1 groups", "%d of %d accounts (expected %d of %d from the fixture)", p1.Groups, p1.GroupedAccounts, x.Groups, x.GroupedAccounts)
		line("phase 1 unverified", "%d shared identities unverified on some account, %d accounts held apart (expected %d, %d)", p1.UnverifiedIdentities, p1.HeldApart, x.UnverifiedIdentities, x.HeldApart)
		line("phase 1 variants", "%d sets of identifiers differing only by case or Unicode form, %d accounts (expected %d, %d)", p1.Variants, p1.VariantAccounts, x.Variants, x.VariantAccounts)
	}
	if rf := r.Runner; rf != nil {
		line("runner seconds", "%.2f   (all steps and the automatic verify, as at boot)", rf.Seconds)
		if base > 0 {
			line("runner / baseline", "%.2fx", rf.Seconds/base)
		}
		line("accounts per second", "%.0f", rf.AccountsPerSecond)
		line("runner peak RSS", "%s", mib(rf.PeakRSSKiB))
		if rf.Seconds > 0 {
			line("runner CPU seconds", "%.2f   (%.0f %% of its wall time)", rf.CPUSeconds, 100*rf.CPUSeconds/rf.Seconds)
		}
		if rf.ExitCode != runnerExitOK {
			line("runner exit code", "%d (%s)", rf.ExitCode, runnerExitMeaning(rf.ExitCode))
		}
	}
	if v := r.Verify; v != nil {
		line("verify seconds", "%.2f", v.Seconds)
		line("verify peak RSS", "%s", mib(v.PeakRSSKiB))
		line("tenant accounts", "%d (expected %d from the fixture)", v.TenantAccounts, r.TenantsExpected)
		line("migrated", "%.2f %%", v.MigratedPercent)
		line("not migrated", "%d (legacy accounts in no tenant account; still in the legacy collection)", v.LegacyAccounts-v.Linked-v.OneToOne)
		line("lost", "%d (legacy accounts gone from the legacy collection)", v.Lost)
		if v.OK {
			line("verify", "OK")
		} else {
			line("verify", "MISMATCH: %s", v.Problem)
		}
	}
	if c := r.CatchUp; c != nil {
		all, _ := r.allStepsSeconds()
		share := func(sec float64) string {
			if all <= 0 {
				return ""
			}
			return fmt.Sprintf("   [%.1f %% of all steps]", 100*sec/all)
		}
		line("no-change boot", "%.2f s%s  (runner with nothing to carry: no step, a catch-up; no index on the legacy dates)", c.NoChange.Seconds, share(c.NoChange.Seconds))
		if c.IndexedSkipped {
			line("no-change, indexed", "not measured: the embedded server uses no index")
		} else {
			line("no-change, indexed", "%.2f s%s  (the same, the legacy dates and identifiers indexed)", c.NoChangeIndexed.Seconds, share(c.NoChangeIndexed.Seconds))
		}
		if c.Changes == 0 {
			line("catch-up seconds", "not measured: %s", c.ChangesWhy)
		} else {
			line("old replica", "%.2f s  (changed %d legacy accounts, %s: %d edited, %d new, %d deleted)", c.OldReplicaSeconds, c.Changes, c.ChangesWhy, c.Edited, c.Inserted, c.Deleted)
		}
		if rep := c.Report; rep != nil {
			line("catch-up seconds", "%.2f s%s  (runner sync after %d edited, %d new, %d deleted: %d carried, %d in scope, %d deleted found%s)",
				c.Sync.Seconds, share(c.Sync.Seconds), c.Edited, c.Inserted, c.Deleted, rep.Changed, rep.Scope, rep.Deleted,
				map[bool]string{true: ", by the pass over the _ids", false: ""}[rep.FullPass])
			if len(rep.Stages) > 0 {
				line("catch-up stages", "%s", rep.Stages)
			}
		}
		switch {
		case c.Changes == 0 || c.Report == nil: // not measured, or the sync failed (its error follows)
		case c.VerifyDone:
			line("verify, caught up", "OK")
		default:
			line("verify, caught up", "NOT DONE: %s", c.VerifyProblem)
		}
	}
	if fl := r.Follow; fl != nil && fl.Seconds > 0 {
		line("follow", "%d legacy edits in %.0f s (%.0f a second, asked %d): %d catch-ups of %.2f s on average, %.2f s at most; a change waited %.1f s at most; %s",
			fl.Writes, fl.Seconds, float64(fl.Writes)/fl.Seconds, fl.Rate, fl.Rounds, fl.TookAvg, fl.TookMax, fl.Behind,
			map[bool]string{true: "all carried", false: "NOT ALL CARRIED"}[fl.Caught])
	}
	for _, e := range r.Errors {
		line("error", "%s", e)
	}
	result := "PASS"
	if !r.Passed {
		result = "FAIL"
	}
	line("result", "%s", result)
	_, err := io.WriteString(w, b.String())
	return err
}

// stepText is "0.01 s  k=v ...", or the state when the step is not applied.
func stepText(st StepFigures) string {
	if st.State == runner.StepPending {
		return "pending"
	}
	s := fmt.Sprintf("%.2f s", st.Seconds)
	if st.State != runner.StepApplied {
		s = st.State.String() + " after " + s
	}
	for _, k := range st.Counts.Names() {
		s += fmt.Sprintf("  %s=%d", k, st.Counts[k])
	}
	return s
}

// baselineTarget is the target on the embedded server: all steps
// together within this many times the baseline copy. It is a figure, not a
// condition of the result.
const baselineTarget = 3.0

// stepSeconds is the time of the step of that version, when it is applied.
func (f Figures) stepSeconds(version uint) (float64, bool) {
	if f.Status == nil {
		return 0, false
	}
	for _, st := range f.Status.Steps {
		if st.Version == version {
			return st.Seconds, st.State == runner.StepApplied
		}
	}
	return 0, false
}

// allStepsSeconds is the time of every step together, when all are applied.
func (f Figures) allStepsSeconds() (float64, bool) {
	if f.Status == nil || len(f.Status.Steps) == 0 {
		return 0, false
	}
	total := 0.0
	for _, st := range f.Status.Steps {
		if st.State != runner.StepApplied {
			return 0, false
		}
		total += st.Seconds
	}
	return total, true
}

func metText(met bool) string {
	if met {
		return "met"
	}
	return "not met"
}

func mib(kib int64) string {
	if kib <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}
