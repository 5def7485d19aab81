package runner_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tenantmigrate/runner/runner"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
)

// The server goes away in the middle of phase 1, every connection cut: the
// run ends with a one-line error, and once the server is back a new run
// resumes phase 1, completes and verifies.
func TestLostConnectionThenRerun(t *testing.T) {
	ctx := context.Background()
	opts := gen.Options{Accounts: 2000, Seed: 17}
	if env.Real() {
		opts.Accounts = 20000 // a real engine is done with 2,000 before the cut
	}
	cfg, db := testConfig(t)
	exp := env.Load(t, db, opts)
	proxy, uri := env.Proxied(t, nil)
	cfg.MongoDB.URI = uri
	cfg.MongoDB.ConnectTimeout = 2 * time.Second
	r := newRunner(t, cfg)
	done := make(chan error, 1)
	go func() { _, err := r.Up(ctx); done <- err }()
	// Cut the moment phase 1 runs, watching through a connection of our own.
	deadline := time.Now().Add(time.Minute)
	for {
		hist, err := mongomigrate.NewStore(db, cfg.Collections.MigrationsPrefix, nil).History(ctx)
		if h, ok := hist[mongomigrate.HistoryID(2, mongomigrate.Up)]; err == nil && ok && h.State == mongomigrate.StateRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("phase 1 never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	proxy.Stop()
	start := time.Now()
	select {
	case err := <-done:
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Fatalf("run with the server gone: err = %v, want a one-line error", err)
		}
		t.Logf("gave up %s after the server went away: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the runner did not give up after the server went away")
	}

	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	res, err := newRunner(t, cfg).Up(ctx)
	_, latest := steps(t)
	if err != nil {
		t.Fatalf("run after the server is back: %v", err)
	}
	if errors.Is(err, runner.ErrDirty) {
		t.Fatal("dirty state was not resumed")
	}
	if !res.Resumed || len(res.Steps) != latest-1 || res.Steps[0].Version != 2 || res.Verify == nil || !res.Verify.OK() || res.Verify.TenantAccounts != exp.TenantsExpected {
		t.Fatalf("run after the server is back = %+v", res)
	}
}
