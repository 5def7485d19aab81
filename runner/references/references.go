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
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/internal/sorted"
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
const RecordsName = string(Name)

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
