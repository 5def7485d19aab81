package phase2

import (
	"context"
	"github.com/tenantmigrate/runner/model"

	"github.com/sirupsen/logrus"

	"github.com/tenantmigrate/runner/migrations"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/step"
)

// Name is the name phase 2's step files give it: {"go": "phase2"}.
const Name migrations.GoStep = "phase2"

// Step is phase 2 as a migration step.
type Step struct{ Options Options }

var _ step.Step = Step{}

// Name is the name phase 2's step files give it.
func (Step) Name() migrations.GoStep { return Name }

// Phase is 2.
func (Step) Phase() int { return 2 }

func (s Step) config(ctx context.Context, env step.Env, dry bool) Config {
	return Config{Env: env, Options: s.Options, DryRun: dry, Total: env.Estimate(ctx, env.Accounts)}
}

// Up runs phase 2; when phase 1 checked every legacy account earlier in
// the same call, the streaming path does not read them once more first.
func (s Step) Up(ctx context.Context, env step.Env, call *step.Call) (mongomigrate.Result, error) {
	res, rep, err := step.Run(ctx, env, "phase 2", func(ctx context.Context, env step.Env) (*Report, error) {
		cfg := s.config(ctx, env, false)
		cfg.Prechecked = call.LegacyChecked
		return Run(ctx, cfg)
	})
	if rep != nil {
		env.Log.WithFields(logrus.Fields{"path": rep.Path, "checked": rep.Checked, "counts": rep.Counts()}).Info("phase 2: report")
	}
	return res, err
}

// Down undoes phase 2.
func (s Step) Down(ctx context.Context, env step.Env) (mongomigrate.Result, error) {
	res, _, err := step.Run(ctx, env, "phase 2 down", func(ctx context.Context, env step.Env) (*DownReport, error) {
		return Down(ctx, s.config(ctx, env, false))
	})
	return res, err
}

// DryRun is phase 2's report of what it would do.
func (s Step) DryRun(ctx context.Context, env step.Env) (any, error) {
	return Run(ctx, s.config(ctx, env, true))
}

// Scoped runs phase 2 over the legacy accounts scope only (nil: all), as
// the catch-up does; its transient errors run it again, within env.Retry.
func (s Step) Scoped(ctx context.Context, env step.Env, scope []model.ID) (step.Report, error) {
	_, rep, err := step.Run(ctx, env, "phase 2 (catch-up)", func(ctx context.Context, env step.Env) (*Report, error) {
		cfg := s.config(ctx, env, false)
		cfg.Scope = scope
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

// DownDryRun is what Down would delete and keep, writing nothing.
func (s Step) DownDryRun(ctx context.Context, env step.Env) (any, error) {
	return Down(ctx, s.config(ctx, env, true))
}
