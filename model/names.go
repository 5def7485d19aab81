package model

import (
	"regexp"
	"strings"
)

// Names names the four collections of the data model. Every package that
// reads or writes them takes one Names (config's collections.* keys fill
// it), so a deployment that renamed a collection renames it everywhere.
type Names struct {
	// Accounts: the legacy accounts, one per person per app; only read.
	Accounts string `mapstructure:"accounts"`
	// TenantsAccounts: the tenant accounts, one per person per org.
	TenantsAccounts string `mapstructure:"tenants_accounts"`
	// ApplicationsOrganizations: the app-orgs, which give an account its
	// org; only read.
	ApplicationsOrganizations string `mapstructure:"applications_organizations"`
	// Links: phase 1's record of which legacy account went where.
	Links string `mapstructure:"links"`
}

// DefaultNames are the collections of the legacy core service
// (REFERENCE §1).
func DefaultNames() Names {
	return Names{
		Accounts:                  "accounts",
		TenantsAccounts:           "tenants_accounts",
		ApplicationsOrganizations: "applications_organizations",
		Links:                     "tenants_accounts_links",
	}
}

// collectionName is what a configured collection name may be: a
// conservative subset of MongoDB's rules that every engine accepts.
var collectionName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,119}$`)

// ValidCollectionName reports whether name may name a collection of the
// service (never a system collection).
func ValidCollectionName(name string) bool {
	return collectionName.MatchString(name) && !strings.HasPrefix(name, "system.")
}
