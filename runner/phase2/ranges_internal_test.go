package phase2

import "testing"

func TestAutoRangeSize(t *testing.T) {
	for _, tt := range []struct {
		total    int64
		parallel int
		want     int
	}{
		{0, 2, 0},                 // nothing known: one range
		{3000, 2, 0},              // below the smallest range
		{10000, 1, 0},             // exactly one smallest range
		{93000, 2, 11625},         // four ranges per run
		{93000, 1, 23250},         // four ranges, one at a time
		{93000, 0, 23250},         // 0 runs one at a time
		{50000, 4, 10000},         // never below the smallest range
		{1_000_000, 2, 100000},    // never above the largest
		{100_000_000, 64, 100000}, // the largest, however many runs
		{1_000_000, 64, 10000},    // many runs: the smallest
	} {
		if got := autoRangeSize(tt.total, tt.parallel); got != tt.want {
			t.Errorf("autoRangeSize(%d, %d) = %d, want %d", tt.total, tt.parallel, got, tt.want)
		}
	}
}
