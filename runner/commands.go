package runner

import (
	"context"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/migrations"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/step"
)

// commands is a step file of database commands (golang-migrate's MongoDB
// format) as a step.Step: an up file's commands (up), or a down file's
// (down).
type commands struct{ up, down []bson.D }

var _ step.Step = commands{}

// Name is what the history calls such a step.
func (commands) Name() migrations.GoStep { return migrations.GoStep(mongomigrate.KindCommands) }

// Phase is 0: a commands step is no phase.
func (commands) Phase() int { return 0 }

// Up sends the up file's commands, each within the retry budget.
func (c commands) Up(ctx context.Context, env step.Env, _ *step.Call) (mongomigrate.Result, error) {
	return mongomigrate.RunCommands(ctx, env.DB, c.up, env.Retry.Do)
}

// Down sends the down file's commands.
func (c commands) Down(ctx context.Context, env step.Env) (mongomigrate.Result, error) {
	return mongomigrate.RunCommands(ctx, env.DB, c.down, env.Retry.Do)
}

// DryRun is the up file's commands, each as relaxed Extended JSON.
func (c commands) DryRun(context.Context, step.Env) (any, error) { return extJSON(c.up) }

// DownDryRun is the down file's commands, each as relaxed Extended JSON.
func (c commands) DownDryRun(context.Context, step.Env) (any, error) { return extJSON(c.down) }

func extJSON(cmds []bson.D) ([]string, error) {
	out := make([]string, 0, len(cmds))
	for _, cmd := range cmds {
		b, err := bson.MarshalExtJSON(cmd, false, false)
		if err != nil {
			return nil, err
		}
		out = append(out, string(b))
	}
	return out, nil
}
