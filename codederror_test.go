package privalytics_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/privalytics/privalytics"
)

// sdkError stands for the Go SDK's *wire.Error, which cannot be a
// *privalytics.Error (the SDK must not import the root package).
type sdkError struct{ code, msg string }

func (e *sdkError) Error() string                { return e.code + ": " + e.msg }
func (e *sdkError) ErrorCode() string            { return e.code }
func (e *sdkError) ErrorMessage() string         { return e.msg }
func (e *sdkError) ErrorDetails() map[string]any { return map[string]any{"line": 3} }

// ErrorCode, ErrorMessage and ErrorDetails read an SDK error (wrapped or not)
// as they read a *privalytics.Error; other errors stay internal.
func TestErrorHelpersReadSDKErrors(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("import: %w", &sdkError{code: privalytics.EBUDGET, msg: "no budget left"})
	if got := privalytics.ErrorCode(err); got != privalytics.EBUDGET {
		t.Errorf("ErrorCode = %q, want %q", got, privalytics.EBUDGET)
	}
	if got := privalytics.ErrorMessage(err); got != "no budget left" {
		t.Errorf("ErrorMessage = %q", got)
	}
	if got := privalytics.ErrorDetails(err); got["line"] != 3 {
		t.Errorf("ErrorDetails = %v", got)
	}
	plain := errors.New("disk full")
	if privalytics.ErrorCode(plain) != privalytics.EINTERNAL || privalytics.ErrorMessage(plain) != "internal error" || privalytics.ErrorDetails(plain) != nil {
		t.Errorf("a plain error: %q %q %v", privalytics.ErrorCode(plain), privalytics.ErrorMessage(plain), privalytics.ErrorDetails(plain))
	}
}
