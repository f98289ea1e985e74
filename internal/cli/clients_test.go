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

// TestQueryRollupRows: a rollup's subtotal rows print the keys they sum over
// as "(total)" in tables and CSV, and the table's note says they are free.
func TestQueryRollupRows(t *testing.T) {
	t.Parallel()
	cell := []wire.Cell{{Value: 3, Lower: 1, Upper: 5}}
	r := &wire.Result{GroupBy: []string{"month", "channel"}, Aggregates: []wire.AggregateInfo{{Name: "n", Op: "count"}}, Confidence: 0.95,
		Rows: []wire.Row{{Key: []string{"2026-01", "web"}, Cells: cell}, {Key: []string{"2026-01", ""}, Cells: cell, Subtotal: 1}, {Key: []string{"", ""}, Cells: cell, Subtotal: 2}}}
	cmd := queryCommand()
	var out strings.Builder
	cmd.SetOut(&out)
	if err := printAnswer(cmd, &Output{format: "csv"}, r); err != nil {
		t.Fatal(err)
	}
	want := "month,channel,n,n_lower,n_upper\n2026-01,web,3,1,5\n2026-01,(total),3,1,5\n(total),(total),3,1,5\n"
	if out.String() != want {
		t.Errorf("CSV:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	if err := printAnswer(cmd, &Output{format: "table"}, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "(total)") || !strings.Contains(out.String(), "no extra ε") {
		t.Errorf("table lacks the total rows or the note:\n%s", out.String())
	}
}

// TestTuningNote: the answer's note says what tuning chose, and a correction
// only when the report has one.
func TestTuningNote(t *testing.T) {
	t.Parallel()
	got := tuningNote(&wire.TuningReport{Epsilon: 0.075, MaxGroups: 12, Noise: "gaussian", Aggregates: []wire.TunedAggregate{
		{Name: "revenue", Upper: 215, MaxNorm: 215, BoundingLoss: 0.052, Correction: 1 / (1 - 0.052)},
		{Name: "lines", Upper: 8},
	}})
	want := "Limits chosen from the data (ε 0.075 spent choosing): at most 12 groups per customer; revenue scaled to a norm of 215 across groups, an estimated 5.2% cut and corrected for (cells ×1.055); lines clamped to 8 per group; gaussian noise."
	if got != want {
		t.Errorf("tuningNote:\n got %s\nwant %s", got, want)
	}
}

// TestQueryHiddenCells: a cell the server marked hidden is printed with a
// mark in tables and the note says how many and why; CSV keeps the bare
// numbers and says it on stderr.
func TestQueryHiddenCells(t *testing.T) {
	t.Parallel()
	why := "too few customers for this ε: the interval's half-width is at least the value; draw it as hidden"
	r := &wire.Result{GroupBy: []string{"store"}, Aggregates: []wire.AggregateInfo{{Name: "revenue", Op: "sum"}}, Confidence: 0.95,
		Rows: []wire.Row{
			{Key: []string{"Lyon"}, Cells: []wire.Cell{{Value: 900, Lower: 800, Upper: 1000}}},
			{Key: []string{"Nice"}, Cells: []wire.Cell{{Value: 12, Lower: 0, Upper: 112, Hidden: true, Reason: why}}},
		}}
	cmd := queryCommand()
	var out, errOut strings.Builder
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	if err := printAnswer(cmd, &Output{format: "table"}, r); err != nil {
		t.Fatal(err)
	}
	table := out.String()
	if !strings.Contains(table, "12"+HiddenMark) || strings.Contains(table, "900"+HiddenMark) {
		t.Errorf("table does not mark the hidden cell alone:\n%s", table)
	}
	if !strings.Contains(table, "1 cell is hidden") || !strings.Contains(table, why) {
		t.Errorf("table note does not say how many cells are hidden and why:\n%s", table)
	}
	out.Reset()
	if err := printAnswer(cmd, &Output{format: "csv"}, r); err != nil {
		t.Fatal(err)
	}
	if want := "store,revenue,revenue_lower,revenue_upper\nLyon,900,800,1000\nNice,12,0,112\n"; out.String() != want {
		t.Errorf("CSV:\n%s\nwant:\n%s", out.String(), want)
	}
	if !strings.Contains(errOut.String(), "1 cell is hidden") {
		t.Errorf("CSV run said nothing on stderr about the hidden cell: %q", errOut.String())
	}
}
