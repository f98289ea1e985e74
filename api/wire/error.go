package wire

import "fmt"

// Error codes, as the server sends them in ErrorBody.Error.Code (the same
// strings as the root package's E… constants).
const (
	CodeInvalid      = "invalid"
	CodeNotFound     = "not_found"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeConflict     = "conflict"
	CodeBudget       = "budget"
	CodeTooLarge     = "too_large"
	CodeRateLimited  = "rate_limited"
	CodeUnsupported  = "unsupported"
	CodeUnavailable  = "unavailable"
	CodeInternal     = "internal"
)

// ErrorBody is the body of every non-2xx answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong and what to change; Details carries
// structured context (the line and field of a bad row, the budget left).
type ErrorDetail struct {
	Code      string         `json:"code"`
	Message   string         `json:"message"`
	Details   map[string]any `json:"details,omitempty"`
	RequestID string         `json:"request_id,omitempty"`
}

// Error is an API error as a Go error. The SDK returns it for every non-2xx
// answer; Status is the HTTP status.
type Error struct {
	Status  int
	Code    string
	Message string
	Details map[string]any
}

func (e *Error) Error() string { return fmt.Sprintf("privalytics: %s: %s", e.Code, e.Message) }

// ErrorCode returns the code; privalytics.ErrorCode recognises errors that
// have this method, so code written against the root package's codes works
// with SDK errors too.
func (e *Error) ErrorCode() string { return e.Code }

// ErrorMessage returns the message, safe to show to a user.
func (e *Error) ErrorMessage() string { return e.Message }

// ErrorDetails returns the structured details, or nil.
func (e *Error) ErrorDetails() map[string]any { return e.Details }
