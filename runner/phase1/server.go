package phase1

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/sirupsen/logrus"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
	"github.com/tenantmigrate/runner/runner/internal/servererr"
	"github.com/tenantmigrate/runner/runner/retry"
)

// The server path does phase 1's reading inside the server where it can:
//
//  1. One find lists the accounts stage 1 of phase 2 would drop
//     ({$nor: [Validity]}), to report them; nothing else is read whole.
//     Beside it, one aggregation (pipelines.Identities) sends the identity
//     entries of the valid accounts, their identity fields only; the
//     runner hashes them into a keys table on local disk (scratch.go's
//     fileStore: memory holds a buffer, not the table).
//  2. The keys are read back sorted and grouped by the rules of rules.go,
//     as the streaming path groups them (a union-find in memory: it holds
//     the accounts that share identities, bounded by
//     Config.MemoryGroupLimit; past it the run takes the streaming path).
//  3. The groups, in group-key order, are fetched a batch at a time by _id
//     (accounts, links and tenant accounts, three finds side by side, each
//     answered from the _id index), merged with the rules of rules.go and
//     written as the streaming path writes them, while the next batch is
//     being fetched.
//
// So the identity rules are applied by the same code on both paths, and
// the only difference is where the entries come from. The writes are the
// streaming path's own (writer), keyed and skipped when equal, so a run
// killed anywhere ends, run again on either path, as an uninterrupted run.
// What a server accepts is probed (probe.go), never read from a version.

// member is one account of a group: G is the group key (the smallest _id).
type member struct{ G, ID model.ID }

// memberLookup answers group lookups from the members sorted by _id (it
// shares their ids: a slice header each, not a map).
type memberLookup []member

func (m memberLookup) group(_ context.Context, id model.ID) (model.ID, bool, error) {
	i, ok := slices.BinarySearchFunc(m, id, func(x member, id model.ID) int { return x.ID.Compare(id) })
	if !ok {
		return model.ID{}, false, nil
	}
	return m[i].G, true, nil
}

func (memberLookup) close(context.Context) {}

// serverPasses are the passes of the server path.
func (p *run) serverPasses() []pass {
	return []pass{
		{"1 identities", p.serverIdentities},
		{"2 groups", p.serverGroups},
		{"2b links", p.checkLinks},
		{"4 merge", p.serverMerge},
	}
}

// pass 1, server path: the invalid accounts and the identity entries,
// read side by side (neither writes to the server). Invalid accounts stop
// the phase whatever the identities hold.
func (p *run) serverIdentities(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var groupErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		groupErr = p.readIdentities(ctx)
	}()
	err := p.serverInvalid(ctx)
	if err != nil {
		cancel()
	}
	<-done
	if err != nil {
		return err
	}
	return groupErr
}

// pass 1, server path: the invalid accounts, read by the filter that
// phase 2's stage 1 negates, and the number of accounts.
func (p *run) serverInvalid(ctx context.Context) error {
	orgOf := p.appOrgs.OrgOf()
	accounts := p.cfg.DB.Collection(p.cfg.Accounts)
	// A retry reads them all again: each attempt counts afresh, and keeps
	// the counts and the first few ids only.
	var seen *Report
	err := p.cfg.Retry.Do(ctx, "read invalid accounts", func(ctx context.Context) error {
		seen = &Report{InvalidReasons: map[string]int{}}
		filter := append(p.cfg.scope(), bson.E{Key: "$nor", Value: bson.A{pipelines.Validity(pipelines.ValidAppOrgs(orgOf))}})
		proj := bson.D{{Key: model.FieldAppOrgID, Value: 1}, {Key: model.FieldAuthTypes, Value: 1}}
		cur, err := accounts.Find(ctx, filter, options.Find().SetProjection(proj).SetBatchSize(int32(p.cfg.Batch)))
		if err != nil {
			return err
		}
		defer cur.Close(ctx)
		for cur.Next(ctx) {
			var d bson.D
			if err := bson.Unmarshal(cur.Current, &d); err != nil {
				return fmt.Errorf("decode account: %w", err)
			}
			if reason := pipelines.Invalid(d, orgOf); reason != "" {
				seen.noteInvalid(idString(cur.Current.Lookup("_id")), reason)
			}
		}
		return cur.Err()
	})
	if err != nil {
		return retry.Wrap("read invalid accounts", err)
	}
	p.rep.Invalid, p.rep.InvalidReasons, p.rep.FirstInvalid = seen.Invalid, seen.InvalidReasons, seen.FirstInvalid
	err = p.cfg.Retry.Do(ctx, "count accounts", func(ctx context.Context) (err error) {
		filter := p.cfg.scope()
		if filter == nil {
			filter = bson.D{}
		}
		p.rep.Accounts, err = accounts.CountDocuments(ctx, filter)
		return err
	})
	if err != nil {
		return retry.Wrap("count accounts", err)
	}
	if p.rep.Invalid > 0 && !p.cfg.SkipInvalid {
		p.rep.StopsOnInvalid, p.rep.WouldStop = true, true
		return &InvalidError{Report: p.rep}
	}
	return nil
}

// errServerRefused: the server did not take the server path's identity
// pipeline during a run; the streaming path takes over.
var errServerRefused = errors.New("the server refused phase 1's identity pipeline")

// identityRow is one output document of pipelines.Identities.
type identityRow struct {
	Account    model.ID `bson:"_id"`
	Org        string   `bson:"o"`
	Code       string   `bson:"c"`
	Identifier string   `bson:"i"`
	Unverified any      `bson:"u"`
}

// readIdentities runs the identity pipeline into the keys table. A retry
// reads every entry again into an emptied table.
func (p *run) readIdentities(ctx context.Context) error {
	task := p.cfg.Progress.Start("phase 1: identities", 0)
	defer task.Done()
	pipe := pipelines.Identities(p.appOrgs.OrgOf(), p.cfg.Rules.IdentityCodes)
	if scope := p.cfg.scope(); scope != nil {
		pipe = append(mongo.Pipeline{{{Key: "$match", Value: scope}}}, pipe...)
	}
	err := p.cfg.Retry.Do(ctx, "read identities", func(ctx context.Context) error {
		if err := p.keys.t.drop(ctx); err != nil {
			return err
		}
		p.rep.Identities.Entries = 0
		keys := newKeyWriter(p.keys, p.cfg.Batch, &p.rep.Identities)
		cur, err := p.cfg.DB.Collection(p.cfg.Accounts).Aggregate(ctx, pipe, options.Aggregate().SetBatchSize(int32(p.cfg.Batch)))
		if err != nil {
			return err
		}
		defer cur.Close(ctx)
		for cur.Next(ctx) {
			var row identityRow
			if err := bson.Unmarshal(cur.Current, &row); err != nil {
				return fmt.Errorf("decode identity: %w", err)
			}
			task.Add(1)
			ident, ok := p.cfg.Rules.Identity(row.Code, row.Identifier, row.Unverified)
			if !ok {
				return fmt.Errorf("the identity pipeline gave an entry of code %q, not an identity code", row.Code)
			}
			if err := keys.add(ctx, p.keys.doc(row.Org, ident, row.Account)); err != nil {
				return err
			}
		}
		if err := cur.Err(); err != nil {
			return err
		}
		return keys.flush(ctx)
	})
	switch {
	case err != nil && servererr.IsRefusal(ctx, err):
		return fmt.Errorf("%w: %w", errServerRefused, err)
	case err != nil:
		return fmt.Errorf("read identities: %w", err)
	}
	return nil
}

// pass 2, server path: the groups, in group-key order.
func (p *run) serverGroups(ctx context.Context) error {
	uf, err := p.connect(ctx, p.cfg.MemoryGroupLimit)
	if err != nil {
		return err
	}
	p.members = uf.members()
	p.grouped = len(p.members)
	byID := slices.Clone(p.members)
	slices.SortFunc(byID, func(a, b member) int { return a.ID.Compare(b.ID) })
	p.lookup = memberLookup(byID)
	p.rep.GroupedIn = "memory"
	p.cfg.Log.WithFields(logrus.Fields{"accounts": p.grouped, "shared_identities": p.rep.Identities.Shared, "where": "memory"}).Info("phase 1: groups found")
	return nil
}

// batchOf is the groups of one fetch, and what was fetched for them.
type batchOf struct {
	groups   [][]member
	accounts map[model.ID]bson.Raw
	links    map[model.ID]bson.Raw
	tenants  map[model.ID]bson.Raw
}

// flushers is how many batches the server path writes at once: one
// batch's tenant accounts go before its links, but batches are
// independent (their groups are disjoint), and a server with indexes to
// maintain writes two batches nearly twice as fast as one.
const flushers = 2

// pass 4, server path: fetch, merge and write, a batch being fetched while
// the one before is merged and those before it are written.
func (p *run) serverMerge(ctx context.Context) error {
	p.lookup = nil // the links are checked: the members say the rest
	if err := p.indexLinks(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	batches := make(chan *batchOf, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(batches)
		err := p.eachBatch(ctx, func(b *batchOf) error {
			select {
			case batches <- b:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if err != nil {
			fail(err)
		}
	}()
	// Each batch's writer counts into a report of its own, added to the
	// run's once written.
	written := make(chan *writer, flushers)
	for range flushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range written {
				if err := w.flush(ctx); err != nil {
					fail(err)
					continue
				}
				mu.Lock()
				p.rep.addWrites(w.rep)
				mu.Unlock()
			}
		}()
	}
	task := p.cfg.Progress.Start("phase 1: merge groups", int64(p.grouped))
	defer task.Done()
	err := func() error {
		for b := range batches {
			w := newWriter(p.cfg, &Report{})
			for _, g := range b.groups {
				task.Add(int64(len(g)))
				docs, err := b.docs(g)
				if err != nil {
					return err
				}
				if len(docs) == 0 {
					continue // every account of the group is gone since pass 2
				}
				p.count(docs)
				if err := p.mergeOne(docs, w); err != nil {
					return err
				}
			}
			select {
			case written <- w:
			case <-ctx.Done():
				return nil // firstErr says why
			}
		}
		return nil
	}()
	if err != nil {
		fail(err)
	}
	close(written)
	for range batches { // let the fetcher end
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p.cfg.Log.WithFields(logrus.Fields{"groups": p.rep.Groups, "accounts": p.rep.GroupedAccounts, "largest": p.rep.LargestGroup}).Info("phase 1: groups merged")
	return nil
}

// eachBatch cuts the groups into batches of about Config.Batch accounts
// (a group is never cut) and fetches each.
func (p *run) eachBatch(ctx context.Context, fn func(*batchOf) error) error {
	var groups [][]member
	n := 0
	send := func() error {
		if len(groups) == 0 {
			return nil
		}
		b, err := p.fetch(ctx, groups)
		if err != nil {
			return err
		}
		groups, n = nil, 0
		return fn(b)
	}
	for start := 0; start < len(p.members); {
		end := start + 1
		for end < len(p.members) && p.members[end].G == p.members[start].G {
			end++
		}
		groups = append(groups, p.members[start:end])
		n += end - start
		start = end
		if n >= p.cfg.Batch {
			if err := send(); err != nil {
				return err
			}
		}
	}
	return send()
}

// fetch reads the accounts, links and tenant accounts (their _ids only) of
// the groups, side by side.
func (p *run) fetch(ctx context.Context, groups [][]member) (*batchOf, error) {
	var ids []model.ID
	for _, g := range groups {
		for _, m := range g {
			ids = append(ids, m.ID)
		}
	}
	b := &batchOf{groups: groups}
	reads := []struct {
		coll string
		proj bson.D
		into *map[model.ID]bson.Raw
		what string
	}{
		{p.cfg.Accounts, nil, &b.accounts, "read accounts"},
		{p.cfg.Links, nil, &b.links, "read links"},
		{p.cfg.TenantsAccounts, bson.D{{Key: "_id", Value: 1}}, &b.tenants, "read tenant accounts"},
	}
	errs := make([]error, len(reads))
	var wg sync.WaitGroup
	for i, r := range reads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			*r.into, errs[i] = findIDs(ctx, &p.cfg.Retry, p.cfg.DB.Collection(r.coll), ids, r.proj, r.what)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return b, nil
}

// docs is one group as the merge takes it, in _id order, without the
// accounts deleted since it was found.
func (b *batchOf) docs(g []member) ([]groupDoc, error) {
	docs := make([]groupDoc, 0, len(g))
	for _, m := range g {
		raw, ok := b.accounts[m.ID]
		if !ok {
			continue
		}
		gd := groupDoc{ID: m.ID, G: m.G, Doc: raw, HasTenant: b.tenants[m.ID] != nil}
		if l := b.links[m.ID]; l != nil {
			gd.Link = &model.Link{}
			if err := bson.Unmarshal(l, gd.Link); err != nil {
				return nil, fmt.Errorf("decode link %s: %w", m.ID, err)
			}
		}
		docs = append(docs, gd)
	}
	return docs, nil
}

// findIDs reads the documents of coll with these _ids (proj: nil for
// whole documents), retried within rp, keyed by _id.
func findIDs(ctx context.Context, rp *retry.Policy, coll *mongo.Collection, ids []model.ID, proj bson.D, what string) (map[model.ID]bson.Raw, error) {
	var out map[model.ID]bson.Raw
	err := rp.Do(ctx, what, func(ctx context.Context) error {
		opts := options.Find().SetBatchSize(int32(len(ids) + 1))
		if proj != nil {
			opts.SetProjection(proj)
		}
		cur, err := coll.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, opts)
		if err != nil {
			return err
		}
		defer cur.Close(ctx)
		out = make(map[model.ID]bson.Raw, len(ids))
		for cur.Next(ctx) {
			if id, ok := model.IDOf(cur.Current.Lookup("_id")); ok {
				out[id] = append(bson.Raw(nil), cur.Current...)
			}
		}
		return cur.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
