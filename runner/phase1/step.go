package phase1

import (
	"context"
	"fmt"
	"github.com/tenantmigrate/runner/model"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/tenantmigrate/runner/migrations"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/step"
)

// Options is phase 1's section of the configuration (phase1.*).
type Options struct {
	// PreferredApps are app ids (applications_organizations.app_id), most
	// preferred first: the survivor of a group is the account on the
	// earliest of them, then the oldest, then the smallest _id.
	PreferredApps []string `mapstructure:"preferred_apps"`
	// MemoryGroupLimit is how many accounts that share identities phase 1
	// may group in memory (about 150 bytes each; the default, 1,000,000,
	// is about 150 MB at the most). Past it, and always at 0, it streams,
	// grouping in scratch collections with memory bounded by the largest
	// group whatever the number of accounts.
	MemoryGroupLimit int `mapstructure:"memory_group_limit"`
	// Path is how phase 1 reads: probe (the default) tries the server path
	// on a scratch collection first and takes it if the server runs it
	// right; server or stream force one (a forced server path the server
	// refuses fails the step).
	Path Path `mapstructure:"path"`
}

// DefaultOptions are phase 1's defaults; config.yaml documents the same.
func DefaultOptions() Options {
	return Options{PreferredApps: []string{}, MemoryGroupLimit: 1_000_000, Path: PathProbe}
}

// Validate names the first bad key.
func (o Options) Validate() error {
	switch {
	case o.MemoryGroupLimit < 0:
		return &step.OptionError{Key: "phase1.memory_group_limit", Msg: "must not be negative"}
	case o.Path == PathServer && o.MemoryGroupLimit == 0:
		return &step.OptionError{Key: "phase1.path", Msg: "server groups in memory: it needs phase1.memory_group_limit above 0"}
	}
	return nil
}

// IdentityOptions is the configuration's identity section (identity.*): which
// auth types identify a person within an organisation, and how their
// identifiers compare.
type IdentityOptions struct {
	AuthTypeCodes []string  `mapstructure:"auth_type_codes"`
	Normalize     Normalize `mapstructure:"normalize"`
	// MergeExisting merges a group whose accounts hold two or more tenant
	// accounts already (Rules.MergesTenants); off, they are reported.
	MergeExisting bool `mapstructure:"merge_existing"`
}

// Normalize names the identity codes whose identifiers compare in lower
// case, in Unicode NFC, or both (NFC, lower case, NFC). A code in neither
// compares exactly, byte for byte: the default, for every code.
type Normalize struct {
	LowerCase  []string `mapstructure:"lower_case"`
	UnicodeNFC []string `mapstructure:"unicode_nfc"`
}

// DefaultIdentityOptions is the identity section's default.
func DefaultIdentityOptions() IdentityOptions {
	return IdentityOptions{AuthTypeCodes: []string{"email", "phone", "illinois_oidc"}, Normalize: Normalize{LowerCase: []string{}, UnicodeNFC: []string{}}}
}

// Validate names the first bad key.
func (id IdentityOptions) Validate() error {
	if len(id.AuthTypeCodes) == 0 {
		return &step.OptionError{Key: "identity.auth_type_codes", Msg: "needs at least one auth type code"}
	}
	for _, code := range id.AuthTypeCodes {
		if strings.TrimSpace(code) == "" {
			return &step.OptionError{Key: "identity.auth_type_codes", Msg: "empty auth type code"}
		}
	}
	for _, n := range []struct {
		key   string
		codes []string
	}{{"identity.normalize.lower_case", id.Normalize.LowerCase}, {"identity.normalize.unicode_nfc", id.Normalize.UnicodeNFC}} {
		for _, code := range n.codes {
			if !slices.Contains(id.AuthTypeCodes, code) {
				return &step.OptionError{Key: n.key, Msg: fmt.Sprintf("%q is not one of identity.auth_type_codes", code)}
			}
		}
	}
	return nil
}

// Name is the name phase 1's step files give it: {"go": "phase1"}.
const Name migrations.GoStep = "phase1"

// Step is phase 1 as a migration step.
type Step struct {
	Options  Options
	Identity IdentityOptions
}

var _ step.Step = Step{}

// Name is the name phase 1's step files give it.
func (Step) Name() migrations.GoStep { return Name }

// Phase is 1.
func (Step) Phase() int { return 1 }

// rules are the merge rules of s's configuration.
func (s Step) rules() Rules {
	norm := map[string]Normalization{}
	for _, c := range s.Identity.Normalize.LowerCase {
		norm[c] |= LowerCase
	}
	for _, c := range s.Identity.Normalize.UnicodeNFC {
		norm[c] |= UnicodeNFC
	}
	return Rules{PreferredApps: s.Options.PreferredApps, IdentityCodes: s.Identity.AuthTypeCodes, Normalize: norm, MergeExisting: s.Identity.MergeExisting}
}

func (s Step) config(ctx context.Context, env step.Env, dry bool) Config {
	return Config{Env: env, Rules: s.rules(), DryRun: dry, MemoryGroupLimit: s.Options.MemoryGroupLimit,
		Path: s.Options.Path, Total: env.Estimate(ctx, env.Accounts)}
}

// Up runs phase 1. Within it every write and every cursor in _id order
// retries by itself; a transient error anywhere else (its first scan reads
// in natural order) runs the idempotent phase again from its start.
func (s Step) Up(ctx context.Context, env step.Env, call *step.Call) (mongomigrate.Result, error) {
	res, rep, err := step.Run(ctx, env, "phase 1", func(ctx context.Context, env step.Env) (*Report, error) {
		return Run(ctx, s.config(ctx, env, false))
	})
	if rep != nil {
		env.Log.WithFields(logrus.Fields{"path": rep.Path, "counts": rep.Counts(), "conflicts_by_field": rep.ConflictFields,
			"invalid_reasons": rep.InvalidReasons}).Info("phase 1: report")
	}
	if err == nil {
		call.LegacyChecked = true
	}
	return res, err
}

// Down undoes phase 1.
func (s Step) Down(ctx context.Context, env step.Env) (mongomigrate.Result, error) {
	res, _, err := step.Run(ctx, env, "phase 1 down", func(ctx context.Context, env step.Env) (*DownReport, error) {
		return Down(ctx, s.config(ctx, env, false))
	})
	return res, err
}

// DryRun is phase 1's report of what it would do.
func (s Step) DryRun(ctx context.Context, env step.Env) (any, error) {
	return Run(ctx, s.config(ctx, env, true))
}

// Scoped runs phase 1 over the legacy accounts scope only (nil: all), as
// the catch-up does: scope must be whole for the identity rules (every
// account sharing an identifier, or a tenant account, with one of it).
func (s Step) Scoped(ctx context.Context, env step.Env, scope []model.ID) (step.Report, error) {
	_, rep, err := step.Run(ctx, env, "phase 1 (catch-up)", func(ctx context.Context, env step.Env) (*Report, error) {
		cfg := s.config(ctx, env, false)
		cfg.Scope, cfg.LeaveSplit = scope, true
		if scope != nil {
			cfg.Total = int64(len(scope))
		}
		return Run(ctx, cfg)
	})
	if rep == nil {
		return nil, err
	}
	return rep, err
}

// Rules are the merge rules of its configuration.
func (s Step) Rules() Rules { return s.rules() }

// DownDryRun is what Down would delete and keep, writing nothing.
func (s Step) DownDryRun(ctx context.Context, env step.Env) (any, error) {
	return Down(ctx, s.config(ctx, env, true))
}
