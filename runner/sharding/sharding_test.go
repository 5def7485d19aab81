package sharding_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/sharding"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

var (
	byOrg    = bson.D{{Key: "org_id", Value: int32(1)}}
	byID     = bson.D{{Key: "_id", Value: "hashed"}}
	orgAndID = bson.D{{Key: "org_id", Value: int32(1)}, {Key: "_id", Value: int32(1)}}
)

// A configuration that disagrees with the cluster is refused with what
// to do; one that agrees, or a server that is no cluster, passes.
func TestCheck(t *testing.T) {
	for _, c := range []struct {
		name    string
		target  sharding.Target
		want    model.ShardKey
		applied bool
		refused string // a part of the error; "" passes
	}{
		{"replica set, unsharded", sharding.Target{}, model.Unsharded, false, ""},
		{"replica set, key asked (the shapes run there too)", sharding.Target{}, model.ShardByOrg, false, ""},
		{"cluster, unsharded", sharding.Target{Cluster: true}, model.Unsharded, false, ""},
		{"cluster, sharded on org_id, named", sharding.Target{Cluster: true, Sharded: true, Key: byOrg, KeyKnown: true}, model.ShardByOrg, false, ""},
		{"cluster, sharded on org_id, not named", sharding.Target{Cluster: true, Sharded: true, Key: byOrg, KeyKnown: true}, model.Unsharded, false, "set tenants.shard_key: org_id"},
		{"cluster, sharded on another key", sharding.Target{Cluster: true, Sharded: true, Key: byID, KeyKnown: true}, model.ShardByOrg, false, "is sharded on {_id: hashed}"},
		{"cluster, sharded, key unreadable, named", sharding.Target{Cluster: true, Sharded: true}, model.ShardByOrg, false, ""},
		{"cluster, sharded, key unreadable, not named", sharding.Target{Cluster: true, Sharded: true}, model.Unsharded, false, "is sharded"},
		{"cluster, not sharded, key named", sharding.Target{Cluster: true}, model.ShardByOrg, false, "shard it first"},
		{"step 1 ran without the key", sharding.Target{}, model.ShardByOrg, true, "no unique index {org_id: 1, _id: 1}"},
		{"step 1 ran with the key", sharding.Target{Unique: []bson.D{orgAndID}}, model.ShardByOrg, true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.target.Check(c.want, "tenants_accounts", c.applied)
			switch {
			case c.refused == "" && err != nil:
				t.Errorf("Check = %v, want it to pass", err)
			case c.refused != "" && (!errors.Is(err, sharding.ErrShardKey) || !strings.Contains(err.Error(), c.refused)):
				t.Errorf("Check = %v, want ErrShardKey saying %q", err, c.refused)
			case err != nil && strings.Contains(err.Error(), "\n"):
				t.Errorf("Check = %q, want one line", err)
			}
		})
	}
}

// On the test's server (no cluster): not sharded, and the unique indexes
// are read as they are, none for a collection not made yet.
func TestInspect(t *testing.T) {
	db := env.Database(t)
	ctx := context.Background()
	got, err := sharding.Inspect(ctx, db, "tenants_accounts")
	if err != nil || got.Cluster || got.Sharded || len(got.Unique) != 0 {
		t.Fatalf("Inspect of a missing collection = %+v, %v; want no cluster, nothing sharded, no index", got, err)
	}
	coll := db.Collection("tenants_accounts")
	if _, err := coll.Indexes().CreateMany(ctx, []mongo.IndexModel{
		{Keys: orgAndID, Options: options.Index().SetUnique(true)},
		{Keys: bson.D{{Key: "org_id", Value: 1}, {Key: "auth_types.identifier", Value: 1}}},
	}); err != nil {
		t.Fatal(err)
	}
	got, err = sharding.Inspect(ctx, db, "tenants_accounts")
	if err != nil || got.Cluster || got.Sharded {
		t.Fatalf("Inspect = %+v, %v", got, err)
	}
	if err := got.Check(model.ShardByOrg, "tenants_accounts", true); err != nil {
		t.Errorf("the unique {org_id: 1, _id: 1} was not seen: %v (unique keys %v)", err, got.Unique)
	}
	if err := got.Check(model.ShardByOrg, "tenants_accounts", false); err != nil {
		t.Errorf("Check = %v", err)
	}
}
