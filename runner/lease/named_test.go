package lease_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tenantmigrate/runner/runner/lease"
)

// The lost lease is named only where it is what stopped the work.
func TestNamed(t *testing.T) {
	lost, cancelLost := context.WithCancelCause(context.Background())
	cancelLost(lease.ErrLost)
	other, cancelOther := context.WithCancelCause(context.Background())
	cancelOther(errors.New("shutting down"))
	held := context.Background()
	network := errors.New("connection reset")
	for _, c := range []struct {
		name     string
		ctx      context.Context
		err      error
		wantLost bool
		wantSame bool
	}{
		{"no error", lost, nil, false, true},
		{"cancelled by the loss", lost, context.Canceled, true, false},
		{"wrapped cancel, by the loss", lost, errors.Join(errors.New("read links"), context.Canceled), true, false},
		{"its own error", lost, network, false, true},
		{"already named", lost, lease.ErrLost, true, true},
		{"cancelled for another cause", other, context.Canceled, false, true},
		{"still held", held, context.Canceled, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := lease.Named(c.ctx, c.err)
			if errors.Is(got, lease.ErrLost) != c.wantLost || (got == c.err) != c.wantSame {
				t.Errorf("Named(%v) = %v; want lost %v, unchanged %v", c.err, got, c.wantLost, c.wantSame)
			}
			if c.err != nil && !errors.Is(got, c.err) {
				t.Errorf("Named(%v) = %v lost the error it was given", c.err, got)
			}
		})
	}
}
