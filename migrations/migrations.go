// Package migrations holds the runner's versioned steps, embedded in the
// binary. A step is N_title.up.json (and .down.json): either a JSON array of
// database commands in golang-migrate's MongoDB format, where {{.Field}}
// placeholders name configured collections (config.Collections), or
// {"go": "name"}, a step written in Go and registered by the runner.
package migrations

import (
	"embed"
	"io/fs"

	"github.com/golang-migrate/migrate/v4/source"
	"github.com/golang-migrate/migrate/v4/source/iofs"
)

//go:embed *.json
var files embed.FS

// FS returns the step files.
func FS() fs.FS { return files }

// Source returns a golang-migrate source over the embedded steps.
func Source() (source.Driver, error) { return iofs.New(files, ".") }

// The Go steps that a manual run names: runner --phase 1, --phase 2,
// --references.
const (
	StepPhase1     = "phase1"
	StepPhase2     = "phase2"
	StepReferences = "references"
)

// PhaseOf says which phase a Go step implements (runner --phase N), or 0.
func PhaseOf(goStep string) int {
	switch goStep {
	case StepPhase1:
		return 1
	case StepPhase2:
		return 2
	}
	return 0
}
