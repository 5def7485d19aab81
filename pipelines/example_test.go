package pipelines_test

import (
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
)

// The phase-2 pipeline as the runner sends it, for the default collection
// names, two valid app-orgs and a range. A change to the pipeline shows here
// first; the oracle test checks what it does.
func ExamplePhase2() {
	n := model.DefaultNames()
	// A range from a string _id through an ObjectId one: both types.
	through, _ := primitive.ObjectIDFromHex("65f0c1a2b3c4d5e6f7a8b9c0")
	r := &pipelines.Range{After: model.StringID("0f"), Through: model.ObjectIDOf(through)}
	p := pipelines.Phase2(n, model.Unsharded, []string{"ao-uiuc-illinois", "ao-rokwire-events"}, r)
	b, err := bson.MarshalExtJSONIndent(bson.D{{Key: "pipeline", Value: p}}, false, false, "", "  ")
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))
	// Output:
	// {
	//   "pipeline": [
	//     {
	//       "$match": {
	//         "$or": [
	//           {
	//             "_id": {
	//               "$type": "string",
	//               "$gt": "0f"
	//             }
	//           },
	//           {
	//             "_id": {
	//               "$type": "objectId",
	//               "$lte": {
	//                 "$oid": "65f0c1a2b3c4d5e6f7a8b9c0"
	//               }
	//             }
	//           }
	//         ],
	//         "app_org_id": {
	//           "$type": "string",
	//           "$not": {
	//             "$type": "array"
	//           },
	//           "$in": [
	//             "ao-uiuc-illinois",
	//             "ao-rokwire-events"
	//           ]
	//         },
	//         "auth_types": {
	//           "$type": "array",
	//           "$ne": []
	//         },
	//         "$and": [
	//           {
	//             "auth_types": {
	//               "$not": {
	//                 "$elemMatch": {
	//                   "$not": {
	//                     "$type": "object"
	//                   }
	//                 }
	//               }
	//             }
	//           },
	//           {
	//             "auth_types": {
	//               "$not": {
	//                 "$elemMatch": {
	//                   "$or": [
	//                     {
	//                       "auth_type_code": {
	//                         "$not": {
	//                           "$type": "string"
	//                         }
	//                       }
	//                     },
	//                     {
	//                       "auth_type_code": {
	//                         "$type": "array"
	//                       }
	//                     },
	//                     {
	//                       "identifier": {
	//                         "$not": {
	//                           "$type": "string"
	//                         }
	//                       }
	//                     },
	//                     {
	//                       "identifier": {
	//                         "$type": "array"
	//                       }
	//                     },
	//                     {
	//                       "identifier": ""
	//                     }
	//                   ]
	//                 }
	//               }
	//             }
	//           }
	//         ]
	//       }
	//     },
	//     {
	//       "$lookup": {
	//         "from": "tenants_accounts_links",
	//         "localField": "_id",
	//         "foreignField": "_id",
	//         "as": "_p2_link"
	//       }
	//     },
	//     {
	//       "$match": {
	//         "_p2_link": {
	//           "$size": 0
	//         }
	//       }
	//     },
	//     {
	//       "$lookup": {
	//         "from": "applications_organizations",
	//         "localField": "app_org_id",
	//         "foreignField": "_id",
	//         "as": "_p2_ao"
	//       }
	//     },
	//     {
	//       "$set": {
	//         "org_id": {
	//           "$arrayElemAt": [
	//             "$_p2_ao.org_id",
	//             0
	//           ]
	//         },
	//         "org_apps_memberships": [
	//           {
	//             "id": {
	//               "$concat": [
	//                 "$app_org_id",
	//                 "_",
	//                 {
	//                   "$toString": "$_id"
	//                 }
	//               ]
	//             },
	//             "app_org_id": "$app_org_id",
	//             "permissions": "$permissions",
	//             "roles": "$roles",
	//             "groups": "$groups",
	//             "preferences": "$preferences",
	//             "most_recent_client_version": "$most_recent_client_version"
	//           }
	//         ]
	//       }
	//     },
	//     {
	//       "$unset": [
	//         "_p2_link",
	//         "_p2_ao",
	//         "app_org_id",
	//         "permissions",
	//         "roles",
	//         "groups",
	//         "preferences",
	//         "most_recent_client_version"
	//       ]
	//     },
	//     {
	//       "$merge": {
	//         "into": "tenants_accounts",
	//         "on": "_id",
	//         "whenMatched": [
	//           {
	//             "$replaceWith": {
	//               "$cond": {
	//                 "if": {
	//                   "$gt": [
	//                     "$$new.date_updated",
	//                     "$date_updated"
	//                   ]
	//                 },
	//                 "then": "$$new",
	//                 "else": "$$ROOT"
	//               }
	//             }
	//           }
	//         ],
	//         "whenNotMatched": "insert"
	//       }
	//     }
	//   ]
	// }
}
