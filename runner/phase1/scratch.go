package phase1

import (
	"bufio"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/internal/join"
	"github.com/tenantmigrate/runner/runner/internal/scratch"
	"github.com/tenantmigrate/runner/runner/internal/sorted"
	"github.com/tenantmigrate/runner/runner/internal/writes"
)

// Phase 1 keeps its intermediate state (identity keys, propagation rounds,
// group members) in scratch tables: documents written in batches and read
// back sorted. A real run keeps them in collections of the database, next
// to the data; a dry run, which writes nothing to the server, keeps them in
// files on local disk. Either way the runner's memory holds a batch, not
// the table.

// table is one scratch table.
type table interface {
	// insert adds documents; a document whose sort key is already there is
	// kept once (every scratch document is a function of its key).
	insert(ctx context.Context, docs []any) error
	// open reads the table in sort-key order.
	open(ctx context.Context) (join.Rows, error)
	drop(ctx context.Context) error
}

// scratchStore makes the tables of one run.
type scratchStore interface {
	// table names a table sorted by the given fields (strings or
	// ObjectIds), ascending.
	table(name string, sort ...string) table
	// close removes every table of the run.
	close(ctx context.Context) error
	// where says where the tables are, for reports.
	where() string
}

// collStore keeps tables in collections named <prefix><name>_<run id>.
type collStore struct {
	db     *mongo.Database
	prefix string
	runID  string
	read   sorted.Options
}

func (s *collStore) table(name string, sort ...string) table {
	spec := bson.D{}
	for _, f := range sort {
		spec = append(spec, bson.E{Key: f, Value: 1})
	}
	return &collTable{coll: s.db.Collection(s.prefix + name + "_" + s.runID), sort: spec, read: s.read}
}

func (s *collStore) close(ctx context.Context) error {
	return scratch.Drop(ctx, s.db, s.prefix, "_"+s.runID)
}

func (s *collStore) where() string { return "server" }

type collTable struct {
	coll *mongo.Collection
	sort bson.D
	read sorted.Options
}

func (t *collTable) insert(ctx context.Context, docs []any) error {
	if len(docs) == 0 {
		return nil
	}
	if err := writes.InsertMany(ctx, t.read.Retry, t.coll, docs); err != nil {
		return fmt.Errorf("write %s: %w", t.coll.Name(), err)
	}
	return nil
}

func (t *collTable) open(ctx context.Context) (join.Rows, error) {
	cur, err := sorted.OpenBy(ctx, t.coll, nil, nil, t.sort, t.read)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", t.coll.Name(), err)
	}
	return cur, nil
}

func (t *collTable) drop(ctx context.Context) error {
	if err := t.coll.Drop(ctx); err != nil {
		return fmt.Errorf("drop %s: %w", t.coll.Name(), err)
	}
	return nil
}

// memTable is a table in memory, sorted by _id (strings), for the probe's
// few documents.
type memTable struct{ docs []keyed }

func (t *memTable) insert(_ context.Context, docs []any) error {
	for _, d := range docs {
		raw, err := bson.Marshal(d)
		if err != nil {
			return fmt.Errorf("scratch document: %w", err)
		}
		id, _ := bson.Raw(raw).Lookup("_id").StringValueOK()
		t.docs = append(t.docs, keyed{key: id, doc: raw})
	}
	return nil
}

func (t *memTable) open(context.Context) (join.Rows, error) {
	slices.SortStableFunc(t.docs, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	docs := slices.CompactFunc(slices.Clone(t.docs), func(a, b keyed) bool { return a.key == b.key })
	return &memRows{docs: docs}, nil
}

func (t *memTable) drop(context.Context) error { t.docs = nil; return nil }

type memRows struct{ docs []keyed }

func (r *memRows) Next(context.Context) (bson.Raw, bool) {
	if len(r.docs) == 0 {
		return nil, false
	}
	d := r.docs[0].doc
	r.docs = r.docs[1:]
	return d, true
}

func (r *memRows) Err() error            { return nil }
func (r *memRows) Close(context.Context) {}

// localErr is an error of the local disk: the server path takes the
// streaming path on it, which needs none.
func localErr(err error) error { return fmt.Errorf("%w: %w", errNoLocalScratch, err) }

// fileStore keeps tables on local disk, in one temporary directory per run:
// an external merge sort. Inserts collect in memory up to runBytes, then go
// to a sorted run file; reading spills what is left and merges the run
// files. Memory holds the buffer of the table being written and, per run
// file being read, one document and a read buffer.
type fileStore struct {
	dir      string
	runBytes int
}

// defaultRunBytes bounds the documents a file table holds in memory.
const defaultRunBytes = 8 << 20

func newFileStore() (*fileStore, error) {
	dir, err := os.MkdirTemp("", "tenants-runner-scratch-")
	if err != nil {
		return nil, localErr(err)
	}
	return &fileStore{dir: dir, runBytes: defaultRunBytes}, nil
}

func (s *fileStore) table(name string, sort ...string) table {
	return &fileTable{dir: filepath.Join(s.dir, name), sort: sort, runBytes: s.runBytes}
}

func (s *fileStore) close(context.Context) error { return os.RemoveAll(s.dir) }

func (s *fileStore) where() string { return "local disk" }

type fileTable struct {
	dir      string
	sort     []string
	runBytes int
	buf      []keyed
	bufBytes int
	runs     int
}

// keyed is a document with its sort key.
type keyed struct {
	key string
	doc bson.Raw
}

// sortKey joins the sort fields so that keys compare as the fields do, one
// after the other, as MongoDB sorts them: a field is a string or an
// ObjectId, written as its model.ID Key (strings before ObjectIds, each
// byte by byte); each field ends with 0x00, and a 0x00 inside a field is
// written 0x00 0xFF, a byte UTF-8 never holds.
func (t *fileTable) sortKey(doc bson.Raw) (string, error) {
	var b strings.Builder
	for _, f := range t.sort {
		v, ok := model.IDOf(doc.Lookup(f))
		if !ok {
			return "", fmt.Errorf("scratch document without a string or ObjectId %s", f)
		}
		b.WriteString(strings.ReplaceAll(v.Key(), "\x00", "\x00\xff"))
		b.WriteByte(0)
	}
	return b.String(), nil
}

func (t *fileTable) insert(_ context.Context, docs []any) error {
	for _, d := range docs {
		raw, err := bson.Marshal(d)
		if err != nil {
			return fmt.Errorf("scratch document: %w", err)
		}
		key, err := t.sortKey(raw)
		if err != nil {
			return err
		}
		t.buf = append(t.buf, keyed{key: key, doc: raw})
		t.bufBytes += len(key) + len(raw)
		if t.bufBytes >= t.runBytes {
			if err := t.spill(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *fileTable) sortBuf() {
	slices.SortStableFunc(t.buf, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
}

// spill writes the buffer as one sorted run file.
func (t *fileTable) spill() error {
	if len(t.buf) == 0 {
		return nil
	}
	t.sortBuf()
	if err := os.MkdirAll(t.dir, 0o700); err != nil {
		return localErr(err)
	}
	f, err := os.Create(filepath.Join(t.dir, fmt.Sprintf("run-%06d", t.runs)))
	if err != nil {
		return localErr(err)
	}
	w := bufio.NewWriterSize(f, 1<<16)
	for _, k := range t.buf {
		writeRecord(w, k)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return localErr(err)
	}
	if err := f.Close(); err != nil {
		return localErr(err)
	}
	t.runs++
	t.buf, t.bufBytes = nil, 0
	return nil
}

// A record is the key's length, the key, the document's length, the
// document.
func writeRecord(w *bufio.Writer, k keyed) {
	var n [binary.MaxVarintLen64]byte
	w.Write(n[:binary.PutUvarint(n[:], uint64(len(k.key)))])
	w.WriteString(k.key)
	w.Write(n[:binary.PutUvarint(n[:], uint64(len(k.doc)))])
	w.Write(k.doc)
}

func readRecord(r *bufio.Reader) (keyed, error) {
	kl, err := binary.ReadUvarint(r)
	if err != nil {
		return keyed{}, err // io.EOF at the end of the run
	}
	key := make([]byte, kl)
	if _, err := io.ReadFull(r, key); err != nil {
		return keyed{}, localErr(err)
	}
	dl, err := binary.ReadUvarint(r)
	if err != nil {
		return keyed{}, localErr(err)
	}
	doc := make([]byte, dl)
	if _, err := io.ReadFull(r, doc); err != nil {
		return keyed{}, localErr(err)
	}
	return keyed{key: string(key), doc: doc}, nil
}

// open merges the run files, the buffer spilled first so that a table
// read holds no buffer. Inserting after open is not supported (no pass
// does).
func (t *fileTable) open(context.Context) (join.Rows, error) {
	if err := t.spill(); err != nil {
		return nil, err
	}
	m := &mergeRows{}
	for i := 0; i < t.runs; i++ {
		f, err := os.Open(filepath.Join(t.dir, fmt.Sprintf("run-%06d", i)))
		if err != nil {
			m.Close(context.Background())
			return nil, localErr(err)
		}
		m.files = append(m.files, f)
		m.sources = append(m.sources, &fileSource{r: bufio.NewReaderSize(f, 1<<16)})
	}
	for i, s := range m.sources {
		k, ok, err := s.next()
		if err != nil {
			m.Close(context.Background())
			return nil, err
		}
		if ok {
			m.h = append(m.h, head{k: k, src: i})
		}
	}
	heap.Init(&m.h)
	return m, nil
}

func (t *fileTable) drop(context.Context) error {
	t.buf, t.bufBytes, t.runs = nil, 0, 0
	return os.RemoveAll(t.dir)
}

type source interface {
	next() (keyed, bool, error)
}

type fileSource struct{ r *bufio.Reader }

func (s *fileSource) next() (keyed, bool, error) {
	k, err := readRecord(s.r)
	if errors.Is(err, io.EOF) {
		return keyed{}, false, nil
	}
	return k, err == nil, err
}

type head struct {
	k   keyed
	src int
}

// heads orders the head of each source by key, then by source, so equal
// keys come out in a fixed order.
type heads []head

func (h heads) Len() int { return len(h) }
func (h heads) Less(i, j int) bool {
	if c := strings.Compare(h[i].k.key, h[j].k.key); c != 0 {
		return c < 0
	}
	return h[i].src < h[j].src
}
func (h heads) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *heads) Push(x any)   { *h = append(*h, x.(head)) }
func (h *heads) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type mergeRows struct {
	sources []source
	files   []*os.File
	h       heads
	last    string
	started bool
	e       error
}

func (m *mergeRows) Next(context.Context) (bson.Raw, bool) {
	for m.e == nil && len(m.h) > 0 {
		top := m.h[0]
		k, ok, err := m.sources[top.src].next()
		if err != nil {
			m.e = err
			return nil, false
		}
		if ok {
			m.h[0] = head{k: k, src: top.src}
			heap.Fix(&m.h, 0)
		} else {
			heap.Pop(&m.h)
		}
		if m.started && top.k.key == m.last {
			continue // a duplicate: kept once, as a unique _id would
		}
		m.started, m.last = true, top.k.key
		return top.k.doc, true
	}
	return nil, false
}

func (m *mergeRows) Err() error { return m.e }

func (m *mergeRows) Close(context.Context) {
	for _, f := range m.files {
		f.Close()
	}
	m.files = nil
}
