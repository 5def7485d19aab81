// Package apporgs reads the app-orgs, which give every legacy account its
// organisation. Every step reads them the same way, whole: they number in
// the hundreds at most (one per app per org).
package apporgs

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/pipelines"
)

// Set are the app-orgs by _id.
type Set map[string]model.ApplicationOrganization

// Read reads every app-org of coll: its _id, app and org.
func Read(ctx context.Context, coll *mongo.Collection) (Set, error) {
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "app_id", Value: 1}, {Key: "org_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("read app-orgs: %w", err)
	}
	var rows []model.ApplicationOrganization
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("read app-orgs: %w", err)
	}
	out := make(Set, len(rows))
	for _, r := range rows {
		out[r.ID] = r
	}
	return out, nil
}

// OrgOf is each app-org's org ("" for one without an org).
func (s Set) OrgOf() map[string]string {
	m := make(map[string]string, len(s))
	for id, ao := range s {
		m[id] = ao.OrgID
	}
	return m
}

// Valid are the app-orgs an account can be migrated from (those with an
// org), sorted: what pipelines.Validity takes.
func (s Set) Valid() []string { return pipelines.ValidAppOrgs(s.OrgOf()) }
