package scratch_test

import (
	"context"
	"os"
	"slices"
	"sort"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/runner/internal/scratch"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

func TestRunIDsDiffer(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		id := scratch.RunID()
		if len(id) != 8 || seen[id] {
			t.Fatalf("RunID() = %q (seen before: %v)", id, seen[id])
		}
		seen[id] = true
	}
}

// Drop removes one run's scratch collections, or every run's, and never
// a collection outside the prefix.
func TestDropTakesOnlyTheScratch(t *testing.T) {
	all := []string{"accounts", "migrations_p1_keys_aaaa", "migrations_p1_groups_aaaa", "migrations_p1_keys_bbbb", "migrations_state", "p1_keys_aaaa"}
	for _, tt := range []struct {
		prefix, suffix string
		left           []string
	}{
		{"migrations_p1_", "_aaaa", []string{"accounts", "migrations_p1_keys_bbbb", "migrations_state", "p1_keys_aaaa"}},
		{"migrations_p1_", "", []string{"accounts", "migrations_state", "p1_keys_aaaa"}},
		{"migrations_p2probe_", "", all},
	} {
		t.Run(tt.prefix+"*"+tt.suffix, func(t *testing.T) {
			db := env.Database(t)
			ctx := context.Background()
			for _, name := range all {
				if _, err := db.Collection(name).InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
					t.Fatal(err)
				}
			}
			env.Seeded(t, db)
			if err := scratch.Drop(ctx, db, tt.prefix, tt.suffix); err != nil {
				t.Fatal(err)
			}
			left, err := db.ListCollectionNames(ctx, bson.D{})
			if err != nil {
				t.Fatal(err)
			}
			sort.Strings(left)
			want := slices.Clone(tt.left)
			sort.Strings(want)
			if !slices.Equal(left, want) {
				t.Errorf("Drop(%q, %q) left %v, want %v", tt.prefix, tt.suffix, left, want)
			}
		})
	}
}
