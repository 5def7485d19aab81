// Package step is the contract between the runner and its Go migration
// steps: the environment every step runs in (Env, built once from the
// configuration) and the interface each step implements (Step). A step's
// own settings are a typed options section of its package, which the
// configuration embeds; the step reads nothing else.
//
// Adding a Go step is: a package with its options and a type that
// implements Step, its two step files in migrations/ naming it, its section
// of config.yaml, and its line in the README.
package step

import (
	"context"

	"github.com/tenantmigrate/runner/migrations"
	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/mongomigrate"
	"github.com/tenantmigrate/runner/runner/retry"
)

// Step is a migration step written in Go.
//
// Every method must be idempotent and safe to kill at any instant: the next
// run of the same method, from its start, gives the result of a run that
// was never interrupted. Up and Down retry their own transient errors
// within env.Retry; an error they return is the step's failure.
type Step interface {
	// Name is the name its step files give it ({"go": Name}, and
	// Name.Down() for its down).
	Name() migrations.GoStep
	// Phase is the phase it is (runner --phase N), or 0.
	Phase() int
	// Up applies the step. call carries what the steps before it in the
	// same call learned.
	Up(ctx context.Context, env Env, call *Call) (mongomigrate.Result, error)
	// Down undoes what Up wrote, and only that.
	Down(ctx context.Context, env Env) (mongomigrate.Result, error)
	// DryRun says what Up would do, writing nothing; its report is shown
	// as is (JSON).
	DryRun(ctx context.Context, env Env) (any, error)
}

// DownPlanner is a step whose down can say what it would do, writing
// nothing (`runner down --dry-run`); its report is shown as is.
type DownPlanner interface {
	DownDryRun(ctx context.Context, env Env) (any, error)
}

// Call is what the steps of one call of the runner (Up, Phase,
// References) learn for the steps after them. Each call starts with a new
// one, so nothing carries over to the next call.
type Call struct {
	// LegacyChecked: phase 1 read and checked every legacy account in
	// this call and did not stop on bad data.
	LegacyChecked bool
}

// Report is what every step's and down's report says of itself.
type Report interface {
	Counts() count.Counts
	Notes() []string
}

// Run runs a step's body within env's retry budget (a body retries its own
// reads and writes through the same policy; a transient error it did not
// retry runs the idempotent body again from its start) and returns its
// result, with the retries among its counts. The report comes back even
// when the body failed, as far as it got. body gets env with a retry
// policy that counts.
func Run[R Report](ctx context.Context, env Env, what string, body func(context.Context, Env) (R, error)) (mongomigrate.Result, R, error) {
	retries := &retry.Counter{}
	env.Retry.Counter = retries
	var rep R
	err := env.Retry.Do(ctx, what, func(ctx context.Context) (err error) {
		rep, err = body(ctx, env)
		return err
	})
	if err != nil {
		return mongomigrate.Result{}, rep, err
	}
	c := rep.Counts()
	if n := retries.Load(); n > 0 {
		c[count.Retries] = n
	}
	return mongomigrate.Result{Counts: c, Notes: rep.Notes()}, rep, nil
}

// OptionError is a bad value of a step's options section, by its key.
type OptionError struct {
	Key string
	Msg string
}

func (e *OptionError) Error() string { return e.Key + ": " + e.Msg }
