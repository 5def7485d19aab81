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

// GoStep is the name of a step written in Go, as its up file names it:
// {"go": "phase1"}. Its down file names GoStep.Down(). Each Go step
// declares its own, in its package (phase1.Name, ...).
type GoStep string

// Down is the name the step's down file gives it.
func (s GoStep) Down() GoStep { return s + "_down" }

func (s GoStep) String() string { return string(s) }
