package phase1_test

import (
	"context"
	"io/fs"
	"os"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/migrations"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/phase1"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
)

// BenchmarkPhase1OnServer runs phase 1 over the fixture on the test server
// (BENCH_ACCOUNTS accounts, default 20,000), each iteration from empty
// tenant collections, on the path the runner's defaults take (BENCH_PATH
// forces one: server or stream), once into bare collections and once into
// collections with step 1's indexes, which is where the server spends its
// time on some engines. Beside accounts/s it reports x_baseline: phase 1's
// time over a $out copy of the legacy collection timed in the same
// iteration (where the server has $out). BENCH_CPUPROFILE names a file for
// a CPU profile of phase 1 alone (not of the fixture's load):
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
	for _, indexed := range []bool{false, true} {
		name := "bare"
		if indexed {
			name = "step1_indexes"
		}
		b.Run(name, func(b *testing.B) {
			var spent, baseline time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for _, c := range []string{cfg.TenantsAccounts, cfg.Links} {
					if err := db.Collection(c).Drop(ctx); err != nil {
						b.Fatal(err)
					}
				}
				if indexed {
					step1Indexes(b, db)
				}
				baseline += outCopy(b, db, cfg.Accounts)
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
			if baseline > 0 {
				b.ReportMetric(spent.Seconds()/baseline.Seconds(), "x_baseline")
			}
		})
	}
}

// step1Indexes runs step 1's commands (the tenant accounts' indexes) as
// the runner does.
func step1Indexes(b *testing.B, db *mongo.Database) {
	b.Helper()
	files, err := fs.Glob(migrations.FS(), "1_*.up.json")
	if err != nil || len(files) != 1 {
		b.Fatalf("step 1's file: %v %v", files, err)
	}
	body, err := fs.ReadFile(migrations.FS(), files[0])
	if err != nil {
		b.Fatal(err)
	}
	step, err := mongomigrate.ParseStep(body, names)
	if err != nil {
		b.Fatal(err)
	}
	for _, cmd := range step.Commands {
		if err := db.RunCommand(context.Background(), cmd).Err(); err != nil {
			b.Fatalf("step 1: %v", err)
		}
	}
}

// outCopy times a $out copy of coll, the load test's baseline; 0 where the
// server has no $out.
func outCopy(b *testing.B, db *mongo.Database, coll string) time.Duration {
	b.Helper()
	ctx := context.Background()
	const into = "bench_baseline"
	start := time.Now()
	cur, err := db.Collection(coll).Aggregate(ctx, mongo.Pipeline{{{Key: "$out", Value: into}}})
	if err != nil {
		return 0
	}
	cur.Close(ctx)
	took := time.Since(start)
	if err := db.Collection(into).Drop(ctx); err != nil {
		b.Fatal(err)
	}
	return took
}
