package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// rssLimitMiB is the bound on the runner's peak RSS, at every size
// of a sweep: a runner at or above it fails the sweep.
const rssLimitMiB = 150

// sweepReport is what loadtest --sweep prints: every size's report, in the
// order asked, and the comparison of the sizes.
type sweepReport struct {
	Server   string       `json:"server"`
	Database string       `json:"database"`
	Seed     uint64       `json:"seed"`
	Sizes    []int        `json:"sizes"`   // as asked, in that order
	Reports  []report     `json:"reports"` // one per size measured, in that order
	Summary  sweepSummary `json:"summary"`
}

// sweepSummary compares the sizes: one row each, the growth of the runner's
// peak RSS from the smallest size to the largest, and the result.
type sweepSummary struct {
	Rows []sweepRow `json:"rows"`
	// NotMeasured are the sizes an interruption left out.
	NotMeasured []int `json:"not_measured,omitempty"`
	FailedSizes []int `json:"failed_sizes,omitempty"`

	SmallestAccounts     int   `json:"smallest_accounts,omitempty"`
	LargestAccounts      int   `json:"largest_accounts,omitempty"`
	SmallestRunnerRSSKiB int64 `json:"smallest_runner_peak_rss_kib,omitempty"`
	LargestRunnerRSSKiB  int64 `json:"largest_runner_peak_rss_kib,omitempty"`
	// RunnerRSSGrowth is the largest size's runner peak RSS over the
	// smallest's; absent when either is unknown.
	RunnerRSSGrowth *float64 `json:"runner_peak_rss_growth,omitempty"`
	RSSLimitMiB     float64  `json:"runner_peak_rss_limit_mib"`
	// RSSOverLimit are the sizes whose runner peaked at or above the limit;
	// RSSUnknown those whose runner's peak is unknown (it did not run, or
	// not on Linux).
	RSSOverLimit  []int `json:"runner_peak_rss_over_limit,omitempty"`
	RSSUnknown    []int `json:"runner_peak_rss_unknown,omitempty"`
	RSSBelowLimit bool  `json:"runner_peak_rss_below_limit_at_every_size"`

	// Passed: every size measured and passed, and no runner at or above
	// the RSS limit.
	Passed bool `json:"passed"`
}

// sweepRow is one size's line of the sweep table; a figure measure did not
// reach is absent.
type sweepRow struct {
	Accounts        int      `json:"accounts"`
	LoadSeconds     *float64 `json:"load_seconds,omitempty"`
	BaselineSeconds *float64 `json:"baseline_seconds,omitempty"`
	Phase1Seconds   *float64 `json:"phase1_seconds,omitempty"` // step 2
	Phase2Seconds   *float64 `json:"phase2_seconds,omitempty"` // step 3
	AllStepsSeconds *float64 `json:"all_steps_seconds,omitempty"`
	// StepsPerBaseline is all steps' seconds over the baseline's;
	// WithinTarget whether that is within baselineTarget (a figure only).
	StepsPerBaseline  *float64 `json:"all_steps_per_baseline,omitempty"`
	WithinTarget      *bool    `json:"all_steps_within_target,omitempty"`
	RunnerSeconds     *float64 `json:"runner_seconds,omitempty"` // the boot run, its automatic verify included
	AccountsPerSecond *float64 `json:"accounts_per_second,omitempty"`
	RunnerPeakRSSMiB  *float64 `json:"runner_peak_rss_mib,omitempty"`
	VerifySeconds     *float64 `json:"verify_seconds,omitempty"`
	VerifyPeakRSSMiB  *float64 `json:"verify_peak_rss_mib,omitempty"`
	MigratedPercent   *float64 `json:"migrated_percent,omitempty"`
	Lost              *int     `json:"lost,omitempty"`
	Passed            bool     `json:"passed"`
}

// The steps the sweep table names.
const (
	stepPhase1 = 2
	stepPhase2 = 3
)

// sweep measures each size in the order given, on the same database: each
// from an empty database, as measure drops it before loading. The database
// was checked once (setup's checkDatabase); between sizes only loadtest and
// the runner write to it. A size that fails does not stop the sweep; the end
// of ctx does. each, when not nil, gets every size's report as soon as it
// is measured; uri is the server's, to hide its password from the errors.
func (h *harness) sweep(ctx context.Context, sizes []int, seed uint64, uri string, each func(i int, r report)) sweepReport {
	s := sweepReport{Server: h.server, Database: h.db.Name(), Seed: seed, Sizes: sizes, Reports: make([]report, 0, len(sizes))}
	for i, n := range sizes {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(h.log, "sweep: size %d of %d, %d accounts\n", i+1, len(sizes), n)
		r := h.measureReport(ctx, n, seed, uri)
		s.Reports = append(s.Reports, r)
		if each != nil {
			each(i, r)
		}
	}
	s.Summary = summarizeSweep(sizes, s.Reports)
	return s
}

// summarizeSweep compares the reports of the sizes measured, the first
// len(reports) of sizes.
func summarizeSweep(sizes []int, reports []report) sweepSummary {
	sum := sweepSummary{Rows: make([]sweepRow, 0, len(reports)), RSSLimitMiB: rssLimitMiB, NotMeasured: sizes[len(reports):]}
	if len(sum.NotMeasured) == 0 {
		sum.NotMeasured = nil
	}
	var smallest, largest *report
	for i := range reports {
		r := &reports[i]
		sum.Rows = append(sum.Rows, newSweepRow(r))
		if !r.Passed {
			sum.FailedSizes = append(sum.FailedSizes, r.Accounts)
		}
		switch kib := runnerRSSKiB(r); {
		case kib <= 0:
			sum.RSSUnknown = append(sum.RSSUnknown, r.Accounts)
		case kib >= rssLimitMiB<<10:
			sum.RSSOverLimit = append(sum.RSSOverLimit, r.Accounts)
		}
		if smallest == nil || r.Accounts < smallest.Accounts {
			smallest = r
		}
		if largest == nil || r.Accounts > largest.Accounts {
			largest = r
		}
	}
	if smallest != nil {
		sum.SmallestAccounts, sum.SmallestRunnerRSSKiB = smallest.Accounts, runnerRSSKiB(smallest)
		sum.LargestAccounts, sum.LargestRunnerRSSKiB = largest.Accounts, runnerRSSKiB(largest)
		if sum.SmallestRunnerRSSKiB > 0 && sum.LargestRunnerRSSKiB > 0 {
			g := float64(sum.LargestRunnerRSSKiB) / float64(sum.SmallestRunnerRSSKiB)
			sum.RunnerRSSGrowth = &g
		}
	}
	sum.RSSBelowLimit = len(reports) > 0 && len(sum.RSSOverLimit) == 0 && len(sum.RSSUnknown) == 0
	sum.Passed = len(reports) > 0 && len(reports) == len(sizes) && len(sum.FailedSizes) == 0 && len(sum.RSSOverLimit) == 0
	return sum
}

// runnerRSSKiB is the boot run's peak RSS, 0 when unknown.
func runnerRSSKiB(r *report) int64 {
	if r.Runner == nil {
		return 0
	}
	return r.Runner.PeakRSSKiB
}

func newSweepRow(r *report) sweepRow {
	row := sweepRow{Accounts: r.Accounts, Passed: r.Passed}
	if l := r.Load; l != nil {
		row.LoadSeconds = ptr(l.Seconds)
	}
	if b := r.Baseline; b != nil {
		row.BaselineSeconds = ptr(b.Seconds)
	}
	if s, ok := r.stepSeconds(stepPhase1); ok {
		row.Phase1Seconds = ptr(s)
	}
	if s, ok := r.stepSeconds(stepPhase2); ok {
		row.Phase2Seconds = ptr(s)
	}
	if all, ok := r.allStepsSeconds(); ok {
		row.AllStepsSeconds = ptr(all)
		if r.Baseline != nil && r.Baseline.Seconds > 0 {
			ratio := all / r.Baseline.Seconds
			row.StepsPerBaseline, row.WithinTarget = ptr(ratio), ptr(ratio <= baselineTarget)
		}
	}
	if rf := r.Runner; rf != nil {
		row.RunnerSeconds, row.AccountsPerSecond = ptr(rf.Seconds), ptr(rf.AccountsPerSecond)
		if rf.PeakRSSKiB > 0 {
			row.RunnerPeakRSSMiB = ptr(float64(rf.PeakRSSKiB) / 1024)
		}
	}
	if v := r.Verify; v != nil {
		row.VerifySeconds = ptr(v.Seconds)
		if v.PeakRSSKiB > 0 {
			row.VerifyPeakRSSMiB = ptr(float64(v.PeakRSSKiB) / 1024)
		}
		row.MigratedPercent, row.Lost = ptr(v.MigratedPercent), ptr(v.Lost)
	}
	return row
}

func ptr[T any](v T) *T { return &v }

// printSweep writes the sweep table, one row per size measured, then the
// runner's memory from the smallest size to the largest and the result.
func printSweep(w io.Writer, s sweepReport) error {
	var b strings.Builder
	fmt.Fprintf(&b, "sweep: %s accounts, seed %d, %s, database %s\n", joinInts(s.Sizes), s.Seed, s.Server, s.Database)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "accounts\tload s\tbaseline s\tphase 1 s\tphase 2 s\tall steps s\tsteps/baseline\t"+
		fmt.Sprintf("%gx", baselineTarget)+"\trunner s\taccounts/s\trunner RSS MiB\tverify s\tverify RSS MiB\tmigrated %\tlost\tresult\t\n")
	for _, r := range s.Summary.Rows {
		cells := []string{
			strconv.Itoa(r.Accounts),
			num(r.LoadSeconds, "%.1f"),
			num(r.BaselineSeconds, "%.2f"),
			num(r.Phase1Seconds, "%.2f"),
			num(r.Phase2Seconds, "%.2f"),
			num(r.AllStepsSeconds, "%.2f"),
			num(r.StepsPerBaseline, "%.2fx"),
			"-",
			num(r.RunnerSeconds, "%.2f"),
			num(r.AccountsPerSecond, "%.0f"),
			num(r.RunnerPeakRSSMiB, "%.1f"),
			num(r.VerifySeconds, "%.2f"),
			num(r.VerifyPeakRSSMiB, "%.1f"),
			num(r.MigratedPercent, "%.2f"),
			num(r.Lost, "%d"),
			passText(r.Passed),
		}
		if r.WithinTarget != nil {
			cells[7] = metText(*r.WithinTarget)
		}
		fmt.Fprint(tw, strings.Join(cells, "\t")+"\t\n")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(&b, "(phase 1 is step 2, phase 2 step 3; all steps: every step's own time, from runner status; %gx: all steps within %gx the baseline copy, a figure only; runner s: the boot run, its automatic verify included; RSS: peak resident set)\n",
		baselineTarget, baselineTarget)

	sum := s.Summary
	fmt.Fprintf(&b, "runner peak RSS: %s\n", rssGrowthText(sum))
	var why []string
	if n := len(sum.Rows); len(sum.FailedSizes) == 0 {
		why = append(why, fmt.Sprintf("%d of %d sizes passed", n, len(s.Sizes)))
	} else {
		why = append(why, fmt.Sprintf("%d of %d sizes failed: %s", len(sum.FailedSizes), len(s.Sizes), joinInts(sum.FailedSizes)))
	}
	if len(sum.RSSOverLimit) > 0 {
		why = append(why, fmt.Sprintf("runner peak RSS at or above %d MiB at %s", rssLimitMiB, joinInts(sum.RSSOverLimit)))
	}
	if len(sum.NotMeasured) > 0 {
		why = append(why, "interrupted before "+joinInts(sum.NotMeasured))
	}
	fmt.Fprintf(&b, "result: %s (%s)\n", passText(sum.Passed), strings.Join(why, "; "))
	_, err := io.WriteString(w, b.String())
	return err
}

// rssGrowthText compares the runner's peak RSS at the largest size with the
// smallest and says whether every size stayed below the limit.
func rssGrowthText(sum sweepSummary) string {
	if len(sum.Rows) == 0 {
		return "no size measured"
	}
	var s string
	if sum.SmallestAccounts == sum.LargestAccounts {
		s = fmt.Sprintf("%s at %d accounts (the only size measured)", mib(sum.SmallestRunnerRSSKiB), sum.SmallestAccounts)
	} else {
		s = fmt.Sprintf("%s at %d accounts, %s at %d", mib(sum.SmallestRunnerRSSKiB), sum.SmallestAccounts,
			mib(sum.LargestRunnerRSSKiB), sum.LargestAccounts)
	}
	if g := sum.RunnerRSSGrowth; g != nil {
		s += fmt.Sprintf(": growth %.2fx", *g)
	} else {
		s += ": growth unknown"
	}
	s += fmt.Sprintf("; below %d MiB at every size: ", rssLimitMiB)
	switch {
	case len(sum.RSSOverLimit) > 0:
		s += "no, not at " + joinInts(sum.RSSOverLimit)
	case len(sum.RSSUnknown) > 0:
		s += "unknown at " + joinInts(sum.RSSUnknown)
	default:
		s += "yes"
	}
	return s
}

func num[T int | float64](v *T, format string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(format, *v)
}

func passText(passed bool) string {
	if passed {
		return "PASS"
	}
	return "FAIL"
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
