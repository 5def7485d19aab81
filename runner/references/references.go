// Package references re-points the service's other collections (sessions,
// credentials, follows, ...) from the legacy accounts phase 1 merged away
// to the tenant account that now holds them.
//
// The contract of Run:
//   - Only configured fields (Ref: a collection and a dotted path, through
//     subdocuments and arrays) are read and written, and in them only
//     values equal to a merged-away legacy _id (a link whose tenant_id
//     differs from its own _id): each becomes its tenant_id, of the same
//     BSON type as the link holds it.
//   - Before a document is written, its record (collection Records, keyed
//     by collection and document _id) keeps the original value of every
//     top-level field the runner changes, once, and the value it writes.
//     Down puts back exactly the originals of the documents that still
//     hold what was written, and nothing else.
//   - Every write is conditional on the fields still holding what was
//     read: a document the service changed in between is left alone and
//     counted (a later run picks it up again).
//   - A write the server refuses for a unique index, or that would make
//     two references of one document name one tenant account (a follow of
//     oneself), is not forced: the document is left as it is, listed and
//     counted, and its record says why.
//   - Work goes by batches of links, read once for all collections, with a
//     checkpoint in State after each: a killed run resumes, and any run is
//     idempotent. Memory is bounded by a batch.
package references

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/internal/servererr"
	"github.com/tenantmigrate/runner/runner/internal/sorted"
	"github.com/tenantmigrate/runner/runner/retry"
	"github.com/tenantmigrate/runner/runner/step"
)

// Ref is one configured reference: a field of a collection of the service
// that holds a legacy account _id.
type Ref struct {
	Collection string
	// Path is dotted; it goes through subdocuments and arrays.
	Path string
}

func (r Ref) String() string { return r.Collection + ":" + r.Path }

func (r Ref) segments() []string { return strings.Split(r.Path, ".") }

func (r Ref) top() string { return r.segments()[0] }

// Config is what Run and Down need.
type Config struct {
	// Env: the step reads phase 1's links (Names.Links: legacy _id ->
	// tenant_id) and keeps its checkpoint and its records (the documents
	// it changed, for its down) in Store.
	step.Env
	Refs []Ref
	// DryRun counts what Run would change and writes nothing.
	DryRun bool

	// stop, for tests, ends a run with errStopped at a point where a kill
	// could land.
	stop stopPoint
}

type stopPoint int

const (
	noStop stopPoint = iota
	stopAfterRecord
	stopAfterWrite
)

var errStopped = errors.New("references: stopped for a test")

// records is the collection of what the step changed.
func (c Config) records() string { return c.Store.Records(RecordsName) }

// RecordsName names the step's records in the store.
const RecordsName = "references"

func (c Config) read() sorted.Options { return sorted.Options{Batch: c.Batch, Retry: &c.Retry} }

// FieldReport is what Run did to one configured reference.
type FieldReport struct {
	Ref Ref `json:"-"`
	// Field is Ref as collection:path.
	Field string `json:"field"`
	// Replaced are the ids replaced in this field.
	Replaced int64 `json:"replaced"`
	// Unindexed: no index of the collection starts with the path, so each
	// batch of links scans the collection.
	Unindexed bool `json:"unindexed,omitempty"`
}

// Conflict is a document left as it is. It names no personal value.
type Conflict struct {
	Collection string `json:"collection"`
	// Document is the document's _id as text.
	Document string `json:"document"`
	Reason   string `json:"reason"`
}

// Report is what Run did (or, dry, would do).
type Report struct {
	Fields []*FieldReport `json:"fields"`
	// Documents are the documents rewritten.
	Documents int64 `json:"documents"`
	// Changed are documents the service changed between the read and the
	// conditional write: left alone, for a later run.
	Changed int64 `json:"changed_meanwhile"`
	// Conflicts are documents left as they are; First lists some.
	Conflicts      int64      `json:"conflicts"`
	FirstConflicts []Conflict `json:"first_conflicts,omitempty"`
	Resumed        bool       `json:"resumed,omitempty"`
	DryRun         bool       `json:"dry_run,omitempty"`
}

// Notes are the report in a step's summary: what was rewritten and left,
// then each field.
func (r *Report) Notes() []string {
	if len(r.Fields) == 0 {
		return []string{"no references configured (key references): nothing to re-point"}
	}
	verb := "rewrote"
	if r.DryRun {
		verb = "would rewrite"
	}
	c := r.Counts()
	notes := []string{fmt.Sprintf("%s %d documents (%d merged-away ids re-pointed); %d left as they are, holding merged-away ids (conflicts: a unique index, or two references naming one tenant account; runner --references --dry-run lists the first); %d changed by the service meanwhile, left for a later run",
		verb, r.Documents, c[count.IDsReplaced], r.Conflicts, r.Changed)}
	done := "re-pointed"
	if r.DryRun {
		done = "to re-point"
	}
	for _, f := range r.Fields {
		note := fmt.Sprintf("%s: %d merged-away ids %s", f.Field, f.Replaced, done)
		if f.Unindexed {
			note += "; no index starts with this field, so each batch of links scanned the collection"
		}
		notes = append(notes, note)
	}
	return notes
}

// Print writes the report for a person: its notes, then the first
// documents left as they are.
func (r *Report) Print(w io.Writer) {
	for _, n := range r.Notes() {
		fmt.Fprintln(w, "references: "+n)
	}
	for _, c := range r.FirstConflicts {
		fmt.Fprintf(w, "references: left as it is: %s %s: %s\n", c.Collection, c.Document, c.Reason)
	}
}

// Counts are the report as a step's counts (a count's name holds no dot:
// the per-field figures are in Fields).
func (r *Report) Counts() count.Counts {
	c := count.Counts{count.DocumentsRewritten: r.Documents, count.ChangedMeanwhile: r.Changed, count.Conflicts: r.Conflicts, count.IDsReplaced: 0}
	for _, f := range r.Fields {
		c[count.IDsReplaced] += f.Replaced
	}
	return c
}

const firstConflicts = 20

func (r *Report) conflict(coll string, id any, reason string) {
	r.Conflicts++
	if len(r.FirstConflicts) < firstConflicts {
		r.FirstConflicts = append(r.FirstConflicts, Conflict{Collection: coll, Document: idText(id), Reason: reason})
	}
}

// The reasons a document is left as it is.
const (
	ReasonUnique = "a unique index refuses the rewritten document"
	ReasonSame   = "two references of the document would name one tenant account"
)

// ErrConfig: a reference names no usable field.
var ErrConfig = errors.New("references: bad configuration")

// Run re-points every configured reference (see the package doc).
func Run(ctx context.Context, cfg Config) (*Report, error) { return run(ctx, cfg, nil) }

// CheckReport is what Check found, by collection.
type CheckReport struct {
	// Stale are documents whose configured fields still name an account
	// phase 1 merged away, with no recorded conflict to say why.
	Stale      map[string]int64
	FirstStale []Conflict
	// Left are documents a recorded conflict left as they are.
	Left map[string]int64
}

// Check reads, writing nothing, whether any configured field still names
// a merged-away account; for verify.
func Check(ctx context.Context, cfg Config) (*CheckReport, error) {
	cfg.DryRun = true
	chk := &CheckReport{Stale: map[string]int64{}, Left: map[string]int64{}}
	_, err := run(ctx, cfg, chk)
	return chk, err
}

func run(ctx context.Context, cfg Config, check *CheckReport) (*Report, error) {
	cfg.Env = cfg.Env.WithDefaults()
	rep := &Report{DryRun: cfg.DryRun}
	byColl := map[string][]*FieldReport{}
	var colls []string
	for _, r := range cfg.Refs {
		if r.Collection == "" || r.Path == "" || slices.Contains(r.segments(), "") {
			return rep, fmt.Errorf("%w: %q", ErrConfig, r.String())
		}
		f := &FieldReport{Ref: r, Field: r.String()}
		rep.Fields = append(rep.Fields, f)
		if byColl[r.Collection] == nil {
			colls = append(colls, r.Collection)
		}
		byColl[r.Collection] = append(byColl[r.Collection], f)
	}
	var cs []*collection
	for _, name := range colls {
		c := &collection{cfg: cfg, coll: cfg.DB.Collection(name), fields: byColl[name], rep: rep, check: check}
		if err := c.noteIndexes(ctx); err != nil {
			return rep, err
		}
		cs = append(cs, c)
	}
	if err := runLinks(ctx, cfg, cs, rep); err != nil {
		return rep, err
	}
	if !cfg.DryRun {
		// Done: the next run (after phase 1 merged more) starts over.
		if err := clearCheckpoint(ctx, cfg); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// runLinks reads the links once, by batches, and has every collection
// re-point the batch's merged-away ids, with a checkpoint after each.
func runLinks(ctx context.Context, cfg Config, cs []*collection, rep *Report) error {
	var after model.ID
	if !cfg.DryRun { // a dry run (and Check) looks at every link
		var err error
		if after, err = readCheckpoint(ctx, cfg); err != nil {
			return err
		}
	}
	var filter bson.D
	if !after.IsZero() {
		rep.Resumed = true
		filter = (&pipelines.Range{After: after}).MigratedIDs()
	}
	filter = append(filter, bson.E{Key: "tenant_id", Value: bson.D{{Key: "$exists", Value: true}}})
	batch := map[model.ID]model.ID{}
	var last model.ID
	task := cfg.Progress.Start("references", 0)
	defer task.Done()
	flush := func() error {
		if len(batch) > 0 {
			for _, c := range cs {
				if err := c.rewrite(ctx, batch); err != nil {
					return fmt.Errorf("references of %s: %w", c.coll.Name(), err)
				}
			}
			clear(batch)
		}
		if last.IsZero() || cfg.DryRun {
			return nil
		}
		return saveCheckpoint(ctx, cfg, last)
	}
	err := sorted.Each(ctx, cfg.DB.Collection(cfg.Links), filter, bson.D{{Key: "tenant_id", Value: 1}}, cfg.read(), func(raw bson.Raw) error {
		var l model.Link
		if err := bson.Unmarshal(raw, &l); err != nil {
			return fmt.Errorf("read link: %w", err)
		}
		last = l.LegacyID
		task.Add(1)
		if l.TenantID.IsZero() || l.TenantID == l.LegacyID {
			return nil
		}
		if batch[l.LegacyID] = l.TenantID; len(batch) >= cfg.Batch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("references: %w", err)
	}
	return nil
}

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

// record is a document's entry in Records: the originals of the fields the
// runner changed, kept from the first change on, and what it wrote last.
type record struct {
	// ID is recordKey(Collection, Document): a string, which every engine
	// finds by its _id index (FerretDB 1 scans for a document _id).
	ID         string `bson:"_id"`
	Collection string `bson:"c"`
	Document   any    `bson:"d"`
	// Original are the changed fields as they were before the runner
	// first changed them; Written as the runner last wrote them and saw
	// them written (equal to Original: nothing written).
	Original bson.D `bson:"original"`
	Written  bson.D `bson:"written"`
	// Pending are the fields as the runner is about to write them: a run
	// killed between its write and its read-back leaves the document
	// holding either Written or Pending, and Down restores from both.
	Pending  bson.D `bson:"pending,omitempty"`
	Conflict string `bson:"conflict,omitempty"`
}

// recordKey keys the record of a document of coll by its _id's BSON bytes.
func recordKey(coll string, id any) string { return coll + ":" + hex.EncodeToString(encoded(id)) }

// records reads the records of the plans' documents (those matching more
// too), by the document's idKey.
func (c *collection) records(ctx context.Context, plans []*plan, more ...bson.E) (map[string]record, error) {
	ids := make(bson.A, 0, len(plans))
	for _, p := range plans {
		ids = append(ids, recordKey(c.coll.Name(), p.id))
	}
	filter := append(bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, more...)
	out := map[string]record{}
	err := c.cfg.Retry.Do(ctx, "read references records", func(ctx context.Context) error {
		cur, err := c.cfg.DB.Collection(c.cfg.records()).Find(ctx, filter)
		if err != nil {
			return err
		}
		defer cur.Close(ctx)
		clear(out)
		for cur.Next(ctx) {
			var r record
			if err := cur.Decode(&r); err != nil {
				return err
			}
			out[idKey(r.Document)] = r
		}
		return cur.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", c.cfg.records(), err)
	}
	return out, nil
}

// record writes the records of plans before their documents are written:
// a run killed in between leaves records whose document does not hold
// what they say was written, which Down leaves alone.
func (c *collection) record(ctx context.Context, plans []*plan) error {
	existing, err := c.records(ctx, plans)
	if err != nil {
		return err
	}
	records := c.cfg.DB.Collection(c.cfg.records())
	models := make([]mongo.WriteModel, 0, len(plans))
	for _, p := range plans {
		old, had := existing[idKey(p.id)]
		r := record{ID: recordKey(c.coll.Name(), p.id), Collection: c.coll.Name(), Document: p.id}
		if had {
			r.Original, r.Written = slices.Clone(old.Original), slices.Clone(old.Written)
		}
		for _, e := range p.before {
			ours := false
			if had {
				if _, ok := model.Get(old.Original, e.Key); ok {
					w, _ := model.Get(old.Written, e.Key)
					pv, pending := model.Get(old.Pending, e.Key)
					switch {
					case pending && sameValue(pv, e.Value):
						// A killed run's write went through: it is ours.
						ours = true
						r.Written = model.Set(r.Written, e.Key, e.Value)
					case sameValue(w, e.Value):
						ours = true
					}
				}
			}
			if !ours {
				// Nothing of the runner's is in the field (never written, or
				// the service wrote it since): its original is what was read.
				r.Original = model.Set(r.Original, e.Key, e.Value)
				r.Written = model.Set(r.Written, e.Key, e.Value)
			}
		}
		r.Pending = slices.Clone(r.Written)
		for _, e := range p.after {
			r.Pending = model.Set(r.Pending, e.Key, e.Value)
		}
		p.pending = r.Pending
		models = append(models, mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: r.ID}}).SetReplacement(r).SetUpsert(true))
	}
	if _, err := bulk(ctx, &c.cfg.Retry, records, models); err != nil {
		return fmt.Errorf("write %s: %w", c.cfg.records(), err)
	}
	return nil
}

// recordConflicts keeps, in Records, why documents were left as they are
// (for verify); a record's earlier original stays.
func (c *collection) recordConflicts(ctx context.Context, plans []*plan) error {
	if len(plans) == 0 {
		return nil
	}
	models := make([]mongo.WriteModel, 0, len(plans))
	for _, p := range plans {
		models = append(models, mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: recordKey(c.coll.Name(), p.id)}}).
			SetUpdate(bson.D{
				{Key: "$set", Value: bson.D{{Key: "conflict", Value: p.conflict}}},
				{Key: "$setOnInsert", Value: bson.D{{Key: "c", Value: c.coll.Name()}, {Key: "d", Value: p.id}, {Key: "original", Value: p.before}, {Key: "written", Value: p.before}}},
			}).SetUpsert(true))
	}
	if _, err := bulk(ctx, &c.cfg.Retry, c.cfg.DB.Collection(c.cfg.records()), models); err != nil {
		return fmt.Errorf("write %s: %w", c.cfg.records(), err)
	}
	return nil
}

// write updates each document if its fields still hold what was read.
func (c *collection) write(ctx context.Context, plans []*plan) error {
	models := make([]mongo.WriteModel, 0, len(plans))
	for _, p := range plans {
		filter := bson.D{{Key: "_id", Value: p.id}}
		filter = append(filter, p.before...)
		models = append(models, mongo.NewUpdateOneModel().SetFilter(filter).SetUpdate(bson.D{{Key: "$set", Value: p.after}}))
	}
	refused := map[int]bool{}
	_, err := bulk(ctx, &c.cfg.Retry, c.coll, models)
	var bwe mongo.BulkWriteException
	switch {
	case err == nil:
	case errors.As(err, &bwe) && bwe.WriteConcernError == nil && onlyUnique(bwe):
		for _, we := range bwe.WriteErrors {
			refused[we.Index] = true
		}
	case servererr.IsDuplicateKey(err):
		// The engine failed the whole command for one document (FerretDB
		// 1): one at a time, to know which.
		now, err := c.current(ctx, plans)
		if err != nil {
			return err
		}
		for i, p := range plans {
			if cur, ok := now[idKey(p.id)]; ok && holds(cur, p.after) {
				continue
			}
			err := c.cfg.Retry.Do(ctx, "rewrite "+c.coll.Name(), func(ctx context.Context) error {
				_, err := c.coll.UpdateOne(ctx, models[i].(*mongo.UpdateOneModel).Filter, models[i].(*mongo.UpdateOneModel).Update)
				return err
			})
			switch {
			case err == nil:
			case servererr.IsDuplicateKey(err):
				refused[i] = true
			default:
				return retry.Wrap("rewrite "+c.coll.Name(), err)
			}
		}
	default:
		return retry.Wrap("rewrite "+c.coll.Name(), err)
	}
	if c.cfg.stop == stopAfterWrite {
		return errStopped
	}
	// What each document holds now tells written from refused from
	// changed meanwhile, whatever retries and earlier runs did.
	now, err := c.current(ctx, plans)
	if err != nil {
		return err
	}
	written := map[*plan]bool{}
	for i, p := range plans {
		cur, ok := now[idKey(p.id)]
		switch {
		case ok && holds(cur, p.after):
			c.done(p)
			written[p] = true
		case refused[i]:
			c.conflict(p, ReasonUnique)
		default:
			c.rep.Changed++
		}
	}
	return c.settle(ctx, plans, written, refused)
}

// settle confirms the records once the documents are read back: a
// written one's Pending becomes its Written; a refused or changed one
// keeps its Written, a refused one says why.
func (c *collection) settle(ctx context.Context, plans []*plan, written map[*plan]bool, refused map[int]bool) error {
	models := make([]mongo.WriteModel, 0, len(plans))
	for i, p := range plans {
		update := bson.D{{Key: "$unset", Value: bson.D{{Key: "pending", Value: ""}}}}
		switch {
		case written[p]:
			update = append(update, bson.E{Key: "$set", Value: bson.D{{Key: "written", Value: p.pending}}})
		case refused[i]:
			update = append(update, bson.E{Key: "$set", Value: bson.D{{Key: "conflict", Value: ReasonUnique}}})
		}
		models = append(models, mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: recordKey(c.coll.Name(), p.id)}}).SetUpdate(update))
	}
	if _, err := bulk(ctx, &c.cfg.Retry, c.cfg.DB.Collection(c.cfg.records()), models); err != nil {
		return fmt.Errorf("write %s: %w", c.cfg.records(), err)
	}
	return nil
}

// current reads back the changed fields of the planned documents.
func (c *collection) current(ctx context.Context, plans []*plan) (map[string]bson.D, error) {
	return c.currentFields(ctx, plans, c.tops())
}

func (c *collection) currentFields(ctx context.Context, plans []*plan, fields []string) (map[string]bson.D, error) {
	ids := make(bson.A, 0, len(plans))
	for _, p := range plans {
		ids = append(ids, p.id)
	}
	proj := bson.D{}
	for _, t := range fields {
		proj = append(proj, bson.E{Key: t, Value: 1})
	}
	out := map[string]bson.D{}
	err := c.cfg.Retry.Do(ctx, "read back "+c.coll.Name(), func(ctx context.Context) error {
		cur, err := c.coll.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, options.Find().SetProjection(proj))
		if err != nil {
			return err
		}
		defer cur.Close(ctx)
		clear(out)
		for cur.Next(ctx) {
			var d bson.D
			if err := cur.Decode(&d); err != nil {
				return err
			}
			out[idKey(docValue(d, "_id"))] = d
		}
		return cur.Err()
	})
	if err != nil {
		return nil, retry.Wrap("read back "+c.coll.Name(), err)
	}
	return out, nil
}

func onlyUnique(bwe mongo.BulkWriteException) bool {
	for _, we := range bwe.WriteErrors {
		if !servererr.DuplicateKey(int32(we.Code), we.Message) {
			return false
		}
	}
	return len(bwe.WriteErrors) > 0
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
