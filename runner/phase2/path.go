package phase2

import (
	"fmt"

	"github.com/tenantmigrate/runner/runner/internal/enum"
)

// Path is how phase 2 writes the tenant accounts. Every path leaves the same
// tenant accounts; they differ in what the server must accept.
type Path int

const (
	// PathProbe, in Config, lets the probe choose; in a Report, no path was
	// chosen: a dry run writes nothing, not even a probe's scratch.
	PathProbe Path = iota
	// PathMerge: one pipeline per range, ending in a $merge whose
	// whenMatched is a pipeline (MongoDB 4.2+).
	PathMerge
	// PathSplit: per range, the refreshes first (a pipeline lists the
	// tenants whose legacy account is newer, each written by a conditional
	// replace), then the inserts by a $merge with whenMatched keepExisting
	// (FerretDB 2 / DocumentDB, Amazon DocumentDB 8).
	PathSplit
	// PathStream: the transform in Go, over a merge join streamed through
	// the runner (FerretDB 1, MongoDB before 4.2).
	PathStream
)

var pathNames = [...]string{PathProbe: "probe", PathMerge: "merge", PathSplit: "split", PathStream: "stream"}

// String is the path's short name, as config, logs and JSON spell it.
func (p Path) String() string { return enum.Name("Path", pathNames[:], p) }

// Describe says in a few words what the path does.
func (p Path) Describe() string {
	switch p {
	case PathMerge:
		return "one server-side pipeline, $merge refreshing by a whenMatched pipeline"
	case PathSplit:
		return "server-side $merge inserts (whenMatched keepExisting), refreshes by conditional replace"
	case PathStream:
		return "streamed through the runner"
	}
	return "not chosen: a dry run does not probe the server"
}

// MarshalText spells the path by its short name.
func (p Path) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads a short name.
func (p *Path) UnmarshalText(b []byte) error {
	return enum.Unmarshal("phase 2 path", pathNames[:], b, p)
}

// serverSide paths write with aggregation pipelines, and count and check on
// the server.
func (p Path) serverSide() bool { return p == PathMerge || p == PathSplit }

// Refusal is one path the server did not take during the probe, in the
// server's own words.
type Refusal struct {
	Path  Path   `json:"path"`
	Error string `json:"error"`
}

// ProbeReport is what the probe tried and chose.
type ProbeReport struct {
	Chose   Path      `json:"chose"`
	Refused []Refusal `json:"refused,omitempty"`
	Took    string    `json:"took"`
}

// Notes are the probe's results as lines for people: the history, the
// summary.
func (p *ProbeReport) Notes() []string {
	if p == nil {
		return nil
	}
	out := []string{fmt.Sprintf("path %s (%s), chosen by a probe of the server in %s", p.Chose, p.Chose.Describe(), p.Took)}
	for _, r := range p.Refused {
		out = append(out, fmt.Sprintf("path %s refused by the server: %s", r.Path, r.Error))
	}
	return out
}

// Notes are the report's lines for the step's history: the path, and the
// probe's findings.
func (r *Report) Notes() []string {
	if r.Probe != nil {
		return r.Probe.Notes()
	}
	return []string{fmt.Sprintf("path %s (%s), as configured", r.Path, r.Path.Describe())}
}
