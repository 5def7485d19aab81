package runner

import (
	"context"

	"github.com/sirupsen/logrus"

	"github.com/tenantmigrate/runner/migrations"
	"github.com/tenantmigrate/runner/pipelines"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/phase1"
	"github.com/tenantmigrate/runner/runner/phase2"
	"github.com/tenantmigrate/runner/runner/references"
	"github.com/tenantmigrate/runner/runner/retry"
)

// dryRunFunc says what a Go step would do, writing nothing.
type dryRunFunc func(ctx context.Context) (any, error)

// goSteps are the Go steps the files of migrations/ name.
func (r *Runner) goSteps() map[string]mongomigrate.StepFunc {
	return map[string]mongomigrate.StepFunc{
		"phase1": func(ctx context.Context) (mongomigrate.Result, error) {
			cfg := r.phase1Config(ctx, false)
			retries := &retry.Counter{}
			cfg.Retry.Counter = retries
			// Within phase 1 every write and every cursor in _id order
			// retries by itself; a transient error anywhere else (its
			// first scan reads in natural order) runs the idempotent
			// phase again from its start.
			var rep *phase1.Report
			step := cfg.Retry
			err := step.Do(ctx, "phase 1", func(ctx context.Context) (err error) {
				rep, err = phase1.Run(ctx, cfg)
				return err
			})
			if rep != nil {
				r.logPhase1(rep)
			}
			if err != nil {
				return mongomigrate.Result{}, err
			}
			runStateOf(ctx).legacyChecked.Store(true)
			return mongomigrate.Result{Counts: withRetries(rep.Counts(), retries), Notes: rep.Notes()}, nil
		},
		"phase1_down": r.phase1Down,
		"phase2": func(ctx context.Context) (mongomigrate.Result, error) {
			cfg := r.phase2Config(ctx, false)
			cfg.Prechecked = runStateOf(ctx).legacyChecked.Load()
			retries := &retry.Counter{}
			cfg.Retry.Counter = retries
			var rep *phase2.Report
			step := cfg.Retry
			err := step.Do(ctx, "phase 2", func(ctx context.Context) (err error) {
				rep, err = phase2.Run(ctx, cfg)
				return err
			})
			if rep != nil {
				r.log.WithFields(logrus.Fields{"path": rep.Path, "checked": rep.Checked, "counts": rep.Counts()}).Info("phase 2: report")
			}
			if err != nil {
				return mongomigrate.Result{}, err
			}
			return mongomigrate.Result{Counts: withRetries(rep.Counts(), retries), Notes: rep.Notes()}, nil
		},
		"phase2_down": r.phase2Down,
		migrations.StepReferences: func(ctx context.Context) (mongomigrate.Result, error) {
			cfg, err := r.referencesConfig(false)
			if err != nil {
				return mongomigrate.Result{}, err
			}
			retries := &retry.Counter{}
			cfg.Retry.Counter = retries
			var rep *references.Report
			step := cfg.Retry
			err = step.Do(ctx, "references", func(ctx context.Context) (err error) {
				rep, err = references.Run(ctx, cfg)
				return err
			})
			if rep != nil {
				r.log.WithField("counts", rep.Counts()).Info("references: report")
			}
			if err != nil {
				return mongomigrate.Result{}, err
			}
			return mongomigrate.Result{Counts: withRetries(rep.Counts(), retries), Notes: rep.Notes()}, nil
		},
		"references_down": r.referencesDown,
	}
}

// referencesDown undoes the references step (references.Down), again
// from where it stopped after a transient error it did not retry itself.
func (r *Runner) referencesDown(ctx context.Context) (mongomigrate.Result, error) {
	cfg, err := r.referencesConfig(false)
	if err != nil {
		return mongomigrate.Result{}, err
	}
	retries := &retry.Counter{}
	cfg.Retry.Counter = retries
	var rep *references.DownReport
	err = cfg.Retry.Do(ctx, "references down", func(ctx context.Context) (err error) {
		rep, err = references.Down(ctx, cfg)
		return err
	})
	if err != nil {
		return mongomigrate.Result{}, err
	}
	return mongomigrate.Result{Counts: withRetries(mongomigrate.Counts{"restored": rep.Restored, "changed_since": rep.Changed}, retries), Notes: rep.Notes()}, nil
}

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

// withRetries adds the step's retries to its counts when there were any.
func withRetries(c map[string]int64, retries *retry.Counter) map[string]int64 {
	if n := retries.Load(); n > 0 {
		c["retries"] = n
	}
	return c
}

// retryPolicy is the configured budget against transient errors.
func (r *Runner) retryPolicy() retry.Policy {
	c := r.cfg.Retry
	return retry.Policy{Attempts: c.Attempts, MaxElapsed: c.MaxElapsed, Base: c.InitialWait, Max: c.MaxWait, Log: r.log}
}

func (r *Runner) dryRuns() map[string]dryRunFunc {
	return map[string]dryRunFunc{
		"phase1": func(ctx context.Context) (any, error) {
			return phase1.Run(ctx, r.phase1Config(ctx, true))
		},
		"phase2": func(ctx context.Context) (any, error) {
			return phase2.Run(ctx, r.phase2Config(ctx, true))
		},
		migrations.StepReferences: func(ctx context.Context) (any, error) {
			cfg, err := r.referencesConfig(true)
			if err != nil {
				return nil, err
			}
			return references.Run(ctx, cfg)
		},
	}
}

func (r *Runner) phase1Config(ctx context.Context, dry bool) phase1.Config {
	c := r.cfg.Collections
	path, _ := phase1.ParsePath(r.cfg.Phase1.Path) // config.Validate checked it
	return phase1.Config{
		DB:                        r.db,
		Accounts:                  c.Accounts,
		TenantsAccounts:           c.TenantsAccounts,
		ApplicationsOrganizations: c.ApplicationsOrganizations,
		Links:                     c.Links,
		ScratchPrefix:             c.MigrationsPrefix,
		IdentityCodes:             r.cfg.Identity.AuthTypeCodes,
		Rules:                     phase1.Rules{PreferredApps: r.cfg.Phase1.PreferredApps},
		MemoryGroupLimit:          r.cfg.Phase1.MemoryGroupLimit,
		Path:                      path,
		Retry:                     r.retryPolicy(),
		Batch:                     r.cfg.BatchSize,
		SkipInvalid:               r.cfg.SkipInvalid,
		DryRun:                    dry,
		Log:                       r.log,
		Progress:                  r.progress,
		Total:                     r.estimate(ctx, c.Accounts),
	}
}

func (r *Runner) phase2Config(ctx context.Context, dry bool) phase2.Config {
	c := r.cfg.Collections
	path, _ := phase2.ParsePath(r.cfg.Phase2.Path) // config.Validate checked it
	return phase2.Config{
		DB: r.db,
		Names: pipelines.Names{Accounts: c.Accounts, TenantsAccounts: c.TenantsAccounts,
			ApplicationsOrganizations: c.ApplicationsOrganizations, Links: c.Links},
		State:         c.State(),
		Batch:         r.cfg.BatchSize,
		RangeSize:     r.cfg.Phase2.RangeSize,
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

// phase2Down undoes phase 2 (phase2.Down).
func (r *Runner) phase2Down(ctx context.Context) (mongomigrate.Result, error) {
	cfg := r.phase2Config(ctx, false)
	retries := &retry.Counter{}
	cfg.Retry.Counter = retries
	var rep *phase2.DownReport
	err := cfg.Retry.Do(ctx, "phase 2 down", func(ctx context.Context) (err error) {
		rep, err = phase2.Down(ctx, cfg)
		return err
	})
	if err != nil {
		return mongomigrate.Result{}, err
	}
	var notes []string
	for _, name := range rep.Dropped {
		notes = append(notes, "dropped "+name+", which phase 2 had created, empty")
	}
	return mongomigrate.Result{Counts: withRetries(mongomigrate.Counts{"tenants_deleted": rep.TenantsDeleted}, retries), Notes: notes}, nil
}

func (r *Runner) logPhase1(rep *phase1.Report) {
	r.log.WithField("path", rep.Path).WithField("counts", rep.Counts()).WithField("conflicts_by_field", rep.ConflictFields).
		WithField("invalid_reasons", rep.InvalidReasons).Info("phase 1: report")
}

// phase1Down undoes phase 1 (phase1.Down), again from its start after a
// transient error it did not retry itself.
func (r *Runner) phase1Down(ctx context.Context) (mongomigrate.Result, error) {
	cfg := r.phase1Config(ctx, false)
	retries := &retry.Counter{}
	cfg.Retry.Counter = retries
	var rep *phase1.DownReport
	err := cfg.Retry.Do(ctx, "phase 1 down", func(ctx context.Context) (err error) {
		rep, err = phase1.Down(ctx, cfg)
		return err
	})
	if err != nil {
		return mongomigrate.Result{}, err
	}
	return mongomigrate.Result{Counts: withRetries(mongomigrate.Counts{"tenants_deleted": rep.TenantsDeleted}, retries)}, nil
}
