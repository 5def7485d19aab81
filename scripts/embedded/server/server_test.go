package server

import (
	"context"
	"math"
	"runtime/debug"
	"testing"
)

// The server raises its host's GC target and sets a soft memory limit
// while it runs, unless GOGC and GOMEMLIMIT say otherwise, and gives the
// old ones back when it stops.
func TestStartSetsTheHostsGCTarget(t *testing.T) {
	const noLimit = math.MaxInt64
	for _, tt := range []struct {
		name, gogc, gomemlimit string
		while, before          int
		limitWhile             int64
	}{
		{"default", "", "", gcPercent, 100, memLimit},
		{"GOGC and GOMEMLIMIT set", "150", "1GiB", 150, 150, noLimit},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOGC", tt.gogc)
			t.Setenv("GOMEMLIMIT", tt.gomemlimit)
			prev := debug.SetGCPercent(tt.before)
			defer debug.SetGCPercent(prev)
			prevLimit := debug.SetMemoryLimit(noLimit)
			defer debug.SetMemoryLimit(prevLimit)
			s, err := Start(context.Background(), Options{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if got := debug.SetGCPercent(tt.while); got != tt.while {
				t.Errorf("GC target while serving = %d, want %d", got, tt.while)
			}
			if got := debug.SetMemoryLimit(-1); got != tt.limitWhile {
				t.Errorf("memory limit while serving = %d, want %d", got, tt.limitWhile)
			}
			s.Stop()
			if got := debug.SetGCPercent(tt.before); got != tt.before {
				t.Errorf("GC target after Stop = %d, want %d", got, tt.before)
			}
			if got := debug.SetMemoryLimit(-1); got != noLimit {
				t.Errorf("memory limit after Stop = %d, want none", got)
			}
		})
	}
}
