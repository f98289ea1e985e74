package cli

import (
	"strings"
	"testing"

	"github.com/privalytics/privalytics/api/wire"
)

// TestQueryAllGroupsSuppressed: a GROUP BY whose every key was withheld by
// partition selection says why instead of printing a bare header.
func TestQueryAllGroupsSuppressed(t *testing.T) {
	t.Parallel()
	r := &wire.Result{GroupBy: []string{"city"}, Aggregates: []wire.AggregateInfo{{Name: "n", Op: "count"}}, Thresholded: true, Confidence: 0.95}
	if why := suppressedWhy(r); !strings.Contains(why, "No group of city was released") || !strings.Contains(why, "partition selection") {
		t.Errorf("suppressedWhy = %q", why)
	}
	cmd := queryCommand()
	var out, errOut strings.Builder
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	for _, format := range []string{"table", "csv"} {
		out.Reset()
		errOut.Reset()
		if err := printAnswer(cmd, &Output{format: format}, r); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String()+errOut.String(), "No group of city was released") {
			t.Errorf("--output %s: no sentence saying why the answer is empty:\n%s%s", format, out.String(), errOut.String())
		}
	}
	if strings.Contains(out.String(), "No group") {
		t.Errorf("--output csv put the sentence into the CSV itself:\n%s", out.String())
	}
	// Public keys (not thresholded) and answers with rows need no sentence.
	for _, r := range []*wire.Result{
		{GroupBy: []string{"city"}},
		{GroupBy: []string{"city"}, Thresholded: true, Rows: []wire.Row{{Key: []string{"Lyon"}}}},
	} {
		if why := suppressedWhy(r); why != "" {
			t.Errorf("suppressedWhy(%+v) = %q, want nothing", r, why)
		}
	}
}
