// Package sharding finds out whether the tenant accounts' collection is
// sharded, and on what, and checks that against tenants.shard_key: a
// configuration that disagrees with the cluster would have the server
// refuse the runner's indexes, its $merge and its writes halfway through a
// migration, so it is refused before anything runs.
//
// The cluster is read, never assumed: config.collections names a sharded
// collection's key (where the runner may read it), collStats says whether
// it is sharded (where config is closed to it), and hello says whether the
// server is a mongos at all. A server that is not (a replica set, FerretDB,
// DocumentDB) has nothing sharded: there a shard key is taken as asked, and
// the runner writes as it would to a sharded target, which such a server
// accepts too (how the shapes are tested without a cluster). Where config
// is closed to the runner, only whether the collection is sharded is
// checked, not on what.
package sharding

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/internal/servererr"
)

// Target is what the server says of the tenant accounts' collection.
type Target struct {
	// Cluster: the server is a mongos (hello's msg is "isdbgrid").
	Cluster bool
	// Sharded: the collection is sharded; Key its shard key, where the
	// runner could read it (KeyKnown).
	Sharded  bool
	Key      bson.D
	KeyKnown bool
	// Unique are the keys of the collection's unique indexes, as the
	// runner read them (nil if the collection does not exist yet), and
	// Names the names of all its indexes.
	Unique []bson.D
	Names  map[string]bool
}

// Inspect asks the server about the collection coll of db.
func Inspect(ctx context.Context, db *mongo.Database, coll string) (Target, error) {
	var t Target
	var hello struct {
		Msg string `bson:"msg"`
	}
	// hello, or isMaster on a server older than hello (before 4.2.10).
	err := db.RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello)
	if err != nil && servererr.IsRefusal(ctx, err) {
		err = db.RunCommand(ctx, bson.D{{Key: "isMaster", Value: 1}}).Decode(&hello)
	}
	if err != nil {
		return t, fmt.Errorf("ask the server whether it is a sharded cluster: %w", err)
	}
	t.Cluster = hello.Msg == "isdbgrid"
	if t.Unique, t.Names, err = indexes(ctx, db.Collection(coll)); err != nil {
		return t, err
	}
	if !t.Cluster {
		return t, nil
	}
	var entry struct {
		Key       bson.D `bson:"key"`
		Dropped   bool   `bson:"dropped"`
		Unsharded bool   `bson:"unsplittable"`
	}
	err = db.Client().Database("config").Collection("collections").FindOne(ctx, bson.D{{Key: "_id", Value: db.Name() + "." + coll}}).Decode(&entry)
	switch {
	case err == nil:
		// MongoDB 8 lists unsharded tracked collections too (unsplittable).
		t.Sharded, t.Key, t.KeyKnown = !entry.Dropped && !entry.Unsharded, entry.Key, !entry.Dropped && !entry.Unsharded
		return t, nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return t, nil
	case !servererr.IsUnauthorized(err):
		return t, fmt.Errorf("read the shard key of %s from config.collections: %w", coll, err)
	}
	// config is closed to this user: collStats still says whether.
	var stats struct {
		Sharded bool `bson:"sharded"`
	}
	if err := db.RunCommand(ctx, bson.D{{Key: "collStats", Value: coll}}).Decode(&stats); err != nil && !servererr.IsNotFound(err) {
		return t, fmt.Errorf("ask whether %s is sharded (collStats): %w", coll, err)
	}
	t.Sharded = stats.Sharded
	return t, nil
}

// Shard shards the collection coll of db on key where the server is a
// mongos (enableSharding, then shardCollection), and does nothing
// elsewhere or without a key: what an operator does before the migration
// (README, "On a sharded cluster"). The runner itself never shards; the
// test suite and the load test do, with RUNNER_TENANTS_SHARD_KEY.
func Shard(ctx context.Context, db *mongo.Database, coll string, key model.ShardKey) error {
	if !key.Sharded() {
		return nil
	}
	t, err := Inspect(ctx, db, coll)
	if err != nil || !t.Cluster {
		return err
	}
	spec := bson.D{}
	for _, f := range key.Fields() {
		spec = append(spec, bson.E{Key: f, Value: 1})
	}
	admin := db.Client().Database("admin")
	ns := db.Name() + "." + coll
	for _, cmd := range []bson.D{
		{{Key: "enableSharding", Value: db.Name()}},
		{{Key: "shardCollection", Value: ns}, {Key: "key", Value: spec}},
	} {
		if err := admin.RunCommand(ctx, cmd).Err(); err != nil {
			return fmt.Errorf("shard %s on %s: %w", ns, keyText(spec), err)
		}
	}
	return nil
}

func indexes(ctx context.Context, coll *mongo.Collection) (unique []bson.D, names map[string]bool, err error) {
	names = map[string]bool{}
	cur, err := coll.Indexes().List(ctx)
	if servererr.IsNotFound(err) {
		return nil, names, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list the indexes of %s: %w", coll.Name(), err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var ix struct {
			Name   string `bson:"name"`
			Key    bson.D `bson:"key"`
			Unique bool   `bson:"unique"`
		}
		if err := cur.Decode(&ix); err != nil {
			return nil, nil, fmt.Errorf("read the indexes of %s: %w", coll.Name(), err)
		}
		names[ix.Name] = true
		if ix.Unique {
			unique = append(unique, ix.Key)
		}
	}
	return unique, names, cur.Err()
}

// ErrShardKey: tenants.shard_key disagrees with the cluster (KeyError).
var ErrShardKey = errors.New("tenants.shard_key disagrees with the cluster")

// KeyError says how tenants.shard_key and the cluster disagree.
type KeyError struct {
	Collection string
	Configured model.ShardKey
	// What the cluster has, in words.
	Cluster string
	// Fix is what to do, in words.
	Fix string
}

func (e *KeyError) Error() string {
	conf := "empty"
	if e.Configured.Sharded() {
		conf = string(e.Configured)
	}
	return fmt.Sprintf("tenants.shard_key is %s but %s %s: %s", conf, e.Collection, e.Cluster, e.Fix)
}

func (e *KeyError) Unwrap() error { return ErrShardKey }

// Check refuses a configured shard key that disagrees with t: a sharded
// collection the configuration does not name the key of, a key other
// than the one the runner can write to, a configured key on a cluster
// where the collection is not sharded, or a collection whose indexes
// step 1 made for another key (stepOneApplied: it will not make them
// again).
func (t Target) Check(want model.ShardKey, coll string, stepOneApplied bool) error {
	e := &KeyError{Collection: coll, Configured: want}
	switch {
	case t.Sharded && t.KeyKnown && !sameKey(t.Key, want):
		e.Cluster = "is sharded on " + keyText(t.Key)
		e.Fix = "the runner writes to a tenants_accounts sharded on {org_id: 1} only, or not sharded"
		if sameKey(t.Key, model.ShardByOrg) {
			e.Fix = "set tenants.shard_key: org_id"
		}
		return e
	case t.Sharded && !want.Sharded():
		e.Cluster = "is sharded"
		e.Fix = "set tenants.shard_key to its shard key (org_id)"
		return e
	case t.Cluster && !t.Sharded && want.Sharded():
		e.Cluster = "is not sharded on this cluster"
		e.Fix = fmt.Sprintf("shard it first (sh.shardCollection(\"<db>.%s\", {org_id: 1})), or leave tenants.shard_key empty", coll)
		return e
	}
	if stepOneApplied && want.Sharded() && !hasKey(t.Unique, want.UniqueKey()) {
		e.Cluster = "has no unique index " + keyText(want.UniqueKey()) + " (step 1 ran without the shard key)"
		e.Fix = "leave tenants.shard_key empty, undo every step (runner down, to version 0), then migrate again with it set"
		return e
	}
	return nil
}

// sameKey: key is the ranged shard key want ({org_id: 1}; {} unsharded).
func sameKey(key bson.D, want model.ShardKey) bool {
	var spec bson.D
	for _, f := range want.Fields() {
		spec = append(spec, bson.E{Key: f, Value: 1})
	}
	return ascending(key, spec)
}

func hasKey(keys []bson.D, want bson.D) bool {
	return slices.ContainsFunc(keys, func(k bson.D) bool { return ascending(k, want) })
}

// ascending: key has want's fields in want's order, each ascending (1 in
// any number type, as servers report it).
func ascending(key, want bson.D) bool {
	if len(key) != len(want) {
		return false
	}
	for i, e := range key {
		if e.Key != want[i].Key || !isOne(e.Value) {
			return false
		}
	}
	return true
}

func isOne(v any) bool {
	switch n := v.(type) {
	case int32:
		return n == 1
	case int64:
		return n == 1
	case float64:
		return n == 1
	}
	return false
}

func keyText(key bson.D) string {
	parts := make([]string, len(key))
	for i, e := range key {
		parts[i] = fmt.Sprintf("%s: %v", e.Key, e.Value)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
