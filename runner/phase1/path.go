package phase1

import "github.com/tenantmigrate/runner/runner/internal/enum"

// Path is how phase 1 finds and collects its groups. Both paths merge by
// the same rules and write the same documents; they differ in what the
// server must take.
type Path int

const (
	// PathProbe, in Config, lets a probe of the server choose (probe.go);
	// a dry run, which writes nothing, not even a probe's scratch, streams.
	PathProbe Path = iota
	// PathServer reads the identity entries with one aggregation, groups
	// them on local disk, and fetches the grouped accounts by _id
	// (server.go): servers with $unwind, $indexOfArray and indexed _id
	// lookups (MongoDB, FerretDB 2 / DocumentDB).
	PathServer
	// PathStream reads every account twice in streaming passes over
	// scratch tables: every server, even one that scans for each query
	// (FerretDB 1).
	PathStream
)

var pathNames = [...]string{PathProbe: "probe", PathServer: "server", PathStream: "stream"}

// String is the path's short name, as config, logs and JSON spell it.
func (p Path) String() string { return enum.Name("Path", pathNames[:], p) }

// MarshalText spells the path by its short name.
func (p Path) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads a short name.
func (p *Path) UnmarshalText(b []byte) error {
	return enum.Unmarshal("phase 1 path", pathNames[:], b, p)
}

// ParsePath reads a path's short name.
func ParsePath(s string) (Path, error) { return enum.Parse[Path]("phase 1 path", pathNames[:], s) }
