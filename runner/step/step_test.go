package step_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/mongo"

	"github.com/tenantmigrate/runner/runner/count"
	"github.com/tenantmigrate/runner/runner/retry"
	"github.com/tenantmigrate/runner/runner/step"
)

type report struct{ n int64 }

func (r *report) Counts() count.Counts { return count.Counts{count.Inserted: r.n} }
func (r *report) Notes() []string      { return []string{"a note"} }

// Run gives the body an environment whose retries it counts, runs a body
// cut by a transient error again from its start, and reports the retries
// among the counts; a failure that will not pass is returned with the
// report as far as it got.
func TestRun(t *testing.T) {
	transient := mongo.CommandError{Code: 91, Message: "shutting down", Labels: []string{"RetryableWriteError"}}
	tests := []struct {
		name        string
		fails       []error // the body's errors, attempt by attempt
		wantErr     bool
		wantRetries int64
	}{
		{name: "passes", fails: nil},
		{name: "cut twice", fails: []error{transient, transient}, wantRetries: 2},
		{name: "refused", fails: []error{errors.New("bad command")}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := step.Env{Retry: retry.Policy{Attempts: 5, Base: time.Millisecond, Max: time.Millisecond}}
			attempt := 0
			res, rep, err := step.Run(context.Background(), env, "test", func(_ context.Context, env step.Env) (*report, error) {
				if env.Retry.Counter == nil {
					t.Fatal("the body's policy counts nothing")
				}
				attempt++
				if attempt <= len(tt.fails) {
					return &report{n: -1}, tt.fails[attempt-1]
				}
				return &report{n: 7}, nil
			})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if rep == nil {
				t.Fatal("no report")
			}
			if tt.wantErr {
				return
			}
			if res.Counts[count.Inserted] != 7 || res.Counts[count.Retries] != tt.wantRetries || len(res.Notes) != 1 {
				t.Errorf("result = %+v, want 7 inserted, %d retries, the note", res, tt.wantRetries)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	e := step.Env{}.WithDefaults()
	if e.Batch != step.DefaultBatch || e.Log == nil || e.Progress == nil {
		t.Errorf("defaults = batch %d, log %v, progress %v", e.Batch, e.Log, e.Progress)
	}
	if e := (step.Env{Batch: 7}).WithDefaults(); e.Batch != 7 {
		t.Errorf("a set batch became %d", e.Batch)
	}
}

func TestMemoryStore(t *testing.T) {
	ctx := context.Background()
	s := &step.MemoryStore{Prefix: "p_"}
	type cp struct{ After string }
	var got cp
	if found, err := s.Load(ctx, "k", &got); found || err != nil {
		t.Fatalf("empty store: %v, %v", found, err)
	}
	if err := s.Save(ctx, "k", cp{After: "x"}); err != nil {
		t.Fatal(err)
	}
	if found, err := s.Load(ctx, "k", &got); !found || err != nil || got.After != "x" {
		t.Fatalf("Load = %v, %v, %+v", found, err, got)
	}
	if err := s.Clear(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if found, _ := s.Load(ctx, "k", &got); found {
		t.Error("cleared value still found")
	}
	if s.Records("r") != "p_r" {
		t.Errorf("Records = %q", s.Records("r"))
	}
}
