package phase2

// WithBeforeRefresh has f run before each batch of refreshes is written.
func WithBeforeRefresh(cfg Config, f func()) Config {
	cfg.beforeRefresh = f
	return cfg
}
