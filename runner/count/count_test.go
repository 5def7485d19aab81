package count_test

import (
	"slices"
	"testing"

	"github.com/tenantmigrate/runner/runner/count"
)

func TestSum(t *testing.T) {
	c := count.Counts{count.TenantsInserted: 3, count.TenantsReplaced: 1, count.Inserted: 0}
	for _, tt := range []struct {
		names  []count.Name
		want   int64
		wantOK bool
	}{
		{[]count.Name{count.TenantsInserted, count.TenantsReplaced}, 4, true},
		{[]count.Name{count.Inserted}, 0, true}, // present and zero: "0", not "-"
		{[]count.Name{count.Refreshed}, 0, false},
		{[]count.Name{count.Refreshed, count.TenantsInserted}, 3, true},
		{nil, 0, false},
	} {
		if n, ok := c.Sum(tt.names...); n != tt.want || ok != tt.wantOK {
			t.Errorf("Sum(%v) = %d, %v; want %d, %v", tt.names, n, ok, tt.want, tt.wantOK)
		}
	}
}

func TestSkipped(t *testing.T) {
	for _, reason := range []string{"unknown app_org_id", "", "a: b"} {
		got, ok := count.Skipped(reason).SkippedReason()
		if !ok || got != reason {
			t.Errorf("Skipped(%q).SkippedReason() = %q, %v", reason, got, ok)
		}
	}
	if _, ok := count.InvalidSkipped.SkippedReason(); ok {
		t.Errorf("%s reads as a per-reason count", count.InvalidSkipped)
	}
}

func TestNamesAreSorted(t *testing.T) {
	c := count.Counts{count.Retries: 1, count.AccountsRead: 2, count.Skipped("x"): 3, count.Groups: 4}
	want := []count.Name{count.AccountsRead, count.Groups, count.Retries, count.Skipped("x")}
	if got := c.Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
}
