package analytics

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/differential-privacy/go/v3/noise"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/dp/dptest"
)

// perGroupEvents is hand-made data for per-group bounds: amounts in milli-units.
func perGroupEvents() []event {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	e := func(subj uint64, cat string, amount int64) event {
		return event{subj: subj, ts: at, typ: "purchase", channel: "web", category: cat, amount: amount * 1000, hasAmt: true}
	}
	return []event{
		e(1, "bread", 100), e(1, "bread", 200), e(1, "bread", 300), // total 600, 3 rows, average 200
		e(2, "bread", 50),                     // total 50, 1 row, average 50
		e(2, "cake", 700), e(2, "cake", -100), // total 600, 2 rows, average 300
		e(3, "cake", -50), // total -50, 1 row, average -50
	}
}

func perGroup(lo, hi float64) *privalytics.GroupBounds {
	return &privalytics.GroupBounds{Lower: lo, Upper: hi}
}

// TestPerGroupBoundsExact: each customer's total in a cell is clamped, not each
// row; the expected values are worked out by hand in the comments.
func TestPerGroupBoundsExact(t *testing.T) {
	t.Parallel()
	snap := snapshotOf(perGroupEvents(), 3)
	q := &privalytics.Query{Epsilon: 1, GroupBy: []privalytics.GroupKey{{Column: "category", Keys: []string{"bread", "cake"}}},
		Aggregates: []privalytics.Aggregate{
			{Name: "rows", Op: "count", ContributionBoundsPerGroup: perGroup(0, 2)},
			{Name: "revenue", Op: "sum", Column: "amount", ContributionBoundsPerGroup: perGroup(0, 500)},
			{Name: "rowclamped", Op: "sum", Column: "amount", Lower: f64(0), Upper: f64(250), ContributionBoundsPerGroup: perGroup(0, 500)},
			{Name: "avg", Op: "mean", Column: "amount", ContributionBoundsPerGroup: perGroup(0, 150)},
		},
		Bounds: privalytics.Bounds{MaxGroups: 5}}
	res := run(t, q, snap, dptest.NoNoise())
	want := map[string][]float64{
		// rows: min(3,2)+1 = 3; revenue: min(600,500)+50 = 550;
		// row-clamped: min(100+200+250, 500)+50 = 550; avg: (min(200,150)+50)/2 = 100.
		"bread": {3, 550, 550, 100},
		// rows: 2+1 = 3; revenue: min(600,500)+max(-50,0) = 500;
		// row-clamped: (250+0)+0 = 250; avg: (min(300,150)+max(-50,0))/2 = 75.
		"cake": {3, 500, 250, 75},
	}
	if len(res.Rows) != 2 {
		t.Fatalf("got %d rows, want 2", len(res.Rows))
	}
	for _, r := range res.Rows {
		for i, w := range want[r.Key[0]] {
			if got := r.Cells[i].Value; math.Abs(got-w) > 1e-9 {
				t.Errorf("%s %s = %v, want %v", r.Key[0], res.Aggregates[i].Name, got, w)
			}
		}
	}
	if g := res.Aggregates[1].ContributionBoundsPerGroup; g == nil || g.Upper != 500 {
		t.Errorf("the answer does not report the per-group bounds: %+v", res.Aggregates[1])
	}
}

// TestPerGroupBoundsKeepRows: with only per-group bounds and no
// max_rows_per_group, no rows are sampled away (the default 8 would cut a
// customer's 20 rows); a cap given explicitly still applies first.
func TestPerGroupBoundsKeepRows(t *testing.T) {
	t.Parallel()
	var events []event
	for i := range 20 {
		events = append(events, event{subj: 7, ts: time.Date(2025, 3, 1, i, 0, 0, 0, time.UTC), typ: "purchase", channel: "web", category: "tea", amount: 10_000, hasAmt: true})
	}
	snap := snapshotOf(events, 7)
	q := func(rows int) *privalytics.Query {
		return &privalytics.Query{Epsilon: 1, GroupBy: []privalytics.GroupKey{{Column: "category", Keys: []string{"tea"}}},
			Aggregates: []privalytics.Aggregate{{Op: "count", ContributionBoundsPerGroup: perGroup(0, 100)}, {Op: "sum", Column: "amount", ContributionBoundsPerGroup: perGroup(0, 1000)}},
			Bounds:     privalytics.Bounds{MaxRowsPerGroup: rows}}
	}
	for _, c := range []struct {
		rows       int
		count, sum float64
	}{{0, 20, 200}, {5, 5, 50}} {
		res := run(t, q(c.rows), snap, dptest.NoNoise())
		if got := res.Rows[0].Cells; got[0].Value != c.count || got[1].Value != c.sum {
			t.Errorf("max_rows_per_group %d: count %v sum %v, want %v and %v", c.rows, got[0].Value, got[1].Value, c.count, c.sum)
		}
	}
}

// TestPerGroupHeavyCustomer: a customer with thousands of rows moves any cell by
// at most the per-group upper bound, in at most L0 cells.
func TestPerGroupHeavyCustomer(t *testing.T) {
	t.Parallel()
	rng := newRNG(8, 9)
	base := randomEvents(rng, 2000, 300)
	for i := range base { // one row each: only the heavy customer is ever sampled
		base[i].subj = uint64(i)
	}
	heavy := make([]event, 5000)
	for i := range heavy {
		heavy[i] = event{subj: 1 << 40, ts: time.Date(2025, 5, 1+i%28, 12, 0, 0, 0, time.UTC), typ: "purchase", channel: "web", category: cats[i%len(cats)], amount: 1_000_000, hasAmt: true}
	}
	q := &privalytics.Query{Epsilon: 1, GroupBy: []privalytics.GroupKey{{Column: "category", Keys: cats}},
		Aggregates: []privalytics.Aggregate{{Op: "count", ContributionBoundsPerGroup: perGroup(0, 3)}, {Name: "s", Op: "sum", Column: "amount", ContributionBoundsPerGroup: perGroup(-20, 70)}},
		Bounds:     privalytics.Bounds{MaxGroups: 2}}
	without := run(t, q, snapshotOf(base, 500), dptest.NoNoise())
	with := run(t, q, snapshotOf(append(append([]event{}, base...), heavy...), 500), dptest.NoNoise())
	touched := 0
	for i := range without.Rows {
		dc := with.Rows[i].Cells[0].Value - without.Rows[i].Cells[0].Value
		ds := with.Rows[i].Cells[1].Value - without.Rows[i].Cells[1].Value
		if dc < 0 || dc > 3 || math.Abs(ds) > 70+1e-9 {
			t.Errorf("%s: the heavy customer moved count by %v and sum by %v; per-group bounds are 3 and 70", with.Rows[i].Key, dc, ds)
		}
		if dc > 0 {
			touched++
		}
	}
	if touched != 2 {
		t.Errorf("the heavy customer touched %d groups, want L0 = 2", touched)
	}
}

// TestPerGroupBoundsSensitivity: explain's half-width is the Laplace quantile
// for L0 × max(|lower|, |upper|), and the Gaussian one for √L0 × the same.
func TestPerGroupBoundsSensitivity(t *testing.T) {
	t.Parallel()
	q := &privalytics.Query{Epsilon: 1, GroupBy: []privalytics.GroupKey{{Column: "category", Keys: cats}},
		Aggregates: []privalytics.Aggregate{{Op: "sum", Column: "amount", ContributionBoundsPerGroup: perGroup(-100, 500)}},
		Bounds:     privalytics.Bounds{MaxGroups: 2}}
	_, ex := explained(t, q)
	// Laplace scale b = L0·Δ/ε = 2·500/1; the 95% half-width is b·ln(1/0.05).
	if want := 1000 * math.Log(20); math.Abs(ex.Aggregates[0].HalfWidth-want) > 1e-6*want {
		t.Errorf("laplace half-width %v, want %v", ex.Aggregates[0].HalfWidth, want)
	}
	if !strings.Contains(ex.Aggregates[0].Note, "clamped to [-100, 500]") {
		t.Errorf("explain does not say the per-group clamp: %q", ex.Aggregates[0].Note)
	}
	gq := *q
	gq.Noise, gq.Delta = "gaussian", 1e-6
	gq.Bounds.MaxGroups = 4
	gp, gex := explained(t, &gq)
	// The library's σ for L2 = √4·500 = 1000 at (1, 1e-6); 95% half-width 1.96σ.
	sigma := dpSigma(t, 4, 500, 1, 1e-6)
	if want := 1.959963984540054 * sigma; math.Abs(gex.Aggregates[0].HalfWidth-want) > 1e-3*want {
		t.Errorf("gaussian half-width %v, want %v (σ %v)", gex.Aggregates[0].HalfWidth, want, sigma)
	}
	// σ scales with √L0: the same query with L0 = 1 has half the σ.
	if s1 := dpSigma(t, 1, 500, 1, 1e-6); math.Abs(sigma/s1-2) > 1e-6 {
		t.Errorf("σ(L0 4)/σ(L0 1) = %v, want 2", sigma/s1)
	}
	// The charged ρ is that of a Gaussian of sensitivity √L0·500.
	if want := 4 * 500 * 500 / (2 * sigma * sigma); math.Abs(gp.Cost().Rho-want) > 1e-9*want {
		t.Errorf("ρ %v, want %v", gp.Cost().Rho, want)
	}
}

func TestPerGroupBoundsErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		agg  privalytics.Aggregate
		want string
	}{
		{privalytics.Aggregate{Op: "median", Column: "amount", Lower: f64(0), Upper: f64(1), ContributionBoundsPerGroup: perGroup(0, 1)}, "applies to count, sum and mean"},
		{privalytics.Aggregate{Op: "distinct_customers", ContributionBoundsPerGroup: perGroup(0, 1)}, "applies to count, sum and mean"},
		{privalytics.Aggregate{Op: "count", ContributionBoundsPerGroup: perGroup(0, 2.5)}, "whole numbers"},
		{privalytics.Aggregate{Op: "sum", Column: "amount", ContributionBoundsPerGroup: perGroup(5, 1)}, "reversed"},
		{privalytics.Aggregate{Op: "sum", Column: "amount", Bounds: "auto", ContributionBoundsPerGroup: perGroup(0, 1)}, "not both"},
		{privalytics.Aggregate{Op: "mean", Column: "amount", ContributionBoundsPerGroup: perGroup(1, 1)}, "lower < upper"},
		{privalytics.Aggregate{Op: "sum", Column: "amount", Lower: f64(0), ContributionBoundsPerGroup: perGroup(0, 1)}, "both per-row"},
	} {
		_, err := NewPlan(&privalytics.Query{Epsilon: 1, Aggregates: []privalytics.Aggregate{c.agg}}, schema, DefaultLimits())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want an error saying %q", c.agg, err, c.want)
		}
	}
	// A budget share the library refuses is refused at plan time, free.
	_, err := NewPlan(&privalytics.Query{Epsilon: 1e-20, Aggregates: []privalytics.Aggregate{{Op: "sum", Column: "amount", ContributionBoundsPerGroup: perGroup(0, 1)}}}, schema, DefaultLimits())
	if err == nil || !strings.Contains(err.Error(), "smallest epsilon") {
		t.Errorf("a tiny epsilon: got %v", err)
	}

}

// explained plans q and explains it with the secure mechanisms.
func explained(t *testing.T, q *privalytics.Query) (*Plan, *Explanation) {
	t.Helper()
	p, err := NewPlan(q, schema, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	ex, err := p.Explain(dp.Secure())
	if err != nil {
		t.Fatal(err)
	}
	return p, ex
}

// dpSigma is the noise library's σ for (L0, L∞, ε, δ).
func dpSigma(t *testing.T, l0 int64, linf, eps, delta float64) float64 {
	t.Helper()
	return noise.SigmaForGaussian(l0, linf, eps, delta)
}

// TestCellsBelowTheNoiseAreFlagged: with secure noise, a cell of one customer
// at ε 0.1 (half-width in the tens of thousands) is released but flagged
// hidden with the reason; a cell of thousands of customers is not. The flag
// reads the released cell only (its half-width at least its value), so a
// noise beyond the interval's own half-width leaves it unflagged: up to 1 −
// the confidence of the time (measured: 30 runs in 1,000 at 95%, 3 in 3,000
// at 99.9%). The query asks for 99.99% intervals: at most one run in
// 10,000 by the same bound (0 of 3,000 measured).
func TestCellsBelowTheNoiseAreFlagged(t *testing.T) {
	t.Parallel()
	var events []event
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 5000 {
		events = append(events, event{subj: uint64(i), ts: at, typ: "purchase", channel: "web", category: "bread", amount: 900_000, hasAmt: true})
	}
	events = append(events, event{subj: 99999, ts: at, typ: "purchase", channel: "web", category: "cake", amount: 10_000, hasAmt: true})
	snap := snapshotOf(events, 1000)
	q := &privalytics.Query{Epsilon: 0.1, Confidence: 0.9999, GroupBy: []privalytics.GroupKey{{Column: "category", Keys: []string{"bread", "cake"}}},
		Aggregates: []privalytics.Aggregate{{Op: "sum", Column: "amount", ContributionBoundsPerGroup: perGroup(0, 1000)}}, Bounds: privalytics.Bounds{MaxGroups: 1}}
	res := run(t, q, snap, dp.Secure())
	for _, r := range res.Rows {
		c := r.Cells[0]
		if c.Upper <= c.Lower {
			t.Errorf("%s: a zero-width interval [%v, %v]", r.Key[0], c.Lower, c.Upper)
		}
		switch r.Key[0] {
		case "bread": // 5000 × 900 = 4.5M against a half-width of about 92,000
			if c.Hidden {
				t.Errorf("bread (5000 customers) is flagged hidden: %+v", c)
			}
		case "cake": // 10 against a half-width of about 92,000 (b ln 10,000, b = 10,000)
			if !c.Hidden || c.Reason != HiddenReason {
				t.Errorf("cake (one customer, ε 0.1) is not flagged hidden: %+v", c)
			}
		}
	}
}
