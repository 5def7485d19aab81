package writes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tenantmigrate/runner/runner/internal/servererr"
	"github.com/tenantmigrate/runner/runner/lease"
	"github.com/tenantmigrate/runner/runner/retry"
)

// A batch the end of the lease cuts is written in halves, each half the
// same way, until every part fits; other errors are returned as they are,
// and a single document is retried as any transient error, not split.
func TestHalves(t *testing.T) {
	cut := servererr.Transient(fmt.Errorf("%w: %w", lease.ErrCut, context.DeadlineExceeded))
	refused := errors.New("refused")
	for _, c := range []struct {
		name      string
		n         int
		fits      int   // the most one write takes before the lease cuts it
		failOn    int   // a write holding this element fails with refused (0: none)
		wantErr   error // nil: every element written once in order
		wantParts []int // the sizes written, in order
	}{
		{"fits", 8, 8, 0, nil, []int{8}},
		{"halved once", 8, 4, 0, nil, []int{4, 4}},
		{"halved down to ones", 5, 1, 0, nil, []int{1, 1, 1, 1, 1}},
		{"odd halves", 7, 3, 0, nil, []int{3, 2, 2}},
		{"a refusal is returned", 8, 4, 6, refused, []int{4}},
	} {
		t.Run(c.name, func(t *testing.T) {
			batch := make([]int, c.n)
			for i := range batch {
				batch[i] = i + 1
			}
			var written []int
			var parts []int
			p := &retry.Policy{Attempts: 3, Base: time.Millisecond, Max: time.Millisecond}
			err := halves(context.Background(), p, "test", batch, func(_ context.Context, part []int) (func(), error) {
				switch {
				case len(part) > c.fits:
					return nil, cut
				case c.failOn > 0 && slices.Contains(part, c.failOn):
					return nil, refused
				}
				return func() { written = append(written, part...); parts = append(parts, len(part)) }, nil
			})
			if !errors.Is(err, c.wantErr) || (c.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			}
			if !slices.Equal(parts, c.wantParts) {
				t.Errorf("parts written = %v, want %v", parts, c.wantParts)
			}
			if c.wantErr == nil && !slices.Equal(written, batch) {
				t.Errorf("written = %v, want each of %v once, in order", written, batch)
			}
		})
	}
	// One document cut every time: retried, then the budget's error.
	p := &retry.Policy{Attempts: 3, Base: time.Millisecond, Max: time.Millisecond}
	tries := 0
	err := halves(context.Background(), p, "test", []int{1}, func(context.Context, []int) (func(), error) { tries++; return nil, cut })
	var ex *retry.ExhaustedError
	if !errors.As(err, &ex) || tries != 3 || !errors.Is(err, lease.ErrCut) {
		t.Errorf("one document always cut: err = %v after %d tries; want the budget spent after 3, naming the cut", err, tries)
	}
}
