package runner

// The configuration, mapped onto each step's own Config.

import (
	"context"

	"github.com/tenantmigrate/runner/runner/phase1"
	"github.com/tenantmigrate/runner/runner/phase2"
	"github.com/tenantmigrate/runner/runner/references"
	"github.com/tenantmigrate/runner/runner/retry"
)

// referencesConfig maps the configuration onto the references step.
func (r *Runner) referencesConfig(dry bool) (references.Config, error) {
	parsed, err := r.cfg.ParsedReferences()
	if err != nil {
		return references.Config{}, err
	}
	refs := make([]references.Ref, 0, len(parsed))
	for _, p := range parsed {
		refs = append(refs, references.Ref{Collection: p.Collection, Path: p.Path})
	}
	c := r.cfg.Collections
	return references.Config{
		DB: r.db, Links: c.Links, Records: c.ReferencesColl(), State: c.State(), Refs: refs,
		Batch: r.cfg.BatchSize, Retry: r.retryPolicy(), DryRun: dry, Log: r.log, Progress: r.progress,
	}, nil
}

// retryPolicy is the configured budget against transient errors.
func (r *Runner) retryPolicy() retry.Policy {
	c := r.cfg.Retry
	return retry.Policy{Attempts: c.Attempts, MaxElapsed: c.MaxElapsed, Base: c.InitialWait, Max: c.MaxWait, Log: r.log}
}

func (r *Runner) phase1Config(ctx context.Context, dry bool) phase1.Config {
	c := r.cfg.Collections
	path, _ := phase1.ParsePath(r.cfg.Phase1.Path) // config.Validate checked it
	return phase1.Config{
		DB:               r.db,
		Names:            c.Names,
		ScratchPrefix:    c.MigrationsPrefix,
		Rules:            r.phase1Rules(),
		MemoryGroupLimit: r.cfg.Phase1.MemoryGroupLimit,
		Path:             path,
		Retry:            r.retryPolicy(),
		Batch:            r.cfg.BatchSize,
		SkipInvalid:      r.cfg.SkipInvalid,
		DryRun:           dry,
		Log:              r.log,
		Progress:         r.progress,
		Total:            r.estimate(ctx, c.Accounts),
	}
}

// phase1Rules maps the configuration onto phase 1's rules.
func (r *Runner) phase1Rules() phase1.Rules {
	id := r.cfg.Identity
	norm := map[string]phase1.Normalization{}
	for _, c := range id.Normalize.LowerCase {
		norm[c] |= phase1.LowerCase
	}
	for _, c := range id.Normalize.UnicodeNFC {
		norm[c] |= phase1.UnicodeNFC
	}
	return phase1.Rules{PreferredApps: r.cfg.Phase1.PreferredApps, IdentityCodes: id.AuthTypeCodes, Normalize: norm}
}

func (r *Runner) phase2Config(ctx context.Context, dry bool) phase2.Config {
	c := r.cfg.Collections
	path, _ := phase2.ParsePath(r.cfg.Phase2.Path) // config.Validate checked it
	return phase2.Config{
		DB:            r.db,
		Names:         c.Names,
		State:         c.State(),
		Batch:         r.cfg.BatchSize,
		RangeSize:     r.cfg.Phase2.RangeSize,
		Parallel:      r.cfg.Phase2.Parallel,
		ExactCounts:   r.cfg.Phase2.ExactCounts,
		Path:          path,
		ScratchPrefix: c.MigrationsPrefix,
		Retry:         r.retryPolicy(),
		SkipInvalid:   r.cfg.SkipInvalid,
		DryRun:        dry,
		Log:           r.log,
		Progress:      r.progress,
		Total:         r.estimate(ctx, c.Accounts),
	}
}
