// Package refusal tells a server's refusal from no answer, for the probes
// that choose a path by what the server takes.
package refusal

import (
	"context"
	"errors"
	"strings"

	"go.mongodb.org/mongo-driver/mongo"
)

// NoAnswer: the server did not answer (the network, a timeout, the
// caller's context), so the error says nothing of what it accepts.
func NoAnswer(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		mongo.IsNetworkError(err) || mongo.IsTimeout(err)
}

// OneLine is a refusal's text for a report: one line, at most 500 bytes.
func OneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 500 {
		s = s[:500] + "..."
	}
	return s
}
