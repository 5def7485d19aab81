package phase1

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
	"github.com/tenantmigrate/runner/runner/internal/join"
	"github.com/tenantmigrate/runner/runner/internal/writes"
	"github.com/tenantmigrate/runner/runner/retry"
)

// keyTable sorts identity entries so that the accounts holding one
// identity are adjacent, and the identities that differ only by case or
// Unicode form are too.
type keyTable struct {
	t    table
	salt []byte // the key of its hashes, new for every table
}

func newKeyTable(t table) *keyTable {
	salt := make([]byte, 32)
	_, _ = rand.Read(salt) // crypto/rand never fails (Go 1.24)
	return &keyTable{t: t, salt: salt}
}

func (k *keyTable) add(ctx context.Context, keys []keyDoc) error {
	docs := make([]any, len(keys))
	for i := range keys {
		docs[i] = keys[i]
	}
	// One account listing the same entry twice gives one key document.
	if err := k.t.insert(ctx, docs); err != nil {
		return fmt.Errorf("write identity keys: %w", err)
	}
	return nil
}

// scan reads the keys once, applies the identity rules of rules.go to each
// identity and each variant class, and calls link with every identity that
// links two or more accounts: its hash (the identity's part of the keys'
// _id) and the accounts it links, in _id order. It returns what it saw.
func (k *keyTable) scan(ctx context.Context, link func(h string, linked []model.ID) error) (IdentityReport, error) {
	var rep IdentityReport
	keys, err := stream(ctx, k.t, join.Spec[keyDoc, string]{
		What: "identity keys",
		Decode: func(raw bson.Raw) (keyDoc, error) {
			var kd keyDoc
			if err := bson.Unmarshal(raw, &kd); err != nil {
				return kd, err
			}
			if len(kd.ID) <= hashLen {
				return kd, errors.New("a key without an account")
			}
			a, ok := model.IDFromKey(kd.ID[hashLen:])
			if !ok {
				return kd, errors.New("a key without an account")
			}
			kd.A = a
			return kd, nil
		},
		Key:     keyDoc.class,
		Compare: strings.Compare,
	})
	if err != nil {
		return rep, err
	}
	defer keys.Close(ctx)
	err = keys.Groups(ctx, func(class []keyDoc) error {
		if len(class) < 2 {
			return nil // one account's one entry: it links and varies nothing
		}
		var verified [][]model.ID
		for start := 0; start < len(class); {
			end := start + 1
			for end < len(class) && class[end].identity() == class[start].identity() {
				end++
			}
			holders := make([]Holder, 0, end-start)
			for _, kd := range class[start:end] {
				holders = append(holders, Holder{ID: kd.A, Verified: kd.verified()})
			}
			sh := Link(holders)
			rep.noteShared(class[start].Code, sh)
			if len(sh.Linked) > 0 {
				if err := link(class[start].identity(), sh.Linked); err != nil {
					return err
				}
			}
			verified = append(verified, sh.Verified)
			start = end
		}
		rep.noteVariants(class[0].Code, Variants(verified))
		return nil
	})
	return rep, err
}

// stream reads table t as spec says.
func stream[T, K any](ctx context.Context, t table, spec join.Spec[T, K]) (*join.Stream[T, K], error) {
	r, err := t.open(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", spec.What, err)
	}
	return join.New(r, spec), nil
}

// groupTable brings the accounts of each group together.
type groupTable struct{ t table }

func (g *groupTable) put(ctx context.Context, docs []groupDoc) error {
	if len(docs) == 0 {
		return nil
	}
	out := make([]any, len(docs))
	for i := range docs {
		out[i] = docs[i]
	}
	if err := g.t.insert(ctx, out); err != nil {
		return fmt.Errorf("write group members: %w", err)
	}
	return nil
}

// groups calls fn with the accounts of each group, in group-key order.
func (g *groupTable) groups(ctx context.Context, fn func([]groupDoc) error) error {
	members, err := stream(ctx, g.t, join.Spec[groupDoc, model.ID]{
		What: "group members",
		Decode: func(raw bson.Raw) (groupDoc, error) {
			var gd groupDoc
			err := bson.Unmarshal(raw, &gd)
			gd.Doc = append(bson.Raw(nil), gd.Doc...) // held past the next read
			return gd, err
		},
		Key:     func(gd groupDoc) model.ID { return gd.G },
		Compare: model.ID.Compare,
	})
	if err != nil {
		return err
	}
	defer members.Close(ctx)
	return members.Groups(ctx, fn)
}

// writer batches phase 1's writes. Order within a flush:
//
//  1. superseded tenant accounts (deleted), because their memberships move
//     into the survivors', under the unique index of membership ids: the
//     other order is refused. Killed in between, their legacy accounts are
//     in no tenant account until the next run, which merges them as an
//     uninterrupted run would (it finds the group with only the survivor
//     owning a tenant account);
//  2. replaced tenant accounts, each conditional on the tenant account as it
//     was read, so that one the service writes meanwhile is kept;
//  3. the links of the groups whose tenant account is new, before it: a
//     run killed after the tenant account leaves its links, by which
//     phase 1's down finds it (a link to a tenant account not yet written
//     is one the next run writes, and the down deletes nothing for);
//  4. new tenant accounts;
//  5. the other links, last, so that a survivor's link, holding the hash
//     of its tenant account, is written only once the tenant account is:
//     a run that finds the hash trusts the tenant account as it is.
type writer struct {
	cfg        Config
	rep        *Report
	inserts    []any
	compare    map[model.ID]bson.Raw
	supersedes []model.TenantRef
	// links by when they go (3 or 5) and whether they exist
	ahead, after linkBatch
}

// linkBatch are links to write: new ones inserted, existing ones replaced.
type linkBatch struct {
	added    []any
	replaced []model.Link
}

func (b *linkBatch) add(l model.Link, exists bool) {
	if exists {
		b.replaced = append(b.replaced, l)
	} else {
		b.added = append(b.added, l)
	}
}

func (b *linkBatch) len() int { return len(b.added) + len(b.replaced) }

// write writes the batch: the replaces, then the inserts.
func (b *linkBatch) write(ctx context.Context, rp *retry.Policy, links *mongo.Collection) error {
	models := make([]mongo.WriteModel, len(b.replaced))
	for i, l := range b.replaced {
		models[i] = mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: l.LegacyID}}).SetReplacement(l).SetUpsert(true)
	}
	if len(models) > 0 {
		if _, err := writes.BulkWrite(ctx, rp, links, models); err != nil {
			return err
		}
	}
	return writes.InsertMany(ctx, rp, links, b.added)
}

func newWriter(cfg Config, rep *Report) *writer {
	return &writer{cfg: cfg, rep: rep, compare: map[model.ID]bson.Raw{}}
}

func (w *writer) pending() int {
	return len(w.inserts) + len(w.compare) + len(w.supersedes) + w.ahead.len() + w.after.len()
}

func (w *writer) insertTenant(raw bson.Raw)               { w.inserts = append(w.inserts, raw) }
func (w *writer) compareTenant(id model.ID, raw bson.Raw) { w.compare[id] = raw }
func (w *writer) supersede(t model.TenantRef)             { w.supersedes = append(w.supersedes, t) }

// link writes l (exists: a link of its account exists); ahead: before its
// group's new tenant account.
func (w *writer) link(l model.Link, exists, ahead bool) {
	if ahead {
		w.ahead.add(l, exists)
	} else {
		w.after.add(l, exists)
	}
}

// flush writes the batch (unless the run is dry) in the writer's order,
// and counts each write once it is made: a failed run reports only what it
// wrote. Every write is idempotent: keyed, or conditional.
func (w *writer) flush(ctx context.Context) error {
	same, replaces, err := w.changedTenants(ctx)
	if err != nil {
		return err
	}
	w.rep.TenantsSame += same
	tenants := w.cfg.DB.Collection(w.cfg.TenantsAccounts)
	links := w.cfg.DB.Collection(w.cfg.Links)
	rp := &w.cfg.Retry
	for _, op := range []struct {
		what  string
		n     int
		write func(context.Context) (int, error) // how many it wrote
		count *int
	}{
		{"delete superseded tenant accounts", len(w.supersedes), func(ctx context.Context) (int, error) {
			_, err := writes.DeleteTenants(ctx, rp, tenants, w.cfg.ShardKey, w.supersedes)
			return len(w.supersedes), err
		}, &w.rep.Superseded},
		{"replace tenant accounts", len(replaces), func(ctx context.Context) (int, error) {
			res, err := writes.BulkWrite(ctx, rp, tenants, replaces)
			if err != nil {
				return 0, err
			}
			// the others, the service wrote since they were read
			w.rep.KeptNewer += len(replaces) - int(res.MatchedCount)
			return int(res.MatchedCount), nil
		}, &w.rep.TenantsReplaced},
		{"write links", w.ahead.len(), func(ctx context.Context) (int, error) {
			return w.ahead.len(), w.ahead.write(ctx, rp, links)
		}, &w.rep.LinksWritten},
		{"insert tenant accounts", len(w.inserts), func(ctx context.Context) (int, error) {
			return len(w.inserts), writes.InsertMany(ctx, rp, tenants, w.inserts)
		}, &w.rep.TenantsInserted},
		{"write links", w.after.len(), func(ctx context.Context) (int, error) {
			return w.after.len(), w.after.write(ctx, rp, links)
		}, &w.rep.LinksWritten},
	} {
		if op.n == 0 {
			continue
		}
		n := op.n
		if !w.cfg.DryRun {
			if n, err = op.write(ctx); err != nil {
				return fmt.Errorf("%s: %w", op.what, err)
			}
		}
		*op.count += n
	}
	w.inserts, w.supersedes, w.ahead, w.after = nil, nil, linkBatch{}, linkBatch{}
	w.compare = map[model.ID]bson.Raw{}
	return nil
}

// changedTenants reads the tenant accounts to compare and returns how
// many are the same, and the replaces of the others.
func (w *writer) changedTenants(ctx context.Context) (int, []mongo.WriteModel, error) {
	if len(w.compare) == 0 {
		return 0, nil, nil
	}
	ids := make([]model.ID, 0, len(w.compare))
	for id := range w.compare {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, model.ID.Compare)
	existing, err := findIDs(ctx, &w.cfg.Retry, w.cfg.DB.Collection(w.cfg.TenantsAccounts), ids, nil, "read tenant accounts")
	if err != nil {
		return 0, nil, err
	}
	same := 0
	var models []mongo.WriteModel
	for _, id := range ids {
		stored := existing[id]
		switch {
		case bytes.Equal(stored, w.compare[id]):
			same++
		case stored != nil && KeepsStored(stored, w.compare[id]):
			w.rep.KeptNewer++
		case stored == nil:
			// gone since it was seen: written anew
			w.inserts = append(w.inserts, w.compare[id])
		default:
			// Conditional on the tenant account as it was read: one the
			// service writes meanwhile is kept, as KeepsStored keeps it.
			models = append(models, mongo.NewReplaceOneModel().SetFilter(pipelines.SameDateFilter(w.cfg.ShardKey, stored.Lookup(model.FieldID), stored.Lookup(model.FieldOrgID), stored.Lookup(model.FieldDateUpdated))).SetReplacement(w.compare[id]))
		}
	}
	return same, models, nil
}
