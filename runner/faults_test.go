package runner_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

// toxic applies one toxic on the replies for a while: the server has done
// the work the client never hears of, the nastiest case for a retry.
func toxic(kind string, attrs string, d time.Duration) func(*testing.T, *toxiproxy.Proxy) {
	return func(t *testing.T, p *toxiproxy.Proxy) {
		spec := fmt.Sprintf(`{"name":"fault","type":%q,"stream":"downstream","toxicity":1,"attributes":%s}`, kind, attrs)
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
			t.Errorf("add toxic: %v", err)
			return
		}
		time.Sleep(d)
		if err := p.Toxics.RemoveToxic(context.Background(), "fault"); err != nil {
			t.Errorf("remove toxic: %v", err)
		}
	}
}

// Faults of a real network, injected again and again by a proxy while the
// runner migrates as at boot. Each run finishes by itself within its retry
// budget, with the tenant accounts and links of an uninterrupted run,
// verify clean, the state clean and the legacy accounts unchanged.
func TestSurvivesNetworkFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("injects faults for minutes")
	}
	ctx := context.Background()
	opts := gen.Options{Accounts: 3000, Seed: 13}
	// Room between two faults for the embedded server's longest single
	// read (a sorted read scans and sorts the whole collection first),
	// even with the rest of the suite running beside it.
	every := 5 * time.Second
	rangeSize := 2000 // every server-side run within the socket timeout
	if env.Real() {
		opts.Accounts, every = 20000, 1500*time.Millisecond // a real engine is done with 3,000 before the first fault
		if env.SlowShardKey(t) {
			// DocumentDB checks a unique index led by org_id against every
			// tenant of the org: with the fixture's 4 orgs a range of 2,000
			// outlasts the 2 s socket timeout, and 20,000 the retry budget.
			opts.Accounts, rangeSize = 8000, 250
		}
	}
	cleanCfg, clean := testConfig(t)
	env.Load(t, clean, opts)
	if _, err := newRunner(t, cleanCfg).Up(ctx); err != nil {
		t.Fatalf("uninterrupted run: %v", err)
	}
	want := [2]map[string]string{testenv.Dump(t, clean.Collection(names.TenantsAccounts)), testenv.Dump(t, clean.Collection(names.Links))}

	for _, tt := range []struct {
		name string
		// uri are URI options of the run (a socket timeout, for stalls).
		uri    map[string]string
		inject func(*testing.T, *toxiproxy.Proxy)
		// downs: after the run, undo the lookup indexes, the references
		// step and phases 2 and 1, and run again, the faults going on.
		downs bool
		// often: the fault cuts nothing, so it may come as often as it likes.
		often bool
	}{
		{"server away 250 ms", nil, func(t *testing.T, p *toxiproxy.Proxy) {
			p.Stop() // every connection cut, none taken
			time.Sleep(250 * time.Millisecond)
			if err := p.Start(); err != nil {
				t.Errorf("restart the proxy: %v", err)
			}
		}, true, false},
		{"connections reset", nil, toxic("reset_peer", `{"timeout":0}`, 500*time.Millisecond), false, false},
		{"latency 100 ms", nil, toxic("latency", `{"latency":100,"jitter":50}`, time.Second), false, true},
		// Replies stop without a close: only the socket timeout of the URI
		// notices (the driver's default is to wait for ever).
		{"stalled past the socket timeout", map[string]string{"socketTimeoutMS": "2000"}, toxic("timeout", `{"timeout":0}`, 2500*time.Millisecond), false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.uri["socketTimeoutMS"] != "" && !env.Real() {
				// Its sorted reads scan the whole collection before the
				// first reply: any socket timeout short enough for a test
				// cuts them every time.
				t.Skip("the embedded server's reads outlast a socket timeout short enough to test")
			}
			cfg, db := testConfig(t)
			env.Load(t, db, opts)
			legacy := testenv.Dump(t, db.Collection(names.Accounts))
			proxy, uri := env.Proxied(t, tt.uri)
			cfg.MongoDB.URI = uri
			cfg.MongoDB.ConnectTimeout = 5 * time.Second
			cfg.Retry.Attempts, cfg.Retry.MaxElapsed = 30, time.Minute
			cfg.Retry.InitialWait, cfg.Retry.MaxWait = 50*time.Millisecond, 500*time.Millisecond
			cfg.Lock.Lease, cfg.Lock.Heartbeat = 20*time.Second, 2*time.Second
			if env.Real() {
				cfg.Phase2.RangeSize = rangeSize
			}
			r := newRunner(t, cfg)

			var faults atomic.Int64
			stop := make(chan struct{})
			injected := make(chan struct{})
			go func() {
				defer close(injected)
				// The first after the indexes of step 1: FerretDB 1 cannot
				// take a createIndexes whose client vanished (kill_test.go).
				// Step 5's come at the end, over little data here; faults
				// do reach them.
				interval := every
				if tt.often {
					interval = 1500 * time.Millisecond
				}
				for wait := 1500 * time.Millisecond; ; wait = interval {
					select {
					case <-stop:
						return
					case <-time.After(wait):
					}
					tt.inject(t, proxy)
					faults.Add(1)
				}
			}()
			res, err := r.Up(ctx)
			if err != nil {
				close(stop)
				<-injected
				t.Fatalf("run through %d faults: %v", faults.Load(), err)
			}
			var retries int64
			for _, s := range res.Steps {
				retries += s.Counts[count.Retries]
			}
			if tt.downs {
				for i := 0; i < 4; i++ {
					if _, err := r.Down(ctx); err != nil {
						close(stop)
						<-injected
						t.Fatalf("down %d through %d faults: %v", i+1, faults.Load(), err)
					}
				}
				if n, _ := db.Collection(names.TenantsAccounts).CountDocuments(ctx, bson.D{}); n != 0 {
					t.Errorf("%d tenant accounts after both downs", n)
				}
				if res, err = r.Up(ctx); err != nil {
					close(stop)
					<-injected
					t.Fatalf("run after the downs, through %d faults: %v", faults.Load(), err)
				}
			}
			close(stop)
			<-injected
			t.Logf("%s: %d faults injected, %d retries counted by the steps, survived with no person", tt.name, faults.Load(), retries)
			if faults.Load() < 2 {
				t.Errorf("only %d fault landed during the run: the test proves little", faults.Load())
			}
			if res.Verify == nil || !res.Verify.OK() {
				t.Fatalf("verify after the run: %+v", res.Verify)
			}
			got := [2]map[string]string{testenv.Dump(t, db.Collection(names.TenantsAccounts)), testenv.Dump(t, db.Collection(names.Links))}
			for i, name := range []string{"tenant accounts", "links"} {
				if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
					t.Errorf("%s differ from an uninterrupted run's (%d vs %d)", name, len(got[i]), len(want[i]))
				}
			}
			if fmt.Sprint(testenv.Dump(t, db.Collection(names.Accounts))) != fmt.Sprint(legacy) {
				t.Error("the legacy accounts changed")
			}
			if n, _ := db.Collection("migrations_state").CountDocuments(ctx, bson.D{{Key: "dirty", Value: true}}); n != 0 {
				t.Error("the state is left dirty")
			}
		})
	}
}
