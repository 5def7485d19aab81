package mongomigrate

// A step file: parsed (a JSON array of commands, or {"go": "name"}) and
// run.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/template"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/internal/servererr"
	"github.com/tenantmigrate/runner/runner/lease"
	"github.com/tenantmigrate/runner/runner/retry"
)

// StepError is a failed step.
type StepError struct {
	Version   int
	Direction Direction
	Name      string
	Err       error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("step %d %s (%s) failed: %v", e.Version, e.Direction, e.Name, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// runStep runs the step of a versioned run (cur) as Config.Steps gives
// it, else the step file s as it is: its commands, sent by the driver.
func (d *Driver) runStep(ctx context.Context, cur *running, s Step) (Result, error) {
	if cur != nil && d.cfg.Steps != nil {
		if fn := d.cfg.Steps(cur.version, cur.direction); fn != nil {
			return fn(ctx)
		}
	}
	if s.Kind == KindGo {
		return Result{}, fmt.Errorf("step names Go step %q, which this build does not have", s.Name)
	}
	return RunCommands(ctx, d.cfg.DB, s.Commands, d.do)
}

// RunCommands sends a step's commands in order, each within do (a retry
// budget; what names the command). A step's commands are idempotent (a
// dirty step runs again from its first), so a command cut by a transient
// fault is sent again, and a drop of what is already gone passes.
func RunCommands(ctx context.Context, db *mongo.Database, cmds []bson.D, do func(ctx context.Context, what string, fn func(context.Context) error) error) (Result, error) {
	for i, cmd := range cmds {
		what := fmt.Sprintf("command %d of %d", i+1, len(cmds))
		err := do(ctx, what, func(ctx context.Context) error {
			return lease.Do(ctx, func(ctx context.Context) error {
				if err := db.RunCommand(ctx, cmd).Err(); err != nil && !alreadyGone(cmd, err) {
					return err
				}
				return nil
			})
		})
		if err != nil {
			return Result{}, retry.Wrap(what, err)
		}
	}
	return Result{Counts: count.Counts{count.Commands: int64(len(cmds))}}, nil
}

// Step is a parsed step file.
type Step struct {
	Kind     Kind
	Name     string // the Go step's name, or "commands"
	Commands []bson.D
}

// ParseStep parses a step file: a JSON array of database commands (canonical
// Extended JSON, placeholders filled from data) or {"go": "name"}.
func ParseStep(body []byte, data any) (Step, error) {
	trimmed := bytes.TrimSpace(body)
	switch {
	case len(trimmed) == 0:
		return Step{Kind: KindCommands, Name: string(KindCommands)}, errors.New("empty step file")
	case trimmed[0] == '{':
		var g struct {
			Go string `json:"go"`
		}
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&g); err != nil || g.Go == "" {
			return Step{Kind: KindGo}, fmt.Errorf(`a step object must be {"go": "name"}: %v`, err)
		}
		return Step{Kind: KindGo, Name: g.Go}, nil
	case trimmed[0] == '[':
		text := string(trimmed)
		if strings.Contains(text, "{{") {
			t, err := template.New("step").Option("missingkey=error").Parse(text)
			if err != nil {
				return Step{Kind: KindCommands, Name: string(KindCommands)}, fmt.Errorf("step template: %w", err)
			}
			var b strings.Builder
			if err := t.Execute(&b, data); err != nil {
				return Step{Kind: KindCommands, Name: string(KindCommands)}, fmt.Errorf("step template: %w", err)
			}
			text = b.String()
		}
		var cmds []bson.D
		if err := bson.UnmarshalExtJSON([]byte(text), true, &cmds); err != nil {
			return Step{Kind: KindCommands, Name: string(KindCommands)}, fmt.Errorf("step commands: %w", err)
		}
		return Step{Kind: KindCommands, Name: string(KindCommands), Commands: cmds}, nil
	default:
		return Step{Kind: KindCommands, Name: string(KindCommands)}, errors.New("a step file is a JSON array of commands or a {\"go\": \"name\"} object")
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// alreadyGone reports a drop of something a previous, interrupted run of the
// same step already dropped: re-running a down step must succeed.
func alreadyGone(cmd bson.D, err error) bool {
	if len(cmd) == 0 {
		return false
	}
	switch cmd[0].Key {
	case "drop", "dropIndexes":
	default:
		return false
	}
	return servererr.IsNotFound(err)
}
