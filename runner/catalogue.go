package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/golang-migrate/migrate/v4/source"
	"github.com/golang-migrate/migrate/v4/source/iofs"

	"github.com/tenantmigrate/runner/migrations"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
)

// GoStep is a step written in Go: the one place that says what a Go step
// is. Its up file names it ({"go": Name}), its down file Name.Down().
type GoStep struct {
	Name migrations.GoStep
	// Phase is the phase the step is (runner --phase N), or 0.
	Phase int
	// Up applies the step. It must be idempotent: a step killed at any
	// instant runs again from its start. call carries what the steps
	// before it in the same call learned.
	Up func(ctx context.Context, call *Call) (mongomigrate.Result, error)
	// Down undoes it (nil: the step has no Go down).
	Down mongomigrate.StepFunc
	// DryRun says what Up would do, writing nothing (nil: it cannot say).
	DryRun func(ctx context.Context) (any, error)
}

// Call is what the steps of one call (Up, Phase, References) learn for
// the steps after them. Each call starts with a new one, so nothing
// carries over to the next call.
type Call struct {
	// legacyChecked: phase 1 read and checked every legacy account in
	// this call and did not stop on bad data.
	legacyChecked bool
}

// driverSteps are the Go steps as the migration driver runs them in one
// call: each up and down by the name its file gives it.
func driverSteps(steps []GoStep, call *Call) map[string]mongomigrate.StepFunc {
	out := make(map[string]mongomigrate.StepFunc, 2*len(steps))
	for _, s := range steps {
		up := s.Up
		out[string(s.Name)] = func(ctx context.Context) (mongomigrate.Result, error) { return up(ctx, call) }
		if s.Down != nil {
			out[string(s.Name.Down())] = s.Down
		}
	}
	return out
}

// StepInfo describes one step of this build.
type StepInfo struct {
	Version    uint
	Identifier string
	Up         mongomigrate.Step
	Checksum   string
	HasDown    bool
	// Go is the Go step Up names, if it is one this build has.
	Go *GoStep
}

// Phase is the phase the step is (1 or 2), else 0.
func (in StepInfo) Phase() int {
	if in.Go == nil {
		return 0
	}
	return in.Go.Phase
}

// catalogue is every step of this build: the step files, read and parsed
// once, with the Go steps they name.
type catalogue []StepInfo

// readCatalogue reads the step files of files, filling their placeholders
// from data, and joins them with the Go steps.
func readCatalogue(files fs.FS, data any, steps []GoStep) (catalogue, error) {
	src, err := iofs.New(files, ".")
	if err != nil {
		return nil, fmt.Errorf("read steps: %w", err)
	}
	defer src.Close()
	byName := map[migrations.GoStep]*GoStep{}
	for i := range steps {
		byName[steps[i].Name] = &steps[i]
	}
	var out catalogue
	v, err := src.First()
	for err == nil {
		body, ident, rerr := src.ReadUp(v)
		if rerr != nil {
			return nil, fmt.Errorf("read step %d: %w", v, rerr)
		}
		step, b, perr := parseStep(body, data)
		if perr != nil {
			return nil, fmt.Errorf("step %d (%s): %w", v, ident, perr)
		}
		sum := sha256.Sum256(b)
		info := StepInfo{Version: v, Identifier: ident, Up: step, Checksum: hex.EncodeToString(sum[:])}
		if step.Kind == mongomigrate.KindGo {
			if info.Go = byName[migrations.GoStep(step.Name)]; info.Go == nil {
				return nil, fmt.Errorf("%w: step %d (%s) names %q", ErrUnknownStep, v, ident, step.Name)
			}
		}
		hasDown, derr := checkDown(src, v, ident, data, steps)
		if derr != nil {
			return nil, derr
		}
		info.HasDown = hasDown
		out = append(out, info)
		v, err = src.Next(v)
	}
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list steps: %w", err)
	}
	return out, nil
}

// parseStep reads and parses one step file, and closes it; it returns the
// file's bytes for the checksum.
func parseStep(body io.ReadCloser, data any) (mongomigrate.Step, []byte, error) {
	b, err := io.ReadAll(body)
	body.Close()
	if err != nil {
		return mongomigrate.Step{}, nil, err
	}
	step, err := mongomigrate.ParseStep(b, data)
	return step, b, err
}

// checkDown reports whether step v has a down file, and refuses one that
// names a Go down this build does not have.
func checkDown(src source.Driver, v uint, ident string, data any, steps []GoStep) (bool, error) {
	body, _, err := src.ReadDown(v)
	if err != nil {
		return false, nil // no down file
	}
	step, _, err := parseStep(body, data)
	if err != nil {
		return false, fmt.Errorf("step %d (%s) down: %w", v, ident, err)
	}
	if step.Kind != mongomigrate.KindGo {
		return true, nil
	}
	for _, g := range steps {
		if g.Down != nil && string(g.Name.Down()) == step.Name {
			return true, nil
		}
	}
	return false, fmt.Errorf("%w: step %d (%s) down names %q", ErrUnknownStep, v, ident, step.Name)
}

// target picks the step a manual run goes up to.
type target struct {
	match func(StepInfo) bool
	// missing is the error when this build has no such step.
	missing error
}

func phaseStep(n int) target {
	return target{func(in StepInfo) bool { return in.Phase() == n }, fmt.Errorf("%w %d in this build's migrations", ErrNoPhase, n)}
}

func referencesStep() target {
	return target{
		func(in StepInfo) bool { return in.Go != nil && in.Go.Name == migrations.References },
		fmt.Errorf("%w: references", ErrNoPhase),
	}
}

// version is the target's step version in c.
func (c catalogue) version(t target) (int, error) {
	for _, in := range c {
		if t.match(in) {
			return int(in.Version), nil
		}
	}
	return -1, t.missing
}

// identifier is the file identifier of version v, or "".
func (c catalogue) identifier(v int) string {
	for _, in := range c {
		if int(in.Version) == v {
			return in.Identifier
		}
	}
	return ""
}
