package servererr

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/x/mongo/driver/auth"
)

func TestIsTransient(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"connection pool cleared", fmt.Errorf("pass 3 collect: %w", poolCleared{}), true},
		{"network (driver label)", mongo.CommandError{Labels: []string{"NetworkError"}, Message: "connection reset"}, true},
		{"retryable write label", mongo.CommandError{Code: 999, Labels: []string{"RetryableWriteError"}}, true},
		{"primary stepped down", mongo.CommandError{Code: 189, Name: "PrimarySteppedDown"}, true},
		{"not writable primary", mongo.CommandError{Code: 10107}, true},
		{"interrupted by a replica set state change", mongo.CommandError{Code: 11602}, true},
		{"shutting down", mongo.CommandError{Code: 91}, true},
		{"interrupted at shutdown", mongo.CommandError{Code: 11600}, true},
		{"FerretDB 2's PostgreSQL restarted", mongo.CommandError{Code: 1, Name: "InternalError", Message: "terminating connection due to administrator command"}, true},
		{"FerretDB 2's PostgreSQL starting", mongo.CommandError{Code: 1, Name: "InternalError", Message: "FATAL: the database system is starting up"}, true},
		{"a write cut by FerretDB 2's restart", mongo.WriteException{WriteErrors: mongo.WriteErrors{{Code: 1, Message: "terminating connection due to administrator command"}}}, true},
		{"those words under another code", mongo.CommandError{Code: 2, Message: "terminating connection due to administrator command"}, false},
		{"cursor dropped by the server", mongo.CommandError{Code: 43}, true},
		{"wrapped", fmt.Errorf("phase 2 pipeline: %w", mongo.CommandError{Code: 189}), true},
		{"write concern timeout", mongo.WriteException{WriteConcernError: &mongo.WriteConcernError{Code: 64}}, true},
		{"bulk write, write concern timeout", mongo.BulkWriteException{WriteConcernError: &mongo.WriteConcernError{Code: 64}}, true},
		{"authentication", mongo.CommandError{Code: 18, Name: "AuthenticationFailed"}, false},
		{"unauthorized", mongo.CommandError{Code: 13, Name: "Unauthorized"}, false},
		{"bad command", mongo.CommandError{Code: 59, Name: "CommandNotFound"}, false},
		{"not supported (a probe's refusal)", mongo.CommandError{Code: 115, Name: "CommandNotSupported"}, false},
		{"document too large", mongo.WriteException{WriteErrors: mongo.WriteErrors{{Code: 10334}}}, false},
		{"duplicate key", mongo.WriteException{WriteErrors: mongo.WriteErrors{{Code: 11000}}}, false},
		{"DocumentDB's duplicate key", mongo.CommandError{Code: 1, Name: "InternalError", Message: documentDBDuplicate}, false},
		{"bulk duplicate key", mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{{WriteError: mongo.WriteError{Code: 11000}}}}, false},
		{"a write error beside a transient write concern error", mongo.WriteException{WriteConcernError: &mongo.WriteConcernError{Code: 64}, WriteErrors: mongo.WriteErrors{{Code: 2}}}, false},
		{"our context cancelled", context.Canceled, false},
		{"our deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), false},
		{"a plain error", errors.New("boom"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsTransient(tt.err); got != tt.want {
				t.Errorf("IsTransient(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestIsDuplicateKey(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"MongoDB's code", mongo.CommandError{Code: 11000}, true},
		{"on update", mongo.WriteException{WriteErrors: mongo.WriteErrors{{Code: 11001}}}, true},
		{"in a bulk write", mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{{WriteError: mongo.WriteError{Code: 11000}}}}, true},
		{"DocumentDB: PostgreSQL's words in an InternalError", fmt.Errorf("range: %w", mongo.CommandError{Code: 1, Name: "InternalError",
			Message: `duplicate key value violates unique constraint "collection_pk_7673"`}), true},
		{"FerretDB 1: SQLite's words", mongo.CommandError{Code: 1, Message: "UNIQUE constraint failed: _ferretdb_x.y"}, true},
		{"FerretDB 1, in a write error", mongo.WriteException{WriteErrors: mongo.WriteErrors{{Code: 2, Message: "UNIQUE constraint failed: x"}}}, true},
		{"another write error", mongo.WriteException{WriteErrors: mongo.WriteErrors{{Code: 10334, Message: "document too large"}}}, false},
		{"a refusal", mongo.CommandError{Code: 115, Message: "not supported"}, false},
		{"a plain error that says duplicate key", errors.New("duplicate key value violates unique constraint"), false},
		{"nil", nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsDuplicateKey(tt.err); got != tt.want {
				t.Errorf("IsDuplicateKey(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestCodes(t *testing.T) {
	for _, tt := range []struct {
		name string
		is   func(error) bool
		err  error
		want bool
	}{
		{"a namespace not found", IsNotFound, mongo.CommandError{Code: 26, Name: "NamespaceNotFound"}, true},
		{"an index not found", IsNotFound, fmt.Errorf("drop: %w", mongo.CommandError{Code: 27, Name: "IndexNotFound"}), true},
		{"another code is found", IsNotFound, mongo.CommandError{Code: 48}, false},
		{"a namespace that exists", IsNamespaceExists, mongo.CommandError{Code: 48, Name: "NamespaceExists"}, true},
		{"not one that exists", IsNamespaceExists, mongo.CommandError{Code: 26}, false},
		{"authentication refused by the server", IsAuthentication, mongo.CommandError{Code: 18, Name: "AuthenticationFailed"}, true},
		{"authentication refused at the handshake", IsAuthentication, fmt.Errorf("connect: %w", &auth.Error{}), true},
		{"unauthorized is not authentication", IsAuthentication, mongo.CommandError{Code: 13, Name: "Unauthorized"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.is(tt.err); got != tt.want {
				t.Errorf("= %v, want %v", got, tt.want)
			}
		})
	}
}

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

func TestIsRefusal(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	notSupported := mongo.CommandError{Code: 115, Name: "CommandNotSupported"}
	if !IsRefusal(context.Background(), fmt.Errorf("group: %w", notSupported)) {
		t.Error("a command the server does not take is a refusal")
	}
	if IsRefusal(context.Background(), mongo.CommandError{Code: 189}) || IsRefusal(cancelled, notSupported) || IsRefusal(context.Background(), errors.New("x")) {
		t.Error("a transient error, our own cancellation or no server error is no refusal")
	}
}

// poolCleared stands for the driver's unexported poolClearedError, a
// driver.RetryablePoolError.
type poolCleared struct{}

func (poolCleared) Error() string {
	return "connection pool for 127.0.0.1:1 was cleared because another operation failed"
}
func (poolCleared) Retryable() bool { return true }
