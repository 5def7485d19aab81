package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tenantmigrate/runner/runner/references"
	"github.com/tenantmigrate/runner/runner/retry"
	"github.com/tenantmigrate/runner/runner/step"
	"github.com/tenantmigrate/runner/runner/verify"
)

// Verify reconciles the legacy accounts with the tenant accounts.
func (r *Runner) Verify(ctx context.Context) (*verify.Report, error) {
	c := r.cfg.Collections
	start := time.Now()
	r.log.Info("verify: started")
	total := r.m.env.Estimate(ctx, c.Accounts)
	if total > 0 {
		total += r.m.env.Estimate(ctx, c.TenantsAccounts)
	}
	st, err := r.Status(ctx)
	if err != nil {
		return nil, err
	}
	stage, steps := verifyStage(st)
	task := r.progress.Start("verify", total)
	defer task.Done()
	seen := int64(0)
	var rep *verify.Report
	// Verify only reads: its streams resume by themselves, and any other
	// transient error reads it all again.
	policy := r.m.env.Retry
	policy.Counter = &retry.Counter{}
	err = policy.Do(ctx, "verify", func(ctx context.Context) (err error) {
		rep, err = verify.Run(ctx, r.db, c.Names, verify.Options{Stage: stage, Batch: r.cfg.BatchSize, Retry: &policy,
			// Live from the first catch-up on: the service writes too.
			Live:        st.Stage == StageFollowing && st.CatchUp != nil && st.CatchUp.Syncs > 0,
			CutOver:     st.Stage == StageCutOver,
			SkipInvalid: r.cfg.SkipInvalid,
			Progress: func(read int64) {
				task.Add(max(read-seen, 0))
				seen = max(seen, read)
			}})
		return err
	})
	if err != nil {
		return nil, err
	}
	// What awaits is for the first pending phase step to move (and the
	// ones after it).
	for i := range steps {
		if !steps[i].Applied && steps[i].phase > 0 {
			steps[i].Awaiting = rep.Awaiting.Count
			break
		}
	}
	for _, s := range steps {
		rep.Steps = append(rep.Steps, s.StepState)
	}
	rep.Retries = policy.Counter.Load()
	if err := r.verifyReferences(ctx, st, rep, policy); err != nil {
		return nil, err
	}
	r.log.WithFields(logrus.Fields{"duration": time.Since(start).Round(time.Millisecond).String(), "ok": rep.OK(), "done": rep.Done(),
		"stage": rep.Stage.String(), "awaiting": rep.Awaiting.Count,
		"legacy_accounts": rep.LegacyAccounts, "tenant_accounts": rep.TenantAccounts, "retries": rep.Retries}).Info("verify: finished")
	return rep, nil
}

// verifyReferences checks the configured references once the references
// step is applied: none may still name a merged-away account but the
// conflicts the step recorded.
func (r *Runner) verifyReferences(ctx context.Context, st Status, rep *verify.Report, policy retry.Policy) error {
	if len(r.cfg.References) == 0 {
		return nil
	}
	in, ok := r.m.cat.find(referencesStep())
	if !ok {
		return nil // a build with steps of its own, without this one
	}
	refStep, checks := in.Step.(interface {
		Check(context.Context, step.Env) (*references.CheckReport, error)
	})
	if !checks {
		return fmt.Errorf("verify references: step %d (%s) cannot check them", in.Version, in.Identifier)
	}
	applied := false
	for _, s := range st.Steps {
		applied = applied || (s.Version == in.Version && s.State == StepApplied)
	}
	if !applied {
		rep.ReferencesPending = true
		return nil
	}
	env := r.m.env
	env.Retry = policy
	chk, err := refStep.Check(ctx, env)
	if err != nil {
		return fmt.Errorf("verify references: %w", err)
	}
	rep.ReferencesStale, rep.ReferencesLeft = chk.Stale, chk.Left
	for _, n := range chk.Stale {
		rep.StaleReferences.Count += int(n)
	}
	for _, c := range chk.FirstStale {
		rep.StaleReferences.First = append(rep.StaleReferences.First, c.Collection+"/"+c.Document)
	}
	return nil
}

type stepStage struct {
	verify.StepState
	phase int
}

// verifyStage is how far the migration is, from the steps' states: a phase
// is applied when its step is (a failed, killed or undone one is pending).
func verifyStage(st Status) (verify.Stage, []stepStage) {
	applied := map[int]bool{}
	var steps []stepStage
	for _, s := range st.Steps {
		steps = append(steps, stepStage{StepState: verify.StepState{Version: int(s.Version), Name: s.Identifier, State: s.State.String(), Applied: s.State == StepApplied}, phase: s.Phase})
		if s.Phase > 0 && s.State == StepApplied {
			applied[s.Phase] = true
		}
	}
	switch {
	case applied[2]:
		return verify.StageComplete, steps
	case applied[1]:
		return verify.StageAfterPhase1, steps
	}
	return verify.StageBeforePhase1, steps
}
