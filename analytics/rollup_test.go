package analytics

import (
	"math"
	"strings"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/dp/dptest"
)

func rollupQuery() *privalytics.Query {
	return &privalytics.Query{Epsilon: 1, Rollup: true,
		GroupBy: []privalytics.GroupKey{{Column: "channel", Keys: []string{"web", "app", "store"}}, {Column: "category", Keys: cats}},
		Aggregates: []privalytics.Aggregate{
			{Name: "rows", Op: "count"},
			{Name: "revenue", Op: "sum", Column: "amount", Lower: f64(0), Upper: f64(100)},
		},
		Bounds: privalytics.Bounds{MaxGroups: 4, MaxRowsPerGroup: 5}}
}

// TestRollupExact: without noise, each subtotal is the sum of its cells,
// and the grand total the sum of all, with the keys summed over left empty.
func TestRollupExact(t *testing.T) {
	t.Parallel()
	snap := snapshotOf(randomEvents(newRNG(5, 5), 3000, 200), 512)
	res := run(t, rollupQuery(), snap, dptest.NoNoise())
	if len(res.Rows) != 15+3+1 {
		t.Fatalf("%d rows, want 15 cells, 3 channel subtotals and a grand total", len(res.Rows))
	}
	byChannel := map[string][2]float64{}
	var total [2]float64
	for _, r := range res.Rows[:15] {
		if r.Subtotal != 0 {
			t.Fatalf("released cell %v marked subtotal %d", r.Key, r.Subtotal)
		}
		s := byChannel[r.Key[0]]
		for i := range s {
			s[i] += r.Cells[i].Value
			total[i] += r.Cells[i].Value
		}
		byChannel[r.Key[0]] = s
	}
	for _, r := range res.Rows[15:18] {
		want := byChannel[r.Key[0]]
		if r.Subtotal != 1 || r.Key[1] != "" || r.Cells[0].Value != want[0] || math.Abs(r.Cells[1].Value-want[1]) > 1e-6 {
			t.Errorf("subtotal row %+v, want key [%s, \"\"], subtotal 1, values %v", r, r.Key[0], want)
		}
	}
	g := res.Rows[18]
	if g.Subtotal != 2 || g.Key[0] != "" || g.Key[1] != "" || g.Cells[0].Value != total[0] || math.Abs(g.Cells[1].Value-total[1]) > 1e-6 {
		t.Errorf("grand total %+v, want values %v", g, total)
	}
	if total[0] == 0 || total[1] == 0 {
		t.Fatal("no rows counted: the test data did not reach the query")
	}
}

// TestRollupNoisy: with the secure noise, a subtotal is still the sum of the
// released cells (none was clamped at zero: each true count is about 600, 15
// Laplace scales of 40 away), and its interval is that of the sum of the
// cells' noise.
func TestRollupNoisy(t *testing.T) {
	t.Parallel()
	snap := snapshotOf(randomEvents(newRNG(6, 6), 20000, 2000), 4096)
	res := run(t, rollupQuery(), snap, dp.Secure())
	cell := res.Rows[0].Cells[0]
	cellHalf := (cell.Upper - cell.Lower) / 2
	var sum float64
	for _, r := range res.Rows[:15] {
		if r.Cells[0].Value <= 0 {
			t.Fatalf("cell %v = %g was clamped at zero, so the subtotal need not be the cells' sum", r.Key, r.Cells[0].Value)
		}
		sum += r.Cells[0].Value
	}
	g := res.Rows[len(res.Rows)-1]
	if g.Subtotal != 2 || math.Abs(g.Cells[0].Value-sum) > 1e-6 {
		t.Fatalf("grand total %v, want the sum of the cells %g", g.Cells[0].Value, sum)
	}
	// A cell's 95% half-width is b·ln 20 (the library's, for Laplace noise of
	// scale b); the sum of 15 such noises is within a hair of the normal of
	// variance 15·2b², whose half-width is 1.96·√30·b.
	half := (g.Cells[0].Upper - g.Cells[0].Lower) / 2
	want := 1.959964 * math.Sqrt(30) / math.Log(20)
	if r := half / cellHalf; r < want || r > 1.05*want {
		t.Errorf("grand total's half-width %.1f is %.2f× a cell's %.1f, want %.2f× (1.96·√30 / ln 20)", half, r, cellHalf, want)
	}
	if math.Abs(g.Cells[0].Value-(g.Cells[0].Upper+g.Cells[0].Lower)/2) > 1e-6 {
		t.Errorf("grand total's interval [%g, %g] is not centred on %g", g.Cells[0].Lower, g.Cells[0].Upper, g.Cells[0].Value)
	}
}

// TestRollupRefused: a rollup that could not add up is refused from the
// query alone (NewPlan), before anything is spent, saying what to change.
func TestRollupRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(q *privalytics.Query)
		want string
	}{
		{"data-derived keys", func(q *privalytics.Query) { q.GroupBy[1].Keys, q.Delta = nil, 1e-6 }, "partition selection suppresses"},
		{"distinct customers", func(q *privalytics.Query) {
			q.Aggregates = append(q.Aggregates, privalytics.Aggregate{Name: "customers", Op: "distinct_customers"})
		}, "count twice"},
		{"mean", func(q *privalytics.Query) {
			q.Aggregates = append(q.Aggregates, privalytics.Aggregate{Name: "avg", Op: "mean", Column: "amount", Lower: f64(0), Upper: f64(100)})
		}, "not a sum of its groups"},
		{"no group_by", func(q *privalytics.Query) { q.GroupBy = nil }, "give group_by"},
	} {
		q := rollupQuery()
		tc.edit(q)
		_, err := NewPlan(q, schema, DefaultLimits())
		if err == nil || privalytics.ErrorCode(err) != privalytics.EINVALID || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: NewPlan error %v, want invalid with %q", tc.name, err, tc.want)
		}
	}
}

// TestRollupExplain: explain predicts each level's half-width from the
// number of cells it sums — 5 categories per channel, then all 15 cells.
func TestRollupExplain(t *testing.T) {
	t.Parallel()
	p, err := NewPlan(rollupQuery(), schema, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if got := p.subtotalSizes(); len(got) != 2 || got[0] != 5 || got[1] != 15 {
		t.Fatalf("subtotal sizes %v, want [5 15] (the last key's 5 categories, then 3 × 5)", got)
	}
	ex, err := p.Explain(dp.Secure())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range ex.Aggregates {
		want := []float64{dp.SumHalfWidth(dp.Laplace, a.HalfWidth, 5, 0.95), dp.SumHalfWidth(dp.Laplace, a.HalfWidth, 15, 0.95)}
		if len(a.SubtotalHalfWidths) != 2 || math.Abs(a.SubtotalHalfWidths[0]-want[0]) > 1e-9*want[0] || math.Abs(a.SubtotalHalfWidths[1]-want[1]) > 1e-9*want[1] {
			t.Errorf("%s: subtotal half-widths %v, want %v", a.Name, a.SubtotalHalfWidths, want)
		}
	}
}
