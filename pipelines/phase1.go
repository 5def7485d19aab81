package pipelines

import (
	"sort"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/model"
)

// Identities is phase 1's identity pass on servers that take it (phase 1
// probes them), run on Names.Accounts: one output document per auth_types
// entry of an account stage 1 keeps (Validity) whose auth_type_code is
// among codes,
//
//	{_id: the account's _id, o: the org of its app-org,
//	 c: auth_type_code, i: identifier, u: the entry's unverified field}
//
// (u missing when the entry has none). Only the identity fields travel,
// never the rest of the account. The runner applies the identity rules to
// them exactly as to the entries its streaming pass reads from whole
// accounts (runner/phase1/rules.go: Rules.Identity, then Link, which lets
// only verified entries link), hashes them and groups them; the mingo
// oracle checks that this pipeline gives exactly the entries the
// streaming pass reads.
//
// orgOf maps an app-org _id to its org_id; those mapped to "" are not valid.
// It is embedded as two literal arrays (app-orgs are few), so the pipeline
// needs no $lookup: $indexOfArray finds the app-org, $arrayElemAt its org.
func Identities(orgOf map[string]string, codes []string) mongo.Pipeline {
	valid := ValidAppOrgs(orgOf)
	aos, orgs := bson.A{}, bson.A{}
	for _, ao := range valid {
		aos, orgs = append(aos, ao), append(orgs, orgOf[ao])
	}
	in := bson.A{}
	for _, c := range codes {
		in = append(in, c)
	}
	const at = "_p1_at"
	return mongo.Pipeline{
		{d("$match", Validity(valid))},
		{d("$project", bson.D{
			d(model.FieldID, 1),
			d("o", bson.D{d("$arrayElemAt", bson.A{
				bson.D{d("$literal", orgs)},
				bson.D{d("$indexOfArray", bson.A{bson.D{d("$literal", aos)}, "$" + model.FieldAppOrgID})},
			})}),
			d(at, "$"+model.FieldAuthTypes),
		})},
		{d("$unwind", "$"+at)},
		{d("$match", bson.D{d(at+".auth_type_code", bson.D{d("$in", in)})})},
		{d("$project", bson.D{
			d(model.FieldID, 1),
			d("o", 1),
			d("c", "$"+at+".auth_type_code"),
			d("i", "$"+at+".identifier"),
			d("u", "$"+at+".unverified"),
		})},
	}
}

// ValidAppOrgs are the app-org _ids of orgOf that have an org (the ones
// Validity takes), sorted.
func ValidAppOrgs(orgOf map[string]string) []string {
	var out []string
	for ao, org := range orgOf {
		if org != "" {
			out = append(out, ao)
		}
	}
	sort.Strings(out)
	return out
}
