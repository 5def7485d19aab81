package runner

import (
	"github.com/tenantmigrate/runner/runner/config"
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
