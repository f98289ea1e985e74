package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/wire"
)

// An error reads the same on the terminal whether it was made in this process
// or came from the server through the SDK: the message, then the details in
// key order.
func TestDescribe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"local", privalytics.Errorf(privalytics.EINVALID, "bad row").With("line", 2).With("field", "amount"), "privalytics: bad row\n  field: amount\n  line: 2"},
		{"from the server", fmt.Errorf("ingest: %w", &wire.Error{Status: 400, Code: wire.CodeInvalid, Message: "bad row", Details: map[string]any{"line": float64(2), "field": "amount"}}),
			"privalytics: bad row\n  field: amount\n  line: 2"},
		{"other", errors.New("disk full"), "privalytics: disk full"},
	} {
		if got := describe(tc.err); got != tc.want {
			t.Errorf("%s: describe = %q, want %q", tc.name, got, tc.want)
		}
	}
}
