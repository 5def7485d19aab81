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
	"github.com/tenantmigrate/runner/runner/internal/join"
	"github.com/tenantmigrate/runner/runner/internal/writes"
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

// writer batches phase 1's writes. Order within a flush: superseded tenant
// accounts, then tenant accounts, then links. A superseded tenant account
// goes first because its membership moves into the survivor's, under the
// unique index of membership ids: the other order is refused. Killed in
// between, its legacy account is in no tenant account until the next run,
// which merges it as an uninterrupted run would (it finds the group with
// only the survivor owning a tenant account). Links go last, so that a
// link never points at a tenant account not yet written, and the
// survivor's link (holding the hash of its tenant account) is written last.
type writer struct {
	cfg        Config
	rep        *Report
	inserts    []any
	compare    map[model.ID]bson.Raw
	supersedes []model.ID
	newLinks   []any
	oldLinks   []model.Link
}

func newWriter(cfg Config, rep *Report) *writer {
	return &writer{cfg: cfg, rep: rep, compare: map[model.ID]bson.Raw{}}
}

func (w *writer) pending() int {
	return len(w.inserts) + len(w.compare) + len(w.supersedes) + len(w.newLinks) + len(w.oldLinks)
}

func (w *writer) insertTenant(raw bson.Raw)               { w.inserts = append(w.inserts, raw) }
func (w *writer) compareTenant(id model.ID, raw bson.Raw) { w.compare[id] = raw }
func (w *writer) supersede(id model.ID)                   { w.supersedes = append(w.supersedes, id) }

func (w *writer) link(l model.Link, exists bool) {
	if exists {
		w.oldLinks = append(w.oldLinks, l)
	} else {
		w.newLinks = append(w.newLinks, l)
	}
}

// flush writes the batch (unless the run is dry) in the writer's order,
// and counts each write once it is made: a failed run reports only what it
// wrote. Every write is idempotent: keyed, or a replace.
func (w *writer) flush(ctx context.Context) error {
	same, replaces, err := w.changedTenants(ctx)
	if err != nil {
		return err
	}
	w.rep.TenantsSame += same
	tenants := w.cfg.DB.Collection(w.cfg.TenantsAccounts)
	links := w.cfg.DB.Collection(w.cfg.Links)
	rp := &w.cfg.Retry
	oldLinks := make([]mongo.WriteModel, len(w.oldLinks))
	for i, l := range w.oldLinks {
		oldLinks[i] = mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: l.LegacyID}}).SetReplacement(l).SetUpsert(true)
	}
	for _, op := range []struct {
		what  string
		n     int
		count *int
		write func(context.Context) error
	}{
		{"delete superseded tenant accounts", len(w.supersedes), &w.rep.Superseded, func(ctx context.Context) error {
			_, err := writes.DeleteIDs(ctx, rp, tenants, w.supersedes)
			return err
		}},
		{"replace tenant accounts", len(replaces), &w.rep.TenantsReplaced, func(ctx context.Context) error {
			_, err := writes.BulkWrite(ctx, rp, tenants, replaces)
			return err
		}},
		{"insert tenant accounts", len(w.inserts), &w.rep.TenantsInserted, func(ctx context.Context) error {
			return writes.InsertMany(ctx, rp, tenants, w.inserts)
		}},
		{"replace links", len(oldLinks), &w.rep.LinksWritten, func(ctx context.Context) error {
			_, err := writes.BulkWrite(ctx, rp, links, oldLinks)
			return err
		}},
		{"insert links", len(w.newLinks), &w.rep.LinksWritten, func(ctx context.Context) error {
			return writes.InsertMany(ctx, rp, links, w.newLinks)
		}},
	} {
		if op.n == 0 {
			continue
		}
		if !w.cfg.DryRun {
			if err := op.write(ctx); err != nil {
				return fmt.Errorf("%s: %w", op.what, err)
			}
		}
		*op.count += op.n
	}
	w.inserts, w.supersedes, w.newLinks, w.oldLinks = nil, nil, nil, nil
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
		if bytes.Equal(existing[id], w.compare[id]) {
			same++
			continue
		}
		models = append(models, mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: id}}).SetReplacement(w.compare[id]).SetUpsert(true))
	}
	return same, models, nil
}
