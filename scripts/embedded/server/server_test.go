package server

import (
	"context"
	"runtime/debug"
	"testing"
)

// The server raises its host's GC target while it runs, unless GOGC says
// otherwise, and gives the old one back when it stops.
func TestStartSetsTheHostsGCTarget(t *testing.T) {
	for _, tt := range []struct {
		name, gogc    string
		while, before int
	}{
		{"default", "", gcPercent, 100},
		{"GOGC set", "150", 150, 150},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOGC", tt.gogc)
			prev := debug.SetGCPercent(tt.before)
			defer debug.SetGCPercent(prev)
			s, err := Start(context.Background(), Options{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if got := debug.SetGCPercent(tt.while); got != tt.while {
				t.Errorf("GC target while serving = %d, want %d", got, tt.while)
			}
			s.Stop()
			if got := debug.SetGCPercent(tt.before); got != tt.before {
				t.Errorf("GC target after Stop = %d, want %d", got, tt.before)
			}
		})
	}
}
