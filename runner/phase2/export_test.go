package phase2

import (
	"context"
	"time"

	"github.com/tenantmigrate/runner/pipelines"
)

// WithBeforeRefresh has f run before each batch of refreshes is written.
func WithBeforeRefresh(cfg Config, f func()) Config {
	cfg.beforeRefresh = f
	return cfg
}

// WithMaxTime has each range's server-side run take at most f(ctx, r) in
// place of the rest of the lease.
func WithMaxTime(cfg Config, f func(context.Context, *pipelines.Range) time.Duration) Config {
	cfg.maxTime = f
	return cfg
}
