// Package model holds the document shapes the runner reads and writes.
//
// The bson names are those of the legacy core service (see REFERENCE §1): a
// legacy account lives in `accounts`, one per person per app; a tenant account
// lives in `tenants_accounts`, one per person per organisation, with one
// OrgAppMembership per app of that organisation.
//
// The migration steps themselves work on raw bson documents so that nothing the
// structs below do not name is lost; these types are the contract for readers
// (tests, the fixture generator, services) and the single list of which fields
// are app-level and which are person-level.
package model

import (
	"time"

	"go.mongodb.org/mongo-driver/bson"
)

// Field names shared by legacy and tenant accounts.
const (
	FieldID                      = "_id"
	FieldAppOrgID                = "app_org_id"
	FieldOrgID                   = "org_id"
	FieldMemberships             = "org_apps_memberships"
	FieldMembershipID            = "id"
	FieldPermissions             = "permissions"
	FieldRoles                   = "roles"
	FieldGroups                  = "groups"
	FieldPreferences             = "preferences"
	FieldMostRecentClientVersion = "most_recent_client_version"
	FieldAuthTypes               = "auth_types"
	FieldDateCreated             = "date_created"
	FieldDateUpdated             = "date_updated"
)

// AppLevelFields are the legacy fields that move one level down, into the
// membership of the account's app-org. Every other legacy field except
// app_org_id stays on the tenant account (person level), including fields this
// model does not know: phase 1 and phase 2 share this one list.
var AppLevelFields = []string{
	FieldPermissions,
	FieldRoles,
	FieldGroups,
	FieldPreferences,
	FieldMostRecentClientVersion,
}

// MembershipID is the deterministic id of the membership that the legacy
// account legacyID brings into a tenant account: the app-org id, "_", and
// the _id as text (an ObjectId's 24 hex digits, as $toString gives them).
// Phase 1, phase 2's pipelines and verify all use it, so a re-run writes
// the same ids and the unique index on org_apps_memberships.id catches any
// double copy.
func MembershipID(appOrgID string, legacyID ID) string {
	return appOrgID + "_" + legacyID.Text()
}

// LegacyAccount is one document of the legacy `accounts` collection.
type LegacyAccount struct {
	ID       ID     `bson:"_id"`
	AppOrgID string `bson:"app_org_id"`

	Permissions             []Permission   `bson:"permissions,omitempty"`
	Roles                   []AccountRole  `bson:"roles,omitempty"`
	Groups                  []AccountGroup `bson:"groups,omitempty"`
	Preferences             bson.M         `bson:"preferences,omitempty"`
	MostRecentClientVersion *string        `bson:"most_recent_client_version,omitempty"`

	Scopes        []string          `bson:"scopes,omitempty"`
	AuthTypes     []AccountAuthType `bson:"auth_types,omitempty"`
	MFATypes      []MFAType         `bson:"mfa_types,omitempty"`
	Username      string            `bson:"username,omitempty"`
	ExternalIDs   map[string]string `bson:"external_ids,omitempty"`
	SystemConfigs bson.M            `bson:"system_configs,omitempty"`
	Profile       Profile           `bson:"profile"`
	Devices       []Device          `bson:"devices,omitempty"`
	Anonymous     bool              `bson:"anonymous"`
	Privacy       Privacy           `bson:"privacy"`
	Verified      bool              `bson:"verified"`
	IsFollowing   bool              `bson:"is_following"`

	DateCreated         time.Time  `bson:"date_created"`
	DateUpdated         *time.Time `bson:"date_updated,omitempty"`
	LastLoginDate       *time.Time `bson:"last_login_date,omitempty"`
	LastAccessTokenDate *time.Time `bson:"last_access_token_date,omitempty"`

	// Extra keeps the fields this model does not name, so a round trip
	// through the struct loses nothing.
	Extra bson.M `bson:",inline"`
}

// TenantAccount is one document of `tenants_accounts`: one person in one
// organisation.
type TenantAccount struct {
	ID          ID                 `bson:"_id"`
	OrgID       string             `bson:"org_id"`
	Memberships []OrgAppMembership `bson:"org_apps_memberships"`

	Scopes        []string          `bson:"scopes,omitempty"`
	AuthTypes     []AccountAuthType `bson:"auth_types,omitempty"`
	MFATypes      []MFAType         `bson:"mfa_types,omitempty"`
	Username      string            `bson:"username,omitempty"`
	ExternalIDs   map[string]string `bson:"external_ids,omitempty"`
	SystemConfigs bson.M            `bson:"system_configs,omitempty"`
	Profile       Profile           `bson:"profile"`
	Devices       []Device          `bson:"devices,omitempty"`
	Anonymous     bool              `bson:"anonymous"`
	Privacy       Privacy           `bson:"privacy"`
	Verified      bool              `bson:"verified"`
	IsFollowing   bool              `bson:"is_following"`

	DateCreated         time.Time  `bson:"date_created"`
	DateUpdated         *time.Time `bson:"date_updated,omitempty"`
	LastLoginDate       *time.Time `bson:"last_login_date,omitempty"`
	LastAccessTokenDate *time.Time `bson:"last_access_token_date,omitempty"`

	Extra bson.M `bson:",inline"`
}

// OrgAppMembership is the part of a tenant account that belongs to one app of
// the organisation: the legacy app-level fields, one level down.
type OrgAppMembership struct {
	ID       string `bson:"id"`
	AppOrgID string `bson:"app_org_id"`

	Permissions             []Permission   `bson:"permissions,omitempty"`
	Roles                   []AccountRole  `bson:"roles,omitempty"`
	Groups                  []AccountGroup `bson:"groups,omitempty"`
	Preferences             bson.M         `bson:"preferences,omitempty"`
	MostRecentClientVersion *string        `bson:"most_recent_client_version,omitempty"`
}

// ApplicationOrganization links an app to an organisation; a legacy
// account's organisation is known only through it.
type ApplicationOrganization struct {
	ID    string `bson:"_id"`
	AppID string `bson:"app_id"`
	OrgID string `bson:"org_id"`

	Extra bson.M `bson:",inline"`
}

// AccountAuthType is one way a person logs in. A person is identified within
// an organisation by (AuthTypeCode, Identifier) for the configured codes.
type AccountAuthType struct {
	ID           string     `bson:"id"`
	AuthTypeID   string     `bson:"auth_type_id"`
	AuthTypeCode string     `bson:"auth_type_code"`
	Identifier   string     `bson:"identifier"`
	Params       bson.M     `bson:"params,omitempty"`
	CredentialID *string    `bson:"credential_id,omitempty"`
	Active       bool       `bson:"active"`
	Unverified   bool       `bson:"unverified"`
	Linked       bool       `bson:"linked"`
	DateCreated  time.Time  `bson:"date_created"`
	DateUpdated  *time.Time `bson:"date_updated,omitempty"`
}

// Permission is a named permission, copied in full into the account.
type Permission struct {
	ID          string     `bson:"_id"`
	Name        string     `bson:"name"`
	Description string     `bson:"description,omitempty"`
	ServiceID   string     `bson:"service_id,omitempty"`
	Assigners   []string   `bson:"assigners,omitempty"`
	DateCreated time.Time  `bson:"date_created"`
	DateUpdated *time.Time `bson:"date_updated,omitempty"`
}

// AppOrgRole is a role defined for one app-org.
type AppOrgRole struct {
	ID          string       `bson:"_id"`
	Name        string       `bson:"name"`
	Description string       `bson:"description,omitempty"`
	System      bool         `bson:"system"`
	AppOrgID    string       `bson:"app_org_id"`
	Permissions []Permission `bson:"permissions,omitempty"`
	DateCreated time.Time    `bson:"date_created"`
	DateUpdated *time.Time   `bson:"date_updated,omitempty"`
}

// AccountRole is a role granted to an account.
type AccountRole struct {
	Role     AppOrgRole `bson:"role"`
	Active   bool       `bson:"active"`
	AdminSet bool       `bson:"admin_set"`
}

// AppOrgGroup is a group defined for one app-org.
type AppOrgGroup struct {
	ID          string       `bson:"_id"`
	Name        string       `bson:"name"`
	System      bool         `bson:"system"`
	AppOrgID    string       `bson:"app_org_id"`
	Permissions []Permission `bson:"permissions,omitempty"`
	Roles       []AppOrgRole `bson:"roles,omitempty"`
	DateCreated time.Time    `bson:"date_created"`
	DateUpdated *time.Time   `bson:"date_updated,omitempty"`
}

// AccountGroup is a group membership of an account.
type AccountGroup struct {
	Group    AppOrgGroup `bson:"group"`
	Active   bool        `bson:"active"`
	AdminSet bool        `bson:"admin_set"`
}

// MFAType is one second factor of a person.
type MFAType struct {
	ID          string     `bson:"id"`
	Type        string     `bson:"type"`
	Verified    bool       `bson:"verified"`
	Params      bson.M     `bson:"params,omitempty"`
	DateCreated time.Time  `bson:"date_created"`
	DateUpdated *time.Time `bson:"date_updated,omitempty"`
}

// Device is a device a person used.
type Device struct {
	ID          string     `bson:"_id"`
	DeviceID    *string    `bson:"device_id,omitempty"`
	Type        string     `bson:"type"`
	OS          string     `bson:"os"`
	DateCreated time.Time  `bson:"date_created"`
	DateUpdated *time.Time `bson:"date_updated,omitempty"`
}

// Profile is the person's profile; one per tenant account.
type Profile struct {
	ID          string     `bson:"id"`
	PhotoURL    string     `bson:"photo_url,omitempty"`
	FirstName   string     `bson:"first_name"`
	LastName    string     `bson:"last_name"`
	Email       string     `bson:"email,omitempty"`
	Phone       string     `bson:"phone,omitempty"`
	BirthYear   int16      `bson:"birth_year,omitempty"`
	Address     string     `bson:"address,omitempty"`
	ZipCode     string     `bson:"zip_code,omitempty"`
	State       string     `bson:"state,omitempty"`
	Country     string     `bson:"country,omitempty"`
	DateCreated time.Time  `bson:"date_created"`
	DateUpdated *time.Time `bson:"date_updated,omitempty"`
	Extra       bson.M     `bson:",inline"`
}

// Privacy holds the person's privacy settings.
type Privacy struct {
	Public bool `bson:"public"`
}

// Link records which tenant account a legacy account went into. Phase 1
// writes one per account it merges (the survivor's own included); an
// account without a link moved one-to-one (tenant _id = legacy _id).
type Link struct {
	LegacyID     ID     `bson:"_id" json:"legacy_id"`
	TenantID     ID     `bson:"tenant_id,omitempty" json:"tenant_id,omitempty"`
	OrgID        string `bson:"org_id" json:"org_id"`
	AppOrgID     string `bson:"app_org_id" json:"app_org_id"`
	MembershipID string `bson:"membership_id" json:"membership_id"`
	// TenantHash, on the survivor's link, is a hash of the tenant account
	// phase 1 wrote: a re-run that would write the same skips the write.
	TenantHash string `bson:"tenant_hash,omitempty" json:"-"`
	// Skipped, with no TenantID (zero: tenant_id absent; a link written
	// before IDs had types holds ""), says why phase 1 left the account out
	// (its group would not fit in one document); phase 2 then leaves it
	// out too, and verify lists it as not migrated.
	Skipped string `bson:"skipped,omitempty" json:"skipped,omitempty"`
}
