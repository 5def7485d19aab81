package phase2

import (
	"fmt"
	"testing"

	"github.com/tenantmigrate/runner/model"
)

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

func TestCoarsen(t *testing.T) {
	fine := func(n int64) []model.ID { // the end of every 10,000th of n
		var ids []model.ID
		for i := int64(minAutoRange); i <= n; i += minAutoRange {
			ids = append(ids, model.StringID(fmt.Sprintf("%09d", i)))
		}
		return ids
	}
	for _, tt := range []struct {
		n        int64
		parallel int
		want     []string // the ranges' ends
	}{
		{5000, 2, nil},
		{10000, 2, nil},
		{93000, 2, []string{"000010000", "000020000", "000030000", "000040000", "000050000", "000060000", "000070000", "000080000", "000090000"}},
		{93000, 1, []string{"000020000", "000040000", "000060000", "000080000"}},
		{250000, 1, []string{"000060000", "000120000", "000180000", "000240000"}},
		{1_000_000, 2, []string{"000100000", "000200000", "000300000", "000400000", "000500000", "000600000", "000700000", "000800000", "000900000", "001000000"}},
	} {
		var got []string
		for _, id := range coarsen(fine(tt.n), tt.n, tt.parallel) {
			got = append(got, id.String())
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("coarsen(%d accounts, %d at once) = %v, want %v", tt.n, tt.parallel, got, tt.want)
		}
	}
}
