package pipelines

import (
	"sort"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/model"
)

// SharedIdentities is phase 1's grouping pipeline, run on Names.Accounts on
// servers that take it (phase 1 probes them): one output document
// {a: [_id, ...]} per identity that two or more accounts hold, an identity
// being (the org of the account's app-org, auth_type_code, identifier) for
// an auth_type_code among codes. Only the accounts stage 1 keeps (Validity)
// take part. The identity itself is never output: _id is projected away,
// so the runner sees ids only. An account listing one identity twice
// counts once ($addToSet). Its Go twin is phase 1's streaming identity pass
// (runner/phase1, identityKey): the same keys, hashed.
//
// orgOf maps an app-org _id to its org_id; those mapped to "" are not valid.
// It is embedded as two literal arrays (app-orgs are few), so the pipeline
// needs no $lookup: $indexOfArray finds the app-org, $arrayElemAt its org.
//
// $group holds one entry per identity: run it with allowDiskUse. A single
// identity shared by hundreds of thousands of accounts would make one
// output document over 16 MB; the server then fails the pipeline and phase
// 1 takes its streaming path.
func SharedIdentities(orgOf map[string]string, codes []string) mongo.Pipeline {
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
		{d("$group", bson.D{
			d("_id", bson.D{d("o", "$o"), d("c", "$"+at+".auth_type_code"), d("i", "$"+at+".identifier")}),
			d("a", bson.D{d("$addToSet", "$"+model.FieldID)}),
		})},
		{d("$match", bson.D{d("a.1", bson.D{d("$exists", true)})})},
		{d("$project", bson.D{d("_id", 0), d("a", 1)})},
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
