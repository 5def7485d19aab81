// Package testenv gives integration tests a MongoDB server: the one named by
// MONGODB_URI when it is set (a real MongoDB), else an embedded FerretDB
// started in-process for the test binary.
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
	"github.com/sirupsen/logrus"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/sharding"
	"github.com/tenantmigrate/runner/scripts/embedded/server"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
)

// Env is the server a test binary uses.
type Env struct {
	URI string
	// Embedded is the in-process server, nil on a real MongoDB.
	Embedded *server.Server
	dir      string
	// ShardKey is tenants.shard_key for every test's runner: the runner's
	// own RUNNER_TENANTS_SHARD_KEY, which the binaries the tests start read
	// themselves (testConfig and the phases' tests set it in process). On
	// a mongos, Database shards each test's tenant accounts on it.
	ShardKey model.ShardKey

	mu sync.Mutex
	// legacy is, per test database, the hash of its legacy collections as
	// the test itself last left them (see Seeded).
	legacy map[string]string
}

// LegacyCollections are the collections the runner only reads.
func LegacyCollections() []string {
	n := model.DefaultNames()
	return []string{n.Accounts, n.ApplicationsOrganizations}
}

// Quiet is a logger that writes nothing: the code under test logs to it.
func Quiet() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// ReadAll decodes every document of coll, for a test's small collections.
func ReadAll[T any](t testing.TB, coll *mongo.Collection) []T {
	t.Helper()
	ctx := context.Background()
	cur, err := coll.Find(ctx, bson.D{})
	if err != nil {
		t.Fatalf("read %s: %v", coll.Name(), err)
	}
	var out []T
	if err := cur.All(ctx, &out); err != nil {
		t.Fatalf("read %s: %v", coll.Name(), err)
	}
	return out
}

// Real reports whether the tests run against MONGODB_URI.
func (e *Env) Real() bool { return e.Embedded == nil }

// Main starts the server, runs the tests and stops it: call it from TestMain
// as os.Exit(testenv.Main(m, &env)).
func Main(m *testing.M, env **Env) int {
	e, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	*env = e
	defer e.Stop()
	return m.Run()
}

// ShardKeyVar names the shard key the whole suite runs with.
const ShardKeyVar = "RUNNER_TENANTS_SHARD_KEY"

// Start starts (or names) the server.
func Start() (*Env, error) {
	key, err := model.ParseShardKey(os.Getenv(ShardKeyVar))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ShardKeyVar, err)
	}
	if uri := os.Getenv("MONGODB_URI"); uri != "" {
		return &Env{URI: uri, ShardKey: key}, nil
	}
	dir, err := os.MkdirTemp("", "runner-embedded-")
	if err != nil {
		return nil, err
	}
	opts := server.Options{Dir: dir}
	// TESTENV_LOG names a file for the embedded server's own log.
	if path := os.Getenv("TESTENV_LOG"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return nil, err
		}
		opts.Log = f
	}
	s, err := server.Start(context.Background(), opts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &Env{URI: s.URI(), Embedded: s, dir: dir, ShardKey: key}, nil
}

// Stop stops an embedded server and removes its files.
func (e *Env) Stop() {
	if e.Embedded != nil {
		e.Embedded.Stop()
		os.RemoveAll(e.dir)
	}
}

// DBName is a database name unique to this test.
func DBName(t testing.TB) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	return "t_" + name + "_" + hex.EncodeToString(b)
}

// Connect returns a client for the test, disconnected at cleanup.
func (e *Env) Connect(t testing.TB) *mongo.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := mongo.Connect(ctx, options.Client().ApplyURI(e.URI))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// SlowShardKey reports whether the suite runs with a shard key on
// FerretDB 2 (DocumentDB), whose unique index led by org_id checks every
// tenant of the org at each insert: tests sized for a real engine take a
// smaller fixture there. FerretDB 2 names itself in buildInfo.ferretdb.
func (e *Env) SlowShardKey(t testing.TB) bool {
	t.Helper()
	if !e.Real() || e.ShardKey == "" {
		return false
	}
	var info struct {
		FerretDB *struct {
			Version string `bson:"version"`
		} `bson:"ferretdb"`
	}
	if err := e.Connect(t).Database("admin").RunCommand(context.Background(), bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		t.Fatalf("buildInfo: %v", err)
	}
	return info.FerretDB != nil && strings.HasPrefix(info.FerretDB.Version, "v2")
}

// Proxied puts a toxiproxy, in process, between a client and the test
// server, and returns a URI through it with the URI options given.
// Stopping the proxy cuts every connection at once, as a server that dies
// does (a stopped embedded server lets its clients finish for a few
// seconds first).
func (e *Env) Proxied(t testing.TB, uriOptions map[string]string) (*toxiproxy.Proxy, string) {
	t.Helper()
	u, err := url.Parse(e.URI)
	if err != nil {
		t.Fatal(err)
	}
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "mongodb", "127.0.0.1:0", u.Host)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p, Through(u, p.Listen, uriOptions)
}

// Through is the URI u with its host replaced by listen and the options
// added to its query (directConnection among them). MONGODB_URI may end
// in "/" or not, and hold a query: without a path, one is added, for the
// driver refuses a query with none ("must have a / before the query ?").
func Through(u *url.URL, listen string, uriOptions map[string]string) string {
	through := *u
	through.Host = listen
	if through.Path == "" {
		through.Path = "/"
	}
	q := through.Query()
	q.Set("directConnection", "true")
	for k, v := range uriOptions {
		q.Set(k, v)
	}
	through.RawQuery = q.Encode()
	return through.String()
}

// Database returns a fresh database for the test, dropped at cleanup.
//
// It guards the legacy collections: at cleanup they must hash the same as
// when the test last wrote them itself (Seeded, Load), so a test fails if
// anything else (the runner) wrote them. A test that already failed is not
// checked.
func (e *Env) Database(t testing.TB) *mongo.Database {
	t.Helper()
	db := e.Connect(t).Database(DBName(t))
	t.Cleanup(func() { _ = db.Drop(context.Background()) })
	// As the operator does before the migration, on a mongos.
	if err := sharding.Shard(context.Background(), db, model.DefaultNames().TenantsAccounts, e.ShardKey); err != nil {
		t.Fatal(err)
	}
	e.Seeded(t, db)
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		e.mu.Lock()
		want := e.legacy[db.Name()]
		delete(e.legacy, db.Name())
		e.mu.Unlock()
		if got := legacyHash(t, db); got != want {
			t.Errorf("the legacy collections of %s changed after the test last wrote them: something else wrote them", db.Name())
		}
	})
	return db
}

// Seeded records the legacy collections of db as the test itself has just
// left them: call it after every write the test makes to them.
func (e *Env) Seeded(t testing.TB, db *mongo.Database) {
	t.Helper()
	h := legacyHash(t, db)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.legacy == nil {
		e.legacy = map[string]string{}
	}
	e.legacy[db.Name()] = h
}

// Load loads a fixture into db (gen.Load) and records it (Seeded).
func (e *Env) Load(t testing.TB, db *mongo.Database, opts gen.Options) gen.Expectations {
	t.Helper()
	exp, err := gen.Load(context.Background(), db, opts)
	if err != nil {
		t.Fatalf("load the fixture: %v", err)
	}
	e.Seeded(t, db)
	return exp
}

// legacyHash hashes every document of the legacy collections.
func legacyHash(t testing.TB, db *mongo.Database) string {
	t.Helper()
	h := sha256.New()
	for _, c := range LegacyCollections() {
		fmt.Fprintf(h, "%s\n%v\n", c, Dump(t, db.Collection(c)))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Dump hashes every document of coll, keyed by its _id: two dumps are equal
// when the collections hold the same documents, byte for byte.
func Dump(t testing.TB, coll *mongo.Collection) map[string]string {
	t.Helper()
	cur, err := coll.Find(context.Background(), bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatalf("dump %s: %v", coll.Name(), err)
	}
	defer cur.Close(context.Background())
	out := map[string]string{}
	for cur.Next(context.Background()) {
		out[cur.Current.Lookup("_id").String()] = fmt.Sprintf("%x", sha256.Sum256(cur.Current))
	}
	if err := cur.Err(); err != nil {
		t.Fatalf("dump %s: %v", coll.Name(), err)
	}
	return out
}
