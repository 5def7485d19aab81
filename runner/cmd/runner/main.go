// Command runner migrates legacy accounts into tenant accounts through the
// versioned steps of migrations/, exactly as a service does at boot.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/tenantmigrate/runner/runner"
	"github.com/tenantmigrate/runner/runner/catchup"
	"github.com/tenantmigrate/runner/runner/config"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/lease"
	"github.com/tenantmigrate/runner/runner/phase1"
	"github.com/tenantmigrate/runner/runner/progress"
)

const usage = `runner: migrate legacy per-app accounts into per-organisation tenant accounts.

Usage:
  runner [flags]              apply every pending step, then carry the legacy
                              changes since the last catch-up (until cutover),
                              exactly as a service at boot
  runner --phase N [flags]    apply the steps up to phase N (1 or 2); if phase N was
                              applied already, run it again (it is idempotent)
  runner --references [flags] apply the steps up to the references step (step 4):
                              re-point the configured fields of other collections
                              (key references) from merged-away legacy ids to
                              their tenant account; if applied already, run it again
  runner --dry-run [--phase N | --references] [--json]
                              say what would run; write nothing
  runner status [--json]      the stage (migrating, following, cut over), then
                              each step: version, state, when, how long, counts
  runner verify [--json]      reconcile legacy accounts and tenant accounts
  runner down [--dry-run]     undo the last applied step; --dry-run says what
                              it would delete and keep, writing nothing
  runner sync [--full]        carry the legacy changes since the last catch-up
                              into the tenant accounts (every step applied);
                              --full looks for deleted accounts over every _id
  runner follow [--interval D] catch up every D (5s; at least 1.5s, so that a
                              booting replica gets the lock) until stopped
                              (Ctrl-C, SIGTERM), printing each catch-up and the
                              lag: the age of the oldest change not yet carried
  runner cutover              declare the legacy collection frozen, once no old
                              replica writes it: a last catch-up, a full verify
                              (must pass), then no catch-up any more

Flags:
%s
Configuration: defaults, then config.yaml (or --config FILE), then RUNNER_*
environment variables (mongodb.uri is RUNNER_MONGODB_URI), then flags.

Exit status: 0 done; 1 a step failed; 2 bad usage or configuration;
3 MongoDB unreachable or authentication failed; 4 a step was left half done
and boot.on_dirty is "fail"; 5 lock wait exceeded; 6 verify found a mismatch
(the applied steps broke a promise); 7 verify: consistent, not finished
(steps that move accounts pending; the accounts they will move are counted
as awaiting them).
A run's own verify holds only the applied steps to their promises: after
runner --phase 1, the accounts awaiting phase 2 are no error.
`

// Exit codes.
const (
	exitOK = iota
	exitFailed
	exitUsage
	exitUnreachable
	exitDirty
	exitLockWait
	exitMismatch
	exitNotFinished
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	inv, code, ok := parse(args, stdout, stderr)
	if !ok {
		return code
	}
	cfg, err := config.Load(inv.configPath, inv.flags)
	if err != nil {
		return fail(stderr, err)
	}
	if inv.cpuProfile != "" {
		stopProfile, err := startCPUProfile(inv.cpuProfile)
		if err != nil {
			return fail(stderr, err)
		}
		defer stopProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	log := runner.NewLogger(cfg.Log, stderr)
	opts := []runner.Option{runner.WithLogger(log)}
	if _, text := log.Formatter.(*logrus.TextFormatter); text && isTerminal(stderr) {
		// On a terminal, a bar; the log lines go above it, not onto it.
		bar := progress.NewBar(stderr)
		log.SetOutput(bar.Writer())
		opts = append(opts, runner.WithProgress(bar))
	}
	r, err := runner.New(ctx, cfg, opts...)
	if err != nil {
		return failIn(ctx, stderr, err)
	}
	defer r.Close(context.Background())

	switch {
	case inv.cmd == commandStatus:
		return cmdStatus(ctx, r, inv, stdout, stderr)
	case inv.cmd == commandVerify:
		return cmdVerify(ctx, r, inv, stdout, stderr)
	case inv.cmd == commandSync:
		return cmdSync(ctx, r, inv, stdout, stderr)
	case inv.cmd == commandFollow:
		return cmdFollow(ctx, r, inv, stdout, stderr)
	case inv.cmd == commandCutover:
		return cmdCutover(ctx, r, inv, stdout, stderr)
	case inv.dryRun:
		return cmdPlan(ctx, r, inv, stdout, stderr)
	}
	return cmdSteps(ctx, r, inv, stdout, stderr)
}

// command is the command a command line names.
type command string

// The commands; up is the one given without a name.
const (
	commandUp      command = "up"
	commandStatus  command = "status"
	commandVerify  command = "verify"
	commandDown    command = "down"
	commandSync    command = "sync"
	commandCutover command = "cutover"
	commandFollow  command = "follow"
)

// known says whether c is one of the commands.
func (c command) known() bool {
	switch c {
	case commandUp, commandStatus, commandVerify, commandDown, commandSync, commandCutover, commandFollow:
		return true
	}
	return false
}

// invocation is what the command line asks for.
type invocation struct {
	cmd        command
	phase      int
	refs       bool
	dryRun     bool
	full       bool
	interval   time.Duration
	asJSON     bool
	configPath string
	cpuProfile string
	flags      *pflag.FlagSet
}

// parse reads the command line; false: the run is over (help, or bad
// usage) with the exit code given.
func parse(args []string, stdout, stderr io.Writer) (invocation, int, bool) {
	fs := pflag.NewFlagSet("runner", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	config.AddFlags(fs)
	phase := fs.Int("phase", 0, "apply the steps up to phase N (1 or 2)")
	refs := fs.Bool("references", false, "apply the steps up to the references step")
	dryRun := fs.Bool("dry-run", false, "say what would run; write nothing")
	asJSON := fs.Bool("json", false, "print machine-readable JSON")
	full := fs.Bool("full", false, "sync: look for deleted legacy accounts over every _id")
	interval := fs.Duration("interval", 5*time.Second, "follow: the pause between two catch-ups")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this run to `FILE` (for go tool pprof)")
	help := fs.BoolP("help", "h", false, "show this help")
	usageError := func(format string, a ...any) (invocation, int, bool) {
		fmt.Fprintf(stderr, "runner: "+format+" (see runner --help)\n", a...)
		return invocation{}, exitUsage, false
	}
	if err := fs.Parse(args); err != nil {
		return usageError("%v", err)
	}
	if *help {
		fmt.Fprintf(stdout, usage, fs.FlagUsages())
		return invocation{}, exitOK, false
	}
	inv := invocation{cmd: commandUp, phase: *phase, refs: *refs, dryRun: *dryRun, full: *full, interval: *interval, asJSON: *asJSON, cpuProfile: *cpuProfile, flags: fs}
	inv.configPath, _ = fs.GetString("config")
	if rest := fs.Args(); len(rest) > 1 {
		return usageError("too many arguments: %s", strings.Join(rest, " "))
	} else if len(rest) == 1 {
		inv.cmd = command(rest[0])
	}
	switch {
	case !inv.cmd.known():
		return usageError("unknown command %q", inv.cmd)
	case fs.Changed("phase") && (inv.phase < 1 || inv.phase > 2 || inv.cmd != commandUp):
		return usageError("--phase takes 1 or 2 and goes with no command")
	case inv.refs && (inv.phase != 0 || inv.cmd != commandUp):
		return usageError("--references goes with no command and no --phase")
	case inv.dryRun && inv.cmd != commandUp && inv.cmd != commandDown:
		return usageError("--dry-run goes with no command, --phase or down")
	case inv.full && inv.cmd != commandSync:
		return usageError("--full goes with sync")
	case fs.Changed("interval") && (inv.cmd != commandFollow || inv.interval <= 0):
		return usageError("--interval goes with follow, and is above 0")
	}
	return inv, exitOK, true
}

func cmdStatus(ctx context.Context, r *runner.Runner, inv invocation, stdout, stderr io.Writer) int {
	st, err := r.Status(ctx)
	if err != nil {
		return failIn(ctx, stderr, err)
	}
	if inv.asJSON {
		return printJSON(stdout, stderr, st)
	}
	printStatus(stdout, st)
	return exitOK
}

func cmdVerify(ctx context.Context, r *runner.Runner, inv invocation, stdout, stderr io.Writer) int {
	rep, err := r.Verify(ctx)
	if err != nil {
		return failIn(ctx, stderr, err)
	}
	if inv.asJSON {
		if code := printJSON(stdout, stderr, rep); code != exitOK {
			return code
		}
	} else {
		rep.Print(stdout)
	}
	switch {
	case !rep.OK():
		fmt.Fprintf(stderr, "runner: verify found %s\n", rep.Problem())
		return exitMismatch
	case rep.Done():
		return exitOK
	case rep.Awaiting.Count == 0 && rep.NotCarried() > 0:
		fmt.Fprintf(stderr, "runner: verify: consistent, not finished: %d legacy changes not carried yet (runner sync)\n", rep.NotCarried())
	case rep.Awaiting.Count == 0 && rep.ReferencesPending:
		fmt.Fprintln(stderr, "runner: verify: consistent, not finished: the references step is pending (runner --references)")
	default:
		fmt.Fprintf(stderr, "runner: verify: consistent, not finished: %d legacy accounts await the pending steps\n", rep.Awaiting.Count)
	}
	return exitNotFinished
}

func cmdPlan(ctx context.Context, r *runner.Runner, inv invocation, stdout, stderr io.Writer) int {
	var p runner.Plan
	var err error
	switch {
	case inv.cmd == commandDown:
		p, err = r.PlanDown(ctx)
	case inv.refs:
		p, err = r.PlanReferences(ctx)
	default:
		p, err = r.Plan(ctx, inv.phase)
	}
	if err != nil {
		return failIn(ctx, stderr, err)
	}
	if inv.asJSON {
		return printJSON(stdout, stderr, p)
	}
	printPlan(stdout, p)
	return exitOK
}

// cmdSteps applies or undoes steps and prints what ran, failed or not.
func cmdSteps(ctx context.Context, r *runner.Runner, inv invocation, stdout, stderr io.Writer) int {
	var res runner.Result
	var err error
	switch {
	case inv.cmd == commandDown:
		res, err = r.Down(ctx)
	case inv.phase > 0:
		res, err = r.Phase(ctx, inv.phase)
	case inv.refs:
		res, err = r.References(ctx)
	default:
		res, err = r.Boot(ctx)
	}
	code := exitOK
	switch {
	case err != nil && len(res.Steps) == 0 && !res.Resumed && !res.Dirty:
		// Nothing ran (the lock was not had, the server not reached):
		// the error says it all.
	case inv.asJSON:
		code = printJSON(stdout, stderr, res)
	default:
		printResult(stdout, res)
	}
	if err != nil {
		return failIn(ctx, stderr, err)
	}
	return code
}

// where says where the database is: "is at version N", or "has no step
// applied".
func where(v int) string {
	if v < 0 {
		return "has no step applied"
	}
	return "is at " + version(v)
}

// version names a version of the database: -1 is none applied.
func version(v int) string {
	if v < 0 {
		return "no step applied"
	}
	return fmt.Sprintf("version %d", v)
}

// isTerminal says whether w is a terminal (a writer that is no file is
// not).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// failIn is fail for a command that ran with ctx, the signals' context: a
// cancel that came from a signal is said as such.
func failIn(ctx context.Context, stderr io.Writer, err error) int {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "runner: interrupted (Ctrl-C or SIGTERM); what was written stays, and the next run goes on from there")
		return exitFailed
	}
	return fail(stderr, err)
}

func fail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "runner: %s\n", strings.Join(strings.Fields(err.Error()), " "))
	switch {
	case config.IsError(err):
		return exitUsage
	case errors.Is(err, runner.ErrUnreachable), errors.Is(err, runner.ErrAuth):
		return exitUnreachable
	case errors.Is(err, runner.ErrDirty):
		return exitDirty
	case errors.Is(err, lease.ErrWaitExceeded):
		return exitLockWait
	case errors.Is(err, runner.ErrNoPhase), errors.Is(err, runner.ErrNothingToUndo), errors.Is(err, runner.ErrNoLegacy), errors.Is(err, runner.ErrShardKey):
		return exitUsage
	case errors.Is(err, runner.ErrMismatch):
		return exitMismatch
	}
	return exitFailed
}

// printJSON writes v to stdout; a failure is said on stderr, exit 1.
func printJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fail(stderr, fmt.Errorf("print JSON: %w", err))
	}
	return exitOK
}

func printResult(w io.Writer, res runner.Result) {
	if res.Resumed {
		fmt.Fprintln(w, "resumed a step a previous runner left half done")
	}
	if len(res.Steps) == 0 && !res.Dirty {
		fmt.Fprintf(w, "no step to apply: at %s\n", version(res.To))
		printCatchUp(w, res.CatchUp)
		return
	}
	defer printCatchUp(w, res.CatchUp)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tNAME\tDIRECTION\tDURATION\tREAD\tWRITTEN\tMERGED\tREFRESHED\tSKIPPED\tDELETED\tKEPT")
	for _, s := range res.Steps {
		r := summarize(s.Counts)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Version, s.Name, s.Direction, s.Duration.Round(time.Millisecond),
			r.read, r.written, r.merged, r.refreshed, r.skipped, r.deleted, r.kept)
	}
	tw.Flush()
	fmt.Fprintln(w, "(READ legacy accounts; WRITTEN tenant accounts inserted or replaced; MERGED accounts phase 1 merged with another; DELETED tenant accounts a down removed; KEPT tenant accounts the service wrote, which the runner leaves; ≥ ≤ bounds where $merge did not tell refreshes apart, see phase2.exact_counts; all counts: runner status)")
	for _, s := range res.Steps {
		for _, n := range s.Notes {
			fmt.Fprintf(w, "step %d: %s\n", s.Version, n)
		}
	}
	if res.Dirty {
		fmt.Fprintf(w, "%s -> stopped in step %d, left half done: the next run resumes it (boot.on_dirty: resume, the default)\n", version(res.From), res.Step)
	} else {
		fmt.Fprintf(w, "%s -> %s\n", version(res.From), version(res.To))
	}
	if res.Verify != nil {
		res.Verify.Print(w)
	}
}

// printCatchUp prints a run's catch-up, if it ran one.
func printCatchUp(w io.Writer, rep *catchup.Report) {
	if rep != nil {
		rep.Print(w)
	}
}

func cmdSync(ctx context.Context, r *runner.Runner, inv invocation, stdout, stderr io.Writer) int {
	rep, err := r.Sync(ctx, runner.SyncOptions{Full: inv.full})
	code := exitOK
	if rep != nil {
		if inv.asJSON {
			code = printJSON(stdout, stderr, rep)
		} else {
			printCatchUp(stdout, rep)
		}
	}
	if err != nil {
		return failIn(ctx, stderr, err)
	}
	return code
}

func cmdFollow(ctx context.Context, r *runner.Runner, inv invocation, stdout, stderr io.Writer) int {
	fmt.Fprintf(stdout, "follow: a catch-up every %s until stopped (Ctrl-C or SIGTERM)\n", max(inv.interval, runner.MinFollowInterval))
	var rounds, changed, deleted int
	err := r.Follow(ctx, runner.FollowOptions{Interval: inv.interval, Each: func(rep *catchup.Report, lag time.Duration) {
		rounds++
		changed += rep.Changed
		deleted += rep.Deleted
		if inv.asJSON {
			_ = json.NewEncoder(stdout).Encode(struct {
				*catchup.Report
				LagNS time.Duration `json:"lag_ns"`
			}{rep, lag})
			return
		}
		fmt.Fprintf(stdout, "follow: %s: %d changed (%d new), %d deleted, %d in scope, took %s; lag %s\n",
			time.Now().UTC().Format(time.TimeOnly), rep.Changed, rep.New, rep.Deleted, rep.Scope, rep.Took, lag.Round(time.Millisecond))
	}})
	if !inv.asJSON {
		fmt.Fprintf(stdout, "follow: stopped after %d catch-ups (%d changed accounts carried, %d deleted)\n", rounds, changed, deleted)
	}
	if err != nil {
		return failIn(ctx, stderr, err)
	}
	return exitOK
}

func cmdCutover(ctx context.Context, r *runner.Runner, inv invocation, stdout, stderr io.Writer) int {
	res, err := r.Cutover(ctx)
	code := exitOK
	if inv.asJSON {
		code = printJSON(stdout, stderr, res)
	} else {
		printCatchUp(stdout, res.CatchUp)
		if res.Verify != nil {
			res.Verify.Print(stdout)
		}
		if !res.At.IsZero() {
			fmt.Fprintf(stdout, "cut over at %s: the legacy collection is no longer carried\n", res.At.Format(time.RFC3339))
		}
	}
	if err != nil {
		return failIn(ctx, stderr, err)
	}
	return code
}

// summaryRow is one step in the final summary.
type summaryRow struct{ read, written, merged, refreshed, skipped, deleted, kept string }

// summarize maps a step's counts on the summary's columns; "-" is a column
// the step has nothing to say about (an index step reads no account).
func summarize(c count.Counts) summaryRow {
	sum := func(names ...count.Name) string {
		n, ok := c.Sum(names...)
		if !ok {
			return "-"
		}
		return strconv.FormatInt(n, 10)
	}
	r := summaryRow{
		read:      sum(count.AccountsRead),
		written:   sum(count.TenantsInserted, count.TenantsReplaced, count.Inserted, count.Refreshed),
		merged:    "-",
		refreshed: sum(count.TenantsReplaced, count.Refreshed),
		skipped:   sum(count.InvalidSkipped),
		deleted:   sum(count.TenantsDeleted),
		kept:      sum(count.KeptNewer, count.TenantsKeptNoSource),
	}
	// Grouped is not merged: a group left as it is (two tenant accounts,
	// split, over 16 MB) is not. A history from before merged_accounts has
	// the 16 MB groups to take off at least.
	if n, ok := c.Sum(count.MergedAccounts); ok {
		r.merged = strconv.FormatInt(n, 10)
	} else if n, ok := c.Sum(count.GroupedAccounts); ok {
		r.merged = strconv.FormatInt(n-c[count.Skipped(phase1.ReasonTooLarge)], 10)
	}
	// $merge without phase2.exact_counts: refreshes are not told apart
	// from unchanged accounts, only bounded by them.
	if n, ok := c[count.RefreshedOrUnchanged]; ok {
		r.refreshed = "0"
		if n > 0 {
			r.written = "≥" + r.written
			r.refreshed = "≤" + strconv.FormatInt(n, 10)
		}
	}
	var reasons []string
	for k, v := range c {
		if reason, ok := k.SkippedReason(); ok {
			reasons = append(reasons, fmt.Sprintf("%s: %d", reason, v))
		}
	}
	if len(reasons) > 0 {
		sort.Strings(reasons)
		r.skipped += " (" + strings.Join(reasons, ", ") + ")"
	}
	return r
}

func formatCounts(c count.Counts) string {
	if len(c) == 0 {
		return "-"
	}
	keys := c.Names()
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, c[k])
	}
	return strings.Join(parts, " ")
}

func printStatus(w io.Writer, st runner.Status) {
	state := fmt.Sprintf("version %d", st.Version)
	if st.Version == -1 {
		state = "no step applied"
	}
	if st.Dirty {
		state += " (dirty: a step was left half done)"
	}
	fmt.Fprintln(w, state)
	printStage(w, st)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTEP\tKIND\tSTATE\tWHEN\tDURATION\tATTEMPTS\tHOST\tCOUNTS")
	for _, s := range st.Steps {
		when, dur, attempts, host, counts := "-", "-", "-", "-", "-"
		if h := s.Up; h != nil {
			when = h.StartedAt.UTC().Format(time.RFC3339)
			if h.EndedAt != nil {
				dur = (time.Duration(h.DurationMS) * time.Millisecond).String()
			}
			attempts = fmt.Sprint(h.Attempts)
			host = h.Host
			counts = formatCounts(h.Counts)
		}
		state := s.State
		if s.Changed {
			state += " (file changed since)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Version, s.Identifier, s.Kind, state, when, dur, attempts, host, counts)
	}
	tw.Flush()
	// Errors go under the table, one line each: in it, one long error
	// would widen every row.
	for _, s := range st.Steps {
		if s.Up != nil && s.Up.Error != "" {
			fmt.Fprintf(w, "step %d error: %s\n", s.Version, strings.Join(strings.Fields(s.Up.Error), " "))
		}
	}
	for _, s := range st.Steps {
		if s.Up != nil && s.State != runner.StepPending {
			for _, n := range s.Up.Notes {
				fmt.Fprintf(w, "step %d: %s\n", s.Version, n)
			}
		}
	}
	if l := st.Lock; l != nil {
		if l.Free {
			fmt.Fprintf(w, "lock: free (last held by %s)\n", l.Owner)
		} else {
			fmt.Fprintf(w, "lock: held by %s until %s\n", l.Owner, l.ExpiresAt.UTC().Format(time.RFC3339))
		}
	}
}

// printStage says where the database is: migrating, following (since
// when, with what lag), or cut over (when).
func printStage(w io.Writer, st runner.Status) {
	c := st.CatchUp
	switch {
	case st.Stage == runner.StageCutOver:
		fmt.Fprintf(w, "stage: cut over at %s (the legacy collection is no longer carried)\n", c.CutOver.Format(time.RFC3339))
	case st.Stage == runner.StageFollowing && c.Watermark.IsZero():
		fmt.Fprintln(w, "stage: following (every step applied; no catch-up yet: the next boot or `runner sync` carries the legacy changes)")
	case st.Stage == runner.StageFollowing:
		catchUps := fmt.Sprintf("%d catch-ups", c.Syncs)
		if c.Syncs == 1 {
			catchUps = "1 catch-up"
		}
		fmt.Fprintf(w, "stage: following: %s, the last at %s; lag at most %s (changes since then are not carried yet); `runner cutover` once no old replica writes the legacy accounts\n",
			catchUps, c.LastSync.Format(time.RFC3339), st.Lag.Round(time.Second))
	default:
		fmt.Fprintln(w, "stage: migrating (steps pending)")
	}
}

func printPlan(w io.Writer, p runner.Plan) {
	fmt.Fprintf(w, "dry run: nothing written; the database %s", where(p.Version))
	if p.Dirty {
		fmt.Fprint(w, " (dirty)")
	}
	fmt.Fprintln(w)
	if len(p.Steps) == 0 {
		fmt.Fprintln(w, "nothing would run")
		return
	}
	for _, s := range p.Steps {
		verb := "would apply"
		switch {
		case p.Down:
			verb = "would undo"
		case s.Rerun:
			verb = "would run again"
		}
		kind := fmt.Sprintf("%s step %s", s.Kind, s.Name)
		if s.Name == "" || s.Name == string(s.Kind) {
			kind = string(s.Kind)
		}
		fmt.Fprintf(w, "%s step %d %s (%s)\n", verb, s.Version, s.Identifier, kind)
		for _, c := range s.Commands {
			fmt.Fprintf(w, "    %s\n", c)
		}
		if p, ok := s.Report.(interface{ Print(io.Writer) }); ok {
			p.Print(w)
		}
	}
}

// startCPUProfile profiles the runner's own CPU into path until stop.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
