package phase1

import (
	"context"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
	"github.com/tenantmigrate/runner/runner/internal/refusal"
	"github.com/tenantmigrate/runner/runner/internal/scratch"
	"github.com/tenantmigrate/runner/runner/internal/servererr"
	"github.com/tenantmigrate/runner/runner/retry"
)

// probe says whether the server takes the server path, by running its
// reads (the very pipeline and finds of a real run) over a few accounts in
// a scratch collection of its own and checking the groups they give: ""
// when it does, else the server's refusal in one line. A version string
// says nothing of this. The legacy collections are never touched; the
// scratch collection is dropped afterwards.
//
// A refusal is any answer of the server (an error, or wrong groups); a
// network error or a cancelled context is no answer and fails the run.
func probe(ctx context.Context, cfg Config) (string, error) {
	prefix := cfg.ScratchPrefix + "_p1probe_"
	if err := scratch.Drop(ctx, cfg.DB, prefix, ""); err != nil { // a killed probe's
		return "", fmt.Errorf("probe: %w", err)
	}
	id := scratch.RunID()
	coll := cfg.DB.Collection(prefix + "accounts_" + id)
	defer func() { _ = scratch.Drop(context.WithoutCancel(ctx), cfg.DB, prefix, "_"+id) }()

	w := newProbeWorld()
	if _, err := coll.InsertMany(ctx, w.accounts); err != nil {
		if servererr.NoAnswer(ctx, err) {
			return "", fmt.Errorf("probe: %w", err)
		}
		return refusal.OneLine(err.Error()), nil
	}
	err := w.check(ctx, coll)
	switch {
	case err == nil:
		return "", nil
	case servererr.NoAnswer(ctx, err):
		return "", fmt.Errorf("probe: %w", err)
	}
	return refusal.OneLine(err.Error()), nil
}

// probeWorld is the probe's data: two groups, one across the apps of an
// org and one joined through a chain of two identities with an ObjectId
// _id, beside the accounts that must stay alone (the same identity in
// another org, one listed twice by one account, one held unverified, an
// auth type not among the codes, and invalid accounts that hold a shared
// identity).
type probeWorld struct {
	accounts []any
	orgOf    map[string]string
	rules    Rules
	groups   [][]model.ID
	oid      primitive.ObjectID
}

func newProbeWorld() *probeWorld {
	at := func(code, ident string, more ...bson.E) bson.D {
		return append(bson.D{{Key: "auth_type_code", Value: code}, {Key: "identifier", Value: ident}}, more...)
	}
	acct := func(id any, ao string, ats ...bson.D) bson.D {
		a := bson.A{}
		for _, x := range ats {
			a = append(a, x)
		}
		return bson.D{{Key: model.FieldID, Value: id}, {Key: model.FieldAppOrgID, Value: ao}, {Key: model.FieldAuthTypes, Value: a}}
	}
	oid := primitive.ObjectID{0x70, 0x31, 0x70, 0x72, 0x6f, 0x62, 0x65, 0, 0, 0, 0, 1}
	w := &probeWorld{
		orgOf: map[string]string{"p-ao1": "p-org-a", "p-ao2": "p-org-a", "p-ao3": "p-org-b", "p-ao4": ""},
		rules: Rules{IdentityCodes: []string{"email", "phone"}},
		oid:   oid,
	}
	for _, a := range []bson.D{
		acct("p-a", "p-ao1", at("email", "x@p")),
		acct("p-b", "p-ao2", at("username", "u"), at("email", "x@p", bson.E{Key: fieldUnverified, Value: false})),
		acct("p-c", "p-ao3", at("email", "x@p")),
		acct(oid, "p-ao1", at("phone", "1")),
		acct("p-e", "p-ao2", at("phone", "1"), at("email", "y@p")),
		acct("p-f", "p-ao1", at("email", "y@p")),
		acct("p-g", "p-ao1", at("email", "z@p"), at("email", "z@p")),
		acct("p-h", "p-ao4", at("email", "x@p")),
		acct("p-i", "p-ao1", at("username", "x@p")),
		acct("p-j", "p-ao2"),
		{{Key: model.FieldID, Value: "p-k"}, {Key: model.FieldAppOrgID, Value: "p-ao1"}, {Key: model.FieldAuthTypes, Value: "x@p"}},
		acct("p-l", "p-ao2", at("email", "x@p", bson.E{Key: fieldUnverified, Value: true})),
	} {
		w.accounts = append(w.accounts, a)
	}
	w.groups = [][]model.ID{
		{model.StringID("p-a"), model.StringID("p-b")},
		{model.StringID("p-e"), model.StringID("p-f"), model.ObjectIDOf(oid)},
	}
	return w
}

// check runs the server path's reads and compares the groups their
// entries give, by the rules a run applies, with the probe's own.
func (w *probeWorld) check(ctx context.Context, coll *mongo.Collection) error {
	cur, err := coll.Aggregate(ctx, pipelines.Identities(w.orgOf, w.rules.IdentityCodes))
	if err != nil {
		return err
	}
	keys := newKeyTable(&memTable{})
	for cur.Next(ctx) {
		var row identityRow
		if err := bson.Unmarshal(cur.Current, &row); err != nil {
			_ = cur.Close(ctx)
			return fmt.Errorf("the server answered the identity pipeline with %s: %w", cur.Current, err)
		}
		ident, ok := w.rules.Identity(row.Code, row.Identifier, row.Unverified)
		if !ok {
			_ = cur.Close(ctx)
			return fmt.Errorf("the server answered the identity pipeline with an entry of code %q", row.Code)
		}
		if err := keys.add(ctx, []keyDoc{keys.doc(row.Org, ident, row.Account)}); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return err
	}
	_ = cur.Close(ctx)
	uf := newComponents(0)
	if _, err := keys.scan(ctx, func(_ string, linked []model.ID) error {
		for _, a := range linked[1:] {
			uf.union(linked[0], a)
		}
		return nil
	}); err != nil {
		return err
	}
	var got [][]model.ID
	for _, m := range uf.members() {
		if len(got) == 0 || got[len(got)-1][0] != m.G {
			got = append(got, nil)
		}
		got[len(got)-1] = append(got[len(got)-1], m.ID)
	}
	if !slices.EqualFunc(got, w.groups, slices.Equal[[]model.ID]) {
		return fmt.Errorf("the server took the identity pipeline but its entries gave the groups %v, not %v", got, w.groups)
	}
	ids := []model.ID{model.StringID("p-a"), model.ObjectIDOf(w.oid), model.StringID("p-none")}
	found, err := findIDs(ctx, &retry.Policy{}, coll, ids, bson.D{{Key: "_id", Value: 1}}, "read by _id")
	if err != nil {
		return err
	}
	if len(found) != 2 || found[ids[0]] == nil || found[ids[1]] == nil {
		return fmt.Errorf("the server answered a find of 3 _ids (a string, an ObjectId, a missing one) with %d documents, not 2", len(found))
	}
	return nil
}
