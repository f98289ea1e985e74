package demo

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/synth"
)

// TestQuestionsCoverTheGeneratedPeriod: time filters span exactly the
// generated days (so time buckets are public), every sum is bounded, and
// every question has a positive ε.
func TestQuestionsCoverTheGeneratedPeriod(t *testing.T) {
	t.Parallel()
	cfg := synth.DefaultConfig()
	from, to := cfg.Start.Format(time.DateOnly), cfg.Start.AddDate(0, 0, cfg.Days).Format(time.DateOnly)
	qs := Questions(cfg)
	if len(qs) != 4 {
		t.Fatalf("%d questions, want 4", len(qs))
	}
	for _, q := range qs {
		if !(q.Query.Epsilon > 0) {
			t.Errorf("%s: ε %g", q.Title, q.Query.Epsilon)
		}
		for _, f := range q.Query.Where {
			if f.Column == "ts" && (f.Gte != from || f.Lt != to) {
				t.Errorf("%s: period [%v, %v), want [%s, %s)", q.Title, f.Gte, f.Lt, from, to)
			}
		}
		for _, a := range q.Query.Aggregates {
			if (a.Op == "sum" || a.Op == "mean") && (a.Lower == nil || a.Upper == nil) {
				t.Errorf("%s: %s of %s without bounds", q.Title, a.Op, a.Column)
			}
		}
	}
}

func TestWriteResult(t *testing.T) {
	t.Parallel()
	r := &wire.Result{
		GroupBy:    []string{"channel"},
		Aggregates: []wire.AggregateInfo{{Name: "avg", Op: "mean"}},
		Rows:       []wire.Row{{Key: []string{"web"}, Cells: []wire.Cell{{Value: 12.345, Lower: 10, Upper: 14.5}}}},
		Confidence: 0.95,
		Cost:       wire.Cost{Epsilon: 0.5},
		Cached:     true,
	}
	var out bytes.Buffer
	WriteResult(&out, "Average", r)
	for _, want := range []string{"Average\n", "95% interval", "12.35", "[10.00, 14.50]", "(cached: no new cost)", "budget left ε=0.00"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "hidden") {
		t.Errorf("a result with no hidden cell mentions hidden ones:\n%s", out.String())
	}
	// A hidden cell is marked, and the cost line says how many there are.
	r.Rows = append(r.Rows, wire.Row{Key: []string{"app"}, Cells: []wire.Cell{{Value: 3, Lower: 0, Upper: 14.5, Hidden: true, Reason: "at the clamp"}}})
	out.Reset()
	WriteResult(&out, "Average", r)
	for _, want := range []string{"3.00 (hidden)", "1 of the cells hidden (too few customers for this ε)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "12.35 (hidden)") {
		t.Errorf("a drawn cell is marked hidden:\n%s", out.String())
	}
}
