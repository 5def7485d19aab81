package pipelines_test

import (
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
)

// The oracle evaluates phase 1's grouping pipeline on the shared world: it
// must give exactly the identities that two or more valid accounts of one
// org hold, each with its accounts, as phase 1's streaming pass keys them
// (pipelines.Invalid for validity, the identity codes, the org of the
// app-org).
func TestOracleSharedIdentities(t *testing.T) {
	t.Parallel()
	w := sharedWorld(t)
	codes := gen.DefaultIdentityCodes()

	type key struct{ org, code, ident string }
	held := map[key]map[model.ID]bool{}
	invalid := 0
	for _, a := range w.accounts {
		if pipelines.Invalid(a, w.orgOf) != "" {
			invalid++
			continue
		}
		ao, _ := model.Get(a, model.FieldAppOrgID)
		ats, _ := model.Get(a, model.FieldAuthTypes)
		for _, at := range ats.(bson.A) {
			d := at.(bson.D)
			code, _ := model.Get(d, "auth_type_code")
			ident, _ := model.Get(d, "identifier")
			if !slices.Contains(codes, code.(string)) {
				continue
			}
			k := key{w.orgOf[ao.(string)], code.(string), ident.(string)}
			if held[k] == nil {
				held[k] = map[model.ID]bool{}
			}
			held[k][idOf(a)] = true
		}
	}
	var want []string
	for _, ids := range held {
		if len(ids) > 1 {
			want = append(want, idList(ids))
		}
	}
	slices.Sort(want)

	got := runOracle(t, pipelines.SharedIdentities(w.orgOf, codes), w.collections(nil), names.Accounts)
	var have []string
	for _, raw := range got {
		var doc struct {
			A []model.ID `bson:"a"`
		}
		if err := bson.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("output %s: %v", raw, err)
		}
		if _, err := raw.LookupErr("_id"); err == nil {
			t.Errorf("output %s carries an _id: the identity must not leave the server", raw)
		}
		ids := map[model.ID]bool{}
		for _, a := range doc.A {
			ids[a] = true
		}
		if len(ids) != len(doc.A) {
			t.Errorf("output %s lists an account twice", raw)
		}
		have = append(have, idList(ids))
	}
	slices.Sort(have)
	if !slices.Equal(have, want) {
		t.Fatalf("the pipeline gave %d shared identities, the Go twin %d (or their accounts differ)", len(have), len(want))
	}
	if len(want) < 50 || invalid == 0 {
		t.Errorf("%d shared identities, %d invalid accounts: the world lost its shape", len(want), invalid)
	}
	t.Logf("%d shared identities over %d accounts (%d invalid) agree", len(want), len(w.accounts), invalid)
}

func idList(ids map[model.ID]bool) string {
	var s []string
	for id := range ids {
		s = append(s, id.String())
	}
	slices.Sort(s)
	return strings.Join(s, ",")
}
