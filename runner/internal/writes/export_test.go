package writes

import (
	"context"

	"github.com/tenantmigrate/runner/runner/retry"
)

// Halves is halves, for the tests.
func Halves[T any](ctx context.Context, p *retry.Policy, what string, batch []T, write func(context.Context, []T) (func(), error)) error {
	return halves(ctx, p, what, batch, write)
}
