package runner

import (
	"context"

	"github.com/tenantmigrate/runner/runner/config"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/phase1"
	"github.com/tenantmigrate/runner/runner/phase2"
	"github.com/tenantmigrate/runner/runner/references"
	"github.com/tenantmigrate/runner/runner/step"
)

// builtinSteps are the Go steps of this build's migrations/ files, each
// with its own section of the configuration.
func builtinSteps(cfg config.Config) ([]step.Step, error) {
	refs, err := cfg.ParsedReferences()
	if err != nil {
		return nil, err
	}
	return []step.Step{
		phase1.Step{Options: cfg.Phase1, Identity: cfg.Identity},
		phase2.Step{Options: cfg.Phase2},
		references.Step{Refs: refs},
	}, nil
}

// driverSteps are the Go steps as the migration driver runs them in one
// call: each up and down by the name its file gives it.
func driverSteps(steps []step.Step, env step.Env, call *step.Call) map[string]mongomigrate.StepFunc {
	out := make(map[string]mongomigrate.StepFunc, 2*len(steps))
	for _, s := range steps {
		out[string(s.Name())] = func(ctx context.Context) (mongomigrate.Result, error) { return s.Up(ctx, env, call) }
		out[string(s.Name().Down())] = func(ctx context.Context) (mongomigrate.Result, error) { return s.Down(ctx, env) }
	}
	return out
}
