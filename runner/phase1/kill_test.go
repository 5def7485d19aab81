package phase1_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/runner/phase1"
)

// writeCounter counts the writes of phase 1 to the tenant accounts and the
// links that the server made, and cancels the run once it has made killAt
// of them (0: never): phase 1 killed right after a write, at any write.
type writeCounter struct {
	n      atomic.Int64
	killAt int64
	cancel context.CancelFunc
}

func (c *writeCounter) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) {
		switch e.CommandName {
		case "insert", "update", "delete":
		default:
			return
		}
		if n := c.n.Add(1); c.killAt > 0 && n == c.killAt {
			c.cancel()
		}
	}}
}

// monitored is db through a client that reports every command to c.
func monitored(t *testing.T, db *mongo.Database, c *writeCounter) *mongo.Database {
	t.Helper()
	client, err := mongo.Connect(context.Background(), options.Client().ApplyURI(env.URI).SetMonitor(c.monitor()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client.Database(db.Name())
}

// Phase 1 killed after any of its writes, then undone, leaves the tenant
// accounts and links as they were before it: none. Its down finds every
// tenant account it wrote by the links, so a tenant account is never
// written before its links.
func TestEveryKillThenDownLeavesNothing(t *testing.T) {
	eachPath(t, func(t *testing.T, config func(*mongo.Database) phase1.Config) {
		const accounts = 400
		run := func(t *testing.T, killAt int64) (writes int64, killed bool) {
			db := env.Database(t)
			load(t, db, accounts)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c := &writeCounter{killAt: killAt, cancel: cancel}
			cfg := config(monitored(t, db, c))
			cfg.Batch = 8 // many flushes: many kill points
			_, err := phase1.Run(ctx, cfg)
			killed = ctx.Err() != nil
			if err != nil && !killed {
				t.Fatalf("phase 1: %v", err)
			}
			writes = c.n.Load()
			if killed {
				// As the runner that takes the lock over waits out the
				// killed one's operations: a write sent before the kill
				// may still be running on the server.
				time.Sleep(300 * time.Millisecond)
			}
			if _, err := phase1.Down(context.Background(), config(db)); err != nil {
				t.Fatalf("down: %v", err)
			}
			for _, coll := range []string{names.TenantsAccounts, names.Links} {
				if n, err := db.Collection(coll).CountDocuments(context.Background(), bson.D{}); err != nil || n != 0 {
					t.Errorf("killed after write %d of %d, then undone: %d documents left in %s (%v); want none", killAt, writes, n, coll, err)
				}
			}
			return writes, killed
		}
		total, _ := run(t, 0)
		if total < 10 {
			t.Fatalf("an uninterrupted run made %d writes; want many kill points", total)
		}
		// every kill point up to 40, then a spread of the rest
		for k := int64(1); k < total; k += max(1, min(k/8, total/40)) {
			if _, killed := run(t, k); !killed {
				t.Fatalf("the run killed at write %d of %d was not killed", k, total)
			}
		}
	})
}

// A re-run of phase 1 replaces a merged tenant account only if the service
// did not write it after the group's legacy accounts: a service write 1.1 s
// after a member's legacy edit is kept, whole; one before it is replaced.
// Phase 1's down keeps it too, and deletes the runner's.
func TestRerunAndDownKeepTheServicesNewerWrite(t *testing.T) {
	edited := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name     string
		service  time.Time // when the service wrote the tenant account
		wantKept bool
	}{
		{"the service wrote after the legacy edit", edited.Add(1100 * time.Millisecond), true},
		{"the service wrote before the legacy edit", edited.Add(-time.Hour), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db := env.Database(t)
			app1, app2, appOrgs := twoAppsOfOneOrg()
			day := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
			acct := func(id, ao string) bson.D {
				return bson.D{{Key: "_id", Value: id}, {Key: "app_org_id", Value: ao}, {Key: "date_created", Value: day}, {Key: "date_updated", Value: day},
					{Key: "profile", Value: bson.D{{Key: "first_name", Value: "Ann"}}},
					{Key: "auth_types", Value: bson.A{bson.D{{Key: "auth_type_code", Value: "email"}, {Key: "identifier", Value: "ann@x.com"}}}}}
			}
			if _, err := db.Collection(names.ApplicationsOrganizations).InsertMany(ctx, appOrgs); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Collection(names.Accounts).InsertMany(ctx, []any{acct("m1", app1.ID), acct("m2", app2.ID)}); err != nil {
				t.Fatal(err)
			}
			env.Seeded(t, db)
			if _, err := phase1.Run(ctx, config(db)); err != nil {
				t.Fatal(err)
			}
			// A member's legacy edit, then the service's write of the
			// tenant account (or the other way round).
			if _, err := db.Collection(names.Accounts).UpdateOne(ctx, bson.D{{Key: "_id", Value: "m2"}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "date_updated", Value: edited}, {Key: "profile.last_name", Value: "Lee"}}}}); err != nil {
				t.Fatal(err)
			}
			env.Seeded(t, db)
			if _, err := db.Collection(names.TenantsAccounts).UpdateOne(ctx, bson.D{{Key: "_id", Value: "m1"}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "date_updated", Value: tt.service}, {Key: "service_field", Value: "written by the service"}}}}); err != nil {
				t.Fatal(err)
			}
			rep, err := phase1.Run(ctx, config(db))
			if err != nil {
				t.Fatal(err)
			}
			var got bson.M
			if err := db.Collection(names.TenantsAccounts).FindOne(ctx, bson.D{{Key: "_id", Value: "m1"}}).Decode(&got); err != nil {
				t.Fatal(err)
			}
			kept := got["service_field"] == "written by the service"
			if kept != tt.wantKept || (rep.KeptNewer == 1) != tt.wantKept || (rep.TenantsReplaced == 1) == tt.wantKept {
				t.Errorf("service field kept: %v (report: kept %d, replaced %d); want kept %v", kept, rep.KeptNewer, rep.TenantsReplaced, tt.wantKept)
			}
			if !tt.wantKept && fmt.Sprint(got["profile"]) != fmt.Sprint(bson.M{"first_name": "Ann", "last_name": "Lee"}) {
				t.Errorf("profile after the replace: %v; want the legacy edit", got["profile"])
			}
			down, err := phase1.Down(ctx, config(db))
			if err != nil {
				t.Fatal(err)
			}
			left, _ := db.Collection(names.TenantsAccounts).CountDocuments(ctx, bson.D{})
			if (down.KeptChanged == 1) != tt.wantKept || (down.TenantsDeleted == 1) == tt.wantKept || (left == 1) != tt.wantKept {
				t.Errorf("down = %+v, %d tenant accounts left; want the service's kept: %v", down, left, tt.wantKept)
			}
		})
	}
}
