package api_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/analytics"
	"github.com/privalytics/privalytics/api"
	"github.com/privalytics/privalytics/api/wire"
)

// asJSON is v's JSON decoded into generic values, to compare two types'
// encodings.
func asJSON(t *testing.T, v any) any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// The query and budget routes' conversions keep every value: a filled-in
// domain value and its wire body encode to the same JSON.
func TestWireConversionsKeepEveryValue(t *testing.T) {
	t.Parallel()
	lo, hi := 1.0, 50.0
	q := &wire.Query{Purpose: "analytics", Where: []wire.Filter{{Column: "type", Eq: "purchase"}, {Column: "ts", Gte: "2025-01-01", Lt: "2025-02-01"}},
		GroupBy:    []wire.GroupKey{{Column: "channel", Keys: []string{"web"}}, {Time: "week"}, {Column: "amount", Buckets: []float64{0, 10, 100}}},
		Aggregates: []wire.Aggregate{{Name: "rev", Op: "sum", Column: "amount", Lower: &lo, Upper: &hi, Weight: 2}, {Op: "quantile", Column: "amount", Bounds: "auto", AutoShare: 0.3, Rank: 0.9}},
		Bounds:     wire.Bounds{MaxGroups: 2, MaxRowsPerGroup: 3, MaxRows: 9}, Epsilon: 0.5, Delta: 1e-6, Noise: "gaussian", Confidence: 0.9, TimeZone: "Europe/Paris"}
	if diff := cmp.Diff(asJSON(t, q), asJSON(t, api.RootQuery(q))); diff != "" {
		t.Errorf("RootQuery (-wire +root):\n%s", diff)
	}
	budget := &privalytics.BudgetStatus{TenantID: "shop", Total: privalytics.Cost{Epsilon: 10, Delta: 1e-5, Rho: 2}, Spent: privalytics.Cost{Epsilon: 1},
		Remaining: privalytics.Cost{Epsilon: 9}, Allocated: privalytics.Cost{Epsilon: 3}, Period: "month", Accounting: "zcdp",
		Periods: []privalytics.PeriodStatus{{Period: "2025-01", Spent: privalytics.Cost{Epsilon: 1}, Remaining: privalytics.Cost{Epsilon: 9}}}}
	info := privalytics.AggregateInfo{Name: "rev", Op: "sum", Column: "amount", Mechanism: "laplace", Epsilon: 0.5, Lower: 1, Upper: 50, AutoBounds: true, BoundsEpsilon: 0.1}
	res := &privalytics.Result{GroupBy: []string{"channel"}, Aggregates: []privalytics.AggregateInfo{info}, Confidence: 0.95, Cost: privalytics.Cost{Epsilon: 0.5},
		Rows: []privalytics.Row{{Key: []string{"web"}, Cells: []privalytics.Cell{{Value: 3, Lower: 1, Upper: 5}}}}, Thresholded: true, Snapshot: "ans_7", Cached: true, Budget: budget}
	if diff := cmp.Diff(asJSON(t, res), asJSON(t, api.WireResult(res))); diff != "" {
		t.Errorf("WireResult (-root +wire):\n%s", diff)
	}
	ex := &analytics.Explanation{Cost: privalytics.Cost{Epsilon: 0.5}, Confidence: 0.95, Thresholded: true, AccuracyFirst: true, Budget: budget,
		Aggregates: []analytics.AggregateExplanation{{AggregateInfo: info, HalfWidth: 4.2, Note: "for 1000 rows"}}}
	if diff := cmp.Diff(asJSON(t, ex), asJSON(t, api.WireExplanation(ex))); diff != "" {
		t.Errorf("WireExplanation (-root +wire):\n%s", diff)
	}
	if api.WireBudget(nil) != nil {
		t.Error("WireBudget(nil) is not nil")
	}
}
