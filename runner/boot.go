package runner

import (
	"context"
	"os"

	"github.com/sirupsen/logrus"

	"github.com/tenantmigrate/runner/runner/config"
)

// Boot is what a service calls at start: it applies every pending step,
// then (boot.catch_up) carries the legacy changes since the last boot until
// cutover, and applies boot.on_failure. With "continue", a failure is logged, kept in the
// status record, returned in Result.Err, and Boot returns a nil error so the
// service can serve.
func Boot(ctx context.Context, cfg config.Config, opts ...Option) (Result, error) {
	r, err := New(ctx, cfg, opts...)
	if err != nil {
		return bootFailed(cfg, opts, err)
	}
	defer r.Close(context.WithoutCancel(ctx))
	res, err := r.Boot(ctx)
	if err != nil {
		res2, err2 := bootFailed(cfg, opts, err)
		res2.From, res2.To, res2.Steps, res2.CatchUp = res.From, res.To, res.Steps, res.CatchUp
		res2.Resumed, res2.Dirty, res2.Step = res.Resumed, res.Dirty, res.Step
		return res2, err2
	}
	r.log.WithFields(logrus.Fields{"from_version": res.From, "to_version": res.To, "steps": len(res.Steps)}).Info("boot migration done")
	return res, nil
}

// Boot is what a service's boot does, boot.on_failure aside: Up, then
// (boot.catch_up) a catch-up of the legacy changes since the last one,
// until cutover. The `runner` command with no other does the same.
func (r *Runner) Boot(ctx context.Context) (Result, error) {
	res, err := r.Up(ctx)
	if err != nil || !r.cfg.Boot.CatchUp {
		return res, err
	}
	res.CatchUp, err = r.bootCatchUp(ctx)
	return res, err
}

func bootFailed(cfg config.Config, opts []Option, err error) (Result, error) {
	if cfg.Boot.OnFailure != config.FailureContinue {
		return Result{}, err
	}
	probe := &Runner{}
	for _, o := range opts {
		o(probe)
	}
	log := probe.log
	if log == nil {
		log = NewLogger(cfg.Log, os.Stderr)
	}
	log.WithError(err).Error("boot migration failed; continuing as boot.on_failure is \"continue\"")
	return Result{Err: err}, nil
}
