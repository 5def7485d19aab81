package references

import (
	"context"
	"fmt"
	"strings"

	"github.com/tenantmigrate/runner/migrations"
	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/step"
)

// Parse reads the configuration's references section, each
// "collection:dotted.path", refusing, by its key, a malformed one and one
// that names a collection of the data model (own) or of the runner's
// bookkeeping (collections starting with bookkeeping + "_").
func Parse(list []string, own model.Names, bookkeeping string) ([]Ref, error) {
	owned := map[string]string{
		own.Accounts:                  "the legacy accounts",
		own.ApplicationsOrganizations: "the app-orgs",
		own.TenantsAccounts:           "the tenant accounts",
		own.Links:                     "the links",
	}
	var out []Ref
	seen := map[Ref]bool{}
	for _, s := range list {
		coll, path, ok := strings.Cut(strings.TrimSpace(s), ":")
		bad := func(msg string) error {
			return &step.OptionError{Key: "references", Msg: fmt.Sprintf("%q: %s", s, msg)}
		}
		switch {
		case !ok || coll == "" || path == "":
			return nil, bad("want collection:field (a dotted path for a nested field)")
		case !model.ValidCollectionName(coll):
			return nil, bad("not a valid collection name")
		case owned[coll] != "":
			return nil, bad("names " + owned[coll] + ", which the references step never writes")
		case strings.HasPrefix(coll, bookkeeping+"_"):
			return nil, bad("names a collection of the runner's own (collections.migrations_prefix)")
		}
		for i, seg := range strings.Split(path, ".") {
			switch {
			case seg == "" || strings.HasPrefix(seg, "$"):
				return nil, bad("not a field path")
			case strings.Trim(seg, "0123456789") == "":
				return nil, bad("array positions are not supported: name the field, arrays are searched whole")
			case i == 0 && seg == "_id":
				return nil, bad("a document's _id cannot be rewritten")
			}
		}
		r := Ref{Collection: coll, Path: path}
		if seen[r] {
			return nil, bad("listed twice")
		}
		seen[r] = true
		out = append(out, r)
	}
	return out, nil
}

// Name is the name the references step files give it: {"go": "references"}.
const Name migrations.GoStep = "references"

// Step is the references step: it re-points the
// configured references, Refs (Parse), to the tenant accounts.
type Step struct{ Refs []Ref }

var _ step.Step = Step{}

// Name is the name the references step files give it.
func (Step) Name() migrations.GoStep { return Name }

// Phase is 0: the step is no phase (runner --references runs it).
func (Step) Phase() int { return 0 }

func (s Step) config(env step.Env, dry bool) Config {
	return Config{Env: env, Refs: s.Refs, DryRun: dry}
}

// Up re-points the references.
func (s Step) Up(ctx context.Context, env step.Env, _ *step.Call) (mongomigrate.Result, error) {
	res, rep, err := step.Run(ctx, env, "references", func(ctx context.Context, env step.Env) (*Report, error) {
		return Run(ctx, s.config(env, false))
	})
	if rep != nil {
		env.Log.WithField("counts", rep.Counts()).Info("references: report")
	}
	return res, err
}

// Down restores what Up changed, where the service did not change it since.
func (s Step) Down(ctx context.Context, env step.Env) (mongomigrate.Result, error) {
	res, _, err := step.Run(ctx, env, "references down", func(ctx context.Context, env step.Env) (*DownReport, error) {
		return Down(ctx, s.config(env, false))
	})
	return res, err
}

// DryRun counts what Up would change.
func (s Step) DryRun(ctx context.Context, env step.Env) (any, error) {
	return Run(ctx, s.config(env, true))
}

// Check reads, writing nothing, whether any configured reference still
// names a merged-away account; for verify.
func (s Step) Check(ctx context.Context, env step.Env) (*CheckReport, error) {
	return Check(ctx, s.config(env, true))
}
