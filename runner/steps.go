package runner

import (
	"context"

	"github.com/sirupsen/logrus"

	"github.com/tenantmigrate/runner/migrations"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/phase1"
	"github.com/tenantmigrate/runner/runner/phase2"
	"github.com/tenantmigrate/runner/runner/references"
	"github.com/tenantmigrate/runner/runner/retry"
)

// builtinSteps are the Go steps of this build's migrations/ files.
func (r *Runner) builtinSteps() []GoStep {
	return []GoStep{
		{
			Name: migrations.Phase1, Phase: 1,
			Up: func(ctx context.Context, call *Call) (mongomigrate.Result, error) {
				cfg := r.phase1Config(ctx, false)
				// Within phase 1 every write and every cursor in _id order
				// retries by itself; a transient error anywhere else (its
				// first scan reads in natural order) runs the idempotent
				// phase again from its start.
				res, rep, err := runStep(ctx, "phase 1", &cfg.Retry, func(ctx context.Context) (*phase1.Report, error) {
					return phase1.Run(ctx, cfg)
				})
				if rep != nil {
					r.log.WithFields(logrus.Fields{"path": rep.Path, "counts": rep.Counts(), "conflicts_by_field": rep.ConflictFields,
						"invalid_reasons": rep.InvalidReasons}).Info("phase 1: report")
				}
				if err == nil {
					call.legacyChecked = true
				}
				return res, err
			},
			Down: func(ctx context.Context) (mongomigrate.Result, error) {
				cfg := r.phase1Config(ctx, false)
				res, _, err := runStep(ctx, "phase 1 down", &cfg.Retry, func(ctx context.Context) (*phase1.DownReport, error) {
					return phase1.Down(ctx, cfg)
				})
				return res, err
			},
			DryRun: func(ctx context.Context) (any, error) { return phase1.Run(ctx, r.phase1Config(ctx, true)) },
		},
		{
			Name: migrations.Phase2, Phase: 2,
			Up: func(ctx context.Context, call *Call) (mongomigrate.Result, error) {
				cfg := r.phase2Config(ctx, false)
				cfg.Prechecked = call.legacyChecked
				res, rep, err := runStep(ctx, "phase 2", &cfg.Retry, func(ctx context.Context) (*phase2.Report, error) {
					return phase2.Run(ctx, cfg)
				})
				if rep != nil {
					r.log.WithFields(logrus.Fields{"path": rep.Path, "checked": rep.Checked, "counts": rep.Counts()}).Info("phase 2: report")
				}
				return res, err
			},
			Down: func(ctx context.Context) (mongomigrate.Result, error) {
				cfg := r.phase2Config(ctx, false)
				res, _, err := runStep(ctx, "phase 2 down", &cfg.Retry, func(ctx context.Context) (*phase2.DownReport, error) {
					return phase2.Down(ctx, cfg)
				})
				return res, err
			},
			DryRun: func(ctx context.Context) (any, error) { return phase2.Run(ctx, r.phase2Config(ctx, true)) },
		},
		{
			Name: migrations.References,
			Up: func(ctx context.Context, _ *Call) (mongomigrate.Result, error) {
				cfg, err := r.referencesConfig(false)
				if err != nil {
					return mongomigrate.Result{}, err
				}
				res, rep, err := runStep(ctx, "references", &cfg.Retry, func(ctx context.Context) (*references.Report, error) {
					return references.Run(ctx, cfg)
				})
				if rep != nil {
					r.log.WithField("counts", rep.Counts()).Info("references: report")
				}
				return res, err
			},
			Down: func(ctx context.Context) (mongomigrate.Result, error) {
				cfg, err := r.referencesConfig(false)
				if err != nil {
					return mongomigrate.Result{}, err
				}
				res, _, err := runStep(ctx, "references down", &cfg.Retry, func(ctx context.Context) (*references.DownReport, error) {
					return references.Down(ctx, cfg)
				})
				return res, err
			},
			DryRun: func(ctx context.Context) (any, error) {
				cfg, err := r.referencesConfig(true)
				if err != nil {
					return nil, err
				}
				return references.Run(ctx, cfg)
			},
		},
	}
}

// stepReport is what every step's and down's report says of itself.
type stepReport interface {
	Counts() count.Counts
	Notes() []string
}

// runStep runs a step's body within the retry budget *policy (a body
// retries its own reads and writes through the same policy; a transient
// error it did not retry runs the idempotent body again from its start)
// and returns its result, with the retries among its counts. The report
// comes back even when the body failed, as far as it got.
func runStep[R stepReport](ctx context.Context, what string, policy *retry.Policy, body func(context.Context) (R, error)) (mongomigrate.Result, R, error) {
	retries := &retry.Counter{}
	policy.Counter = retries
	var rep R
	err := policy.Do(ctx, what, func(ctx context.Context) (err error) {
		rep, err = body(ctx)
		return err
	})
	if err != nil {
		return mongomigrate.Result{}, rep, err
	}
	c := rep.Counts()
	if n := retries.Load(); n > 0 {
		c[count.Retries] = n
	}
	return mongomigrate.Result{Counts: c, Notes: rep.Notes()}, rep, nil
}
