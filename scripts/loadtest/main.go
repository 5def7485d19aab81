// Command loadtest measures the migration end to end: it loads the fixture
// into a fresh database, runs the real runner binary exactly as a service
// does at boot, then `runner status` and `runner verify`, and prints the
// figures: load time, each step's time and counts, the runner's time and
// peak memory, verify's time and peak memory, and how many accounts were
// migrated or lost.
//
//	go run ./scripts/loadtest [--accounts 93000] [--seed 1] [--json]
//	go run ./scripts/loadtest --uri mongodb://127.0.0.1:27017 [--database loadtest] [--force]
//	go run ./scripts/loadtest --sweep 10000,93000,300000 [--json]
//
// Without --uri it starts an embedded FerretDB in-process (data in --dir, by
// default a temporary directory removed at the end unless --keep). It exits
// 0 when verify is OK and the tenant accounts are as many as the fixture
// expects, 1 otherwise (after printing the figures), 2 on bad usage.
//
// --sweep (instead of --accounts) measures each size in the order given, on
// the same server and database, each from an empty database, and prints each
// size's figures as it has them, then one table row per size and the
// runner's peak RSS at the largest size against the smallest: how time and
// memory grow with the number of accounts. A failed size does not stop the
// sweep. It exits 0 when every size passed and the runner's peak RSS stayed
// below 150 MiB at every size, 1 otherwise. With --json it prints one object:
// every size's report and the summary.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/readpref"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner"
	"github.com/tenantmigrate/runner/runner/config"
	"github.com/tenantmigrate/runner/scripts/embedded/server"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
)

// modulePath is the module whose runner loadtest builds.
const modulePath = "github.com/tenantmigrate/runner"

// Exit codes.
const (
	exitPassed = 0
	exitFailed = 1
	exitUsage  = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// flags are the command line.
type flags struct {
	accounts int
	sweep    []int // --sweep's sizes, in order; nil without --sweep
	seed     uint64
	uri      string
	database string
	dir      string
	keep     bool
	force    bool
	json     bool
	// references: also the referencing collections and the references step.
	references bool
	// profiles: a directory for the boot run's CPU profile at each size.
	profiles string
	// followRate and followSeconds: measure runner follow under that many
	// legacy edits a second for that long (0 seconds: not at all).
	followRate    int
	followSeconds int
	// noCopies: skip the after-run copies (harness.noCopies).
	noCopies bool
	// changes: harness.changes.
	changes int
	// shardKey: harness.shardKey.
	shardKey model.ShardKey
}

func parseFlags(args []string, stdout io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.IntVar(&f.accounts, "accounts", 93000, "number of legacy accounts to load")
	sweep := fs.String("sweep", "", "measure each of these `sizes` in turn (comma-separated numbers of accounts, e.g. 10000,93000,300000) and compare them")
	fs.Uint64Var(&f.seed, "seed", 1, "fixture seed")
	fs.StringVar(&f.uri, "uri", "", "a MongoDB server to use instead of the embedded one")
	fs.StringVar(&f.database, "database", "loadtest", "database to drop, load and migrate")
	fs.StringVar(&f.dir, "dir", "", "embedded server data directory (default: a temporary one)")
	fs.BoolVar(&f.keep, "keep", false, "keep the embedded server's temporary data directory")
	fs.BoolVar(&f.force, "force", false, "use the database even if it is named core or holds other collections")
	fs.BoolVar(&f.json, "json", false, "print the figures as one JSON object")
	fs.StringVar(&f.profiles, "cpuprofile", "", "write the runner's CPU profile of each boot run into `DIR` (runner-N.pprof, N the accounts; for go tool pprof)")
	fs.BoolVar(&f.references, "references", false, "also load the fixture's referencing collections (sessions, credentials, follows, saved items) and configure the references step; on the embedded FerretDB 1 every conditional write scans its collection, so use a real server")
	fs.BoolVar(&f.noCopies, "no-copies", false, "skip the after-run tenant copy and bare pipeline (at a million accounts the copy grew a DocumentDB backend past 19 GB)")
	fs.IntVar(&f.followRate, "follow-rate", 200, "legacy edits a second while runner follow runs (with --follow-seconds)")
	fs.IntVar(&f.changes, "changes", 0, "legacy accounts an old replica changes before the catch-up is measured (default 1 % of the accounts; 10 on the embedded server, where every write scans the collection)")
	shardKey := fs.String("shard-key", "", "migrate into a tenants_accounts sharded on this key (org_id): the runner gets tenants.shard_key, and on a mongos the collection is sharded before the migration")
	fs.IntVar(&f.followSeconds, "follow-seconds", 0, "measure runner follow's lag under --follow-rate edits a second for this many `seconds` (0: not measured)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, "usage: go run ./scripts/loadtest [--accounts N | --sweep N1,N2,...] [--seed S] [--uri URI] [--database DB] [--dir DIR] [--keep] [--force] [--json] [--references] [--cpuprofile DIR] [--changes N] [--shard-key org_id] [--follow-seconds S [--follow-rate R]] [--no-copies]")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
		}
		return f, err
	}
	explicit := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { explicit[fl.Name] = true })
	switch {
	case fs.NArg() > 0:
		return f, fmt.Errorf("unexpected arguments %q", fs.Args())
	case explicit["sweep"] && explicit["accounts"]:
		return f, errors.New("--sweep and --accounts go apart: --sweep names every size")
	case f.accounts < 1:
		return f, errors.New("--accounts must be at least 1")
	case f.database == "":
		return f, errors.New("--database must not be empty")
	case f.changes < 0:
		return f, errors.New("--changes must not be negative")
	case !validShardKey(*shardKey, &f.shardKey):
		return f, fmt.Errorf("--shard-key %q: want org_id, or nothing", *shardKey)
	case f.followSeconds < 0 || f.followRate < 1:
		return f, errors.New("--follow-seconds must not be negative, --follow-rate at least 1")
	case f.uri != "" && f.dir != "":
		return f, errors.New("--dir is the embedded server's; it goes without --uri")
	}
	if explicit["sweep"] {
		var err error
		if f.sweep, err = parseSweep(*sweep); err != nil {
			return f, err
		}
	}
	return f, nil
}

// validShardKey reads --shard-key into *key.
func validShardKey(s string, key *model.ShardKey) bool {
	k, err := model.ParseShardKey(s)
	*key = k
	return err == nil
}

// parseSweep reads --sweep: numbers of accounts, at least 1 each, each once.
func parseSweep(list string) ([]int, error) {
	if strings.TrimSpace(list) == "" {
		return nil, errors.New(`--sweep wants sizes, e.g. --sweep 10000,93000,300000`)
	}
	var sizes []int
	for _, field := range strings.Split(list, ",") {
		field = strings.TrimSpace(field)
		n, err := strconv.Atoi(field)
		switch {
		case field == "":
			return nil, fmt.Errorf("--sweep %q: an empty size; want sizes like 10000,93000,300000", list)
		case errors.Is(err, strconv.ErrRange):
			return nil, fmt.Errorf("--sweep %q: %s is out of range", list, field)
		case err != nil:
			return nil, fmt.Errorf("--sweep %q: %q is not a number of accounts", list, field)
		case n < 1:
			return nil, fmt.Errorf("--sweep %q: each size must be at least 1 account, not %d", list, n)
		case slices.Contains(sizes, n):
			return nil, fmt.Errorf("--sweep %q: %d is listed twice", list, n)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return exitPassed
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: %v (see --help)\n", err)
		return exitUsage
	}
	h, cleanup, err := setup(ctx, f, stderr)
	defer cleanup()
	if err != nil {
		fmt.Fprintln(stderr, "loadtest: "+oneLine(redact(err.Error(), f.uri)))
		return exitFailed
	}
	if f.sweep != nil {
		return runSweep(ctx, h, f, stdout, stderr)
	}
	rep := h.measureReport(ctx, f.accounts, f.seed, f.uri)
	if f.json {
		err = printJSON(stdout, rep)
	} else {
		err = printSummary(stdout, rep)
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: print the figures: %v\n", err)
		return exitFailed
	}
	if !rep.Passed {
		return exitFailed
	}
	return exitPassed
}

// runSweep measures every size of --sweep on the one server and database,
// printing each size's figures as soon as it has them (not with --json),
// then the comparison of the sizes. A failed size does not stop the sweep;
// an interruption does.
func runSweep(ctx context.Context, h *harness, f flags, stdout, stderr io.Writer) int {
	var printErr error
	each := func(i int, r report) {
		if f.json || printErr != nil {
			return
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		if _, printErr = fmt.Fprintf(stdout, "=== %d accounts (size %d of %d) ===\n", r.Accounts, i+1, len(f.sweep)); printErr == nil {
			printErr = printSummary(stdout, r)
		}
	}
	s := h.sweep(ctx, f.sweep, f.seed, f.uri, each)
	if printErr == nil {
		if f.json {
			printErr = printJSON(stdout, s)
		} else if _, printErr = fmt.Fprintln(stdout); printErr == nil {
			printErr = printSweep(stdout, s)
		}
	}
	if printErr != nil {
		fmt.Fprintf(stderr, "loadtest: print the figures: %v\n", printErr)
		return exitFailed
	}
	if !s.Summary.Passed {
		return exitFailed
	}
	return exitPassed
}

// measureReport measures one size and makes its report, with the server's
// password hidden from its errors.
func (h *harness) measureReport(ctx context.Context, accounts int, seed uint64, uri string) report {
	figures, err := h.measure(ctx, gen.Options{Accounts: accounts, Seed: seed})
	if ctx.Err() != nil {
		err = errors.Join(fmt.Errorf("interrupted: %w", context.Cause(ctx)), err)
	}
	rep := newReport(h, figures, err)
	for i, e := range rep.Errors {
		rep.Errors[i] = redact(e, uri)
	}
	return rep
}

// setup finds the module root, starts (or reaches) the server, checks the
// database and builds the runner. The cleanup it returns undoes what was
// done, in reverse order; it is never nil, even with an error.
func setup(ctx context.Context, f flags, log io.Writer) (*harness, func(), error) {
	var undo []func()
	cleanup := func() {
		for _, u := range slices.Backward(undo) {
			u()
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, cleanup, err
	}
	root, err := findModuleRoot(wd)
	if err != nil {
		return nil, cleanup, err
	}

	uri, where := f.uri, ""
	if uri == "" {
		srv, dir, stop, err := startEmbedded(ctx, f, log)
		undo = append(undo, stop)
		if err != nil {
			return nil, cleanup, err
		}
		uri, where = srv.URI(), "embedded FerretDB"
		if f.dir != "" || f.keep {
			where += ", data in " + dir
		}
	}

	client, err := connect(ctx, uri)
	if err != nil {
		return nil, cleanup, err
	}
	undo = append(undo, func() { disconnect(client) })
	db := client.Database(f.database)
	if err := checkDatabase(ctx, db, f.force); err != nil {
		return nil, cleanup, err
	}

	binDir, err := os.MkdirTemp("", "loadtest-runner-")
	if err != nil {
		return nil, cleanup, fmt.Errorf("temporary directory: %w", err)
	}
	undo = append(undo, func() { os.RemoveAll(binDir) })
	bin, err := buildRunner(ctx, root, binDir, log)
	if err != nil {
		return nil, cleanup, err
	}

	h := newHarness(bin, uri, db, log)
	h.references = f.references
	h.profiles = f.profiles
	h.followRate, h.followFor = f.followRate, time.Duration(f.followSeconds)*time.Second
	h.noCopies = f.noCopies
	h.changes = f.changes
	key := f.shardKey
	if !key.Sharded() { // the runner's own variable, inherited
		key, _ = model.ParseShardKey(os.Getenv(envShardKey))
	}
	h.setShardKey(key)
	if where != "" {
		h.server = where
		h.noIndexUse = true
	}
	if inherited := h.inheritedEnv(); len(inherited) > 0 {
		fmt.Fprintf(log, "loadtest: the runner also gets %s from the environment\n", strings.Join(inherited, ", "))
	}
	return h, cleanup, nil
}

// startEmbedded starts FerretDB in --dir or a temporary directory. stop stops
// it and removes a temporary directory (unless --keep); it is never nil.
func startEmbedded(ctx context.Context, f flags, log io.Writer) (srv *server.Server, dir string, stop func(), err error) {
	var undo []func()
	stop = func() {
		for _, u := range slices.Backward(undo) {
			u()
		}
	}
	dir = f.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "loadtest-data-"); err != nil {
			return nil, "", stop, fmt.Errorf("temporary directory: %w", err)
		}
		if f.keep {
			undo = append(undo, func() { fmt.Fprintf(log, "loadtest: kept the server's data in %s\n", dir) })
		} else {
			undo = append(undo, func() { os.RemoveAll(dir) })
		}
	}
	srv, err = server.Start(ctx, server.Options{Dir: dir})
	if err != nil {
		return nil, dir, stop, err
	}
	undo = append(undo, srv.Stop)
	return srv, dir, stop, nil
}

func connect(ctx context.Context, uri string) (*mongo.Client, error) {
	const timeout = 10 * time.Second
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(uri).
		SetServerSelectionTimeout(timeout).SetAppName("loadtest"))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", runner.RedactURI(uri), err)
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := client.Ping(pctx, readpref.Primary()); err != nil {
		disconnect(client)
		return nil, fmt.Errorf("reach %s: %w", runner.RedactURI(uri), err)
	}
	return client, nil
}

func disconnect(c *mongo.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Disconnect(ctx)
}

// checkDatabase refuses a database loadtest must not drop: MongoDB's own,
// always; core (the services' database) or one holding collections loadtest
// does not write, unless force.
func checkDatabase(ctx context.Context, db *mongo.Database, force bool) error {
	name := db.Name()
	switch strings.ToLower(name) {
	case "admin", "local", "config":
		return fmt.Errorf("refusing to drop database %s: it is MongoDB's own; name another with --database", name)
	case "core":
		if !force {
			return fmt.Errorf("refusing to drop database %s: it is the services' database; name another with --database, or add --force", name)
		}
	}
	if force {
		return nil
	}
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("list the collections of %s: %w", name, err)
	}
	var foreign []string
	for _, n := range names {
		if !ownCollection(n) {
			foreign = append(foreign, n)
		}
	}
	if len(foreign) > 0 {
		slices.Sort(foreign)
		return fmt.Errorf("refusing to drop database %s: it holds collections loadtest does not write (%s); name another with --database, or add --force",
			name, strings.Join(foreign, ", "))
	}
	return nil
}

// ownCollection reports whether loadtest (the fixture or the runner with
// its default configuration) writes a collection of that name.
func ownCollection(name string) bool {
	c := config.Default().Collections
	switch name {
	case model.DefaultNames().Accounts, model.DefaultNames().ApplicationsOrganizations, c.Accounts, c.ApplicationsOrganizations, c.Links, baselineColl, indexedColl, bareColl,
		gen.CollSessions, gen.CollCredentials, gen.CollFollows, gen.CollSaved:
		return true
	}
	return strings.HasPrefix(name, c.TenantsAccounts) || strings.HasPrefix(name, c.MigrationsPrefix+"_") ||
		strings.HasPrefix(name, "system.")
}

// findModuleRoot walks up from dir to the go.mod of this module.
func findModuleRoot(dir string) (string, error) {
	for d := dir; ; {
		mod, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			if p := moduleLine(mod); p != modulePath {
				return "", fmt.Errorf("%s/go.mod is module %q, not %s: run loadtest from inside this repository", d, p, modulePath)
			}
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod in %s or above it: run loadtest from inside the %s repository", dir, modulePath)
		}
		d = parent
	}
}

func moduleLine(gomod []byte) string {
	sc := bufio.NewScanner(strings.NewReader(string(gomod)))
	for sc.Scan() {
		if p, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(p), `"`)
		}
	}
	return ""
}

// buildRunner builds the runner command into dir, streaming the compiler's
// messages to log, and copies the repository's config.yaml beside it: the
// runner runs in dir, as a service with its binary and its configuration,
// unaffected by edits to the repository while it runs.
func buildRunner(ctx context.Context, root, dir string, log io.Writer) (string, error) {
	fmt.Fprintln(log, "building the runner...")
	bin := filepath.Join(dir, "runner")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./runner/cmd/runner")
	cmd.Dir = root
	out := &prefixWriter{w: log, prefix: "  go build| "}
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	out.Flush()
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("build the runner: %w", context.Cause(ctx))
		}
		return "", fmt.Errorf("build the runner (go build ./runner/cmd/runner in %s): %w", root, err)
	}
	conf, err := os.ReadFile(filepath.Join(root, "config.yaml"))
	if errors.Is(err, fs.ErrNotExist) {
		return bin, nil // the runner's built-in defaults
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "config.yaml"), conf, 0o644)
	}
	if err != nil {
		return "", fmt.Errorf("copy config.yaml beside the runner: %w", err)
	}
	return bin, nil
}

// redact hides the password of uri wherever msg quotes it.
func redact(msg, uri string) string {
	if uri == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, uri, runner.RedactURI(uri))
	_, rest, _ := strings.Cut(uri, "://")
	if end := strings.IndexAny(rest, "/?"); end >= 0 {
		rest = rest[:end]
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		if _, pass, ok := strings.Cut(rest[:at], ":"); ok && pass != "" {
			msg = strings.ReplaceAll(msg, pass, "xxxxx")
		}
	}
	return msg
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
