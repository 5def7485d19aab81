package server

// TestProbeCapabilities is an investigation tool, not a regression test: it
// starts the embedded FerretDB (SQLite backend) and records which MongoDB
// features it supports, as a table in the test log. It only fails when the
// server cannot start. Run it with:
//
//	PROBE=1 go test -run TestProbeCapabilities -v ./scripts/embedded/server/

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

type probeRow struct{ name, status, detail string }

type prober struct {
	t    *testing.T
	ctx  context.Context
	cl   *mongo.Client
	db   *mongo.Database
	rows []probeRow
	seq  int
}

// fresh returns a new, not yet existing collection.
func (p *prober) fresh(prefix string) *mongo.Collection {
	p.seq++
	return p.db.Collection(fmt.Sprintf("%s_%03d", prefix, p.seq))
}

func (p *prober) add(name, status, detail string) {
	p.rows = append(p.rows, probeRow{name, status, detail})
	p.t.Logf("%-62s | %-13s | %s", name, status, detail)
}

// res records a supported / not supported / error row from err.
func (p *prober) res(name string, err error, okDetail string) bool {
	if err == nil {
		p.add(name, "supported", okDetail)
		return true
	}
	st := "error"
	if unsupported(err) {
		st = "NOT supported"
	}
	p.add(name, st, describe(err))
	return false
}

// check records a row for an operation that must both succeed and give the
// expected result; got/want are compared as extended JSON strings.
func (p *prober) check(name string, err error, got, want string) {
	if err != nil {
		p.res(name, err, "")
		return
	}
	if got == want {
		p.add(name, "supported", got)
		return
	}
	p.add(name, "WRONG RESULT", fmt.Sprintf("got %s want %s", got, want))
}

func (p *prober) yesno(name string, yes bool, detail string) {
	st := "no"
	if yes {
		st = "yes"
	}
	p.add(name, st, detail)
}

func (p *prober) run(name string, timeout time.Duration, fn func(*prober)) {
	parent := p.ctx
	ctx, cancel := context.WithTimeout(parent, timeout)
	p.ctx = ctx
	defer func() {
		cancel()
		p.ctx = parent
		if r := recover(); r != nil {
			p.add(name, "error", fmt.Sprintf("probe panicked: %v", r))
		}
	}()
	p.t.Logf("===== %s =====", name)
	fn(p)
}

// describe renders a driver/server error with its code, name and message.
func describe(err error) string {
	if err == nil {
		return "<nil>"
	}
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		s := fmt.Sprintf("code=%d (%s): %s", ce.Code, ce.Name, ce.Message)
		if len(ce.Labels) > 0 {
			s += fmt.Sprintf(" labels=%v", ce.Labels)
		}
		return s
	}
	var we mongo.WriteException
	if errors.As(err, &we) {
		var parts []string
		for _, e := range we.WriteErrors {
			parts = append(parts, fmt.Sprintf("code=%d: %s", e.Code, e.Message))
		}
		if we.WriteConcernError != nil {
			parts = append(parts, "writeConcern: "+we.WriteConcernError.Message)
		}
		return "WriteException{" + strings.Join(parts, "; ") + "}"
	}
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) {
		var parts []string
		for _, e := range bwe.WriteErrors {
			parts = append(parts, fmt.Sprintf("op#%d code=%d: %s", e.Index, e.Code, e.Message))
		}
		return "BulkWriteException{" + strings.Join(parts, "; ") + "}"
	}
	return fmt.Sprintf("%T: %v", err, err)
}

func unsupported(err error) bool {
	var se mongo.ServerError
	if errors.As(err, &se) {
		// NotImplemented, CommandNotFound, CommandNotSupported,
		// unrecognized pipeline stage, InvalidPipelineOperator.
		for _, c := range []int{238, 59, 115, 40324, 168, 31325} {
			if se.HasErrorCode(c) {
				return true
			}
		}
	}
	m := strings.ToLower(err.Error())
	for _, s := range []string{"not implemented", "not supported", "unsupported", "unrecognized"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

func ej(v any) string {
	b, err := bson.MarshalExtJSON(v, false, false)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return string(b)
}

// ejv renders a single value as relaxed extended JSON.
func ejv(v any) string {
	s := ej(bson.D{{Key: "v", Value: v}})
	return s[5 : len(s)-1]
}

func ejs(docs []bson.Raw) string {
	parts := make([]string, len(docs))
	for i, d := range docs {
		parts[i] = ej(d)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("...(%d chars)", len(s))
}

// findAll returns the documents matching filter, sorted by _id.
func findAll(ctx context.Context, c *mongo.Collection, filter any, opts ...*options.FindOptions) ([]bson.Raw, error) {
	if len(opts) == 0 {
		opts = []*options.FindOptions{options.Find().SetSort(bson.D{{Key: "_id", Value: 1}})}
	}
	cur, err := c.Find(ctx, filter, opts...)
	if err != nil {
		return nil, err
	}
	var out []bson.Raw
	err = cur.All(ctx, &out)
	return out, err
}

func findOneJSON(ctx context.Context, c *mongo.Collection, id any) string {
	var d bson.Raw
	if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		return "<" + describe(err) + ">"
	}
	return ej(d)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProbeCapabilities(t *testing.T) {
	if os.Getenv("PROBE") != "1" {
		t.Skip("investigation probe of the embedded FerretDB; run with PROBE=1")
	}
	ctx := context.Background()
	var ferretLog syncBuffer
	s, err := Start(ctx, Options{Dir: t.TempDir(), Log: &ferretLog})
	if err != nil {
		t.Fatalf("embedded server did not start: %v", err)
	}
	defer s.Stop()
	t.Logf("server URI: %s", s.URI())

	cl, err := mongo.Connect(ctx, options.Client().ApplyURI(s.URI()))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cl.Disconnect(context.Background())
	if err := cl.Ping(ctx, nil); err != nil {
		t.Fatalf("embedded server does not answer ping: %v", err)
	}

	p := &prober{t: t, ctx: ctx, cl: cl, db: cl.Database("probe")}
	probes := []struct {
		name    string
		timeout time.Duration
		fn      func(*prober)
	}{
		{"1 lease lock", time.Minute, probeLease},
		{"1 lease lock under concurrency", 2 * time.Minute, probeLeaseRace},
		{"2 unique index on array sub-field", time.Minute, probeArrayUnique},
		{"3 compound / partial / sparse / TTL indexes", time.Minute, probeIndexKinds},
		{"4 listIndexes / dropIndexes", time.Minute, probeListDropIndexes},
		{"5 aggregation", 2 * time.Minute, probeAggregation},
		{"6 update features", time.Minute, probeUpdates},
		{"7 find features", 2 * time.Minute, probeFind},
		{"8 hello / isMaster / buildInfo / $merge detection", time.Minute, probeHello},
		{"9 transactions", time.Minute, probeTransactions},
		{"10 large documents", 2 * time.Minute, probeLargeDocs},
		{"11 timing", 8 * time.Minute, probeTiming},
		{"13 collection names / drop missing", time.Minute, probeNames},
	}
	for _, pr := range probes {
		p.run(pr.name, pr.timeout, pr.fn)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\n%-62s | %-13s | %s\n%s\n", "PROBE", "RESULT", "DETAIL / ERROR", strings.Repeat("-", 140))
	for _, r := range p.rows {
		fmt.Fprintf(&b, "%-62s | %-13s | %s\n", r.name, r.status, trunc(r.detail, 600))
	}
	t.Logf("SUMMARY TABLE%s", b.String())
	if l := ferretLog.String(); l != "" {
		if len(l) > 8000 {
			l = "..." + l[len(l)-8000:]
		}
		t.Logf("FerretDB log (warn+):\n%s", l)
	}
}

// ---------------------------------------------------------------- probe 1

func probeLease(p *prober) {
	ctx := p.ctx
	type lock struct {
		Owner     string    `bson:"owner"`
		ExpiresAt time.Time `bson:"expires_at"`
	}
	read := func(c *mongo.Collection) lock {
		var l lock
		_ = c.FindOne(ctx, bson.D{{Key: "_id", Value: "lock"}}).Decode(&l)
		return l
	}
	put := func(c *mongo.Collection, owner string, exp time.Time) {
		_, err := c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: "lock"}},
			bson.D{{Key: "owner", Value: owner}, {Key: "expires_at", Value: exp}}, options.Replace().SetUpsert(true))
		if err != nil {
			p.add("1 setup ReplaceOne upsert", "error", describe(err))
		}
	}
	filter := func(owner string, now time.Time) bson.D {
		return bson.D{{Key: "_id", Value: "lock"}, {Key: "$or", Value: bson.A{
			bson.D{{Key: "expires_at", Value: bson.D{{Key: "$lt", Value: now}}}},
			bson.D{{Key: "owner", Value: owner}},
		}}}
	}
	set := func(owner string, exp time.Time) bson.D {
		return bson.D{{Key: "$set", Value: bson.D{{Key: "owner", Value: owner}, {Key: "expires_at", Value: exp}}}}
	}

	type acquirer func(c *mongo.Collection, now time.Time) (string, error)
	updateOne := func(c *mongo.Collection, now time.Time) (string, error) {
		r, err := c.UpdateOne(ctx, filter("me", now), set("me", now.Add(time.Minute)), options.Update().SetUpsert(true))
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("matched=%d modified=%d upsertedID=%v", r.MatchedCount, r.ModifiedCount, r.UpsertedID), nil
	}
	findOneAndUpdate := func(c *mongo.Collection, now time.Time) (string, error) {
		var d bson.Raw
		err := c.FindOneAndUpdate(ctx, filter("me", now), set("me", now.Add(time.Minute)),
			options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&d)
		if err != nil {
			return "", err
		}
		return "returned " + ej(d), nil
	}

	for _, m := range []struct {
		name string
		fn   acquirer
	}{{"UpdateOne", updateOne}, {"FindOneAndUpdate", findOneAndUpdate}} {
		c := p.fresh("lease")
		now := time.Now().UTC().Truncate(time.Millisecond)

		detail, err := m.fn(c, now)
		l := read(c)
		p.yesno("1 "+m.name+": lock absent -> acquired by upsert?", err == nil && l.Owner == "me",
			fmt.Sprintf("%s err=%s owner=%q", detail, describe(err), l.Owner))

		put(c, "other", now.Add(time.Hour))
		detail, err = m.fn(c, now)
		l = read(c)
		p.yesno("1 "+m.name+": held by other -> IsDuplicateKeyError?", mongo.IsDuplicateKeyError(err),
			fmt.Sprintf("%s err=%s owner after=%q", detail, describe(err), l.Owner))

		put(c, "me", now.Add(time.Hour))
		detail, err = m.fn(c, now)
		l = read(c)
		p.yesno("1 "+m.name+": held by me -> renewed?", err == nil && l.Owner == "me" && l.ExpiresAt.Equal(now.Add(time.Minute)),
			fmt.Sprintf("%s err=%s owner=%q expires=%s", detail, describe(err), l.Owner, l.ExpiresAt.Format(time.RFC3339Nano)))

		put(c, "other", now.Add(-time.Minute))
		detail, err = m.fn(c, now)
		l = read(c)
		n, _ := c.CountDocuments(ctx, bson.D{})
		p.yesno("1 "+m.name+": expired other -> taken over?", err == nil && l.Owner == "me" && n == 1,
			fmt.Sprintf("%s err=%s owner=%q docs=%d", detail, describe(err), l.Owner, n))
	}
}

// probeLeaseRace: many goroutines race to take over one expired lock (and to
// acquire an absent one). With MongoDB exactly one wins per round; the others
// get a duplicate key error or match nothing.
func probeLeaseRace(p *prober) {
	ctx := p.ctx
	const rounds, workers = 20, 8
	for _, mode := range []string{"expired", "absent"} {
		multi, zero, dupErrs, otherErrs := 0, 0, 0, 0
		var otherSample string
		for r := 0; r < rounds; r++ {
			c := p.fresh("lease_race")
			now := time.Now().UTC().Truncate(time.Millisecond)
			if mode == "expired" {
				_, _ = c.InsertOne(ctx, bson.D{{Key: "_id", Value: "lock"}, {Key: "owner", Value: "old"}, {Key: "expires_at", Value: now.Add(-time.Minute)}})
			}
			var mu sync.Mutex
			var wg sync.WaitGroup
			winners := 0
			start := make(chan struct{})
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func(owner string) {
					defer wg.Done()
					<-start
					f := bson.D{{Key: "_id", Value: "lock"}, {Key: "$or", Value: bson.A{
						bson.D{{Key: "expires_at", Value: bson.D{{Key: "$lt", Value: now}}}},
						bson.D{{Key: "owner", Value: owner}},
					}}}
					u := bson.D{{Key: "$set", Value: bson.D{{Key: "owner", Value: owner}, {Key: "expires_at", Value: now.Add(time.Minute)}}}}
					res, err := c.UpdateOne(ctx, f, u, options.Update().SetUpsert(true))
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil && (res.MatchedCount == 1 || res.UpsertedCount == 1):
						winners++
					case err == nil:
					case mongo.IsDuplicateKeyError(err):
						dupErrs++
					default:
						otherErrs++
						otherSample = describe(err)
					}
				}(fmt.Sprintf("w%d", w))
			}
			close(start)
			wg.Wait()
			if winners > 1 {
				multi++
			}
			if winners == 0 {
				zero++
			}
			_ = c.Drop(ctx)
		}
		p.yesno(fmt.Sprintf("1 race (%s lock): >1 winner in any round? (%d rounds x %d workers)", mode, rounds, workers), multi > 0,
			fmt.Sprintf("rounds with >1 winner=%d, with 0 winners=%d, dup-key losers=%d, other errors=%d %s", multi, zero, dupErrs, otherErrs, otherSample))
	}
}

// ---------------------------------------------------------------- probe 2

func arrDoc(id string, ids ...string) bson.D {
	a := bson.A{}
	for _, x := range ids {
		a = append(a, bson.D{{Key: "id", Value: x}, {Key: "role", Value: "r"}})
	}
	return bson.D{{Key: "_id", Value: id}, {Key: "org_apps_memberships", Value: a}}
}

// uniqueBehaviour inserts docs into a collection that has a unique index on
// org_apps_memberships.id and reports whether duplicates are rejected.
func (p *prober) uniqueBehaviour(prefix string, c *mongo.Collection) {
	ctx := p.ctx
	_, err1 := c.InsertOne(ctx, arrDoc("d1", "a", "b"))
	_, err2 := c.InsertOne(ctx, arrDoc("d2", "b", "c"))
	p.yesno(prefix+" arrays share an element id -> dup key?", mongo.IsDuplicateKeyError(err2),
		fmt.Sprintf("insert d1 err=%s; insert d2 err=%s", describe(err1), describe(err2)))
	_, err3 := c.InsertOne(ctx, arrDoc("d3", "a", "b"))
	p.yesno(prefix+" identical array -> dup key?", mongo.IsDuplicateKeyError(err3), "insert d3 err="+describe(err3))
	_, err4 := c.InsertOne(ctx, bson.D{{Key: "_id", Value: "s1"}, {Key: "org_apps_memberships", Value: bson.D{{Key: "id", Value: "x"}}}})
	_, err5 := c.InsertOne(ctx, bson.D{{Key: "_id", Value: "s2"}, {Key: "org_apps_memberships", Value: bson.D{{Key: "id", Value: "x"}}}})
	p.yesno(prefix+" non-array subdoc {id:x} twice -> dup key?", mongo.IsDuplicateKeyError(err5),
		fmt.Sprintf("insert s1 err=%s; insert s2 err=%s", describe(err4), describe(err5)))
	_, err6 := c.InsertOne(ctx, bson.D{{Key: "_id", Value: "n1"}})
	_, err7 := c.InsertOne(ctx, bson.D{{Key: "_id", Value: "n2"}})
	p.yesno(prefix+" two docs missing the field -> dup key?", mongo.IsDuplicateKeyError(err7),
		fmt.Sprintf("insert n1 err=%s; insert n2 err=%s", describe(err6), describe(err7)))
}

func (p *prober) listIndexes(c *mongo.Collection) (string, error) {
	var res bson.Raw
	err := p.db.RunCommand(p.ctx, bson.D{{Key: "listIndexes", Value: c.Name()}}).Decode(&res)
	if err != nil {
		return "", err
	}
	fb, err := res.LookupErr("cursor", "firstBatch")
	if err != nil {
		return ej(res), nil
	}
	return ejv(fb), nil
}

func probeArrayUnique(p *prober) {
	ctx := p.ctx
	c := p.fresh("uniq_arr_drv")
	name, err := c.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "org_apps_memberships.id", Value: 1}},
		Options: options.Index().SetUnique(true),
	})
	if p.res("2 driver createIndexes unique {org_apps_memberships.id:1}", err, "name="+name) {
		li, _ := p.listIndexes(c)
		p.add("2 driver: listIndexes after create", "info", li)
		p.uniqueBehaviour("2 driver idx:", c)
	}

	// golang-migrate JSON command format: a JSON array of command documents,
	// parsed with bson.UnmarshalExtJSON(data, true, &[]bson.D) and each run
	// with db.RunCommand.
	for _, v := range []struct{ label, keyVal string }{
		{"canonical {$numberInt:1}", `{"$numberInt":"1"}`},
		{"relaxed 1", `1`},
	} {
		c2 := p.fresh("uniq_arr_cmd")
		js := fmt.Sprintf(`[{"createIndexes":%q,"indexes":[{"key":{"org_apps_memberships.id":%s},"name":"org_apps_memberships_id_unique","unique":true}]}]`, c2.Name(), v.keyVal)
		var cmds []bson.D
		if err := bson.UnmarshalExtJSON([]byte(js), true, &cmds); err != nil {
			p.add("2 RunCommand ext JSON ("+v.label+"): UnmarshalExtJSON(canonical=true)", "error", describe(err))
			continue
		}
		var res bson.Raw
		var err error
		for _, cmd := range cmds {
			if err = p.db.RunCommand(ctx, cmd).Decode(&res); err != nil {
				break
			}
		}
		if p.res("2 RunCommand createIndexes ext JSON ("+v.label+")", err, "reply "+ej(res)) {
			li, _ := p.listIndexes(c2)
			p.add("2 RunCommand ("+v.label+"): listIndexes", "info", li)
			p.uniqueBehaviour("2 cmd idx ("+v.label+"):", c2)
		}
	}
}

// ---------------------------------------------------------------- probe 3

func probeIndexKinds(p *prober) {
	ctx := p.ctx
	compoundKeys := bson.D{{Key: "org_id", Value: 1}, {Key: "auth_types.auth_type_id", Value: 1}, {Key: "auth_types.identifier", Value: 1}}
	authDoc := func(id string) bson.D {
		return bson.D{{Key: "_id", Value: id}, {Key: "org_id", Value: "o1"}, {Key: "auth_types", Value: bson.A{
			bson.D{{Key: "auth_type_id", Value: "t1"}, {Key: "identifier", Value: "alice"}},
		}}}
	}

	c := p.fresh("compound")
	name, err := c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: compoundKeys})
	p.res("3 compound {org_id,auth_types.auth_type_id,auth_types.identifier}", err, "name="+name)

	c = p.fresh("compound_uniq")
	name, err = c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: compoundKeys, Options: options.Index().SetUnique(true)})
	if p.res("3 same compound, unique:true", err, "name="+name) {
		_, e1 := c.InsertOne(ctx, authDoc("a1"))
		_, e2 := c.InsertOne(ctx, authDoc("a2"))
		p.yesno("3 compound unique: same org/auth_type/identifier (array) -> dup key?", mongo.IsDuplicateKeyError(e2),
			fmt.Sprintf("insert a1 err=%s; insert a2 err=%s", describe(e1), describe(e2)))
		sub := func(id string) bson.D {
			return bson.D{{Key: "_id", Value: id}, {Key: "org_id", Value: "o2"}, {Key: "auth_types", Value: bson.D{{Key: "auth_type_id", Value: "t1"}, {Key: "identifier", Value: "bob"}}}}
		}
		_, e3 := c.InsertOne(ctx, sub("b1"))
		_, e4 := c.InsertOne(ctx, sub("b2"))
		p.yesno("3 compound unique: same values as subdoc (no array) -> dup key?", mongo.IsDuplicateKeyError(e4),
			fmt.Sprintf("insert b1 err=%s; insert b2 err=%s", describe(e3), describe(e4)))
	}

	c = p.fresh("partial")
	name, err = c.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "email", Value: 1}},
		Options: options.Index().SetUnique(true).SetPartialFilterExpression(bson.D{{Key: "email", Value: bson.D{{Key: "$exists", Value: true}}}}),
	})
	p.res("3 partial index (unique, partialFilterExpression email $exists)", err, "name="+name)
	c = p.fresh("partial_nonuniq")
	name, err = c.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "email", Value: 1}},
		Options: options.Index().SetPartialFilterExpression(bson.D{{Key: "deleted", Value: false}}),
	})
	p.res("3 partial index (non-unique, {deleted:false})", err, "name="+name)

	c = p.fresh("sparse")
	name, err = c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetSparse(true)})
	p.res("3 sparse index", err, "name="+name)
	c = p.fresh("sparse_uniq")
	name, err = c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetSparse(true).SetUnique(true)})
	p.res("3 sparse unique index", err, "name="+name)

	c = p.fresh("ttl")
	name, err = c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "expires_at", Value: 1}}, Options: options.Index().SetExpireAfterSeconds(0)})
	p.res("3 TTL index (expireAfterSeconds:0)", err, "name="+name)

	c = p.fresh("desc")
	name, err = c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "org_id", Value: 1}, {Key: "created_at", Value: -1}}})
	p.res("3 compound asc/desc {org_id:1, created_at:-1}", err, "name="+name)

	c = p.fresh("uniq_scalar")
	name, err = c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetUnique(true)})
	if p.res("3 unique scalar index {email:1}", err, "name="+name) {
		_, e1 := c.InsertOne(ctx, bson.D{{Key: "email", Value: "a@x"}})
		_, e2 := c.InsertOne(ctx, bson.D{{Key: "email", Value: "a@x"}})
		p.yesno("3 unique scalar: duplicate email -> IsDuplicateKeyError?", mongo.IsDuplicateKeyError(e2),
			fmt.Sprintf("first err=%s; second err=%s", describe(e1), describe(e2)))
	}
	// Unique index created on a collection that already holds duplicates.
	c = p.fresh("uniq_late")
	_, _ = c.InsertMany(ctx, []any{bson.D{{Key: "k", Value: 1}}, bson.D{{Key: "k", Value: 1}}})
	_, err = c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "k", Value: 1}}, Options: options.Index().SetUnique(true)})
	p.yesno("3 unique index over existing duplicates -> rejected?", err != nil, "err="+describe(err))

	c = p.fresh("text")
	name, err = c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "body", Value: "text"}}})
	p.res("3 text index", err, "name="+name)
}

// ---------------------------------------------------------------- probe 4

func probeListDropIndexes(p *prober) {
	ctx := p.ctx
	c := p.fresh("idx")
	_, _ = c.InsertOne(ctx, bson.D{{Key: "a", Value: 1}})
	var res bson.Raw
	err := p.db.RunCommand(ctx, bson.D{{Key: "createIndexes", Value: c.Name()}, {Key: "indexes", Value: bson.A{
		bson.D{{Key: "key", Value: bson.D{{Key: "a", Value: 1}}}, {Key: "name", Value: "idx_a"}},
		bson.D{{Key: "key", Value: bson.D{{Key: "b", Value: 1}}}, {Key: "name", Value: "idx_b"}},
		bson.D{{Key: "key", Value: bson.D{{Key: "c", Value: 1}}}, {Key: "name", Value: "idx_c"}},
		bson.D{{Key: "key", Value: bson.D{{Key: "d", Value: 1}}}, {Key: "name", Value: "idx_d"}},
	}}}).Decode(&res)
	p.res("4 RunCommand createIndexes (4 named indexes)", err, ej(res))

	li, err := p.listIndexes(c)
	p.res("4 RunCommand listIndexes", err, li)

	err = p.db.RunCommand(ctx, bson.D{{Key: "dropIndexes", Value: c.Name()}, {Key: "index", Value: "idx_a"}}).Decode(&res)
	li, _ = p.listIndexes(c)
	p.res("4 RunCommand dropIndexes by name (idx_a)", err, "reply "+ej(res)+" remaining "+li)

	err = p.db.RunCommand(ctx, bson.D{{Key: "dropIndexes", Value: c.Name()}, {Key: "index", Value: bson.A{"idx_b", "idx_c"}}}).Err()
	li, _ = p.listIndexes(c)
	p.res("4 RunCommand dropIndexes by name list [idx_b,idx_c]", err, "remaining "+li)

	err = p.db.RunCommand(ctx, bson.D{{Key: "dropIndexes", Value: c.Name()}, {Key: "index", Value: bson.D{{Key: "d", Value: 1}}}}).Err()
	li, _ = p.listIndexes(c)
	p.res("4 RunCommand dropIndexes by key spec {d:1}", err, "remaining "+li)

	err = p.db.RunCommand(ctx, bson.D{{Key: "dropIndexes", Value: c.Name()}, {Key: "index", Value: "no_such_index"}}).Err()
	p.add("4 dropIndexes missing name -> error text", map[bool]string{true: "error", false: "no error"}[err != nil], describe(err))

	_, _ = c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "e", Value: 1}}, Options: options.Index().SetName("idx_e")})
	_, err = c.Indexes().DropOne(ctx, "idx_e")
	p.res("4 driver Indexes().DropOne(name)", err, "")

	_, _ = c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "f", Value: 1}}})
	err = p.db.RunCommand(ctx, bson.D{{Key: "dropIndexes", Value: c.Name()}, {Key: "index", Value: "*"}}).Err()
	li, _ = p.listIndexes(c)
	p.res("4 RunCommand dropIndexes \"*\"", err, "remaining "+li)

	err = p.db.RunCommand(ctx, bson.D{{Key: "listIndexes", Value: "no_such_collection_xyz"}}).Err()
	p.add("4 listIndexes on missing collection", map[bool]string{true: "error", false: "no error"}[err != nil], describe(err))

	// Same index twice (idempotent) and same name with different key.
	c2 := p.fresh("idx_dup")
	_, e1 := c2.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "a", Value: 1}}, Options: options.Index().SetName("x")})
	_, e2 := c2.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "a", Value: 1}}, Options: options.Index().SetName("x")})
	p.yesno("4 createIndexes same spec twice -> idempotent (no error)?", e1 == nil && e2 == nil, fmt.Sprintf("err1=%s err2=%s", describe(e1), describe(e2)))
	_, e3 := c2.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "b", Value: 1}}, Options: options.Index().SetName("x")})
	p.add("4 createIndexes same name, different key", map[bool]string{true: "error", false: "no error"}[e3 != nil], describe(e3))
}

// ---------------------------------------------------------------- probe 5

func probeAggregation(p *prober) {
	ctx := p.ctx
	src := p.fresh("agg_src")
	d0 := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	_, err := src.InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: 1}, {Key: "org", Value: "a"}, {Key: "n", Value: 1}, {Key: "first", Value: "Ann"}, {Key: "last", Value: "Lee"},
			{Key: "tags", Value: bson.A{"x", "y"}}, {Key: "obj", Value: bson.D{{Key: "a", Value: 1}}},
			{Key: "kv", Value: bson.A{bson.D{{Key: "k", Value: "p"}, {Key: "v", Value: 1}}, bson.D{{Key: "k", Value: "q"}, {Key: "v", Value: 2}}}},
			{Key: "nums", Value: bson.A{1, 2, 3}}, {Key: "opt", Value: nil}, {Key: "d", Value: d0}},
		bson.D{{Key: "_id", Value: 2}, {Key: "org", Value: "a"}, {Key: "n", Value: 2}, {Key: "first", Value: "Bob"}, {Key: "last", Value: "Ray"},
			{Key: "tags", Value: bson.A{"y"}}, {Key: "obj", Value: bson.D{{Key: "b", Value: 2}}},
			{Key: "kv", Value: bson.A{bson.D{{Key: "k", Value: "r"}, {Key: "v", Value: 3}}}},
			{Key: "nums", Value: bson.A{4, 5}}, {Key: "opt", Value: "set"}, {Key: "d", Value: d0.Add(time.Hour)}},
		bson.D{{Key: "_id", Value: 3}, {Key: "org", Value: "b"}, {Key: "n", Value: 3}, {Key: "first", Value: "Cy"}, {Key: "last", Value: "Sun"},
			{Key: "tags", Value: bson.A{}}, {Key: "obj", Value: bson.D{}}, {Key: "kv", Value: bson.A{}}, {Key: "nums", Value: bson.A{}}, {Key: "d", Value: d0.Add(2 * time.Hour)}},
	})
	if err != nil {
		p.add("5 setup", "error", describe(err))
		return
	}
	other := p.fresh("agg_orgs")
	_, _ = other.InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: "a"}, {Key: "org", Value: "a"}, {Key: "title", Value: "Org A"}},
		bson.D{{Key: "_id", Value: "b"}, {Key: "org", Value: "b"}, {Key: "title", Value: "Org B"}},
	})

	D := func(k string, v any) bson.D { return bson.D{{Key: k, Value: v}} }
	sortID := D("$sort", D("_id", 1))
	agg := func(name string, pipeline ...bson.D) {
		cur, err := src.Aggregate(ctx, mongo.Pipeline(pipeline))
		var docs []bson.Raw
		if err == nil {
			err = cur.All(ctx, &docs)
		}
		p.res("5 "+name, err, trunc(ejs(docs), 400))
	}

	aggWant := func(name, want string, pipeline ...bson.D) {
		cur, err := src.Aggregate(ctx, mongo.Pipeline(pipeline))
		var docs []bson.Raw
		if err == nil {
			err = cur.All(ctx, &docs)
		}
		p.check("5 "+name, err, ejs(docs), want)
	}
	aggWant("$project field path {o:\"$org\"} resolves?", `[{"_id":1,"o":"a"},{"_id":2,"o":"a"},{"_id":3,"o":"b"}]`, sortID, D("$project", D("o", "$org")))
	aggWant("$addFields field path {m:\"$n\"} resolves?", `[{"_id":1,"m":1},{"_id":2,"m":2},{"_id":3,"m":3}]`, sortID, D("$addFields", D("m", "$n")), D("$project", D("m", 1)))
	aggWant("$set field path {m:\"$obj.a\"} resolves?", `[{"_id":1,"m":1},{"_id":2},{"_id":3}]`, sortID, D("$set", D("m", "$obj.a")), D("$project", D("m", 1)))
	aggWant("$group _id \"$org\" + $sum \"$n\" (field paths in $group)", `[{"_id":"a","s":3},{"_id":"b","s":3}]`, D("$group", bson.D{{Key: "_id", Value: "$org"}, {Key: "s", Value: D("$sum", "$n")}}), sortID)
	aggWant("$unwind result", `[{"_id":1,"tags":"x"},{"_id":1,"tags":"y"},{"_id":2,"tags":"y"}]`, sortID, D("$unwind", "$tags"), D("$project", D("tags", 1)))
	agg("$match", D("$match", D("org", "a")), sortID)
	agg("$match with $expr", D("$match", D("$expr", D("$gt", bson.A{"$n", 1}))), sortID)
	agg("$sort", D("$sort", D("n", -1)), D("$project", D("n", 1)))
	agg("$limit", sortID, D("$limit", 1), D("$project", D("n", 1)))
	agg("$skip", sortID, D("$skip", 2), D("$project", D("n", 1)))
	agg("$project inclusion", sortID, D("$project", bson.D{{Key: "org", Value: 1}, {Key: "n", Value: 1}}))
	agg("$project exclusion", sortID, D("$project", bson.D{{Key: "tags", Value: 0}, {Key: "kv", Value: 0}, {Key: "nums", Value: 0}, {Key: "d", Value: 0}}))
	agg("$project dotted path obj.a", sortID, D("$project", D("obj.a", 1)))
	agg("$set stage", sortID, D("$set", D("lit", "v")), D("$project", D("lit", 1)))
	agg("$unset stage (string)", sortID, D("$unset", "tags"), D("$project", D("tags", 1)))
	agg("$unset stage (array)", sortID, D("$unset", bson.A{"tags", "kv", "nums", "obj", "d"}))
	agg("$unwind", sortID, D("$unwind", "$tags"), D("$project", D("tags", 1)))
	agg("$unwind preserveNullAndEmptyArrays", sortID, D("$unwind", bson.D{{Key: "path", Value: "$tags"}, {Key: "preserveNullAndEmptyArrays", Value: true}}), D("$project", D("tags", 1)))
	grp := func(name string, acc bson.D) {
		agg("$group "+name, D("$group", append(bson.D{{Key: "_id", Value: "$org"}}, acc...)), sortID)
	}
	grp("$sum field", D("s", D("$sum", "$n")))
	grp("$sum 1 (count)", D("c", D("$sum", 1)))
	grp("$first", D("f", D("$first", "$first")))
	grp("$last", D("l", D("$last", "$first")))
	grp("$addToSet", D("t", D("$addToSet", "$first")))
	grp("$push", D("p", D("$push", "$first")))
	grp("$min", D("mn", D("$min", "$n")))
	grp("$max", D("mx", D("$max", "$d")))
	grp("$avg", D("av", D("$avg", "$n")))
	grp("$count accumulator", D("c", D("$count", bson.D{})))
	agg("$group _id null", D("$group", bson.D{{Key: "_id", Value: nil}, {Key: "s", Value: D("$sum", "$n")}}))
	agg("$group compound _id", D("$group", bson.D{{Key: "_id", Value: D("org", "$org")}, {Key: "s", Value: D("$sum", "$n")}}), sortID)
	agg("$group after $unwind", D("$unwind", "$tags"), D("$group", bson.D{{Key: "_id", Value: "$tags"}, {Key: "c", Value: D("$sum", 1)}}), sortID)
	agg("$count", D("$count", "total"))
	agg("$sortByCount", D("$sortByCount", "$org"))
	agg("$lookup localField/foreignField", sortID, D("$lookup", bson.D{{Key: "from", Value: other.Name()}, {Key: "localField", Value: "org"}, {Key: "foreignField", Value: "org"}, {Key: "as", Value: "o"}}), D("$project", D("o", 1)))
	agg("$lookup let/pipeline", sortID, D("$lookup", bson.D{{Key: "from", Value: other.Name()}, {Key: "let", Value: D("org", "$org")},
		{Key: "pipeline", Value: bson.A{D("$match", D("$expr", D("$eq", bson.A{"$org", "$$org"})))}}, {Key: "as", Value: "o"}}), D("$project", D("o", 1)))
	agg("$facet", D("$facet", bson.D{{Key: "cnt", Value: bson.A{D("$count", "c")}}, {Key: "first", Value: bson.A{sortID, D("$limit", 1), D("$project", D("n", 1))}}}))
	agg("$replaceRoot", sortID, D("$replaceRoot", D("newRoot", "$obj")))
	agg("$replaceWith", sortID, D("$replaceWith", "$obj"))
	agg("$sample", D("$sample", D("size", 1)), D("$project", D("_id", 1)))

	// $merge / $out into fresh collections; verify the target afterwards.
	tgt := p.fresh("agg_merge_tgt")
	agg("$merge into new collection", D("$merge", D("into", tgt.Name())))
	n, _ := tgt.CountDocuments(ctx, bson.D{})
	p.add("5 $merge: target docs after", "info", fmt.Sprint(n))
	agg("$merge on/whenMatched/whenNotMatched", D("$merge", bson.D{{Key: "into", Value: tgt.Name()}, {Key: "on", Value: "_id"}, {Key: "whenMatched", Value: "merge"}, {Key: "whenNotMatched", Value: "insert"}}))
	tgt2 := p.fresh("agg_out_tgt")
	agg("$out into new collection", D("$match", D("org", "a")), D("$out", tgt2.Name()))
	n, _ = tgt2.CountDocuments(ctx, bson.D{})
	p.add("5 $out: target docs after (expect 2)", "info", fmt.Sprint(n))

	// Expressions, each tried in $project and in $addFields.
	exprs := []struct {
		name string
		expr any
	}{
		{"$concat", D("$concat", bson.A{"$first", " ", "$last"})},
		{"$cond", D("$cond", bson.A{D("$gt", bson.A{"$n", 1}), "big", "small"})},
		{"$cond (doc form)", D("$cond", bson.D{{Key: "if", Value: D("$eq", bson.A{"$org", "a"})}, {Key: "then", Value: 1}, {Key: "else", Value: 0}})},
		{"$ifNull", D("$ifNull", bson.A{"$opt", "dflt"})},
		{"$mergeObjects", D("$mergeObjects", bson.A{"$obj", D("z", 9)})},
		{"$arrayToObject", D("$arrayToObject", "$kv")},
		{"$objectToArray", D("$objectToArray", "$obj")},
		{"$filter", D("$filter", bson.D{{Key: "input", Value: "$nums"}, {Key: "as", Value: "x"}, {Key: "cond", Value: D("$gt", bson.A{"$$x", 1})}})},
		{"$map", D("$map", bson.D{{Key: "input", Value: "$nums"}, {Key: "as", Value: "x"}, {Key: "in", Value: D("$multiply", bson.A{"$$x", 10})}})},
		{"$reduce", D("$reduce", bson.D{{Key: "input", Value: "$nums"}, {Key: "initialValue", Value: 0}, {Key: "in", Value: D("$add", bson.A{"$$value", "$$this"})}})},
		{"$eq", D("$eq", bson.A{"$org", "a"})},
		{"$add", D("$add", bson.A{"$n", 1})},
		{"$size", D("$size", "$tags")},
		{"$toString", D("$toString", "$n")},
		{"$type", D("$type", "$n")},
		{"$literal", D("$literal", "$notAPath")},
	}
	for _, e := range exprs {
		agg("expr "+e.name+" in $project", sortID, D("$project", D("r", e.expr)))
		agg("expr "+e.name+" in $addFields", sortID, D("$addFields", D("r", e.expr)), D("$project", D("r", 1)))
	}
	agg("$group with expression _id {$concat}", D("$group", bson.D{{Key: "_id", Value: D("$concat", bson.A{"$org", "-x"})}, {Key: "c", Value: D("$sum", 1)}}))
}

// ---------------------------------------------------------------- probe 6

func probeUpdates(p *prober) {
	ctx := p.ctx
	c := p.fresh("upd")
	d0 := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	reset := func() {
		_, err := c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{
			{Key: "n", Value: 1}, {Key: "tags", Value: bson.A{"a"}}, {Key: "d", Value: d0},
			{Key: "arr", Value: bson.A{bson.D{{Key: "k", Value: "a"}, {Key: "v", Value: 1}}, bson.D{{Key: "k", Value: "b"}, {Key: "v", Value: 2}}}},
		}, options.Replace().SetUpsert(true))
		if err != nil {
			p.add("6 reset", "error", describe(err))
		}
	}
	get := func(field string) string {
		var d bson.Raw
		if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: 1}}).Decode(&d); err != nil {
			return "<" + describe(err) + ">"
		}
		v, err := d.LookupErr(strings.Split(field, ".")...)
		if err != nil {
			return "<missing>"
		}
		return ejv(v)
	}
	id1 := bson.D{{Key: "_id", Value: 1}}
	D := func(k string, v any) bson.D { return bson.D{{Key: k, Value: v}} }
	upd := func(name string, update any, field, want string, opts ...*options.UpdateOptions) {
		reset()
		_, err := c.UpdateOne(ctx, id1, update, opts...)
		got := ""
		if err == nil {
			got = get(field)
		}
		p.check("6 "+name, err, got, want)
	}

	upd("pipeline update [{$set:{m:{$add:[$n,1]}}}]", mongo.Pipeline{D("$set", D("m", D("$add", bson.A{"$n", 1})))}, "m", "2")
	upd("pipeline update [{$set:{lit:\"x\"}}]", mongo.Pipeline{D("$set", D("lit", "x"))}, "lit", `"x"`)
	upd("pipeline update [{$set:{m:{$cond:...}}}] (lease-style)", mongo.Pipeline{D("$set", D("m",
		D("$cond", bson.A{D("$lt", bson.A{"$d", d0.Add(time.Hour)}), "me", "$owner"})))}, "m", `"me"`)
	upd("$addToSet $each", D("$addToSet", D("tags", D("$each", bson.A{"a", "b", "c"}))), "tags", `["a","b","c"]`)
	upd("$addToSet single", D("$addToSet", D("tags", "a")), "tags", `["a"]`)
	upd("$push", D("$push", D("tags", "d")), "tags", `["a","d"]`)
	upd("$push $each", D("$push", D("tags", D("$each", bson.A{"d", "e"}))), "tags", `["a","d","e"]`)
	upd("$push $each $slice", D("$push", D("tags", bson.D{{Key: "$each", Value: bson.A{"d", "e"}}, {Key: "$slice", Value: -2}})), "tags", `["d","e"]`)
	upd("$max on date (later wins)", D("$max", D("d", d0.Add(time.Hour))), "d", ejv(d0.Add(time.Hour)))
	upd("$max on date (earlier ignored)", D("$max", D("d", d0.Add(-time.Hour))), "d", ejv(d0))
	upd("$min on date (earlier wins)", D("$min", D("d", d0.Add(-time.Hour))), "d", ejv(d0.Add(-time.Hour)))
	upd("$min on date (later ignored)", D("$min", D("d", d0.Add(time.Hour))), "d", ejv(d0))
	upd("arrayFilters $[e] with e.k=a", D("$set", D("arr.$[e].v", 9)), "arr", `[{"k":"a","v":9},{"k":"b","v":2}]`,
		options.Update().SetArrayFilters(options.ArrayFilters{Filters: []any{D("e.k", "a")}}))
	upd("all-positional $[]", D("$inc", D("arr.$[].v", 10)), "arr", `[{"k":"a","v":11},{"k":"b","v":12}]`)
	reset()
	_, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "arr.k", Value: "b"}}, D("$set", D("arr.$.v", 7)))
	p.check("6 positional $ (arr.$.v)", err, get("arr"), `[{"k":"a","v":1},{"k":"b","v":7}]`)
	upd("$set dotted on array index arr.0.v", D("$set", D("arr.0.v", 5)), "arr", `[{"k":"a","v":5},{"k":"b","v":2}]`)
	upd("$inc", D("$inc", D("n", 2)), "n", "3")
	upd("$mul", D("$mul", D("n", 5)), "n", "5")
	upd("$unset", D("$unset", D("tags", "")), "tags", "<missing>")
	upd("$rename", D("$rename", D("n", "n2")), "n2", "1")
	upd("$pull", D("$pull", D("tags", "a")), "tags", "[]")
	upd("$pull with condition", D("$pull", D("arr", D("k", "a"))), "arr", `[{"k":"b","v":2}]`)
	upd("$pullAll", D("$pullAll", D("tags", bson.A{"a"})), "tags", "[]")
	upd("$pop", D("$pop", D("arr", 1)), "arr", `[{"k":"a","v":1}]`)
	reset()
	_, err = c.UpdateOne(ctx, id1, D("$currentDate", D("cd", true)))
	p.res("6 $currentDate", err, "cd="+get("cd"))

	// $setOnInsert
	c2 := p.fresh("upd_soi")
	r, err := c2.UpdateOne(ctx, D("_id", "u1"), bson.D{{Key: "$set", Value: D("a", 1)}, {Key: "$setOnInsert", Value: D("created", "first")}}, options.Update().SetUpsert(true))
	p.check("6 upsert with $setOnInsert (insert path)", err, findOneJSON(ctx, c2, "u1"), `{"_id":"u1","a":1,"created":"first"}`)
	if err == nil {
		p.add("6 upsert result", "info", fmt.Sprintf("matched=%d modified=%d upserted=%d id=%v", r.MatchedCount, r.ModifiedCount, r.UpsertedCount, r.UpsertedID))
	}
	_, err = c2.UpdateOne(ctx, D("_id", "u1"), bson.D{{Key: "$set", Value: D("a", 2)}, {Key: "$setOnInsert", Value: D("created", "second")}}, options.Update().SetUpsert(true))
	p.check("6 upsert with $setOnInsert (update path, ignored)", err, findOneJSON(ctx, c2, "u1"), `{"_id":"u1","a":2,"created":"first"}`)
	_, err = c2.UpdateOne(ctx, D("_id", "u2"), D("$setOnInsert", D("created", "only")), options.Update().SetUpsert(true))
	p.check("6 upsert with only $setOnInsert", err, findOneJSON(ctx, c2, "u2"), `{"_id":"u2","created":"only"}`)
	_, err = c2.UpdateOne(ctx, bson.D{{Key: "org", Value: "o1"}, {Key: "key", Value: "k1"}}, D("$set", D("v", 1)), options.Update().SetUpsert(true))
	var got bson.Raw
	_ = c2.FindOne(ctx, bson.D{{Key: "org", Value: "o1"}}, options.FindOne().SetProjection(D("_id", 0))).Decode(&got)
	p.check("6 upsert copies equality filter fields into new doc", err, ej(got), `{"org":"o1","key":"k1","v":1}`)
	_, err = c2.UpdateOne(ctx, D("_id", "u3"), mongo.Pipeline{D("$set", D("v", D("$ifNull", bson.A{"$v", 0})))}, options.Update().SetUpsert(true))
	p.check("6 upsert with pipeline update", err, findOneJSON(ctx, c2, "u3"), `{"_id":"u3","v":0}`)
	_, err = c2.UpdateMany(ctx, D("grp", "g"), D("$set", D("x", 1)), options.Update().SetUpsert(true))
	p.res("6 UpdateMany upsert", err, "")

	// BulkWrite unordered, mixed upserts.
	c3 := p.fresh("upd_bulk")
	_, _ = c3.InsertMany(ctx, []any{D("_id", "e1"), D("_id", "e2")})
	models := []mongo.WriteModel{
		mongo.NewReplaceOneModel().SetFilter(D("_id", "b1")).SetReplacement(D("x", 1)).SetUpsert(true),
		mongo.NewUpdateOneModel().SetFilter(D("_id", "b2")).SetUpdate(bson.D{{Key: "$set", Value: D("x", 2)}, {Key: "$setOnInsert", Value: D("c", 1)}}).SetUpsert(true),
		mongo.NewReplaceOneModel().SetFilter(D("_id", "e1")).SetReplacement(D("x", 3)).SetUpsert(true),
		mongo.NewUpdateOneModel().SetFilter(D("_id", "e2")).SetUpdate(D("$set", D("x", 4))).SetUpsert(true),
		mongo.NewInsertOneModel().SetDocument(D("_id", "i1")),
		mongo.NewDeleteOneModel().SetFilter(D("_id", "nope")),
	}
	br, err := c3.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	all, _ := findAll(ctx, c3, bson.D{})
	detail := ""
	if br != nil {
		detail = fmt.Sprintf("ins=%d matched=%d mod=%d del=%d ups=%d upsertedIDs=%v; ", br.InsertedCount, br.MatchedCount, br.ModifiedCount, br.DeletedCount, br.UpsertedCount, br.UpsertedIDs)
	}
	var norm []string
	for _, d := range all {
		var m bson.M
		_ = bson.Unmarshal(d, &m)
		norm = append(norm, fmt.Sprint(m))
	}
	p.check("6 BulkWrite unordered mixed Replace/Update upserts", err, strings.Join(norm, " "),
		"map[_id:b1 x:1] map[_id:b2 c:1 x:2] map[_id:e1 x:3] map[_id:e2 x:4] map[_id:i1]")
	p.add("6 BulkWrite result", "info", detail)
	// unordered with an error in the middle: do later ops still run?
	models = []mongo.WriteModel{
		mongo.NewInsertOneModel().SetDocument(D("_id", "e1")), // dup
		mongo.NewUpdateOneModel().SetFilter(D("_id", "b3")).SetUpdate(D("$set", D("x", 5))).SetUpsert(true),
		mongo.NewReplaceOneModel().SetFilter(D("_id", "b4")).SetReplacement(D("x", 6)).SetUpsert(true),
	}
	_, err = c3.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	n, _ := c3.CountDocuments(ctx, D("_id", D("$in", bson.A{"b3", "b4"})))
	p.yesno("6 BulkWrite unordered: later ops run after dup-key error?", n == 2, fmt.Sprintf("b3/b4 present=%d; err=%s; IsDuplicateKeyError=%v", n, describe(err), mongo.IsDuplicateKeyError(err)))
}

// ---------------------------------------------------------------- probe 7

func probeFind(p *prober) {
	ctx := p.ctx
	D := func(k string, v any) bson.D { return bson.D{{Key: k, Value: v}} }
	c := p.fresh("find_str")
	ids := []string{"z", "a", "xa", "w", "x", "y", "b", "x0", "X"}
	var docs []any
	for _, id := range ids {
		docs = append(docs, bson.D{{Key: "_id", Value: id}, {Key: "v", Value: id}})
	}
	_, _ = c.InsertMany(ctx, docs)
	cur, err := c.Find(ctx, D("_id", D("$gt", "x")), options.Find().SetSort(D("_id", 1)))
	var got []bson.Raw
	if err == nil {
		err = cur.All(ctx, &got)
	}
	var gotIDs []string
	for _, d := range got {
		gotIDs = append(gotIDs, d.Lookup("_id").StringValue())
	}
	p.check("7 find {_id:{$gt:\"x\"}} sort {_id:1} on string ids", err, strings.Join(gotIDs, ","), "x0,xa,y,z")
	cur, err = c.Find(ctx, bson.D{}, options.Find().SetSort(D("_id", -1)).SetLimit(3))
	got = nil
	if err == nil {
		err = cur.All(ctx, &got)
	}
	gotIDs = nil
	for _, d := range got {
		gotIDs = append(gotIDs, d.Lookup("_id").StringValue())
	}
	p.check("7 find sort {_id:-1} limit 3", err, strings.Join(gotIDs, ","), "z,y,xa")

	// hint
	_, _ = c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: D("v", 1), Options: options.Index().SetName("v_idx")})
	for _, h := range []struct {
		label string
		hint  any
	}{{"hint \"_id_\"", "_id_"}, {"hint {_id:1}", D("_id", 1)}, {"hint \"v_idx\"", "v_idx"}, {"hint {v:1}", D("v", 1)}, {"hint non-existent", "nope_idx"}} {
		all, err := findAll(ctx, c, D("v", D("$gte", "x")), options.Find().SetHint(h.hint).SetSort(D("_id", 1)))
		if h.hint == "nope_idx" {
			p.yesno("7 find hint non-existent index -> rejected? (MongoDB: BadValue)", err != nil, fmt.Sprintf("err=%s, %d docs", describe(err), len(all)))
			continue
		}
		p.res("7 find "+h.label, err, fmt.Sprintf("%d docs", len(all)))
	}
	_, err = c.CountDocuments(ctx, bson.D{}, options.Count().SetHint("_id_"))
	p.res("7 countDocuments with hint", err, "")

	// dotted projection
	c2 := p.fresh("find_proj")
	_, _ = c2.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "a", Value: bson.D{{Key: "b", Value: 1}, {Key: "c", Value: 2}}}, {Key: "d", Value: 3},
		{Key: "arr", Value: bson.A{bson.D{{Key: "x", Value: 1}, {Key: "y", Value: 2}}, bson.D{{Key: "x", Value: 3}, {Key: "y", Value: 4}}}}})
	for _, pr := range []struct {
		label string
		proj  bson.D
		want  string
	}{
		{"projection {a.b:1}", D("a.b", 1), `[{"_id":1,"a":{"b":1}}]`},
		{"projection {a.c:0}", D("a.c", 0), `[{"_id":1,"a":{"b":1},"d":3,"arr":[{"x":1,"y":2},{"x":3,"y":4}]}]`},
		{"projection {arr.x:1, _id:0}", bson.D{{Key: "arr.x", Value: 1}, {Key: "_id", Value: 0}}, `[{"arr":[{"x":1},{"x":3}]}]`},
		{"projection {d:1, a.b:1, _id:0}", bson.D{{Key: "d", Value: 1}, {Key: "a.b", Value: 1}, {Key: "_id", Value: 0}}, `[{"a":{"b":1},"d":3}]`},
		{"projection {arr:{$slice:1}}", D("arr", D("$slice", 1)), `[{"_id":1,"a":{"b":1,"c":2},"d":3,"arr":[{"x":1,"y":2}]}]`},
		{"projection {arr:{$elemMatch:{x:3}}}", D("arr", D("$elemMatch", D("x", 3))), `[{"_id":1,"arr":[{"x":3,"y":4}]}]`},
	} {
		all, err := findAll(ctx, c2, bson.D{}, options.Find().SetProjection(pr.proj))
		p.check("7 "+pr.label, err, ejs(all), pr.want)
	}

	// $in with 1000 values
	c3 := p.fresh("find_in")
	docs = nil
	for i := 0; i < 2000; i++ {
		docs = append(docs, bson.D{{Key: "_id", Value: fmt.Sprintf("id-%05d", i)}, {Key: "k", Value: i}})
	}
	_, err = c3.InsertMany(ctx, docs)
	if err != nil {
		p.add("7 setup 2000 docs", "error", describe(err))
	}
	in := bson.A{}
	inK := bson.A{}
	for i := 0; i < 1000; i++ {
		in = append(in, fmt.Sprintf("id-%05d", i*2+1)) // 1000 existing, odd
		inK = append(inK, i*3)
	}
	all, err := findAll(ctx, c3, D("_id", D("$in", in)))
	p.check("7 find _id $in 1000 values", err, fmt.Sprint(len(all)), "1000")
	all, err = findAll(ctx, c3, D("k", D("$in", inK)))
	p.check("7 find non-_id field $in 1000 values", err, fmt.Sprint(len(all)), "667")

	// cursor batch size
	cur, err = c3.Find(ctx, bson.D{}, options.Find().SetBatchSize(10).SetSort(D("_id", 1)))
	cnt := 0
	if err == nil {
		for cur.Next(ctx) {
			cnt++
		}
		err = cur.Err()
		_ = cur.Close(ctx)
	}
	p.check("7 find batchSize 10 over 2000 docs (getMore)", err, fmt.Sprint(cnt), "2000")
	cur, err = c3.Aggregate(ctx, mongo.Pipeline{D("$match", bson.D{})}, options.Aggregate().SetBatchSize(7))
	cnt = 0
	if err == nil {
		for cur.Next(ctx) {
			cnt++
		}
		err = cur.Err()
		_ = cur.Close(ctx)
	}
	p.check("7 aggregate batchSize 7 over 2000 docs", err, fmt.Sprint(cnt), "2000")

	est, err := c3.EstimatedDocumentCount(ctx)
	p.check("7 estimatedDocumentCount", err, fmt.Sprint(est), "2000")
	cd, err := c3.CountDocuments(ctx, D("k", D("$lt", 100)))
	p.check("7 countDocuments {k:{$lt:100}}", err, fmt.Sprint(cd), "100")
	cd, err = c3.CountDocuments(ctx, bson.D{}, options.Count().SetSkip(10).SetLimit(5))
	p.check("7 countDocuments skip/limit", err, fmt.Sprint(cd), "5")
	var cntRes bson.Raw
	err = p.db.RunCommand(ctx, bson.D{{Key: "count", Value: c3.Name()}, {Key: "query", Value: D("k", D("$lt", 10))}}).Decode(&cntRes)
	p.res("7 count command", err, ej(cntRes))
	vals, err := c3.Distinct(ctx, "k", D("k", D("$lt", 3)))
	p.res("7 distinct", err, fmt.Sprint(vals))
	est, err = p.db.Collection("never_created_xyz").EstimatedDocumentCount(ctx)
	p.res("7 estimatedDocumentCount on missing collection", err, fmt.Sprint(est))
}

// ---------------------------------------------------------------- probe 8

func findKeys(prefix string, v bson.RawValue, needle string, out *[]string) {
	doc, ok := v.DocumentOK()
	if !ok {
		return
	}
	elems, _ := doc.Elements()
	for _, e := range elems {
		k := prefix + e.Key()
		if strings.Contains(strings.ToLower(k), needle) {
			*out = append(*out, k+"="+ejv(e.Value()))
		}
		findKeys(k+".", e.Value(), needle, out)
	}
}

func probeHello(p *prober) {
	ctx := p.ctx
	D := func(k string, v any) bson.D { return bson.D{{Key: k, Value: v}} }
	for _, cmd := range []string{"hello", "isMaster", "ismaster", "buildInfo"} {
		var r bson.Raw
		err := p.db.RunCommand(ctx, D(cmd, 1)).Decode(&r)
		if !p.res("8 "+cmd, err, ej(r)) {
			continue
		}
		var fields []string
		for _, k := range []string{"version", "versionArray", "maxWireVersion", "minWireVersion", "maxBsonObjectSize", "maxMessageSizeBytes",
			"maxWriteBatchSize", "logicalSessionTimeoutMinutes", "setName", "msg", "isWritablePrimary", "ismaster", "readOnly", "ferretdbVersion", "ferretdbFeatures", "gitVersion", "storageEngines"} {
			if v, err := r.LookupErr(k); err == nil {
				fields = append(fields, k+"="+ejv(v))
			}
		}
		var ferret []string
		findKeys("", bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: r}, "ferret", &ferret)
		p.add("8 "+cmd+": detection fields", "info", strings.Join(fields, "; ")+" | keys containing 'ferret': "+strings.Join(ferret, "; "))
	}
	var r bson.Raw
	err := p.cl.Database("admin").RunCommand(ctx, D("serverStatus", 1)).Decode(&r)
	if err == nil {
		var keys []string
		elems, _ := r.Elements()
		for _, e := range elems {
			keys = append(keys, e.Key())
		}
		var ferret []string
		findKeys("", bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: r}, "ferret", &ferret)
		p.add("8 serverStatus", "supported", "top-level keys "+strings.Join(keys, ",")+" | ferret keys: "+strings.Join(ferret, "; "))
	} else {
		p.res("8 serverStatus", err, "")
	}
	err = p.cl.Database("admin").RunCommand(ctx, D("listCommands", 1)).Decode(&r)
	if err == nil {
		var names []string
		if cmds, ok := r.Lookup("commands").DocumentOK(); ok {
			elems, _ := cmds.Elements()
			for _, e := range elems {
				names = append(names, e.Key())
			}
		}
		sort.Strings(names)
		p.add("8 listCommands", "supported", fmt.Sprintf("%d commands: %s", len(names), strings.Join(names, ",")))
	} else {
		p.res("8 listCommands", err, "")
	}
	err = p.cl.Database("admin").RunCommand(ctx, D("getParameter", "*")).Decode(&r)
	p.res("8 getParameter *", err, trunc(ej(r), 300))
	err = p.cl.Database("admin").RunCommand(ctx, D("getCmdLineOpts", 1)).Decode(&r)
	p.res("8 getCmdLineOpts", err, trunc(ej(r), 300))
	var exp bson.Raw
	c := p.fresh("explain")
	_, _ = c.InsertOne(ctx, D("a", 1))
	err = p.db.RunCommand(ctx, D("explain", bson.D{{Key: "find", Value: c.Name()}, {Key: "filter", Value: D("a", 1)}, {Key: "sort", Value: D("_id", 1)}})).Decode(&exp)
	p.res("8 explain find", err, trunc(ej(exp), 600))

	// $merge / $out capability detection on an empty source.
	empty := p.fresh("merge_empty_src")
	_ = p.db.CreateCollection(ctx, empty.Name())
	for _, st := range []struct {
		label string
		src   *mongo.Collection
		stage bson.D
	}{
		{"$merge from existing empty collection", empty, D("$merge", D("into", p.fresh("merge_new_tgt").Name()))},
		{"$merge from non-existent collection", p.fresh("merge_missing_src"), D("$merge", D("into", p.fresh("merge_new_tgt").Name()))},
		{"$merge with explicit db/coll", empty, D("$merge", D("into", bson.D{{Key: "db", Value: p.db.Name()}, {Key: "coll", Value: p.fresh("merge_new_tgt").Name()}}))},
		{"$out from existing empty collection", empty, D("$out", p.fresh("out_new_tgt").Name())},
	} {
		cur, err := st.src.Aggregate(ctx, mongo.Pipeline{st.stage})
		if err == nil {
			_ = cur.Close(ctx)
		}
		p.res("8 "+st.label, err, "")
	}
	// explain of an aggregate with $merge: another detection route that does not write.
	err = p.db.RunCommand(ctx, D("explain", bson.D{{Key: "aggregate", Value: empty.Name()}, {Key: "pipeline", Value: bson.A{D("$merge", D("into", "x_never"))}}, {Key: "cursor", Value: bson.D{}}})).Decode(&exp)
	p.res("8 explain aggregate [$merge] (non-writing detection)", err, trunc(ej(exp), 300))
}

// ---------------------------------------------------------------- probe 9

func probeTransactions(p *prober) {
	ctx := p.ctx
	c := p.fresh("txn")
	_ = p.db.CreateCollection(ctx, c.Name())
	sess, err := p.cl.StartSession()
	if !p.res("9 StartSession", err, "") {
		return
	}
	defer sess.EndSession(ctx)

	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err = sess.WithTransaction(tctx, func(sc mongo.SessionContext) (any, error) {
		_, err := c.InsertOne(sc, bson.D{{Key: "_id", Value: "t1"}})
		return nil, err
	})
	n, _ := c.CountDocuments(ctx, bson.D{{Key: "_id", Value: "t1"}})
	p.res("9 WithTransaction(InsertOne)", err, fmt.Sprintf("doc persisted=%d", n))

	// Does abort really roll back?
	err = mongo.WithSession(ctx, sess, func(sc mongo.SessionContext) error {
		if err := sess.StartTransaction(); err != nil {
			return err
		}
		if _, err := c.InsertOne(sc, bson.D{{Key: "_id", Value: "t2"}}); err != nil {
			_ = sess.AbortTransaction(context.Background())
			return err
		}
		return sess.AbortTransaction(sc)
	})
	n, _ = c.CountDocuments(ctx, bson.D{{Key: "_id", Value: "t2"}})
	p.res("9 StartTransaction/Insert/AbortTransaction", err, fmt.Sprintf("doc present after abort=%d (0 = real rollback)", n))

	// Plain session usage without a transaction.
	err = mongo.WithSession(ctx, sess, func(sc mongo.SessionContext) error {
		_, err := c.InsertOne(sc, bson.D{{Key: "_id", Value: "s1"}})
		return err
	})
	p.res("9 session without transaction (InsertOne with lsid)", err, "")
}

// ---------------------------------------------------------------- probe 10

func probeLargeDocs(p *prober) {
	ctx := p.ctx
	c := p.fresh("large")
	for _, mb := range []int{15, 16, 17} {
		size := mb << 20
		if mb == 16 {
			size = 16<<20 - 1024 // just under the 16 MiB BSON limit
		}
		id := fmt.Sprintf("big%d", mb)
		start := time.Now()
		_, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "data", Value: strings.Repeat("x", size)}})
		el := time.Since(start)
		detail := fmt.Sprintf("insert %v", el.Round(time.Millisecond))
		if err == nil {
			var d bson.Raw
			start = time.Now()
			e := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
			if e != nil {
				detail += "; read back error: " + describe(e)
			} else {
				detail += fmt.Sprintf("; read back %d bytes in %v", len(d.Lookup("data").StringValue()), time.Since(start).Round(time.Millisecond))
			}
		}
		label := fmt.Sprintf("10 insert %d MiB string doc", mb)
		if mb == 16 {
			label = "10 insert 16 MiB - 1 KiB string doc"
		}
		p.res(label, err, detail)
	}
	// Updating a doc past the limit.
	_, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: "big15"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "more", Value: strings.Repeat("y", 2<<20)}}}})
	p.add("10 $set that grows 15 MiB doc to 17 MiB", map[bool]string{true: "rejected", false: "ACCEPTED"}[err != nil], describe(err))
	if err == nil {
		var d bson.Raw
		e := c.FindOne(ctx, bson.D{{Key: "_id", Value: "big15"}}).Decode(&d)
		p.add("10 read back the grown (>16 MiB) doc", map[bool]string{true: "error", false: "ok"}[e != nil], fmt.Sprintf("%s; %d bytes", describe(e), len(d)))
		_, e = c.DeleteOne(ctx, bson.D{{Key: "_id", Value: "big15"}})
		p.res("10 delete the grown doc", e, "")
	}
}

// ---------------------------------------------------------------- probe 11

func probeTiming(p *prober) {
	ctx := p.ctx
	D := func(k string, v any) bson.D { return bson.D{{Key: k, Value: v}} }
	c := p.fresh("timing")
	_, err := c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: D("org_id", 1)})
	if err != nil {
		p.add("11 create index org_id", "error", describe(err))
	}
	const total, batch = 93000, 1000
	pad := strings.Repeat("p", 900)
	created := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	start := time.Now()
	var insErr error
	for b := 0; b < total/batch; b++ {
		docs := make([]any, 0, batch)
		for i := b * batch; i < (b+1)*batch; i++ {
			docs = append(docs, bson.D{
				{Key: "_id", Value: fmt.Sprintf("doc-%06d", i)},
				{Key: "org_id", Value: fmt.Sprintf("org-%03d", i%100)},
				{Key: "n", Value: i},
				{Key: "email", Value: fmt.Sprintf("user%d@example.com", i)},
				{Key: "created_at", Value: created.Add(time.Duration(i) * time.Second)},
				{Key: "payload", Value: pad},
			})
		}
		if _, err := c.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false)); err != nil {
			insErr = err
			break
		}
	}
	ins := time.Since(start)
	p.res("11 InsertMany unordered 93,000 x ~1 KB (93 batches of 1000, org_id indexed)", insErr,
		fmt.Sprintf("%v (%.0f docs/s)", ins.Round(time.Millisecond), float64(total)/ins.Seconds()))

	scan := func(label string, filter any, opts *options.FindOptions, wantN int) {
		start := time.Now()
		cur, err := c.Find(ctx, filter, opts)
		n, ordered := 0, true
		prev := ""
		if err == nil {
			for cur.Next(ctx) {
				id := cur.Current.Lookup("_id").StringValue()
				if id < prev {
					ordered = false
				}
				prev = id
				n++
			}
			err = cur.Err()
			_ = cur.Close(ctx)
		}
		p.res(label, err, fmt.Sprintf("%v, %d docs (want %d), ascending _id=%v", time.Since(start).Round(time.Millisecond), n, wantN, ordered))
	}
	scan("11 full scan sorted by _id", bson.D{}, options.Find().SetSort(D("_id", 1)), total)
	scan("11 full scan unsorted", bson.D{}, options.Find(), total)
	scan("11 full scan sorted by _id, batchSize 1000", bson.D{}, options.Find().SetSort(D("_id", 1)).SetBatchSize(1000), total)

	start = time.Now()
	n, err := c.CountDocuments(ctx, D("org_id", "org-007"))
	p.res("11 CountDocuments {org_id:\"org-007\"} (indexed)", err, fmt.Sprintf("%v, count=%d (want 930)", time.Since(start).Round(time.Millisecond), n))
	start = time.Now()
	n, err = c.CountDocuments(ctx, D("email", "user7@example.com"))
	p.res("11 CountDocuments {email:...} (NOT indexed, comparison)", err, fmt.Sprintf("%v, count=%d", time.Since(start).Round(time.Millisecond), n))
	start = time.Now()
	n, err = c.CountDocuments(ctx, bson.D{})
	p.res("11 CountDocuments {} ", err, fmt.Sprintf("%v, count=%d", time.Since(start).Round(time.Millisecond), n))
	start = time.Now()
	est, err := c.EstimatedDocumentCount(ctx)
	p.res("11 EstimatedDocumentCount", err, fmt.Sprintf("%v, count=%d", time.Since(start).Round(time.Millisecond), est))

	in := bson.A{}
	for i := 0; i < 1000; i++ {
		in = append(in, fmt.Sprintf("doc-%06d", (i*7919)%total))
	}
	start = time.Now()
	all, err := findAll(ctx, c, D("_id", D("$in", in)))
	p.res("11 find 1000 docs by _id $in", err, fmt.Sprintf("%v, %d docs", time.Since(start).Round(time.Millisecond), len(all)))
	start = time.Now()
	var one bson.Raw
	for i := 0; i < 200; i++ {
		if err = c.FindOne(ctx, D("_id", fmt.Sprintf("doc-%06d", i*401))).Decode(&one); err != nil {
			break
		}
	}
	p.res("11 200 x FindOne by _id", err, fmt.Sprintf("%v total", time.Since(start).Round(time.Millisecond)))
	start = time.Now()
	all, err = findAll(ctx, c, D("org_id", "org-042"), options.Find().SetSort(D("_id", 1)))
	p.res("11 find {org_id} sorted by _id (930 docs)", err, fmt.Sprintf("%v, %d docs", time.Since(start).Round(time.Millisecond), len(all)))
	start = time.Now()
	all, err = findAll(ctx, c, D("_id", D("$gt", "doc-092000")), options.Find().SetSort(D("_id", 1)).SetLimit(500))
	p.res("11 find {_id:{$gt}} sort _id limit 500 (keyset page)", err, fmt.Sprintf("%v, %d docs", time.Since(start).Round(time.Millisecond), len(all)))

	for _, q := range []struct {
		label  string
		filter bson.D
		opts   *options.FindOptions
	}{
		{"{_id:\"doc-050000\"}", D("_id", "doc-050000"), options.Find()},
		{"{_id:\"doc-050000\"} limit 1 (FindOne shape)", D("_id", "doc-050000"), options.Find().SetLimit(1)},
		{"{_id:{$eq:\"doc-050000\"}}", D("_id", D("$eq", "doc-050000")), options.Find()},
		{"{_id:\"doc-050000\", org_id:\"org-000\"}", bson.D{{Key: "_id", Value: "doc-050000"}, {Key: "org_id", Value: "org-000"}}, options.Find()},
		{"{_id:\"doc-050000\"} sort {_id:1}", D("_id", "doc-050000"), options.Find().SetSort(D("_id", 1))},
	} {
		start := time.Now()
		all, err := findAll(ctx, c, q.filter, q.opts)
		p.res("11 find "+q.label, err, fmt.Sprintf("%v, %d docs", time.Since(start).Round(time.Microsecond), len(all)))
	}
	start = time.Now()
	err = c.FindOne(ctx, D("_id", "doc-060000")).Decode(&one)
	p.res("11 single FindOne by _id", err, time.Since(start).Round(time.Microsecond).String())
	start = time.Now()
	_, err = c.UpdateOne(ctx, D("_id", "doc-060001"), D("$set", D("n", -1)))
	p.res("11 UpdateOne by _id only", err, time.Since(start).Round(time.Microsecond).String())
	start = time.Now()
	_, err = c.UpdateOne(ctx, bson.D{{Key: "_id", Value: "doc-060002"}, {Key: "$or", Value: bson.A{D("n", 60002), D("owner", "me")}}}, D("$set", D("n", -2)))
	p.res("11 UpdateOne by _id + $or (lease shape)", err, time.Since(start).Round(time.Microsecond).String())

	for _, q := range []struct {
		label string
		cmd   bson.D
	}{
		{"find {_id:\"doc-050000\"}", bson.D{{Key: "find", Value: c.Name()}, {Key: "filter", Value: D("_id", "doc-050000")}}},
		{"count {org_id}", bson.D{{Key: "count", Value: c.Name()}, {Key: "query", Value: D("org_id", "org-007")}}},
		{"find {_id:{$in}} sort _id", bson.D{{Key: "find", Value: c.Name()}, {Key: "filter", Value: D("_id", D("$in", bson.A{"doc-000001", "doc-000002"}))}, {Key: "sort", Value: D("_id", 1)}}},
		{"find {_id:{$gt}} sort _id limit", bson.D{{Key: "find", Value: c.Name()}, {Key: "filter", Value: D("_id", D("$gt", "doc-092000"))}, {Key: "sort", Value: D("_id", 1)}, {Key: "limit", Value: 500}}},
	} {
		var exp bson.Raw
		err := p.db.RunCommand(ctx, D("explain", q.cmd)).Decode(&exp)
		detail := ""
		if err == nil {
			var parts []string
			for _, k := range []string{"filterPushdown", "sortPushdown", "limitPushdown", "unsafeLimitPushdown"} {
				if v, e := exp.LookupErr(k); e == nil {
					parts = append(parts, k+"="+ejv(v))
				}
			}
			if v, e := exp.LookupErr("queryPlanner"); e == nil {
				parts = append(parts, "queryPlanner="+trunc(ejv(v), 300))
			}
			detail = strings.Join(parts, "; ")
		}
		p.res("11 explain "+q.label, err, detail)
	}
}

// ---------------------------------------------------------------- probe 13

func probeNames(p *prober) {
	ctx := p.ctx
	for _, name := range []string{
		"tenant.migrations", "a.b.c", "with_underscore", "_leading_underscore", "trailing_", "x.y_z", "dash-name", "MixedCase",
		"name with space", strings.Repeat("n", 200), "system.custom", "_ferretdb_reserved",
	} {
		c := p.db.Collection(name)
		_, err := c.InsertOne(ctx, bson.D{{Key: "v", Value: 1}})
		if err == nil {
			var n int64
			n, err = c.CountDocuments(ctx, bson.D{})
			if err == nil && n != 1 {
				err = fmt.Errorf("count=%d after one insert", n)
			}
		}
		p.res(fmt.Sprintf("13 collection name %q", trunc(name, 30)), err, "insert+count ok")
		_ = c.Drop(ctx)
	}
	names, err := p.db.ListCollectionNames(ctx, bson.D{})
	p.res("13 ListCollectionNames", err, fmt.Sprintf("%d collections", len(names)))

	err = p.db.Collection("definitely_missing_coll").Drop(ctx)
	p.res("13 Collection.Drop on missing collection -> nil?", err, "returned nil")
	err = p.db.RunCommand(ctx, bson.D{{Key: "drop", Value: "definitely_missing_coll"}}).Err()
	p.add("13 raw drop command on missing collection", map[bool]string{true: "error", false: "no error"}[err != nil], describe(err))
	err = p.cl.Database("definitely_missing_db").Drop(ctx)
	p.res("13 Database.Drop on missing database", err, "returned nil")
	err = p.db.CreateCollection(ctx, "created_twice")
	err2 := p.db.CreateCollection(ctx, "created_twice")
	p.add("13 CreateCollection twice", map[bool]string{true: "error", false: "no error"}[err2 != nil], fmt.Sprintf("first=%s second=%s", describe(err), describe(err2)))
	var r bson.Raw
	err = p.cl.Database("admin").RunCommand(ctx, bson.D{{Key: "renameCollection", Value: p.db.Name() + ".created_twice"}, {Key: "to", Value: p.db.Name() + ".renamed_coll"}}).Decode(&r)
	p.res("13 renameCollection", err, ej(r))
	for _, db := range []string{"tenant_db", "tenant-db", "Tenant.DB"} {
		_, err := p.cl.Database(db).Collection("c").InsertOne(ctx, bson.D{{Key: "v", Value: 1}})
		p.res(fmt.Sprintf("13 database name %q", db), err, "")
		_ = p.cl.Database(db).Drop(ctx)
	}
}
