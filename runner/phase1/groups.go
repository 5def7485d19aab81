package phase1

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/internal/join"
)

// Grouping (pass 2) gives every account that shares an identity with
// another its group key: the smallest _id of its connected component in the
// graph "shares an identity key with".
//
// While the accounts that share identities are at most Config.MemoryGroupLimit,
// a union-find in memory does it in the one scan of the keys. Past that (and
// always with a limit of 0) it runs in scratch tables (scratch.go: on the
// server, or on local disk for a dry run) by label propagation: every
// account starts labelled with its own _id; a round gives each key the
// smallest label of its accounts, then each account the smallest label of
// its keys; it stops at the first round that changes
// nothing. Each round is two sorted scans and two insert-only writes, so
// memory holds one key run or one account's keys at a time: the largest
// group, not the collection. Rounds are as many as the longest chain of
// shared identities in a group (plus one), one or two for most people.

// groupLookup answers, for ids asked in ascending order, the group key of
// an account, or false for an account in no group; after close, it answers
// from the start again.
type groupLookup interface {
	group(ctx context.Context, id model.ID) (model.ID, bool, error)
	close(ctx context.Context)
}

// memLookup is the in-memory answer.
type memLookup map[model.ID]model.ID

func (m memLookup) group(_ context.Context, id model.ID) (model.ID, bool, error) {
	g, ok := m[id]
	return g, ok, nil
}

func (memLookup) close(context.Context) {}

// errOverBudget stops the in-memory union-find.
var errOverBudget = errors.New("over the in-memory grouping limit")

// pass 2
func (p *run) findGroups(ctx context.Context) error {
	if limit := p.cfg.MemoryGroupLimit; limit > 0 {
		groupOf, err := p.unionFind(ctx, limit)
		if err == nil {
			p.lookup, p.grouped = groupOf, len(groupOf)
			p.rep.GroupedIn = "memory"
			p.cfg.Log.WithFields(logrus.Fields{"accounts": p.grouped, "where": "memory"}).Info("phase 1: groups found")
			return nil
		}
		if !errors.Is(err, errOverBudget) {
			return err
		}
		p.cfg.Log.WithFields(logrus.Fields{"limit": limit, "where": p.store.where()}).Info("phase 1: more accounts share identities than the in-memory limit; grouping in scratch tables")
	}
	return p.propagate(ctx)
}

// unionFind groups in memory; a limit above 0 stops it with errOverBudget
// once more accounts than that share identities.
func (p *run) unionFind(ctx context.Context, limit int) (memLookup, error) {
	uf, err := p.connect(ctx, limit)
	if err != nil {
		return nil, err
	}
	groupOf := make(memLookup, len(uf.parent))
	for a := range uf.parent {
		groupOf[a] = uf.find(a)
	}
	return groupOf, nil
}

// connect scans the keys into a union-find, and keeps what the scan saw
// of the identities in the report.
func (p *run) connect(ctx context.Context, limit int) (*components, error) {
	uf := newComponents(limit)
	seen, err := p.keys.scan(ctx, func(_ string, linked []model.ID) error {
		for _, a := range linked[1:] {
			uf.union(linked[0], a)
		}
		if uf.over() {
			return errOverBudget
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	p.noteIdentities(seen)
	return uf, nil
}

// noteIdentities keeps what a scan of every key saw; the entries were
// counted as they were written.
func (p *run) noteIdentities(seen IdentityReport) {
	seen.Entries = p.rep.Identities.Entries
	p.rep.Identities = seen
}

// components is a union-find over account ids whose root is the smallest
// _id of a component: its group key.
type components struct {
	parent map[model.ID]model.ID
	limit  int // 0: none
}

func newComponents(limit int) *components {
	return &components{parent: map[model.ID]model.ID{}, limit: limit}
}

func (c *components) find(a model.ID) model.ID {
	for c.parent[a] != a {
		c.parent[a] = c.parent[c.parent[a]]
		a = c.parent[a]
	}
	return a
}

func (c *components) union(a, b model.ID) {
	for _, x := range []model.ID{a, b} {
		if _, ok := c.parent[x]; !ok {
			c.parent[x] = x
		}
	}
	ra, rb := c.find(a), c.find(b)
	if ra == rb {
		return
	}
	if rb.Less(ra) {
		ra, rb = rb, ra
	}
	c.parent[rb] = ra
}

// over: more accounts than the limit share identities.
func (c *components) over() bool { return c.limit > 0 && len(c.parent) > c.limit }

// members lists every account with its group key, sorted by group key,
// then _id (the order of the streaming path's group table), and empties
// the union-find.
func (c *components) members() []member {
	out := make([]member, 0, len(c.parent))
	for a := range c.parent {
		out = append(out, member{G: c.find(a), ID: a})
	}
	c.parent = nil
	slices.SortFunc(out, func(x, y member) int {
		if n := x.G.Compare(y.G); n != 0 {
			return n
		}
		return x.ID.Compare(y.ID)
	})
	return out
}

// labelDoc is one (account, identity key) pair of a propagation round, in
// two orders: by account (_id = accountKey(a) + hash), where an account
// takes the smallest label of its keys, and by key (_id = hash + a), where
// a key takes the smallest label of its accounts.
type labelDoc struct {
	ID string   `bson:"_id"`
	A  model.ID `bson:"a"`
	H  string   `bson:"h"`
	// L is the account's label; M the smallest label of the key's accounts
	// (by-account documents only).
	L model.ID `bson:"l"`
	M model.ID `bson:"m,omitempty"`
}

// accountKey orders by account whatever bytes an _id holds: hex keeps the
// byte order of the ID's Key, which is the order of the legacy _ids sorted
// on the server, and "-", below every hex digit, ends it, so all the
// documents of one account are adjacent.
func accountKey(a model.ID) string { return hex.EncodeToString([]byte(a.Key())) + "-" }

// smaller is the smaller of two labels; a zero one (M of a by-key
// document) is none.
func smaller(a, b model.ID) model.ID {
	if b.IsZero() || a.Compare(b) <= 0 {
		return a
	}
	return b
}

func (p *run) scratch(kind string, round int) table {
	return p.store.table(fmt.Sprintf("%s%d", kind, round), "_id")
}

// propagate groups in the scratch tables; the last by-account table then
// answers the lookups of pass 3.
func (p *run) propagate(ctx context.Context) error {
	// Round 0 needs no labels: each key's smallest account is its label.
	byAccount := p.scratch("acct", 0)
	out := newInserter(ctx, byAccount, p.cfg.Batch)
	task := p.cfg.Progress.Start("phase 1: group round 0", 0)
	seen, err := p.keys.scan(ctx, func(h string, linked []model.ID) error {
		for _, a := range linked {
			task.Add(1)
			if err := out.add(labelDoc{ID: accountKey(a) + h, A: a, H: h, L: a, M: linked[0]}); err != nil {
				return err
			}
		}
		return nil
	})
	task.Done()
	p.noteIdentities(seen)
	if err == nil {
		err = out.flush()
	}
	if err != nil {
		return fmt.Errorf("group round 0: %w", err)
	}
	for round := 1; ; round++ {
		byKey := p.scratch("key", round)
		accounts, changed, err := p.settleAccounts(ctx, byAccount, byKey, round)
		if err != nil {
			return fmt.Errorf("group round %d: %w", round, err)
		}
		p.cfg.Log.WithFields(logrus.Fields{"round": round, "accounts": accounts, "changed": changed}).Info("phase 1: group round")
		if changed == 0 {
			_ = byKey.drop(ctx)
			p.grouped = accounts
			p.rep.GroupedIn, p.rep.GroupingRounds = p.store.where(), round
			p.lookup = &tableLookup{t: byAccount}
			return nil
		}
		if err := byAccount.drop(ctx); err != nil {
			return fmt.Errorf("group round %d: %w", round, err)
		}
		byAccount = p.scratch("acct", round)
		if err := p.settleKeys(ctx, byKey, byAccount, round); err != nil {
			return fmt.Errorf("group round %d: %w", round, err)
		}
		if err := byKey.drop(ctx); err != nil {
			return fmt.Errorf("group round %d: %w", round, err)
		}
	}
}

// settleAccounts gives each account the smallest label of its keys and
// writes its pairs by key; it counts the accounts and those whose label
// went down.
func (p *run) settleAccounts(ctx context.Context, from, to table, round int) (accounts, changed int, err error) {
	task := p.cfg.Progress.Start(fmt.Sprintf("phase 1: group round %d accounts", round), 0)
	defer task.Done()
	out := newInserter(ctx, to, p.cfg.Batch)
	err = labels(ctx, from, func(d labelDoc) model.ID { return d.A }, model.ID.Compare, func(one []labelDoc) error {
		task.Add(int64(len(one)))
		accounts++
		label := one[0].L
		for _, d := range one {
			label = smaller(label, d.M)
		}
		if label != one[0].L {
			changed++
		}
		for _, d := range one {
			if err := out.add(labelDoc{ID: d.H + d.A.Key(), A: d.A, H: d.H, L: label}); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = out.flush()
	}
	return accounts, changed, err
}

// settleKeys gives each key the smallest label of its accounts and writes
// its pairs by account.
func (p *run) settleKeys(ctx context.Context, from, to table, round int) error {
	task := p.cfg.Progress.Start(fmt.Sprintf("phase 1: group round %d keys", round), 0)
	defer task.Done()
	out := newInserter(ctx, to, p.cfg.Batch)
	err := labels(ctx, from, func(d labelDoc) string { return d.H }, strings.Compare, func(run []labelDoc) error {
		task.Add(int64(len(run)))
		label := run[0].L
		for _, d := range run {
			label = smaller(label, d.L)
		}
		for _, d := range run {
			if err := out.add(labelDoc{ID: accountKey(d.A) + d.H, A: d.A, H: d.H, L: d.L, M: label}); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = out.flush()
	}
	return err
}

// labels calls fn with each run of a round's pairs of one key, an account
// or an identity key, as the table is sorted by it.
func labels[K any](ctx context.Context, from table, key func(labelDoc) K, compare func(a, b K) int, fn func([]labelDoc) error) error {
	pairs, err := stream(ctx, from, join.Spec[labelDoc, K]{What: "group labels", Key: key, Compare: compare})
	if err != nil {
		return err
	}
	defer pairs.Close(ctx)
	return pairs.Groups(ctx, fn)
}

// tableLookup reads the settled by-account pairs alongside the legacy scan.
type tableLookup struct {
	t     table
	pairs *join.Stream[labelDoc, string]
}

func (c *tableLookup) group(ctx context.Context, id model.ID) (model.ID, bool, error) {
	if c.pairs == nil {
		s, err := stream(ctx, c.t, join.Spec[labelDoc, string]{What: "groups", Key: func(d labelDoc) string { return d.ID }, Compare: strings.Compare})
		if err != nil {
			return model.ID{}, false, err
		}
		c.pairs = s
	}
	prefix := accountKey(id)
	d, ok, err := c.pairs.Seek(ctx, prefix)
	// Settled: every pair of an account carries the same label.
	if err != nil || !ok || !strings.HasPrefix(d.ID, prefix) {
		return model.ID{}, false, err
	}
	return d.L, true, nil
}

// close ends a reading; the next lookup reads the table again from the
// start.
func (c *tableLookup) close(ctx context.Context) {
	if c.pairs != nil {
		c.pairs.Close(ctx)
		c.pairs = nil
	}
}

// inserter batches inserts into a scratch table.
type inserter struct {
	ctx   context.Context
	t     table
	batch int
	buf   []any
}

func newInserter(ctx context.Context, t table, batch int) *inserter {
	return &inserter{ctx: ctx, t: t, batch: batch}
}

func (w *inserter) add(d any) error {
	w.buf = append(w.buf, d)
	if len(w.buf) >= w.batch {
		return w.flush()
	}
	return nil
}

func (w *inserter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.t.insert(w.ctx, w.buf)
	w.buf = w.buf[:0]
	return err
}
