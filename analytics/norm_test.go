package analytics

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp/dptest"
)

func normBounds(lo, hi, norm float64) *privalytics.GroupBounds {
	return &privalytics.GroupBounds{Lower: lo, Upper: hi, MaxNorm: norm}
}

// scaledTotals is the reference for max_norm, written out independently of
// bound.go: each customer's clamped per-group totals, scaled together to L2
// norm at most norm.
func scaledTotals(totals map[uint64]map[string]float64, lo, hi, norm float64) map[string]float64 {
	out := map[string]float64{}
	for _, cells := range totals {
		sq := 0.0
		for _, v := range cells {
			c := math.Min(hi, math.Max(lo, v))
			sq += c * c
		}
		s := 1.0
		if math.Sqrt(sq) > norm {
			s = norm / math.Sqrt(sq)
		}
		for k, v := range cells {
			out[k] += s * math.Min(hi, math.Max(lo, v))
		}
	}
	return out
}

// TestNormBoundExact: with max_norm each customer's vector of clamped totals
// is scaled to the norm, every group alike, for sums and counts; without
// max_groups, L0 is every public group, so nothing is dropped. The reference
// is scaledTotals over the hand-made data; the engine rounds each scaled
// total toward zero to a thousandth (counts) or the column's decimals.
func TestNormBoundExact(t *testing.T) {
	t.Parallel()
	snap := snapshotOf(perGroupEvents(), 3)
	q := &privalytics.Query{Epsilon: 1, Delta: 1e-6, Noise: "gaussian", GroupBy: []privalytics.GroupKey{{Column: "category", Keys: []string{"bread", "cake"}}},
		Aggregates: []privalytics.Aggregate{
			{Name: "revenue", Op: "sum", Column: "amount", ContributionBoundsPerGroup: normBounds(0, 500, 300)},
			{Name: "rows", Op: "count", ContributionBoundsPerGroup: normBounds(0, 2, 1.5)},
		}}
	res := run(t, q, snap, dptest.NoNoise())
	// Customer 1: bread 600 (3 rows); 2: bread 50 (1 row), cake 600 (2 rows); 3: cake −50 (1 row).
	revenue := scaledTotals(map[uint64]map[string]float64{1: {"bread": 600}, 2: {"bread": 50, "cake": 600}, 3: {"cake": -50}}, 0, 500, 300)
	rows := scaledTotals(map[uint64]map[string]float64{1: {"bread": 3}, 2: {"bread": 1, "cake": 2}, 3: {"cake": 1}}, 0, 2, 1.5)
	// By hand: revenue bread = 300 + 50·300/√(50²+500²) = 329.85, cake = 298.51;
	// rows bread = 1.5 + 1.5/√5 = 2.171, cake = 3/√5 + 1 = 2.342.
	if math.Abs(revenue["bread"]-329.851) > 1e-3 || math.Abs(rows["cake"]-2.3416) > 1e-3 {
		t.Fatalf("the reference is off: %v %v", revenue, rows)
	}
	if len(res.Rows) != 2 {
		t.Fatalf("got %d rows, want 2", len(res.Rows))
	}
	for _, r := range res.Rows {
		for i, want := range []float64{revenue[r.Key[0]], rows[r.Key[0]]} {
			// Rounding toward zero: each customer's scaled total loses less
			// than one unit of the accumulator (0.001), never gains.
			if got := r.Cells[i].Value; got > want+1e-9 || got < want-0.003 {
				t.Errorf("%s %s = %v, want %v (rounded toward zero)", r.Key[0], res.Aggregates[i].Name, got, want)
			}
		}
	}
	if g := res.Aggregates[0].ContributionBoundsPerGroup; g == nil || g.MaxNorm != 300 {
		t.Errorf("the answer does not report max_norm: %+v", res.Aggregates[0].ContributionBoundsPerGroup)
	}
}

// TestNormBoundHeavyCustomer: a customer with thousands of rows in every
// group moves the cells, all together, by at most max_norm in L2 — and each
// cell by less than the per-group clamp would let it.
func TestNormBoundHeavyCustomer(t *testing.T) {
	t.Parallel()
	rng := newRNG(3, 4)
	base := randomEvents(rng, 2000, 300)
	heavy := make([]event, 5000)
	for i := range heavy {
		heavy[i] = event{subj: 1 << 40, ts: time.Date(2025, 5, 1+i%28, 12, 0, 0, 0, time.UTC), typ: "purchase", channel: "web", category: cats[i%len(cats)], amount: 1_000_000, hasAmt: true}
	}
	q := &privalytics.Query{Epsilon: 1, Delta: 1e-6, Noise: "gaussian", GroupBy: []privalytics.GroupKey{{Column: "category", Keys: cats}},
		Aggregates: []privalytics.Aggregate{
			{Name: "s", Op: "sum", Column: "amount", ContributionBoundsPerGroup: normBounds(0, 400, 250)},
			{Name: "n", Op: "count", ContributionBoundsPerGroup: normBounds(0, 20, 12)},
		}}
	without := run(t, q, snapshotOf(base, 500), dptest.NoNoise())
	with := run(t, q, snapshotOf(append(append([]event{}, base...), heavy...), 500), dptest.NoNoise())
	for i, norm := range []float64{250, 12} {
		sq := 0.0
		for r := range without.Rows {
			d := with.Rows[r].Cells[i].Value - without.Rows[r].Cells[i].Value
			if d < 0 {
				t.Errorf("%s %s: the heavy customer lowered the cell by %v", with.Rows[r].Key, with.Aggregates[i].Name, -d)
			}
			sq += d * d
		}
		// Five groups at the clamp would be √5 × the clamp; the norm keeps
		// it to at most norm, and the customer, above it, reaches it.
		if l := math.Sqrt(sq); l > norm+1e-9 || l < norm*0.99 {
			t.Errorf("%s: the heavy customer moved the cells by %v in L2, want just under max_norm %v", with.Aggregates[i].Name, l, norm)
		}
	}
}

// TestNormBoundSensitivity: explain's half-width and the charged ρ are those
// of a Gaussian of L2 sensitivity max_norm when it binds, and of √L0 × the
// clamp when it does not; the plan refuses what max_norm cannot be.
func TestNormBoundSensitivity(t *testing.T) {
	t.Parallel()
	plan := func(norm float64, groups int) (*Plan, *Explanation) {
		t.Helper()
		q := &privalytics.Query{Epsilon: 1, Delta: 1e-6, Noise: "gaussian", GroupBy: []privalytics.GroupKey{{Column: "category", Keys: cats}},
			Aggregates: []privalytics.Aggregate{{Op: "sum", Column: "amount", ContributionBoundsPerGroup: normBounds(0, 500, norm)}},
			Bounds:     privalytics.Bounds{MaxGroups: groups}}
		return explained(t, q)
	}
	// Binds: 600 < √5·500 (L0 = all five groups when max_groups is not given).
	p, ex := plan(600, 0)
	sigma := dpSigma(t, 1, 600, 1, 1e-6)
	if want := 1.959963984540054 * sigma; math.Abs(ex.Aggregates[0].HalfWidth-want) > 1e-3*want {
		t.Errorf("half-width %v, want %v (σ %v for L2 = 600)", ex.Aggregates[0].HalfWidth, want, sigma)
	}
	if want := 600 * 600 / (2 * sigma * sigma); math.Abs(p.Cost().Rho-want) > 1e-9*want {
		t.Errorf("ρ %v, want %v", p.Cost().Rho, want)
	}
	if !strings.Contains(ex.Aggregates[0].Note, "L2 norm of at most 600") || p.l0 != 5 {
		t.Errorf("L0 %d, note %q: want L0 5 and the note to say the norm", p.l0, ex.Aggregates[0].Note)
	}
	// Does not bind: with L0 1 the clamp's 500 is below the norm.
	_, ex = plan(600, 1)
	if want := 1.959963984540054 * dpSigma(t, 1, 500, 1, 1e-6); math.Abs(ex.Aggregates[0].HalfWidth-want) > 1e-3*want {
		t.Errorf("a norm that does not bind: half-width %v, want the clamp's %v", ex.Aggregates[0].HalfWidth, want)
	}
	for _, c := range []struct {
		q    privalytics.Query
		want string
	}{
		{privalytics.Query{Epsilon: 1, Aggregates: []privalytics.Aggregate{{Op: "sum", Column: "amount", ContributionBoundsPerGroup: normBounds(0, 5, 3)}}}, "needs Gaussian noise"},
		{privalytics.Query{Epsilon: 1, Delta: 1e-6, Noise: "gaussian", Aggregates: []privalytics.Aggregate{{Op: "mean", Column: "amount", ContributionBoundsPerGroup: normBounds(0, 5, 3)}}}, "applies to count and sum"},
		{privalytics.Query{Epsilon: 1, Delta: 1e-6, Noise: "gaussian", Aggregates: []privalytics.Aggregate{{Op: "count", ContributionBoundsPerGroup: normBounds(0, 5, -1)}}}, "finite number > 0"},
		{privalytics.Query{Epsilon: 1, Delta: 1e-6, Noise: "gaussian", Aggregates: []privalytics.Aggregate{{Op: "sum", Column: "amount", ContributionBoundsPerGroup: normBounds(0, 5, math.Inf(1))}}}, "finite number > 0"},
	} {
		if _, err := NewPlan(&c.q, schema, DefaultLimits()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want an error saying %q", c.q.Aggregates[0], err, c.want)
		}
	}
}
