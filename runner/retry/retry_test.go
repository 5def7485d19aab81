package retry

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/runner/internal/servererr"
)

func TestDo(t *testing.T) {
	stepDown := mongo.CommandError{Code: 189}
	denied := mongo.CommandError{Code: 13}
	for _, tt := range []struct {
		name      string
		policy    Policy
		errs      []error // what fn returns, call by call; then nil
		wantCalls int
		wantCode  int32 // 0: success; else the code of the server error it must wrap
		exhausted bool
	}{
		{"succeeds at once", Policy{Attempts: 3}, nil, 1, 0, false},
		{"passes after two", Policy{Attempts: 3}, []error{stepDown, stepDown}, 3, 0, false},
		{"budget of attempts spent", Policy{Attempts: 3}, []error{stepDown, stepDown, stepDown, stepDown}, 3, 189, true},
		{"budget of time spent", Policy{Attempts: 100, MaxElapsed: 50 * time.Millisecond, Base: 20 * time.Millisecond, Max: 20 * time.Millisecond},
			[]error{stepDown, stepDown, stepDown, stepDown, stepDown, stepDown, stepDown, stepDown, stepDown, stepDown}, -1, 189, true},
		{"permanent: no retry", Policy{Attempts: 5}, []error{denied}, 1, 13, false},
		{"zero policy: one try", Policy{}, []error{stepDown}, 1, 189, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			var waits []time.Duration
			p := tt.policy
			c := &Counter{}
			p.Counter = c
			p.sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); time.Sleep(d); return nil }
			err := p.Do(context.Background(), "op", func(context.Context) error {
				calls++
				if calls <= len(tt.errs) {
					return tt.errs[calls-1]
				}
				return nil
			})
			if tt.wantCalls >= 0 && calls != tt.wantCalls {
				t.Errorf("%d calls, want %d", calls, tt.wantCalls)
			}
			if c.Load() != int64(calls-1) || len(waits) != calls-1 {
				t.Errorf("%d retries counted, %d waits, for %d calls", c.Load(), len(waits), calls)
			}
			var ex *ExhaustedError
			var ce mongo.CommandError
			switch {
			case tt.wantCode == 0 && err != nil:
				t.Fatalf("err = %v", err)
			case tt.wantCode != 0 && (!errors.As(err, &ce) || ce.Code != tt.wantCode):
				t.Fatalf("err = %v, want it to wrap the server's code %d", err, tt.wantCode)
			case errors.As(err, &ex) != tt.exhausted:
				t.Fatalf("err = %v; exhausted: %v, want %v", err, errors.As(err, &ex), tt.exhausted)
			}
		})
	}
}

// Waits double from Base up to Max, each drawn in its upper half.
func TestBackoff(t *testing.T) {
	var waits []time.Duration
	p := Policy{Attempts: 7, Base: 100 * time.Millisecond, Max: 800 * time.Millisecond}
	p.sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	_ = p.Do(context.Background(), "op", func(context.Context) error { return mongo.CommandError{Code: 91} })
	caps := []time.Duration{100, 200, 400, 800, 800, 800}
	if len(waits) != len(caps) {
		t.Fatalf("%d waits, want %d", len(waits), len(caps))
	}
	for i, w := range waits {
		c := caps[i] * time.Millisecond
		if w < c/2 || w > c {
			t.Errorf("wait %d = %v, want within [%v, %v]", i, w, c/2, c)
		}
	}
}

// A cancelled context stops the waiting and is returned as it is.
func TestDoStopsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := Policy{Attempts: 10, Base: time.Hour, Max: time.Hour}
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	start := time.Now()
	err := p.Do(ctx, "op", func(context.Context) error { return mongo.CommandError{Code: 189} })
	if !errors.Is(err, context.Canceled) || time.Since(start) > 5*time.Second {
		t.Errorf("err = %v after %v; want context.Canceled, soon", err, time.Since(start))
	}
}

// A duplicate key passes only where the operation says so (a server-side
// write whose earlier attempt may still run), and only within the budget.
func TestAlso(t *testing.T) {
	dup := mongo.CommandError{Code: 1, Name: "InternalError", Message: `duplicate key value violates unique constraint "collection_pk_7673"`}
	calls := 0
	p := Policy{Attempts: 4, Also: servererr.IsDuplicateKey, sleep: func(context.Context, time.Duration) error { return nil }}
	err := p.Do(context.Background(), "range", func(context.Context) error { calls++; return dup })
	var ex *ExhaustedError
	if calls != 4 || !errors.As(err, &ex) {
		t.Errorf("%d calls, err %v; want the budget spent on a duplicate that does not pass", calls, err)
	}
	calls = 0
	p.Also = nil
	if err := p.Do(context.Background(), "write", func(context.Context) error { calls++; return dup }); calls != 1 || err == nil {
		t.Errorf("without Also: %d calls, %v; want one, failed", calls, err)
	}
}

// Wrap names what failed once: an exhausted budget's error already names
// it; any other error gets the name.
func TestWrap(t *testing.T) {
	cause := errors.New("connection reset")
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"tried once", cause, "count links: connection reset"},
		{"exhausted", &ExhaustedError{What: "count links", Attempts: 8, Err: cause}, "count links: still failing after 8 attempts in 0s: connection reset"},
		{"exhausted elsewhere", &ExhaustedError{What: "read links", Attempts: 2, Err: cause}, "count links: read links: still failing after 2 attempts in 0s: connection reset"},
	}
	for _, tt := range tests {
		err := Wrap("count links", tt.err)
		if got := fmt.Sprint(err); (err == nil) != (tt.want == "") || err != nil && got != tt.want {
			t.Errorf("%s: Wrap = %q, want %q", tt.name, got, tt.want)
		}
		if tt.err != nil && !errors.Is(err, cause) {
			t.Errorf("%s: the cause is lost", tt.name)
		}
	}
}
