package sharding_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// BenchmarkInsertsUnderStepOneIndexes measures what step 1's unique indexes
// cost each insert into the tenant accounts, with and without the shard
// key, as the tenants of each org grow. Phase 2 on FerretDB 2 / DocumentDB
// with the shard key is bound by it: DocumentDB checks a unique index led
// by org_id against the org's tenants (its exclusion constraint scans the
// org_id term), so an insert costs a fixed part plus a part that grows with
// the tenants of its org; the 400-org rows show the fixed part. Run it on the server in question, one pass each:
//
//	MONGODB_URI=... go test -run '^$' -bench InsertsUnderStepOneIndexes -benchtime 1x ./runner/sharding/
//
// ns/insert is the figure; compare the rows of one run.
func BenchmarkInsertsUnderStepOneIndexes(b *testing.B) {
	ctx := context.Background()
	db := env.Database(b)
	unique := func(keys ...string) mongo.IndexModel {
		k := bson.D{}
		for _, f := range keys {
			k = append(k, bson.E{Key: f, Value: int32(1)})
		}
		return mongo.IndexModel{Keys: k, Options: options.Index().SetUnique(true)}
	}
	for _, tenants := range []int{5000, 20000} {
		for _, orgs := range []int{4, 400} {
			for _, c := range []struct {
				name    string
				indexes []mongo.IndexModel
			}{
				{"without key", []mongo.IndexModel{unique("org_apps_memberships.id")}},
				{"shard key org_id", []mongo.IndexModel{unique("org_id", "org_apps_memberships.id"), unique("org_id", "_id")}},
			} {
				b.Run(fmt.Sprintf("%d tenants/%d orgs/%s", tenants, orgs, c.name), func(b *testing.B) {
					var took time.Duration
					for i := 0; i < b.N; i++ {
						coll := db.Collection(fmt.Sprintf("bench_%d", i))
						if _, err := coll.Indexes().CreateMany(ctx, c.indexes); err != nil {
							b.Fatal(err)
						}
						took += insertTenants(ctx, b, coll, tenants, orgs)
						if err := coll.Drop(ctx); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(took.Nanoseconds())/float64(b.N*tenants), "ns/insert")
				})
			}
		}
	}
}

// insertTenants inserts n tenant-shaped documents spread over orgs, in
// batches of 1,000, and returns the time the inserts took.
func insertTenants(ctx context.Context, b *testing.B, coll *mongo.Collection, n, orgs int) time.Duration {
	b.Helper()
	var took time.Duration
	for from := 0; from < n; from += 1000 {
		batch := make([]any, 0, 1000)
		for i := from; i < min(n, from+1000); i++ {
			batch = append(batch, bson.D{
				{Key: "_id", Value: fmt.Sprintf("tenant-%08d", i)},
				{Key: "org_id", Value: fmt.Sprintf("org-%04d", i%orgs)},
				{Key: "org_apps_memberships", Value: bson.A{bson.D{
					{Key: "id", Value: fmt.Sprintf("membership-%08d", i)},
					{Key: "app_org_id", Value: fmt.Sprintf("app-org-%04d", i%orgs)},
				}}},
				{Key: "profile", Value: bson.D{{Key: "first_name", Value: "A"}, {Key: "last_name", Value: "B"}}},
			})
		}
		start := time.Now()
		if _, err := coll.InsertMany(ctx, batch); err != nil {
			b.Fatal(err)
		}
		took += time.Since(start)
	}
	return took
}
