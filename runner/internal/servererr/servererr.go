// Package servererr is the one place the runner tells server errors apart:
// what passes if tried again, what the server refused, a duplicate key, a
// namespace or index that is not there, failed authentication, and no
// answer at all. It reads the driver's own predicates, the server's codes
// and labels. Where an engine gives no code, the one message that must be
// read is named below, with its engine; no other code reads an error's
// text.
package servererr

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/x/mongo/driver"
	"go.mongodb.org/mongo-driver/x/mongo/driver/auth"
)

// Server error codes the runner acts on.
const (
	codeUnauthorized         = 13
	codeAuthenticationFailed = 18
	codeNamespaceNotFound    = 26
	codeIndexNotFound        = 27
	codeNamespaceExists      = 48
)

// duplicateKeyCodes are MongoDB's duplicate key errors.
var duplicateKeyCodes = []int32{11000, 11001, 12582}

// Messages of engines that refuse a write on a unique index without
// MongoDB's code.
const (
	// DocumentDB (FerretDB 2, Azure Cosmos DB vCore) fails a $merge onto
	// a unique index with an InternalError quoting PostgreSQL.
	documentDBDuplicate = "duplicate key value violates unique constraint"
	// FerretDB 1 on SQLite fails a whole command for one document with
	// SQLite's own words.
	ferretDB1Duplicate = "UNIQUE constraint failed"
)

// documentDBGone are PostgreSQL's words when the backend behind
// DocumentDB (FerretDB 2, Azure Cosmos DB vCore) goes away or is not back
// yet, which FerretDB 2 passes on as an InternalError without a code of
// its own: a server restart, transient like MongoDB's shutdown codes.
var documentDBGone = []string{
	"terminating connection due to administrator command", // 57P01, a restart or a terminated backend
	"the database system is shutting down",                // 57P03
	"the database system is starting up",                  // 57P03
	"the database system is in recovery mode",             // 57P03
	"server closed the connection unexpectedly",
}

// codeInternalError is the code FerretDB 2 gives PostgreSQL's errors.
const codeInternalError = 1

// Transient is err, which IsTransient then reports as transient whatever
// it wraps: an operation the runner itself cut short for a reason that may
// pass (the lease's deadline, when the lease was renewed since).
func Transient(err error) error { return &cutShort{err} }

type cutShort struct{ err error }

func (e *cutShort) Error() string { return e.err.Error() }
func (e *cutShort) Unwrap() error { return e.err }

// IsTransient reports whether err may pass if the operation is tried
// again: a network error or timeout of the driver, its cleared connection
// pool, a server error labelled retryable, or one of the codes of a node
// that is stepping down, shutting down, unreachable or slow to acknowledge
// a write. A cancelled or expired context of the caller is never
// transient, nor is a duplicate key.
func IsTransient(err error) bool {
	var cut *cutShort
	if errors.As(err, &cut) {
		return true
	}
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if IsDuplicateKey(err) {
		return false
	}
	if mongo.IsNetworkError(err) || mongo.IsTimeout(err) {
		return true
	}
	// The driver's pool, cleared after a connection failed, refuses the
	// operations waiting on it; a read's cursor reports that as it is.
	var pool driver.RetryablePoolError
	if errors.As(err, &pool) && pool.Retryable() {
		return true
	}
	var le interface{ HasErrorLabel(string) bool }
	if errors.As(err, &le) && (le.HasErrorLabel("RetryableWriteError") || le.HasErrorLabel("NetworkError") || le.HasErrorLabel("ResumableChangeStreamError")) {
		return true
	}
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return transientError(ce.Code, ce.Message)
	}
	var we mongo.WriteException
	if errors.As(err, &we) {
		return writeErrorsTransient(we.WriteConcernError, we.WriteErrors)
	}
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) {
		var wes mongo.WriteErrors
		for _, e := range bwe.WriteErrors {
			wes = append(wes, e.WriteError)
		}
		return writeErrorsTransient(bwe.WriteConcernError, wes)
	}
	return false
}

// writeErrorsTransient: a write-concern error of a transient code, and no
// write error that is not.
func writeErrorsTransient(wce *mongo.WriteConcernError, wes mongo.WriteErrors) bool {
	if wce == nil && len(wes) == 0 {
		return false
	}
	if wce != nil && !transientError(int32(wce.Code), wce.Message) {
		return false
	}
	for _, e := range wes {
		if !transientError(int32(e.Code), e.Message) {
			return false
		}
	}
	return true
}

// transientError: a server error, by its code and message, that passes.
func transientError(code int32, message string) bool {
	return transientCode(code) || code == codeInternalError && backendGone(message)
}

// backendGone: the message of a DocumentDB backend going away.
func backendGone(message string) bool {
	for _, m := range documentDBGone {
		if strings.Contains(message, m) {
			return true
		}
	}
	return false
}

// transientCode: a server error code that passes (the retryable-writes
// and SDAM specifications' lists, with write-concern timeouts).
func transientCode(code int32) bool {
	switch code {
	case 6, // HostUnreachable
		7,     // HostNotFound
		43,    // CursorNotFound: the server dropped our cursor; reopening resumes
		64,    // WriteConcernFailed (wtimeout)
		89,    // NetworkTimeout
		91,    // ShutdownInProgress
		134,   // ReadConcernMajorityNotAvailableYet
		189,   // PrimarySteppedDown
		262,   // ExceededTimeLimit
		9001,  // SocketException
		10058, // LegacyNotPrimary
		10107, // NotWritablePrimary
		11600, // InterruptedAtShutdown
		11602, // InterruptedDueToReplStateChange
		13435, // NotPrimaryNoSecondaryOk
		13436: // NotPrimaryOrSecondary
		return true
	}
	return false
}

// IsMaxTimeExpired reports an operation the server ended because it ran
// past its maxTimeMS (MaxTimeMSExpired, 50).
func IsMaxTimeExpired(err error) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && se.HasErrorCode(50)
}

// IsDuplicateKey reports a write a unique index refused: MongoDB's
// duplicate key codes, or the message of an engine without them, in a
// command error or in any of a write's errors.
func IsDuplicateKey(err error) bool {
	if mongo.IsDuplicateKeyError(err) {
		return true
	}
	var ce mongo.CommandError
	if errors.As(err, &ce) && DuplicateKey(ce.Code, ce.Message) {
		return true
	}
	var we mongo.WriteException
	if errors.As(err, &we) {
		for _, e := range we.WriteErrors {
			if DuplicateKey(int32(e.Code), e.Message) {
				return true
			}
		}
	}
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) {
		for _, e := range bwe.WriteErrors {
			if DuplicateKey(int32(e.Code), e.Message) {
				return true
			}
		}
	}
	return false
}

// DuplicateKey says whether one server error (its code and message) is a
// refusal of a unique index.
func DuplicateKey(code int32, message string) bool {
	for _, c := range duplicateKeyCodes {
		if code == c {
			return true
		}
	}
	return strings.Contains(message, documentDBDuplicate) || strings.Contains(message, ferretDB1Duplicate)
}

// IsNotFound reports a command on a namespace or an index that is not
// there (a drop a previous, interrupted run already made).
func IsNotFound(err error) bool {
	return hasCode(err, codeNamespaceNotFound) || hasCode(err, codeIndexNotFound)
}

// IsUnauthorized reports a command the user has no privilege for
// (Unauthorized, 13): reading the config database, for instance.
func IsUnauthorized(err error) bool { return hasCode(err, codeUnauthorized) }

// IsNamespaceExists reports a collection created by someone else first.
func IsNamespaceExists(err error) bool { return hasCode(err, codeNamespaceExists) }

// IsAuthentication reports credentials the server refused, at the
// handshake (the driver's auth error) or in a command.
func IsAuthentication(err error) bool {
	var ae *auth.Error
	return errors.As(err, &ae) || hasCode(err, codeAuthenticationFailed)
}

// NoAnswer: the server did not answer (the network, a timeout, the
// caller's context), so the error says nothing of what it accepts.
func NoAnswer(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		mongo.IsNetworkError(err) || mongo.IsTimeout(err)
}

// IsRefusal: the server answered a command with an error that is not
// transient, so it will answer the same again (a stage or an operator it
// does not take).
func IsRefusal(ctx context.Context, err error) bool {
	var ce mongo.CommandError
	return ctx.Err() == nil && errors.As(err, &ce) && !IsTransient(err)
}

// Kind names the class of an error for logs, without its message (which
// may quote data).
func Kind(err error) string {
	switch {
	case mongo.IsTimeout(err):
		return "timeout"
	case mongo.IsNetworkError(err):
		return "network"
	}
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return fmt.Sprintf("server code %d (%s)", ce.Code, ce.Name)
	}
	var we mongo.WriteException
	if errors.As(err, &we) && we.WriteConcernError != nil {
		return fmt.Sprintf("write concern code %d", we.WriteConcernError.Code)
	}
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) && bwe.WriteConcernError != nil {
		return fmt.Sprintf("write concern code %d", bwe.WriteConcernError.Code)
	}
	return "server"
}

func hasCode(err error, code int32) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && se.HasErrorCode(int(code))
}
