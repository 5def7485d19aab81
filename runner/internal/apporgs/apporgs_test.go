package apporgs_test

import (
	"context"
	"os"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/runner/internal/apporgs"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

// Read takes every app-org with its app and org; OrgOf maps each to its
// org, "" for one without; Valid lists, sorted, only those with an org.
func TestReadOrgOfValid(t *testing.T) {
	ctx := context.Background()
	db := env.Database(t)
	coll := db.Collection("applications_organizations")
	_, err := coll.InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: "ao-b"}, {Key: "app_id", Value: "app-1"}, {Key: "org_id", Value: "org-1"}, {Key: "name", Value: "ignored"}},
		bson.D{{Key: "_id", Value: "ao-a"}, {Key: "app_id", Value: "app-2"}, {Key: "org_id", Value: "org-2"}},
		bson.D{{Key: "_id", Value: "ao-none"}, {Key: "app_id", Value: "app-3"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	env.Seeded(t, db)
	set, err := apporgs.Read(ctx, coll)
	if err != nil {
		t.Fatal(err)
	}
	if len(set) != 3 || set["ao-b"].AppID != "app-1" || set["ao-a"].OrgID != "org-2" {
		t.Errorf("Read = %+v", set)
	}
	want := map[string]string{"ao-a": "org-2", "ao-b": "org-1", "ao-none": ""}
	if got := set.OrgOf(); len(got) != len(want) || got["ao-a"] != "org-2" || got["ao-b"] != "org-1" || got["ao-none"] != "" {
		t.Errorf("OrgOf = %v, want %v", got, want)
	}
	if got := set.Valid(); !slices.Equal(got, []string{"ao-a", "ao-b"}) {
		t.Errorf("Valid = %v, want [ao-a ao-b]", got)
	}
	empty, err := apporgs.Read(ctx, db.Collection("none"))
	if err != nil || len(empty) != 0 {
		t.Errorf("Read of an empty collection = %v, %v", empty, err)
	}
}
