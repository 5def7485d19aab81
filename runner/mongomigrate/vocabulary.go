package mongomigrate

// Direction is which way a step runs. Its text is what the state and
// history documents store.
type Direction string

// The directions.
const (
	Up   Direction = "up"
	Down Direction = "down"
)

func (d Direction) String() string { return string(d) }

// Kind is what a step file holds.
type Kind string

// The kinds of step.
const (
	// KindCommands: a JSON array of database commands.
	KindCommands Kind = "commands"
	// KindGo: {"go": "name"}, a step written in Go.
	KindGo Kind = "go"
)

func (k Kind) String() string { return string(k) }

// HistoryState is where a step's history document says the step is.
type HistoryState string

// The history states.
const (
	StateRunning HistoryState = "running"
	StateApplied HistoryState = "applied"
	StateFailed  HistoryState = "failed"
	// StateReverted is how runners before this one recorded an undone
	// step (this one deletes the up's history instead): read, never
	// written.
	StateReverted HistoryState = "reverted"
)

func (s HistoryState) String() string { return string(s) }
