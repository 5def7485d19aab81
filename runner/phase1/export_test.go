package phase1

import (
	"context"

	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/runner/internal/sorted"
)

// ScratchReadBack writes batches into a fresh scratch table of each store
// (collections of db, and files holding at most runBytes in memory), reads
// each table back and returns, per store, the documents in the order read.
func ScratchReadBack(ctx context.Context, db *mongo.Database, runBytes int, batches [][]any, sort ...string) (map[string][]string, error) {
	fs, err := newFileStore()
	if err != nil {
		return nil, err
	}
	fs.runBytes = runBytes
	stores := map[string]scratchStore{"server": &collStore{db: db, prefix: "scratch_test_", runID: "t", read: sorted.Options{Batch: 7}}, "local disk": fs}
	out := map[string][]string{}
	for name, st := range stores {
		t := st.table("tbl", sort...)
		for _, b := range batches {
			if err := t.insert(ctx, b); err != nil {
				return nil, err
			}
		}
		var got []string
		r, err := t.open(ctx)
		if err != nil {
			return nil, err
		}
		for raw, ok := r.Next(ctx); ok; raw, ok = r.Next(ctx) {
			got = append(got, raw.String())
		}
		r.Close(ctx)
		if err := r.Err(); err != nil {
			return nil, err
		}
		out[name] = got
		if err := st.close(ctx); err != nil {
			return nil, err
		}
	}
	return out, nil
}
