package runner

import (
	"context"
	"sync/atomic"
)

// runState is what the steps of one call (Up, Phase) learn for the steps
// after them. It lives in that call's context, so nothing carries over to
// the next call.
type runState struct {
	// legacyChecked: phase 1 read and checked every legacy account in this
	// call and did not stop on bad data.
	legacyChecked atomic.Bool
}

type runStateKey struct{}

func withRunState(ctx context.Context) context.Context {
	return context.WithValue(ctx, runStateKey{}, &runState{})
}

func runStateOf(ctx context.Context) *runState {
	if st, ok := ctx.Value(runStateKey{}).(*runState); ok {
		return st
	}
	return &runState{} // a call without one learns nothing
}
