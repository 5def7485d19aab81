package runner_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/runner"
	"github.com/tenantmigrate/runner/scripts/embedded/server"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
)

// The server stops in the middle of phase 1: the run ends with a one-line
// error, and once the server is back a new run completes and verifies.
func TestLostConnectionThenRerun(t *testing.T) {
	if env.Real() {
		t.Skip("stops and restarts the embedded server")
	}
	ctx := context.Background()
	dir := t.TempDir()
	s, err := server.Start(ctx, server.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	defer func() { s.Stop() }()
	c, err := mongo.Connect(ctx, options.Client().ApplyURI(s.URI()))
	if err != nil {
		t.Fatal(err)
	}
	db := c.Database("lost")
	exp, err := gen.Load(ctx, db, gen.Options{Accounts: 2000, Seed: 17})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Disconnect(ctx)

	cfg, _ := testConfig(t)
	cfg.MongoDB.URI = s.URI()
	cfg.MongoDB.Database = "lost"
	cfg.MongoDB.ConnectTimeout = 2 * time.Second
	r := newRunner(t, cfg)
	done := make(chan error, 1)
	go func() { _, err := r.Up(ctx); done <- err }()
	// Wait until phase 1 runs, then stop the server under it.
	deadline := time.Now().Add(time.Minute)
	for {
		var h bson.M
		err := r.DB().Collection("migrations_history").FindOne(ctx, bson.D{{Key: "_id", Value: "2.up"}}).Decode(&h)
		if err == nil && h["state"] == "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("phase 1 never started")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	s.Stop()
	start := time.Now()
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the runner did not give up after the server stopped")
	}
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Fatalf("run with the server gone: err = %v, want a one-line error", err)
	}
	t.Logf("gave up %s after the server stopped: %v", time.Since(start).Round(time.Millisecond), err)

	if s, err = server.Start(ctx, server.Options{Addr: addr, Dir: dir}); err != nil {
		t.Fatal(err)
	}
	r2 := newRunner(t, cfg)
	res, err := r2.Up(ctx)
	if err != nil {
		t.Fatalf("run after the server is back: %v", err)
	}
	if !res.Resumed || res.Verify == nil || !res.Verify.OK() || res.Verify.TenantAccounts != exp.TenantsExpected {
		t.Fatalf("run after the server is back = %+v", res)
	}
	if errors.Is(err, runner.ErrDirty) {
		t.Fatal("dirty state was not resumed")
	}
}
