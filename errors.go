package privalytics

import (
	"errors"
	"fmt"
)

// Error codes. Every error that reaches a user carries one of these; the API maps
// each code to one HTTP status in a single table (api/errors.go).
const (
	EINVALID      = "invalid"      // the request is malformed or breaks a rule; the message says what to change
	ENOTFOUND     = "not_found"    // the thing does not exist, or belongs to another tenant
	EUNAUTHORIZED = "unauthorized" // no valid API key
	EFORBIDDEN    = "forbidden"    // the key's role does not allow this
	ECONFLICT     = "conflict"     // the thing already exists, or the state does not allow this now
	EBUDGET       = "budget"       // the privacy budget cannot cover the query
	ETOOLARGE     = "too_large"    // a body, batch or value is over a configured limit
	ERATELIMIT    = "rate_limited" // the key sent more requests than its rate allows; retry after the stated delay
	EUNSUPPORTED  = "unsupported"  // a content type or encoding we do not accept
	EUNAVAILABLE  = "unavailable"  // not ready yet, shutting down, or overloaded; retry later
	ESTORAGEFULL  = "storage_full" // the server's disk is full: nothing was stored; retry once the operator has freed space
	EINTERNAL     = "internal"     // a bug or an I/O failure; details are logged, never shown
)

// Error is the one coded error type of Privalytics. Message is safe to show to the
// caller; Details carries structured context (line and field of a bad row, budget
// left) that the API returns alongside the message.
type Error struct {
	Code    string
	Message string
	Details map[string]any
}

func (e *Error) Error() string { return fmt.Sprintf("privalytics: %s: %s", e.Code, e.Message) }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// With returns a copy of e with one more detail attached.
func (e *Error) With(key string, value any) *Error {
	d := make(map[string]any, len(e.Details)+1)
	for k, v := range e.Details {
		d[k] = v
	}
	d[key] = value
	return &Error{Code: e.Code, Message: e.Message, Details: d}
}

// codedError is an error from outside this package that carries one of the
// codes above: the Go SDK's *wire.Error, which cannot import this package.
type codedError interface {
	error
	ErrorCode() string
}

// ErrorCode returns the code of the first *Error (or SDK error with a code) in
// err's chain, EINTERNAL for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	var ce codedError
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	} else if errors.As(err, &ce) {
		return ce.ErrorCode()
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing message of err: the message of its *Error,
// or "internal error" for anything else, so internals never leak to callers.
func ErrorMessage(err error) string {
	var e *Error
	var ce interface{ ErrorMessage() string }
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	} else if errors.As(err, &ce) {
		return ce.ErrorMessage()
	}
	return "internal error"
}

// ErrorDetails returns the details of err's *Error, or nil.
func ErrorDetails(err error) map[string]any {
	var e *Error
	var ce interface{ ErrorDetails() map[string]any }
	if errors.As(err, &e) {
		return e.Details
	} else if errors.As(err, &ce) {
		return ce.ErrorDetails()
	}
	return nil
}
