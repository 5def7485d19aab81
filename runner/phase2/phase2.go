// Package phase2 moves every legacy account that phase 1 did not merge into
// its own tenant account.
//
// Before it writes, it probes the server (probe.go) and takes the best of
// three paths (path.go) the server runs correctly: PathMerge, the aggregation
// of pipelines.Phase2 inside the server, no account travelling through the
// runner; PathSplit (split.go), the same stages with inserts by a $merge
// that keeps existing tenants and refreshes by conditional replaces, for
// servers without a pipeline in whenMatched; PathStream (fallback.go), the
// same transform in Go (pipelines.OneToOne) over one merge join of the
// legacy accounts, the links and the tenant accounts in _id order. The
// server-side paths run optionally over _id ranges, the streaming one by
// batches, each with a checkpoint so a killed run resumes where it stopped.
//
// Every path inserts a missing tenant account, refreshes one whose legacy
// account was updated after it (pipelines.Refresh), and leaves every other
// alone: re-running is a no-op, and a run that failed half way is completed
// by running it again.
package phase2

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
	"github.com/tenantmigrate/runner/runner/capability"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/internal/apporgs"
	"github.com/tenantmigrate/runner/runner/internal/enum"
	"github.com/tenantmigrate/runner/runner/internal/servererr"
	"github.com/tenantmigrate/runner/runner/internal/sorted"
	"github.com/tenantmigrate/runner/runner/retry"
	"github.com/tenantmigrate/runner/runner/step"
)

// Options is phase 2's section of the configuration (phase2.*).
type Options struct {
	// RangeSize, if > 0, runs the server-side pipeline over _id ranges of
	// this many accounts, with a checkpoint as they finish; 0: a size
	// chosen from the accounts counted in the range-ends pass and Parallel
	// (cutRanges).
	RangeSize int `mapstructure:"range_size"`
	// Parallel is how many ranges run at once (0 or 1: one at a time): a
	// server runs each server-side pipeline on one core.
	Parallel int `mapstructure:"parallel"`
	// ExactCounts previews every server-side run with the same stages to
	// count inserts, refreshes and unchanged accounts (twice the work);
	// without it inserts come from the tenant count and Report.Exact is
	// false. Dry runs always preview.
	ExactCounts bool `mapstructure:"exact_counts"`
	// Path forces a path; PathProbe (the zero value) probes the server for
	// the best one it takes. A forced server-side path the server refuses
	// fails the run.
	Path Path `mapstructure:"path"`
}

// DefaultOptions are phase 2's defaults; config.yaml documents the same.
func DefaultOptions() Options { return Options{Parallel: 2, Path: PathProbe} }

// Validate names the first bad key.
func (o Options) Validate() error {
	switch {
	case o.RangeSize < 0:
		return &step.OptionError{Key: "phase2.range_size", Msg: "must not be negative"}
	case o.Parallel < 1 || o.Parallel > 64:
		return &step.OptionError{Key: "phase2.parallel", Msg: fmt.Sprintf("%d is out of range 1..64", o.Parallel)}
	}
	return nil
}

// Config configures a run.
type Config struct {
	// Env: phase 2 reads the accounts, app-orgs and links of Names and
	// writes the tenant accounts; Store keeps its checkpoint and the
	// collections it created; the probe's scratch collections start with
	// ScratchPrefix.
	step.Env
	Options
	DryRun bool
	// Prechecked: this run's phase 1 has just read and checked every legacy
	// account (and stops on bad data unless skipping), so the streaming path
	// checks accounts in its copy scan instead of reading the collection
	// once more first. An account that turned bad since still stops the
	// writes (see runFallback).
	Prechecked bool
	// Total is the number of legacy accounts if known cheaply, else 0:
	// the total of the progress.
	Total int64
	// Scope, if not nil, restricts the run to these legacy _ids, sorted
	// (the catch-up's changed accounts): no checkpoint is read or kept,
	// and bad data is looked for among them only.
	Scope []model.ID

	// beforeRefresh, if set, runs before each batch of conditional
	// refreshes is sent (tests: a service writes in between).
	beforeRefresh func()
	// maxTime, if set, is how long a range's server-side run may take in
	// place of the rest of the lease (lease.MaxTime): a test's.
	maxTime func(context.Context, *pipelines.Range) time.Duration
}

// Checked is where phase 2 looked for bad data.
type Checked int

// Where bad data was looked for.
const (
	// CheckedOnServer: counted on the server before the pipeline.
	CheckedOnServer Checked = iota
	// CheckedBefore: a scan before the copy.
	CheckedBefore
	// CheckedInScan: in the copy scan (phase 1 had just checked every
	// account).
	CheckedInScan
)

var checkedNames = [...]string{CheckedOnServer: "on_server", CheckedBefore: "before", CheckedInScan: "in_scan"}

// String is the short name logs and JSON give it.
func (c Checked) String() string { return enum.Name("Checked", checkedNames[:], c) }

// MarshalText spells it by its short name.
func (c Checked) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText reads a short name.
func (c *Checked) UnmarshalText(b []byte) error {
	return enum.Unmarshal("phase 2 check", checkedNames[:], b, c)
}

// checkpointKey keys, in the store, the checkpoint of a run that did not
// finish.
const checkpointKey = "phase2_checkpoint"

// Report is what a run did (or, dry, would do).
type Report struct {
	DryRun bool `json:"dry_run"`
	// Path is the path that ran; PathProbe for a dry run, which does not
	// probe (it counts on the server where the server runs the preview
	// pipeline, else in Go).
	Path Path `json:"path"`
	// Probe is what the probe tried and why it chose Path; nil where
	// nothing was probed (a dry run, a forced path).
	Probe     *ProbeReport `json:"probe,omitempty"`
	Server    string       `json:"server"`
	Inserted  int64        `json:"inserted"`
	Refreshed int64        `json:"refreshed"`
	Unchanged int64        `json:"unchanged"`
	Merged    int64        `json:"left_to_phase1"` // accounts with a phase-1 link
	Invalid   int64        `json:"invalid_skipped"`
	FirstBad  []string     `json:"first_invalid,omitempty"`
	// Checked says where the accounts were checked: CheckedOnServer,
	// CheckedBefore or CheckedInScan.
	Checked  Checked `json:"checked"`
	Ranges   int     `json:"ranges,omitempty"`
	Resumed  string  `json:"resumed_after,omitempty"`
	Duration string  `json:"duration"`
	// Exact is false when the server path did not count refreshes apart
	// from unchanged accounts (phase2.exact_counts off): Inserted is then
	// the growth of the tenant count, and RefreshedOrUnchanged the rest.
	Exact                bool  `json:"exact"`
	RefreshedOrUnchanged int64 `json:"refreshed_or_unchanged,omitempty"`
	// AfterPhase1Run: a dry run's counts take the accounts phase 1 would
	// link as phase 1's (AfterPhase1).
	AfterPhase1Run bool `json:"after_phase1_dry_run,omitempty"`
}

// AfterPhase1 moves to phase 1 the accounts a dry run of phase 1 says it
// would link (newlyLinked, ownTenant of them holding a tenant account of
// their own): a dry run of phase 2 reads the links as they are, so before
// phase 1 runs it counts them as its own to insert or refresh.
//
// Which of refreshed or unchanged an account holding a tenant account of
// its own was counted as, phase 1's dry run cannot tell: they are taken
// from refreshed first. On a database phase 2 has not run on, there are
// none. Every account moved is taken from a count first, so the counts
// still add up to the accounts read.
func (r *Report) AfterPhase1(newlyLinked, ownTenant int64) {
	moved := min(newlyLinked-ownTenant, r.Inserted)
	r.Inserted -= moved
	for _, n := range []*int64{&r.Refreshed, &r.Unchanged, &r.RefreshedOrUnchanged} {
		take := min(ownTenant, *n)
		*n -= take
		ownTenant -= take
		moved += take
	}
	r.Merged += moved
	r.AfterPhase1Run = true
}

// Counts flattens the report for the step history.
func (r *Report) Counts() count.Counts {
	c := count.Counts{
		// Every account read falls in exactly one of the others.
		count.AccountsRead:   r.Inserted + r.Refreshed + r.Unchanged + r.RefreshedOrUnchanged + r.Merged + r.Invalid,
		count.Inserted:       r.Inserted,
		count.LeftToPhase1:   r.Merged,
		count.InvalidSkipped: r.Invalid,
	}
	if r.Exact {
		c[count.Refreshed], c[count.Unchanged] = r.Refreshed, r.Unchanged
	} else {
		c[count.RefreshedOrUnchanged] = r.RefreshedOrUnchanged
	}
	return c
}

// Print writes a human summary.
func (r *Report) Print(w io.Writer) {
	insert, refresh, leave := "inserted", "refreshed", "left"
	if r.DryRun {
		insert, refresh, leave = "would insert", "would refresh", "would leave"
	}
	after := ""
	if r.AfterPhase1Run {
		after = ", counted as after phase 1 has linked the accounts it would merge"
	}
	if r.Exact {
		fmt.Fprintf(w, "phase 2 (path %s: %s; on %s): %s %d tenant accounts, %s %d, %s %d unchanged; %d merged by phase 1%s\n",
			r.Path, r.Path.Describe(), r.Server, insert, r.Inserted, refresh, r.Refreshed, leave, r.Unchanged, r.Merged, after)
	} else {
		fmt.Fprintf(w, "phase 2 (path %s: %s; on %s): %s %d tenant accounts, %s or %s unchanged %d (phase2.exact_counts tells them apart); %d merged by phase 1%s\n",
			r.Path, r.Path.Describe(), r.Server, insert, r.Inserted, refresh, leave, r.RefreshedOrUnchanged, r.Merged, after)
	}
	if r.Probe != nil {
		for _, f := range r.Probe.Refused {
			fmt.Fprintf(w, "phase 2: path %s refused by the server: %s\n", f.Path, f.Error)
		}
	}
	if r.Invalid > 0 {
		fmt.Fprintf(w, "phase 2: %d accounts cannot be migrated (first: %s)\n", r.Invalid, strings.Join(r.FirstBad, ", "))
	}
}

// read is how phase 2 reads: a batch per round trip, cursors in _id
// order resumed after a transient break.
func (cfg *Config) read() sorted.Options { return sorted.Options{Batch: cfg.Batch, Retry: &cfg.Retry} }

func (cfg Config) withDefaults() Config {
	cfg.Env = cfg.Env.WithDefaults()
	if cfg.ScratchPrefix == "" {
		cfg.ScratchPrefix = "migrations"
	}
	return cfg
}

// Run runs phase 2.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	start := time.Now()
	cfg = cfg.withDefaults()
	if cfg.Caps.Server == "" { // a caller that did not probe the server
		var err error
		if cfg.Caps, err = capability.Detect(ctx, cfg.DB); err != nil {
			return nil, err
		}
	}
	rep := &Report{DryRun: cfg.DryRun, Server: string(cfg.Caps.Server) + " " + cfg.Caps.Version}
	aos, err := apporgs.Read(ctx, cfg.DB.Collection(cfg.Names.ApplicationsOrganizations))
	if err != nil {
		return nil, err
	}
	orgOf, valid := aos.OrgOf(), aos.Valid()
	path := cfg.Path
	serverSide := path.serverSide()
	var after model.ID // where a run killed earlier stopped
	if cfg.DryRun {
		if path == PathProbe {
			if serverSide, err = previewTaken(ctx, cfg, valid); err != nil {
				return nil, err
			}
		}
	} else {
		if err := ensureCollections(ctx, cfg); err != nil {
			return nil, err
		}
		if path == PathProbe {
			if rep.Probe, err = probe(ctx, cfg); err != nil {
				return rep, err
			}
			path = rep.Probe.Chose
			serverSide = path.serverSide()
			cfg.Log.WithFields(logrus.Fields{"path": path, "refused": len(rep.Probe.Refused), "took": rep.Probe.Took}).Info("phase 2: probed the server")
		}
		if cfg.Scope == nil {
			if after, err = readCheckpoint(ctx, cfg); err != nil {
				return nil, err
			}
		}
	}
	rep.Path = path
	// The streaming path checks every account it reads and can count them
	// itself; a scan of its own first is needed to stop before anything is
	// written, and to count the accounts a resumed run does not read.
	switch {
	case serverSide:
		rep.Checked = CheckedOnServer
	case after.IsZero() && (cfg.Prechecked || cfg.SkipInvalid || cfg.DryRun):
		rep.Checked = CheckedInScan
	default:
		rep.Checked = CheckedBefore
	}
	if rep.Checked != CheckedInScan {
		if err := checkInvalid(ctx, cfg, orgOf, valid, serverSide, rep); err != nil {
			return rep, err
		}
	}
	switch {
	case serverSide:
		// The split path counts its own writes; the one pipeline says
		// nothing of what it wrote unless previewed.
		rep.Exact = cfg.DryRun || path == PathSplit || cfg.ExactCounts || cfg.Scope != nil
		sp := path
		if cfg.DryRun {
			sp = PathMerge // counted by the preview only
		}
		if n := cfg.parallel(sp); n < cfg.Parallel {
			// Said here, once a run, not by the probe's runs.
			cfg.Log.WithField("parallel", cfg.Parallel).Warn("phase 2: the split path with a shard key runs its ranges one at a time")
		}
		err = runServer(ctx, cfg, sp, valid, after, rep)
	default:
		rep.Exact = true
		err = runFallback(ctx, cfg, orgOf, after, rep, rep.Checked == CheckedInScan)
	}
	rep.Duration = time.Since(start).Round(time.Millisecond).String()
	return rep, err
}

// previewTaken says whether the server runs the preview pipeline, by
// asking it for a range that holds no account: a dry run counts with it
// where it can. Only a refusal says no; no answer is an error.
func previewTaken(ctx context.Context, cfg Config, valid []string) (bool, error) {
	err := preview(ctx, cfg, valid, &pipelines.Range{After: noAccountAfter}, &Report{})
	if err != nil && servererr.NoAnswer(ctx, err) {
		return false, err
	}
	return err == nil, nil
}

// noAccountAfter is past every _id the phases migrate: the last ObjectId.
var noAccountAfter = model.ObjectIDOf(primitive.ObjectID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})

// creates are the collections phase 2 creates when they are not there
// (and its down drops, if still empty).
func (cfg Config) creates() []string { return []string{cfg.Names.Links, cfg.Names.TenantsAccounts} }

// ensureCollections creates the collections the pipelines read and write
// that do not exist yet (the links, when phase 1 merged nobody): a server
// may refuse a $merge whose $lookup names a missing collection. It records
// each it creates, for Down to remove.
func ensureCollections(ctx context.Context, cfg Config) error {
	existing, err := cfg.DB.ListCollectionNames(ctx, bson.D{{Key: "name", Value: bson.D{{Key: "$in", Value: cfg.creates()}}}})
	if err != nil {
		return fmt.Errorf("list collections: %w", err)
	}
	for _, name := range cfg.creates() {
		if slices.Contains(existing, name) {
			continue
		}
		if err := recordCreated(ctx, cfg, name); err != nil {
			return err
		}
		err := cfg.DB.CreateCollection(ctx, name)
		if err != nil && !servererr.IsNamespaceExists(err) {
			return fmt.Errorf("create %s: %w", name, err)
		}
	}
	return nil
}

// checkInvalid finds the accounts the pipeline's first stage leaves out,
// before anything is written: with a count on the server where the server
// runs the pipeline, else (FerretDB has no $not inside $elemMatch) with a
// scan of the fields Invalid reads.
func checkInvalid(ctx context.Context, cfg Config, orgOf map[string]string, valid []string, serverSide bool, rep *Report) error {
	accounts := cfg.DB.Collection(cfg.Names.Accounts)
	note := func(raw bson.Raw) error {
		var d bson.D
		if err := bson.Unmarshal(raw, &d); err != nil {
			return err
		}
		if reason := pipelines.Invalid(d, orgOf); reason != "" {
			noteInvalid(rep, raw.Lookup("_id"), reason)
		}
		return nil
	}
	if serverSide {
		bad := bson.D{{Key: "$nor", Value: bson.A{pipelines.Validity(valid)}}}
		if cfg.Scope != nil {
			bad = append(cfg.scope().MigratedIDs(), bad...)
		}
		n, err := accounts.CountDocuments(ctx, bad)
		if err != nil {
			return fmt.Errorf("count invalid accounts: %w", err)
		}
		if n > 0 {
			// The first ones, for the report; the count is the server's.
			cur, err := accounts.Find(ctx, bad, options.Find().SetLimit(10).SetSort(bson.D{{Key: "_id", Value: 1}}))
			if err != nil {
				return fmt.Errorf("read invalid accounts: %w", err)
			}
			defer cur.Close(ctx)
			for cur.Next(ctx) {
				if err := note(cur.Current); err != nil {
					return err
				}
			}
			if err := cur.Err(); err != nil {
				return fmt.Errorf("read invalid accounts: %w", err)
			}
		}
		rep.Invalid = n
	} else {
		proj := bson.D{{Key: model.FieldAppOrgID, Value: 1}, {Key: model.FieldAuthTypes, Value: 1}}
		var filter bson.D
		if cfg.Scope != nil {
			filter = cfg.scope().MigratedIDs()
		}
		if err := sorted.Each(ctx, accounts, filter, proj, cfg.read(), note); err != nil {
			return fmt.Errorf("check accounts: %w", err)
		}
	}
	if rep.Invalid == 0 || cfg.SkipInvalid || cfg.DryRun {
		return nil
	}
	return invalidError(rep, "nothing was written")
}

func invalidError(rep *Report, written string) error {
	return fmt.Errorf("%d %w (first: %s); %s: fix them, or run with --skip-invalid to migrate the others",
		rep.Invalid, pipelines.ErrInvalidData, strings.Join(rep.FirstBad, ", "), written)
}

// noteInvalid counts an account the pipeline's first stage leaves out.
func noteInvalid(rep *Report, id bson.RawValue, reason string) {
	rep.Invalid++
	if len(rep.FirstBad) < 10 {
		rep.FirstBad = append(rep.FirstBad, fmt.Sprintf("%v (%s)", id, reason))
	}
}

type checkpoint struct {
	Through model.ID  `bson:"through"`
	At      time.Time `bson:"at"`
}

func readCheckpoint(ctx context.Context, cfg Config) (model.ID, error) {
	var c checkpoint
	if _, err := cfg.Store.Load(ctx, checkpointKey, &c); err != nil {
		return model.ID{}, err
	}
	return c.Through, nil
}

func saveCheckpoint(ctx context.Context, cfg Config, through model.ID) error {
	return cfg.Store.Save(ctx, checkpointKey, checkpoint{Through: through, At: time.Now().UTC()})
}

func clearCheckpoint(ctx context.Context, cfg Config) error {
	return cfg.Store.Clear(ctx, checkpointKey)
}

// parallel is how many ranges of path run at once. FerretDB 2 /
// DocumentDB 0.108, the split path's engine, crashed (a segfault of its
// PostgreSQL backend) under two $merge on org_id and _id into one
// collection at once, at 20,000 accounts; one at a time it did not.
func (c Config) parallel(path Path) int {
	if path == PathSplit && c.ShardKey.Sharded() && c.Parallel > 1 {
		return 1
	}
	return c.Parallel
}

// runServer is a server-side path, PathMerge or PathSplit, from the
// checkpoint `after` on: over _id ranges (ranges.go), each one server-side
// run, up to Config.Parallel at once, with a checkpoint as they finish.
func runServer(ctx context.Context, cfg Config, path Path, valid []string, after model.ID, rep *Report) error {
	if !after.IsZero() {
		rep.Resumed = after.String()
	}
	cfg.Parallel = cfg.parallel(path)
	task := cfg.Progress.Start("phase 2: "+path.String(), cfg.Total)
	defer task.Done()
	// With no app-org that has an org, no account can move (checkInvalid
	// has counted them): no pipeline runs. DocumentDB refuses a $lookup
	// into an applications_organizations that does not exist, even over
	// no document.
	movable := len(valid) > 0
	err := runRanges(ctx, cfg, after, func(ctx context.Context, seq int, r *pipelines.Range) (*Report, error) {
		part := &Report{Exact: rep.Exact}
		if !movable {
			return part, nil
		}
		if err := runRange(ctx, cfg, path, valid, seq, r, part); err != nil {
			return nil, err
		}
		task.Add(part.Inserted + part.Refreshed + part.Unchanged + part.RefreshedOrUnchanged)
		return part, nil
	}, func(r *pipelines.Range, part *Report) {
		rep.Inserted += part.Inserted
		rep.Refreshed += part.Refreshed
		rep.Unchanged += part.Unchanged
		rep.RefreshedOrUnchanged += part.RefreshedOrUnchanged
		rep.Ranges++
		if r != nil {
			cfg.Log.WithFields(logrus.Fields{"ranges_done": rep.Ranges, "inserted": rep.Inserted, "refreshed": rep.Refreshed}).Info("phase 2: range done")
		}
	})
	if err != nil {
		return err
	}
	// The accounts left to phase 1 are every link, whatever the ranges:
	// counted once.
	err = cfg.Retry.Do(ctx, "count links", func(ctx context.Context) error {
		n, err := cfg.DB.Collection(cfg.Names.Links).CountDocuments(ctx, cfg.scope().IDFilter())
		rep.Merged = n
		return err
	})
	if err != nil {
		return retry.Wrap("count links", err)
	}
	if cfg.DryRun || cfg.Scope != nil {
		return nil
	}
	return clearCheckpoint(ctx, cfg)
}

// scope is the run's scope as a range; nil: every account.
func (cfg Config) scope() *pipelines.Range {
	if cfg.Scope == nil {
		return nil
	}
	return &pipelines.Range{IDs: cfg.Scope}
}

// runRange is one range (r nil: every account) of a server-side path,
// counted into part.
func runRange(ctx context.Context, cfg Config, path Path, valid []string, seq int, r *pipelines.Range, part *Report) error {
	if cfg.DryRun || path == PathMerge && part.Exact {
		// Counting first, with the same stages, says what the write
		// will do: $merge itself reports nothing.
		err := cfg.Retry.Do(ctx, "phase 2 preview", func(ctx context.Context) error {
			// counted into a scratch report: a failed attempt adds nothing
			p := &Report{}
			if err := preview(ctx, cfg, valid, r, p); err != nil {
				return err
			}
			part.Inserted, part.Refreshed, part.Unchanged = p.Inserted, p.Refreshed, p.Unchanged
			return nil
		})
		if err != nil || cfg.DryRun {
			return err
		}
	}
	// A range is one idempotent server-side run: a transient error runs
	// it again; rc keeps what the attempts counted.
	rc := &rangeCounts{}
	rp := cfg.Retry
	rp.Also = servererr.IsDuplicateKey // of an earlier attempt's $merge, still running on the server
	return rp.Do(ctx, fmt.Sprintf("phase 2 range %d", seq+1), func(ctx context.Context) error {
		if path == PathSplit {
			return splitRange(ctx, cfg, valid, r, part, rc)
		}
		return mergeRange(ctx, cfg, valid, r, part, rc)
	})
}

// rangeCounts are what the attempts at one range counted before they
// wrote: an attempt that failed after writing part of the range must not
// make the next one count that part as there before.
type rangeCounts struct {
	counted       bool
	taken, before int64
	refreshed     int64 // written by every attempt so far
}

// count counts, once for all the attempts at the range, the accounts the
// range takes and the tenant accounts it holds before it is written.
func (rc *rangeCounts) count(ctx context.Context, cfg Config, valid []string, r *pipelines.Range) error {
	if rc.counted {
		return nil
	}
	taken, err := countTaken(ctx, cfg, valid, r)
	if err != nil {
		return err
	}
	before, err := cfg.DB.Collection(cfg.Names.TenantsAccounts).CountDocuments(ctx, r.IDFilter())
	if err != nil {
		return fmt.Errorf("count tenant accounts: %w", err)
	}
	rc.taken, rc.before, rc.counted = taken, before, true
	return nil
}

// mergeRange runs the pipeline over one range. Without a preview it counts
// what it can cheaply, with no join and within the range only (a tenant
// account's _id is its legacy account's): the accounts the pipeline takes
// (valid, without a link) and how many tenant accounts it added.
func mergeRange(ctx context.Context, cfg Config, valid []string, r *pipelines.Range, rep *Report, rc *rangeCounts) error {
	tenants := cfg.DB.Collection(cfg.Names.TenantsAccounts)
	if !rep.Exact {
		if err := rc.count(ctx, cfg, valid, r); err != nil {
			return err
		}
	}
	taken, before := rc.taken, rc.before
	err := runFitted(ctx, cfg, cfg.DB.Collection(cfg.Names.Accounts), func(r *pipelines.Range) any { return pipelines.Phase2(cfg.Names, cfg.ShardKey, valid, r) }, r)
	if err != nil {
		return fmt.Errorf("phase 2 pipeline: %w", err)
	}
	if rep.Exact {
		return nil
	}
	after, err := tenants.CountDocuments(ctx, r.IDFilter())
	if err != nil {
		return fmt.Errorf("count tenant accounts: %w", err)
	}
	// The growth is what the pipeline inserted as long as nothing else
	// writes tenant accounts meanwhile: true at boot, where the lease holder
	// is the only writer, not for a re-run next to a live service.
	inserted := max(after-before, 0)
	rep.Inserted += inserted
	rep.RefreshedOrUnchanged += max(taken-inserted, 0)
	return nil
}

// countTaken counts the accounts of the range that pass the pipeline's
// validity stage and have no phase-1 link. It takes every link of the range
// for a valid account, as phase 1 writes them; one whose account was
// deleted or turned bad since makes the count low by one.
func countTaken(ctx context.Context, cfg Config, valid []string, r *pipelines.Range) (int64, error) {
	n, err := cfg.DB.Collection(cfg.Names.Accounts).CountDocuments(ctx, pipelines.ValidityIn(valid, r))
	if err != nil {
		return 0, fmt.Errorf("count accounts: %w", err)
	}
	linked, err := cfg.DB.Collection(cfg.Names.Links).CountDocuments(ctx, r.IDFilter())
	if err != nil {
		return 0, fmt.Errorf("count links: %w", err)
	}
	return max(n-linked, 0), nil
}

// preview counts, by outcome, what the range's write will do; the links
// are counted once per run, by runServer.
func preview(ctx context.Context, cfg Config, valid []string, r *pipelines.Range, rep *Report) error {
	cur, err := cfg.DB.Collection(cfg.Names.Accounts).Aggregate(ctx, pipelines.Phase2Preview(cfg.Names, valid, r), options.Aggregate().SetAllowDiskUse(true))
	if err != nil {
		return fmt.Errorf("phase 2 preview: %w", err)
	}
	var rows []struct {
		ID string `bson:"_id"`
		N  int64  `bson:"n"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return fmt.Errorf("phase 2 preview: %w", err)
	}
	for _, row := range rows {
		switch row.ID {
		case pipelines.OutcomeInsert:
			rep.Inserted += row.N
		case pipelines.OutcomeRefresh:
			rep.Refreshed += row.N
		default:
			rep.Unchanged += row.N
		}
	}
	return nil
}
