package runner

import (
	"context"
	"fmt"

	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/phase1"
	"github.com/tenantmigrate/runner/runner/phase2"
	"github.com/tenantmigrate/runner/runner/step"
)

// PlannedStep is a step a dry run says would run.
type PlannedStep struct {
	Version    uint              `json:"version"`
	Identifier string            `json:"identifier"`
	Kind       mongomigrate.Kind `json:"kind"`
	Name       string            `json:"name"`
	Commands   []string          `json:"commands,omitempty"` // relaxed Extended JSON
	Rerun      bool              `json:"rerun,omitempty"`
	// Report is the Go step's own dry run, when it has one.
	Report any `json:"report,omitempty"`
}

// Plan is the output of a dry run: nothing was written.
type Plan struct {
	Version int           `json:"version"`
	Dirty   bool          `json:"dirty"`
	Steps   []PlannedStep `json:"steps"`
	// Down: the steps are undone (runner down --dry-run), not applied.
	Down bool `json:"down,omitempty"`
}

// Plan says what Up (phase 0) or Phase(phase) would run, writing nothing.
func (r *Runner) Plan(ctx context.Context, phase int) (Plan, error) {
	if phase == 0 {
		return r.plan(ctx, nil)
	}
	t := phaseStep(phase)
	return r.plan(ctx, &t)
}

// PlanReferences says what References would run, writing nothing.
func (r *Runner) PlanReferences(ctx context.Context) (Plan, error) {
	t := referencesStep()
	return r.plan(ctx, &t)
}

// plan is what a run up to t (nil: every step) would run.
func (r *Runner) plan(ctx context.Context, t *target) (Plan, error) {
	st, err := r.m.store.State(ctx)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Version: st.Version, Dirty: st.Dirty, Steps: []PlannedStep{}}
	target := -1
	if t != nil {
		if target, err = r.m.cat.version(*t); err != nil {
			return Plan{}, err
		}
	}
	for _, in := range r.m.cat {
		v := int(in.Version)
		pending := v > st.Version || (st.Dirty && v == st.Version)
		rerun := t != nil && v == target && !pending
		if target >= 0 && v > target || !pending && !rerun {
			continue
		}
		ps := PlannedStep{Version: in.Version, Identifier: in.Identifier, Kind: in.Up.Kind, Name: in.Up.Name, Rerun: rerun}
		report, err := in.Step.DryRun(ctx, r.m.env)
		if err != nil {
			return p, fmt.Errorf("dry run of step %d: %w", ps.Version, err)
		}
		if cmds, ok := report.([]string); ok && in.Up.Kind == mongomigrate.KindCommands {
			ps.Commands = cmds
		} else {
			ps.Report = report
		}
		p.Steps = append(p.Steps, ps)
	}
	afterPhase1(p.Steps)
	return p, nil
}

// afterPhase1 makes phase 2's dry run count as it will run: after the
// phase 1 planned before it, whose links take some accounts from it.
func afterPhase1(steps []PlannedStep) {
	var p1 *phase1.Report
	for _, s := range steps {
		switch r := s.Report.(type) {
		case *phase1.Report:
			p1 = r
		case *phase2.Report:
			if p1 != nil && r != nil {
				r.AfterPhase1(int64(p1.NewlyLinked), int64(p1.NewlyLinkedOwnTenant))
			}
		}
	}
}

// PlanDown says what Down would undo, writing nothing: the last applied
// step, and what its down would delete and keep (a Go step whose down
// can say so), or the commands of its down file.
func (r *Runner) PlanDown(ctx context.Context) (Plan, error) {
	st, err := r.m.store.State(ctx)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Version: st.Version, Dirty: st.Dirty, Down: true}
	if st.Version == -1 {
		return p, ErrNothingToUndo
	}
	in, ok := r.m.cat.at(st.Version)
	if !ok {
		return p, fmt.Errorf("step %d: %w", st.Version, ErrUnknownStep)
	}
	ps := PlannedStep{Version: in.Version, Identifier: in.Identifier, Kind: in.Up.Kind, Name: in.Up.Name}
	if d, ok := in.down.(step.DownPlanner); ok {
		report, err := d.DownDryRun(ctx, r.m.env)
		if err != nil {
			return p, fmt.Errorf("dry run of step %d's down: %w", ps.Version, err)
		}
		if cmds, ok := report.([]string); ok {
			ps.Commands = cmds
		} else {
			ps.Report = report
		}
	}
	p.Steps = append(p.Steps, ps)
	return p, nil
}
