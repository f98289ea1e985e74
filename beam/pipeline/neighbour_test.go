package pipeline

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/analytics"
)

// TestHeavyCustomerMovesAnswersWithinEpsilon runs the Beam path with noise on
// neighbouring datasets: D, and D plus one heavy customer (20 rows) in each of
// 2000 public groups — 2000 independent neighbouring pairs in two pipeline
// runs. Bounding (max_rows_per_group 1) must cap each heavy customer at one
// row, so the mean shift is 1 (not 20), and the released counts' tails must
// keep P(X' ≥ t) ≤ e^ε·P(X ≥ t). Tolerances: the mean shift has sd
// √(2·2/2000) ≈ 0.045 (Laplace scale 1) and we allow 0.3 (6.6 sd); each tail
// ratio test allows 5 binomial sd. False failure probability < 1e-6.
func TestHeavyCustomerMovesAnswersWithinEpsilon(t *testing.T) {
	const groups, base, eps = 2000, 50, 1.0
	keys := make([]string, groups)
	var d, heavy []event
	ts := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	for g := range groups {
		keys[g] = fmt.Sprintf("g%04d", g)
		for c := range base {
			d = append(d, event{subj: uint64(g*base + c), ts: ts, typ: "purchase", channel: "web", category: keys[g]})
		}
		for range 20 {
			heavy = append(heavy, event{subj: uint64(10_000_000 + g), ts: ts, typ: "purchase", channel: "web", category: keys[g]})
		}
	}
	q := &privalytics.Query{GroupBy: []privalytics.GroupKey{{Column: "category", Keys: keys}}, Aggregates: []privalytics.Aggregate{{Op: "count"}},
		Bounds: privalytics.Bounds{MaxGroups: 1, MaxRowsPerGroup: 1}, Epsilon: eps}
	plan, err := analytics.NewPlan(q, schema, analytics.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	counts := func(evs []event) map[string]float64 {
		out := map[string]float64{}
		for _, c := range runBeam(t, plan, snapshotOf(evs, 50_000), false) {
			k, _ := json.Marshal(c.Key)
			out[string(k)] = c.Value
		}
		if len(out) != groups {
			t.Fatalf("%d groups released, want %d", len(out), groups)
		}
		return out
	}
	x, y := counts(d), counts(append(d, heavy...))
	var shift float64
	for k := range x {
		shift += y[k] - x[k]
	}
	shift /= groups
	if math.Abs(shift-1) > 0.3 {
		t.Errorf("mean shift %.3f from one heavy customer per group, want 1 (max_rows_per_group)", shift)
	}
	for _, th := range []float64{base, base + 1, base + 2, base + 3} {
		var px, py float64
		for k := range x {
			if x[k] >= th {
				px++
			}
			if y[k] >= th {
				py++
			}
		}
		px, py = px/groups, py/groups
		sd := math.Sqrt(py*(1-py)/groups) + math.Exp(eps)*math.Sqrt(px*(1-px)/groups)
		if py > math.Exp(eps)*px+5*sd {
			t.Errorf("P(count ≥ %v): %.3f with the heavy customer, %.3f without: ratio above e^ε = %.3f beyond sampling error", th, py, px, math.Exp(eps))
		}
	}
	t.Logf("mean shift %.3f (want 1)", shift)
}
