package refusal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/mongo"
)

func TestNoAnswer(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"a command error is an answer", context.Background(), mongo.CommandError{Code: 115, Message: "not supported"}, false},
		{"a plain error is an answer", context.Background(), errors.New("wrong groups"), false},
		{"the network", context.Background(), fmt.Errorf("x: %w", mongo.CommandError{Labels: []string{"NetworkError"}}), true},
		{"a deadline", context.Background(), fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		{"our context is gone", cancelled, errors.New("anything"), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := NoAnswer(tt.ctx, tt.err); got != tt.want {
				t.Errorf("NoAnswer = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestOneLine(t *testing.T) {
	if got := OneLine("a\n  b\tc "); got != "a b c" {
		t.Errorf("OneLine = %q", got)
	}
	if got := OneLine(strings.Repeat("x", 600)); len(got) != 503 || !strings.HasSuffix(got, "...") {
		t.Errorf("OneLine of 600 bytes = %d bytes", len(got))
	}
}
