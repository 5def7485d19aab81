package phase1_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/runner/phase1"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

// onServerPath is config with the server path probed, as the runner's
// defaults do.
func onServerPath(cfg phase1.Config) phase1.Config {
	cfg.MemoryGroupLimit = 1_000_000
	cfg.Path = phase1.PathProbe
	return cfg
}

// The probe takes the server path where the server runs its pipeline (a
// real engine) and streams where it does not (FerretDB 1, which has no
// $indexOfArray); either way the run writes what the streaming path writes,
// reports it the same, and a second run writes nothing.
func TestServerPathWritesWhatStreamingWrites(t *testing.T) {
	ctx := context.Background()
	opts := gen.Options{Accounts: 3000, Seed: 5}
	run := func(t *testing.T, cfg phase1.Config) (*phase1.Report, [2]map[string]string) {
		t.Helper()
		rep, err := phase1.Run(ctx, cfg)
		if err != nil {
			t.Fatalf("phase 1 (%s): %v", cfg.Path, err)
		}
		return rep, [2]map[string]string{testenv.Dump(t, cfg.DB.Collection(names.TenantsAccounts)), testenv.Dump(t, cfg.DB.Collection(names.Links))}
	}
	said := func(r *phase1.Report) string {
		return fmt.Sprint(r.Accounts, r.Groups, r.GroupedAccounts, r.GroupSizes, r.LargestGroup, r.Conflicts, r.ConflictFields, r.FirstConflicts,
			r.TenantsInserted, r.TenantsReplaced, r.TenantsSame, r.Superseded, r.LinksWritten, r.LinksSame, r.Invalid, r.InvalidReasons, r.FirstInvalid, r.Identities)
	}
	streamDB := env.Database(t)
	env.Load(t, streamDB, opts)
	scfg := config(streamDB)
	scfg.Path, scfg.SkipInvalid = phase1.PathStream, true
	srep, swant := run(t, scfg)
	if srep.Path != phase1.PathStream || srep.Groups == 0 {
		t.Fatalf("streaming run: path %s, %d groups", srep.Path, srep.Groups)
	}

	db := env.Database(t)
	env.Load(t, db, opts)
	cfg := onServerPath(config(db))
	cfg.SkipInvalid = true
	before := collections(t, db)
	rep, got := run(t, cfg)
	want := phase1.PathServer
	if !env.Real() {
		want = phase1.PathStream
	}
	if rep.Path != want || (want == phase1.PathStream) != (rep.ServerRefused != "") {
		t.Fatalf("probed run took path %s (refused: %q); want %s on this server", rep.Path, rep.ServerRefused, want)
	}
	t.Logf("path %s; refused: %q", rep.Path, rep.ServerRefused)
	if said(rep) != said(srep) {
		t.Errorf("path %s reported\n %s\nstreaming reported\n %s", rep.Path, said(rep), said(srep))
	}
	if !maps(got[0], swant[0]) || !maps(got[1], swant[1]) {
		t.Errorf("path %s wrote %d tenants and %d links; streaming wrote %d and %d (or the contents differ)", rep.Path, len(got[0]), len(got[1]), len(swant[0]), len(swant[1]))
	}
	for _, c := range collections(t, db) {
		if !slices.Contains(before, c) && c != names.TenantsAccounts && c != names.Links {
			t.Errorf("the run left collection %s (before it: %v)", c, before)
		}
	}

	again, got2 := run(t, cfg)
	if again.TenantsInserted+again.TenantsReplaced+again.LinksWritten+again.Superseded != 0 || again.TenantsSame != rep.Groups {
		t.Errorf("second run on path %s wrote: %+v", again.Path, again)
	}
	if !maps(got2[0], got[0]) || !maps(got2[1], got[1]) {
		t.Error("a second run changed the tenants or links")
	}
	if n, err := db.Collection(names.TenantsAccounts).CountDocuments(ctx, bson.D{}); err != nil || n != int64(len(got[0])) {
		t.Fatal(n, err)
	}
}

// Without a usable $TMPDIR, where the server path sorts its identity
// entries, a probed run streams and says why; a forced server path fails
// with the reason in one line.
func TestServerPathNeedsLocalDisk(t *testing.T) {
	if !env.Real() {
		t.Skip("the embedded FerretDB 1 refuses the server path before it needs a disk")
	}
	ctx := context.Background()
	db := env.Database(t)
	exp := env.Load(t, db, gen.Options{Accounts: 500, Seed: 5})
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
	cfg := onServerPath(config(db))
	cfg.SkipInvalid = true
	rep, err := phase1.Run(ctx, cfg)
	if err != nil || rep.Path != phase1.PathStream || !strings.Contains(rep.ServerRefused, "$TMPDIR") || rep.Groups != len(exp.Groups) {
		t.Fatalf("probed run without a local disk: %+v, %v; want the streaming path, saying why, with the fixture's %d groups", rep, err, len(exp.Groups))
	}
	cfg.Path = phase1.PathServer
	if _, err := phase1.Run(ctx, cfg); err == nil || !strings.Contains(err.Error(), "$TMPDIR") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("forced server path without a local disk: err = %v; want one line naming $TMPDIR", err)
	}
}
