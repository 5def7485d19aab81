package phase1_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/runner/phase1"
)

// Phase 1's scratch tables have two implementations: collections of the
// server (real runs) and sorted run files on local disk (dry runs). Both
// must read back the same documents in the same order, each sort key once.
func TestScratchTablesAgree(t *testing.T) {
	type doc struct {
		ID string `bson:"_id"`
		G  string `bson:"g,omitempty"`
		N  int    `bson:"n"`
	}
	// many: 400 documents in an order unrelated to their ids, each written
	// twice in different batches.
	many := func(withG bool) [][]any {
		var b1, b2 []any
		for i := 0; i < 400; i++ {
			j := (i * 7919) % 400
			d := doc{ID: fmt.Sprintf("id-%05d-%x", j, j*j), N: j}
			if withG {
				d.G = fmt.Sprintf("g%02d", j%13)
			}
			b1 = append(b1, d)
			b2 = append([]any{d}, b2...)
		}
		return [][]any{b1[:150], b2, b1[150:]}
	}
	odd := [][]any{{
		doc{ID: "ab", G: "a", N: 1}, doc{ID: "a\x00b", G: "a", N: 2}, doc{ID: "a", G: "a\x00", N: 3},
		doc{ID: "é", G: "名", N: 4}, doc{ID: "名", G: "é", N: 5}, doc{ID: "Z", G: "a", N: 6}, doc{ID: "a\x00", G: "a", N: 7},
	}}
	tests := []struct {
		name     string
		batches  [][]any
		sort     []string
		runBytes int
	}{
		{"by _id, in memory", many(false), []string{"_id"}, 1 << 20},
		{"by _id, many run files", many(false), []string{"_id"}, 1 << 10},
		{"by group then _id, many run files", many(true), []string{"g", "_id"}, 1 << 10},
		{"NUL bytes, prefixes and unicode, by group then _id", odd, []string{"g", "_id"}, 64},
		{"NUL bytes, prefixes and unicode, by _id", odd, []string{"_id"}, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// What sorting by the fields, byte by byte, keeping each once, gives.
			seen := map[string]bool{}
			var want []doc
			for _, b := range tt.batches {
				for _, d := range b {
					if d := d.(doc); !seen[d.G+"/"+d.ID] {
						seen[d.G+"/"+d.ID] = true
						want = append(want, d)
					}
				}
			}
			slices.SortFunc(want, func(a, b doc) int {
				if len(tt.sort) == 2 {
					if c := cmp.Compare(a.G, b.G); c != 0 {
						return c
					}
				}
				return cmp.Compare(a.ID, b.ID)
			})
			var wantRaw []string
			for _, d := range want {
				raw, err := bson.Marshal(d)
				if err != nil {
					t.Fatal(err)
				}
				wantRaw = append(wantRaw, bson.Raw(raw).String())
			}
			got, err := phase1.ScratchReadBack(context.Background(), env.Database(t), tt.runBytes, tt.batches, tt.sort...)
			if err != nil {
				t.Fatal(err)
			}
			for store, docs := range got {
				if !slices.Equal(docs, wantRaw) {
					t.Errorf("%s read back %d documents, want %d in order; first: %.200v", store, len(docs), len(wantRaw), docs)
				}
			}
		})
	}
}
