package runner

import (
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
	"github.com/tenantmigrate/runner/runner/config"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/references"
	"github.com/tenantmigrate/runner/runner/step"
)

// StepInfo describes one step of this build.
type StepInfo struct {
	Version    uint
	Identifier string
	Up         mongomigrate.Step
	Checksum   string
	// Step is the step as it runs up: the Go step Up names, or the up
	// file's commands.
	Step step.Step
	// down is the step whose Down undoes it (the Go step the down file
	// names, or the down file's commands); nil without a down file.
	down step.Step
}

// Phase is the phase the step is (1 or 2), else 0.
func (in StepInfo) Phase() int { return in.Step.Phase() }

// stepData fills the placeholders of the step files: {{.TenantsAccounts}}
// and the other collections, and {{.ShardKey}}, the tenant accounts'
// shard key ("" unsharded), which shapes step 1's unique indexes.
type stepData struct {
	config.Collections
	ShardKey string
}

func newStepData(cfg config.Config) stepData {
	return stepData{Collections: cfg.Collections, ShardKey: string(cfg.Tenants.ShardKey)}
}

// catalogue is every step of this build: the step files, read and parsed
// once, with the Go steps they name.
type catalogue []StepInfo

// readCatalogue reads the step files of files, filling their placeholders
// from data, and joins them with the Go steps.
func readCatalogue(files fs.FS, data any, steps []step.Step) (catalogue, error) {
	src, err := iofs.New(files, ".")
	if err != nil {
		return nil, fmt.Errorf("read steps: %w", err)
	}
	defer src.Close()
	byName := map[migrations.GoStep]step.Step{}
	for _, s := range steps {
		byName[s.Name()] = s
	}
	var out catalogue
	v, err := src.First()
	for err == nil {
		body, ident, rerr := src.ReadUp(v)
		if rerr != nil {
			return nil, fmt.Errorf("read step %d: %w", v, rerr)
		}
		parsed, b, perr := parseStep(body, data)
		if perr != nil {
			return nil, fmt.Errorf("step %d (%s): %w", v, ident, perr)
		}
		sum := sha256.Sum256(b)
		info := StepInfo{Version: v, Identifier: ident, Up: parsed, Checksum: hex.EncodeToString(sum[:])}
		down, derr := readDown(src, v, ident, data, steps)
		if derr != nil {
			return nil, derr
		}
		info.down = down
		switch {
		case parsed.Kind != mongomigrate.KindGo:
			info.Step = commands{up: parsed.Commands}
		case byName[migrations.GoStep(parsed.Name)] == nil:
			return nil, fmt.Errorf("%w: step %d (%s) names %q", ErrUnknownStep, v, ident, parsed.Name)
		default:
			info.Step = byName[migrations.GoStep(parsed.Name)]
		}
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

// readDown is what undoes step v: the Go step its down file names, or the
// file's commands; nil without a down file. A down file that names a Go
// down this build does not have is refused.
func readDown(src source.Driver, v uint, ident string, data any, steps []step.Step) (step.Step, error) {
	body, _, err := src.ReadDown(v)
	if err != nil {
		return nil, nil // no down file
	}
	down, _, err := parseStep(body, data)
	if err != nil {
		return nil, fmt.Errorf("step %d (%s) down: %w", v, ident, err)
	}
	if down.Kind != mongomigrate.KindGo {
		return commands{down: down.Commands}, nil
	}
	for _, g := range steps {
		if string(g.Name().Down()) == down.Name {
			return g, nil
		}
	}
	return nil, fmt.Errorf("%w: step %d (%s) down names %q", ErrUnknownStep, v, ident, down.Name)
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
		func(in StepInfo) bool { return in.Step.Name() == references.Name },
		fmt.Errorf("%w: references", ErrNoPhase),
	}
}

// version is the target's step version in c.
func (c catalogue) version(t target) (int, error) {
	if in, ok := c.find(t); ok {
		return int(in.Version), nil
	}
	return -1, t.missing
}

// at is the step of version v.
func (c catalogue) at(v int) (StepInfo, bool) {
	for _, in := range c {
		if int(in.Version) == v {
			return in, true
		}
	}
	return StepInfo{}, false
}

// find is the target's step in c.
func (c catalogue) find(t target) (StepInfo, bool) {
	for _, in := range c {
		if t.match(in) {
			return in, true
		}
	}
	return StepInfo{}, false
}

// identifier is the file identifier of version v, or "".
func (c catalogue) identifier(v int) string {
	in, _ := c.at(v)
	return in.Identifier
}
