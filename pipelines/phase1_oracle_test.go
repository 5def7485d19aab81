package pipelines_test

import (
	"fmt"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
	"github.com/tenantmigrate/runner/runner/phase1"
	"github.com/tenantmigrate/runner/scripts/fixture/gen"
)

// The oracle evaluates phase 1's identity pipeline on the shared world: it
// must give exactly the identity entries phase 1's streaming pass reads
// from the same accounts (pipelines.Invalid for validity, the org of the
// app-org, Rules.Identities for the entries), each with its verification,
// so that the one set of identity rules (rules.go) decides the same links
// on both paths. Unverified entries are among them, with every kind of
// unverified value, and none of them may link.
func TestOracleIdentities(t *testing.T) {
	t.Parallel()
	w := sharedWorld(t)
	rules := phase1.Rules{IdentityCodes: gen.DefaultIdentityCodes()}

	type entry struct {
		account model.ID
		org     string
		id      phase1.Identity
	}
	key := func(e entry) string { return fmt.Sprintf("%s|%s|%+v", e.account, e.org, e.id) }
	var want []string
	invalid, unverified := 0, 0
	for _, a := range w.accounts {
		if pipelines.Invalid(a, w.orgOf) != "" {
			invalid++
			continue
		}
		ao, _ := model.Get(a, model.FieldAppOrgID)
		ats, _ := model.Get(a, model.FieldAuthTypes)
		for _, id := range rules.Identities(ats.(bson.A)) {
			want = append(want, key(entry{idOf(a), w.orgOf[ao.(string)], id}))
			if !id.Verified {
				unverified++
			}
		}
	}
	slices.Sort(want)

	got := runOracle(t, pipelines.Identities(w.orgOf, rules.IdentityCodes), w.collections(nil), names.Accounts)
	var have []string
	holders := map[string][]phase1.Holder{}
	for _, raw := range got {
		var row struct {
			Account    model.ID `bson:"_id"`
			Org        string   `bson:"o"`
			Code       string   `bson:"c"`
			Identifier string   `bson:"i"`
			Unverified any      `bson:"u"`
		}
		if err := bson.Unmarshal(raw, &row); err != nil {
			t.Fatalf("output %s: %v", raw, err)
		}
		if n := len(raw.String()); n > 400 {
			t.Errorf("output of %d bytes: only the identity fields may travel: %s", n, raw)
		}
		id, ok := rules.Identity(row.Code, row.Identifier, row.Unverified)
		if !ok {
			t.Fatalf("output %s: not an identity code", raw)
		}
		have = append(have, key(entry{row.Account, row.Org, id}))
		ident := row.Org + "\x00" + id.Code + "\x00" + id.Key
		holders[ident] = append(holders[ident], phase1.Holder{ID: row.Account, Verified: id.Verified})
	}
	slices.Sort(have)
	if !slices.Equal(have, want) {
		t.Fatalf("the pipeline gave %d identity entries, the streaming pass reads %d (or they differ)", len(have), len(want))
	}
	if len(want) < 1000 || invalid == 0 || unverified < 10 {
		t.Errorf("%d entries (%d unverified), %d invalid accounts: the world lost its shape", len(want), unverified, invalid)
	}

	// The hand-made pair: linked by the entries whose unverified field is
	// missing, null or false, never by true, a string or a number, nor by
	// an email that differs only by case.
	kinds, peer := model.StringID("zz-edge-unverified-kinds"), model.StringID("zz-edge-unverified-peer")
	linkedBy, apart := 0, 0
	for ident, hs := range holders {
		sh := phase1.Link(hs)
		if !slices.Contains(sh.Verified, peer) && !slices.Contains(sh.HeldApart, peer) {
			continue
		}
		switch {
		case slices.Equal(sh.Linked, []model.ID{kinds, peer}):
			linkedBy++
		case slices.Equal(sh.HeldApart, []model.ID{kinds}):
			apart++
		case len(sh.Verified) == 1 && len(sh.HeldApart) == 0:
		default:
			t.Errorf("identity %q: %+v", ident, sh)
		}
	}
	if linkedBy != 3 || apart != 3 {
		t.Errorf("the hand-made pair is linked by %d identities and held apart by %d; want 3 (missing, null, false) and 3 (true, a string, a number)", linkedBy, apart)
	}
	t.Logf("%d identity entries (%d unverified) over %d accounts (%d invalid) agree", len(want), unverified, len(w.accounts), invalid)
}
