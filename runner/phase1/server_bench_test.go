package phase1_test

import (
	"context"
	"os"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/tenantmigrate/runner/runner/phase1"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
)

// BenchmarkPhase1OnServer runs phase 1 over the fixture on the test server
// (BENCH_ACCOUNTS accounts, default 20,000), each iteration from empty
// tenant collections, on the path the runner's defaults take (BENCH_PATH
// forces one: server or stream). BENCH_CPUPROFILE names a file for a CPU profile of
// phase 1 alone (not of the fixture's load):
//
//	MONGODB_URI=... BENCH_ACCOUNTS=93000 BENCH_CPUPROFILE=/tmp/phase1.cpu \
//	    go test -run '^$' -bench Phase1OnServer -benchtime 1x ./runner/phase1/
func BenchmarkPhase1OnServer(b *testing.B) {
	n := 20000
	if s := os.Getenv("BENCH_ACCOUNTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatalf("BENCH_ACCOUNTS: %v", err)
		}
	}
	ctx := context.Background()
	db := env.Database(b)
	env.Load(b, db, gen.Options{Accounts: n, Seed: 1})
	cfg := onServerPath(config(db))
	cfg.Batch = 1000
	if s := os.Getenv("BENCH_PATH"); s != "" {
		var err error
		if cfg.Path, err = phase1.ParsePath(s); err != nil {
			b.Fatalf("BENCH_PATH: %v", err)
		}
	}
	if path := os.Getenv("BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	b.ResetTimer()
	var spent time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for _, c := range []string{cfg.TenantsAccounts, cfg.Links} {
			if err := db.Collection(c).Drop(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start := time.Now()
		rep, err := phase1.Run(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		spent += time.Since(start)
		b.Logf("path %s: passes %v", rep.Path, rep.Durations)
	}
	b.ReportMetric(float64(n)*float64(b.N)/spent.Seconds(), "accounts/s")
}
