package writes_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantmigrate/runner/runner/internal/writes"
	"github.com/tenantmigrate/runner/runner/lease"
	"github.com/tenantmigrate/runner/runner/retry"
	"github.com/tenantmigrate/runner/scripts/testenv"
)

// A batch the end of the lease cuts (a write still running when the lease
// it was sent under expires, though the lease was renewed since) is written
// in halves, each half the same way, until every part fits; other errors
// are returned as they are, and a single document is retried as any
// transient error, not split. The writes here are slow on purpose: a part
// longer than fits waits for its context, which the lease's expiry ends.
func TestHalves(t *testing.T) {
	ctx := context.Background()
	l, err := lease.Acquire(ctx, lease.Options{Coll: env.Database(t).Collection("locks"), Name: "halves", Owner: "test", Host: "test",
		TTL: 800 * time.Millisecond, Renew: 150 * time.Millisecond, Log: testenv.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	held := lease.NewContext(ctx, l)
	refused := errors.New("refused")
	p := &retry.Policy{Attempts: 3, Base: time.Millisecond, Max: time.Millisecond}
	slowWrite := func(fits, failOn int, parts *[]int, written *[]int) func(context.Context, []int) (func(), error) {
		return func(ctx context.Context, part []int) (func(), error) {
			switch {
			case len(part) > fits:
				<-ctx.Done() // cut at the lease's expiry
				return nil, ctx.Err()
			case failOn > 0 && slices.Contains(part, failOn):
				return nil, refused
			}
			return func() { *written = append(*written, part...); *parts = append(*parts, len(part)) }, nil
		}
	}
	for _, c := range []struct {
		name      string
		n, fits   int
		failOn    int   // a write holding this element fails with refused (0: none)
		wantErr   error // nil: every element written once, in order
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
			var written, parts []int
			err := writes.Halves(held, p, "test", batch, slowWrite(c.fits, c.failOn, &parts, &written))
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
	// One document cut every time: retried, then the budget's error,
	// naming the cut.
	var written, parts []int
	err = writes.Halves(held, p, "test", []int{1}, slowWrite(0, 0, &parts, &written))
	var ex *retry.ExhaustedError
	if !errors.As(err, &ex) || ex.Attempts != 3 || !errors.Is(err, lease.ErrCut) || !strings.Contains(err.Error(), "raise lock.lease") {
		t.Errorf("one document always cut: err = %v; want the budget spent after 3 tries, naming the cut and the remedy", err)
	}
	// Without a lease nothing is cut: the error is the write's own.
	err = writes.Halves(ctx, nil, "test", []int{1, 2}, func(context.Context, []int) (func(), error) { return nil, refused })
	if !errors.Is(err, refused) {
		t.Errorf("without a lease: %v", err)
	}
}
