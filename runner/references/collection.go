package references

// A collection of the service with configured references: how its
// documents are read, planned and rewritten, batch by batch of links.

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/internal/servererr"
	"github.com/tenantmigrate/runner/runner/internal/sorted"
	"github.com/tenantmigrate/runner/runner/retry"
)

// collection rewrites the references of one collection.
type collection struct {
	cfg    Config
	coll   *mongo.Collection
	fields []*FieldReport
	rep    *Report
	// batch is the batch of links being worked on.
	batch map[model.ID]model.ID
	// check, for Check, collects the documents a dry run would rewrite.
	check *CheckReport
	// uniques are the unique indexes a rewrite can collide with.
	uniques []unique
}

// fields are the top-level fields read of each document: those of the
// references and of the unique indexes they are in.
func (c *collection) projection() bson.D {
	proj := bson.D{}
	seen := map[string]bool{}
	add := func(f string) {
		top, _, _ := strings.Cut(f, ".")
		if !seen[top] {
			seen[top] = true
			proj = append(proj, bson.E{Key: top, Value: 1})
		}
	}
	for _, t := range c.tops() {
		add(t)
	}
	for _, u := range c.uniques {
		for _, f := range u {
			add(f)
		}
	}
	return proj
}

// conflict counts a document left as it is. Each batch of links whose
// ids it holds meets it again: it counts in the first, the batch of its
// smallest merged-away id, so memory needs no list of them.
func (c *collection) conflict(p *plan, reason string) {
	if has(c.batch, p.first) {
		c.rep.conflict(c.coll.Name(), p.id, reason)
	}
}

// tops are the top-level fields the references of the collection live in.
func (c *collection) tops() []string {
	var out []string
	for _, f := range c.fields {
		if t := f.Ref.top(); !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// rewrite re-points every document of the collection that holds one of
// the batch's merged-away ids.
func (c *collection) rewrite(ctx context.Context, batch map[model.ID]model.ID) error {
	olds := make([]model.ID, 0, len(batch))
	for id := range batch {
		olds = append(olds, id)
	}
	slices.SortFunc(olds, model.ID.Compare)
	var or bson.A
	for _, f := range c.fields {
		or = append(or, bson.D{{Key: f.Ref.Path, Value: bson.D{{Key: "$in", Value: olds}}}})
	}
	proj := c.projection()
	var docs []bson.D
	err := sorted.Each(ctx, c.coll, bson.D{{Key: "$or", Value: or}}, proj, c.cfg.read(), func(raw bson.Raw) error {
		var d bson.D
		if err := bson.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("read %s: %w", c.coll.Name(), err)
		}
		if docs = append(docs, d); len(docs) >= c.cfg.Batch {
			err := c.rewriteDocs(ctx, batch, docs)
			docs = docs[:0]
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.rewriteDocs(ctx, batch, docs)
}

// plan is one document's rewrite: its top-level fields before and after.
type plan struct {
	id       any
	before   bson.D
	after    bson.D
	replaced []int64 // by field, as c.fields
	// conflict says why the document must be left as it is.
	conflict string
	// doc is the document as read (the fields of projection).
	doc bson.D
	// pending is its record's Pending, once recorded.
	pending bson.D
	// first is the smallest merged-away id the document holds: the batch
	// of links that holds it is the first to meet the document.
	first model.ID
}

// rewriteDocs rewrites one chunk of documents: every configured field at
// once, with the tenant ids of all the merged-away ids they hold (batch's
// and any other's), so that a document is written once.
func (c *collection) rewriteDocs(ctx context.Context, batch map[model.ID]model.ID, docs []bson.D) error {
	if len(docs) == 0 {
		return nil
	}
	to, err := c.tenantsOf(ctx, batch, docs)
	if err != nil {
		return err
	}
	c.batch = batch
	var all []*plan
	for _, d := range docs {
		switch p := c.plan(d, to); {
		case p == nil:
		case c.cfg.DryRun && !has(batch, p.first):
			// A dry run writes nothing, so later batches meet the document
			// again: it counts in the first, as a run rewrites it there.
		default:
			all = append(all, p)
		}
	}
	if err := c.refuseUnique(ctx, all); err != nil {
		return err
	}
	var plans, same []*plan
	for _, p := range all {
		if p.conflict != "" {
			c.conflict(p, p.conflict)
			same = append(same, p)
		} else {
			plans = append(plans, p)
		}
	}
	if c.cfg.DryRun {
		for _, p := range plans {
			c.done(p)
		}
		if c.check != nil {
			return c.checkStale(ctx, append(plans, same...))
		}
		return nil
	}
	if err := c.recordConflicts(ctx, same); err != nil {
		return err
	}
	if len(plans) == 0 {
		return nil
	}
	if err := c.record(ctx, plans); err != nil {
		return err
	}
	if c.cfg.stop == stopAfterRecord {
		return errStopped
	}
	return c.write(ctx, plans)
}

// checkStale sorts documents that still name merged-away accounts into
// those a recorded conflict explains and the others.
func (c *collection) checkStale(ctx context.Context, plans []*plan) error {
	if len(plans) == 0 {
		return nil
	}
	recorded, err := c.records(ctx, plans, bson.E{Key: "conflict", Value: bson.D{{Key: "$exists", Value: true}}})
	if err != nil {
		return err
	}
	name := c.coll.Name()
	for _, p := range plans {
		if _, ok := recorded[idKey(p.id)]; ok {
			c.check.Left[name]++
			continue
		}
		c.check.Stale[name]++
		if len(c.check.FirstStale) < firstConflicts {
			c.check.FirstStale = append(c.check.FirstStale, Conflict{Collection: name, Document: idText(p.id), Reason: "still names a merged-away account"})
		}
	}
	return nil
}

func has(batch map[model.ID]model.ID, id model.ID) bool {
	_, ok := batch[id]
	return ok
}

// tenantsOf maps the merged-away ids in docs to their tenant ids: those of
// batch, and those of the links of any other id the documents hold.
func (c *collection) tenantsOf(ctx context.Context, batch map[model.ID]model.ID, docs []bson.D) (func(model.ID) (model.ID, bool), error) {
	other := map[model.ID]bool{}
	for _, d := range docs {
		for _, f := range c.fields {
			seg := f.Ref.segments()
			idsAt(docValue(d, seg[0]), seg[1:], func(id model.ID) {
				if _, ok := batch[id]; !ok {
					other[id] = true
				}
			})
		}
	}
	more := map[model.ID]model.ID{}
	if len(other) > 0 {
		ids := make([]model.ID, 0, len(other))
		for id := range other {
			ids = append(ids, id)
		}
		slices.SortFunc(ids, model.ID.Compare)
		filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}, {Key: "tenant_id", Value: bson.D{{Key: "$exists", Value: true}}}}
		err := sorted.Each(ctx, c.cfg.DB.Collection(c.cfg.Links), filter, bson.D{{Key: "tenant_id", Value: 1}}, c.cfg.read(), func(raw bson.Raw) error {
			var l model.Link
			if err := bson.Unmarshal(raw, &l); err != nil {
				return fmt.Errorf("read link: %w", err)
			}
			if !l.TenantID.IsZero() {
				more[l.LegacyID] = l.TenantID
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read links: %w", err)
		}
	}
	return func(id model.ID) (model.ID, bool) {
		if t, ok := batch[id]; ok {
			return t, true
		}
		t, ok := more[id]
		return t, ok
	}, nil
}

// plan is the rewrite of d, nil when it holds nothing to re-point. A
// rewrite that would make two references name one tenant account is a
// conflict.
func (c *collection) plan(d bson.D, to func(model.ID) (model.ID, bool)) *plan {
	p := &plan{id: docValue(d, "_id"), doc: d, replaced: make([]int64, len(c.fields))}
	after := map[string]any{}
	for _, t := range c.tops() {
		after[t] = docValue(d, t)
	}
	for i, f := range c.fields {
		seg := f.Ref.segments()
		nv, n := rewrite(after[seg[0]], seg[1:], to)
		after[seg[0]], p.replaced[i] = nv, int64(n)
		idsAt(docValue(d, seg[0]), seg[1:], func(id model.ID) {
			if t, ok := to(id); ok && t != id && (p.first.IsZero() || id.Less(p.first)) {
				p.first = id
			}
		})
	}
	for _, t := range c.tops() {
		if v, ok := model.Get(d, t); ok && !sameValue(v, after[t]) {
			p.before = append(p.before, bson.E{Key: t, Value: v})
			p.after = append(p.after, bson.E{Key: t, Value: after[t]})
		}
	}
	if len(p.after) == 0 {
		return nil
	}
	if len(c.fields) > 1 && c.namesOneTwice(d, p.after) {
		p.conflict = ReasonSame
	}
	return p
}

// namesOneTwice: after the rewrite, two configured fields of the document
// hold one id that before it no two of them held.
func (c *collection) namesOneTwice(before, afterTops bson.D) bool {
	after := append(bson.D(nil), before...)
	for _, e := range afterTops {
		for i := range after {
			if after[i].Key == e.Key {
				after[i].Value = e.Value
			}
		}
	}
	shared := func(d bson.D) map[model.ID]bool {
		seen := map[model.ID]int{}
		out := map[model.ID]bool{}
		for i, f := range c.fields {
			seg := f.Ref.segments()
			idsAt(docValue(d, seg[0]), seg[1:], func(id model.ID) {
				if j, ok := seen[id]; ok && j != i+1 {
					out[id] = true
				}
				seen[id] = i + 1
			})
		}
		return out
	}
	was := shared(before)
	for id := range shared(after) {
		if !was[id] {
			return true
		}
	}
	return false
}

func (c *collection) done(p *plan) {
	c.rep.Documents++
	for i, n := range p.replaced {
		c.fields[i].Replaced += n
	}
}

// noteIndexes marks the fields no index of the collection starts with.
func (c *collection) noteIndexes(ctx context.Context) error {
	var specs []indexSpec
	err := c.cfg.Retry.Do(ctx, "list indexes of "+c.coll.Name(), func(ctx context.Context) error {
		cur, err := c.coll.Indexes().List(ctx)
		if err != nil {
			if servererr.IsNotFound(err) { // no collection: nothing to re-point
				specs = nil
				return nil
			}
			return err
		}
		specs = specs[:0]
		return cur.All(ctx, &specs)
	})
	if err != nil {
		return retry.Wrap("list indexes of "+c.coll.Name(), err)
	}
	for _, f := range c.fields {
		f.Unindexed = true
		for _, s := range specs {
			if len(s.Key) > 0 && s.Key[0].Key == f.Ref.Path {
				f.Unindexed = false
			}
		}
		if f.Unindexed {
			c.cfg.Log.WithField("field", f.Field).Warn("references: no index starts with this field; every batch of links scans the collection (see the README for the index to create)")
		}
	}
	c.uniques = uniquesOf(specs, c.tops())
	return nil
}
