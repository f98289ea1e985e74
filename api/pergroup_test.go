package api_test

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/privalytics/privalytics/api"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/dp/dptest"
)

// TestPerGroupBoundsOverHTTP: contribution_bounds_per_group in JSON and SQL,
// end to end, without noise: a heavy customer's 50 rows of 100.00 in one cell
// move its sum by exactly the per-group upper bound and its count by the
// count's; the answer and explain report the clamp.
func TestPerGroupBoundsOverHTTP(t *testing.T) {
	t.Parallel()
	heavy := baseEvents()
	for i := range 50 {
		heavy = append(heavy, fmt.Sprintf(`{"customer_id":"heavy","ts":"2025-03-10T%02d:%02d:00Z","type":"purchase","channel":"web","category":"tea","store":"s1","amount":"100.00"}`, i/60, i%60))
	}
	const jsonQ = `{"group_by":[{"column":"category","keys":["bread","cake","coffee","tea","wine"]}],
		"aggregates":[{"name":"n","op":"count","contribution_bounds_per_group":{"lower":0,"upper":2}},
		              {"name":"revenue","op":"sum","column":"amount","contribution_bounds_per_group":{"lower":0,"upper":30}}],
		"epsilon":1}`
	const sqlQ = `SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1, delta = 1e-6) category, COUNT(*, contribution_bounds_per_group => (0, 2)) AS n,
		SUM(amount, contribution_bounds_per_group => (0, 30)) AS revenue FROM events GROUP BY category`
	answers := map[string]map[string][2]float64{}
	for name, events := range map[string][]string{"without": baseEvents(), "with": heavy} {
		w := newWorld(t, api.DefaultLimits(), dptest.NoNoise(), events)
		for route, body := range map[string]string{"/v1/queries": jsonQ, "/v1/sql": sqlQ} {
			ct := "application/json"
			if route == "/v1/sql" {
				ct = "text/plain"
			}
			var res wire.Result
			w.f.mustDo(t, http.MethodPost, route, w.query, ct, nil, []byte(body), http.StatusOK, &res)
			if g := res.Aggregates[1].ContributionBoundsPerGroup; g == nil || g.Upper != 30 {
				t.Fatalf("%s: the answer does not report the per-group clamp: %+v", route, res.Aggregates[1])
			}
			cells := map[string][2]float64{}
			for _, r := range res.Rows {
				cells[r.Key[0]] = [2]float64{r.Cells[0].Value, r.Cells[1].Value}
			}
			answers[name+route] = cells
		}
	}
	// Explain, with the secure mechanisms' interval formulas.
	w := newWorld(t, api.DefaultLimits(), dp.Secure(), baseEvents())
	var ex wire.Explanation
	w.f.mustDo(t, http.MethodPost, "/v1/queries:explain", w.query, "application/json", nil, []byte(jsonQ), http.StatusOK, &ex)
	// Laplace, ε 0.5 per aggregate, L0 4 (the default with group_by) × 30: b = 240; half-width b·ln 20.
	if want := 240 * math.Log(20); math.Abs(ex.Aggregates[1].HalfWidth-want) > 1e-6*want {
		t.Errorf("explain: half-width %v, want %v", ex.Aggregates[1].HalfWidth, want)
	}
	for _, route := range []string{"/v1/queries", "/v1/sql"} {
		for cat, w := range answers["with"+route] {
			wo := answers["without"+route][cat]
			want := [2]float64{0, 0}
			if cat == "tea" {
				want = [2]float64{2, 30}
			}
			if d := [2]float64{w[0] - wo[0], w[1] - wo[1]}; math.Abs(d[0]-want[0]) > 1e-9 || math.Abs(d[1]-want[1]) > 1e-9 {
				t.Errorf("%s %s: the heavy customer moved (count, sum) by %v, want %v", route, cat, d, want)
			}
		}
	}
}

// TestWorkloadExplain: POST /v1/workloads:explain explains each query, adds
// their costs, says whether they fit, predicts the hidden flag, and spends
// nothing; a bad query is named by its index.
func TestWorkloadExplain(t *testing.T) {
	t.Parallel()
	w := newWorld(t, api.DefaultLimits(), dp.Secure(), baseEvents())
	body := `{"queries":[
		{"group_by":[{"column":"category","keys":["bread","tea"]}],"aggregates":[{"op":"sum","column":"amount","contribution_bounds_per_group":{"lower":0,"upper":30}}],"epsilon":0.5},
		{"aggregates":[{"op":"sum","column":"amount"}],"epsilon":0.25,"delta":1e-6}]}`
	var ex wire.WorkloadExplanation
	w.f.mustDo(t, http.MethodPost, "/v1/workloads:explain", w.query, "application/json", nil, []byte(body), http.StatusOK, &ex)
	if len(ex.Queries) != 2 || math.Abs(ex.Cost.Epsilon-0.75) > 1e-12 || ex.Cost.Delta != 1e-6 || !ex.Fits {
		t.Fatalf("workload: %d queries, cost %+v, fits %v; want 2, ε 0.75, δ 1e-6 (the tuned query may use Gaussian noise), fits", len(ex.Queries), ex.Cost, ex.Fits)
	}
	if math.Abs(ex.Cost.Rho-(ex.Queries[0].Cost.Rho+ex.Queries[1].Cost.Rho)) > 1e-12 {
		t.Errorf("total ρ %v is not the sum of %v and %v", ex.Cost.Rho, ex.Queries[0].Cost.Rho, ex.Queries[1].Cost.Rho)
	}
	// L0 2 (two public keys) × 30 / ε 0.5: b = 120; half-width b·ln 20.
	a := ex.Queries[0].Aggregates[0]
	if want := 120 * math.Log(20); math.Abs(a.HalfWidth-want) > 1e-6*want || a.HiddenBelow != a.HalfWidth {
		t.Errorf("per-group sum: half-width %v hidden_below %v, want both %v", a.HalfWidth, a.HiddenBelow, want)
	}
	if !ex.Queries[1].Aggregates[0].Tuned {
		t.Errorf("the sum without bounds is not explained as tuned: %+v", ex.Queries[1].Aggregates[0])
	}
	if spent := w.spent(t); spent != 0 {
		t.Errorf("explaining a workload spent ε %v", spent)
	}
	status, msg, _ := w.f.do(t, http.MethodPost, "/v1/workloads:explain", w.query, "application/json", nil,
		[]byte(`{"queries":[{"aggregates":[{"op":"count"}],"epsilon":1},{"aggregates":[{"op":"mode"}],"epsilon":1}]}`))
	if status != http.StatusBadRequest || !strings.Contains(msg.Error.Message, "queries[1]") {
		t.Errorf("a bad second query: %d %q, want 400 naming queries[1]", status, msg.Error.Message)
	}
}

// TestRollupOverHTTP: rollup in JSON and GROUP BY ROLLUP in SQL, end to end
// (without noise, so that sums are exact; analytics' TestRollupNoisy has the
// noise): the subtotals are the sums of the released cells inside their
// intervals, cost nothing more than the query, and a rollup that could not
// add up is a 400 that spends nothing.
func TestRollupOverHTTP(t *testing.T) {
	t.Parallel()
	const jsonQ = `{"where":[{"column":"ts","gte":"2025-03-03","lt":"2025-03-24"}],
		"group_by":[{"column":"channel","keys":["web","app","store"]},{"time":"week"}],
		"aggregates":[{"name":"n","op":"count"},{"name":"revenue","op":"sum","column":"amount","lower":0,"upper":50}],
		"bounds":{"max_groups":3,"max_rows_per_group":3},"epsilon":1,"rollup":true}`
	const sqlQ = `SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1, max_groups_contributed = 3, max_rows_per_group = 3) channel,
		TIMESTAMP_TRUNC(ts, WEEK) AS wk, COUNT(*) AS n, SUM(amount, contribution_bounds_per_row => (0, 50)) AS revenue FROM events
		WHERE ts >= '2025-03-03' AND ts < '2025-03-24' GROUP BY ROLLUP(channel, wk)`
	w := newWorld(t, api.DefaultLimits(), dptest.NoNoise(), baseEvents())
	for route, body := range map[string]string{"/v1/queries": jsonQ, "/v1/sql": sqlQ} {
		ct := "application/json"
		if route == "/v1/sql" {
			ct = "text/plain"
		}
		before := w.spent(t)
		var res wire.Result
		w.f.mustDo(t, http.MethodPost, route, w.query, ct, nil, []byte(body), http.StatusOK, &res)
		if got := w.spent(t) - before; math.Abs(got-1) > 1e-9 || math.Abs(res.Cost.Epsilon-1) > 1e-9 {
			t.Errorf("%s: spent ε %v (answer says %v), want the query's 1", route, got, res.Cost.Epsilon)
		}
		if len(res.Rows) != 9+3+1 {
			t.Fatalf("%s: %d rows, want 9 cells (3 channels × 3 weeks), 3 channel subtotals, 1 grand total", route, len(res.Rows))
		}
		sums := map[string]float64{}
		for _, r := range res.Rows[:9] {
			sums[r.Key[0]] += r.Cells[0].Value
			sums[""] += r.Cells[0].Value
		}
		if sums[""] != 60 {
			t.Fatalf("%s: the cells count %v rows, want the 60 events", route, sums[""])
		}
		for _, r := range res.Rows[9:] {
			want := map[int]bool{1: r.Key[1] == "" && r.Key[0] != "", 2: r.Key[0] == "" && r.Key[1] == ""}
			if !want[r.Subtotal] || math.Abs(r.Cells[0].Value-sums[r.Key[0]]) > 1e-6 || r.Cells[0].Upper <= r.Cells[0].Value {
				t.Errorf("%s: subtotal row %+v, want the sum %v of its cells inside its interval", route, r, sums[r.Key[0]])
			}
		}
	}
	// Explain (with the secure mechanisms' interval formulas) predicts each
	// subtotal level's half-width: the answer's, which does not depend on
	// the data (Upper − Value: a lower end below zero is clamped).
	secure := newWorld(t, api.DefaultLimits(), dp.Secure(), baseEvents())
	var ex wire.Explanation
	secure.f.mustDo(t, http.MethodPost, "/v1/queries:explain", secure.query, "application/json", nil, []byte(jsonQ), http.StatusOK, &ex)
	if !strings.Contains(ex.Aggregates[0].Note, "rollup: a subtotal of k cells") || ex.Cost.Epsilon != 1 {
		t.Errorf("explain of a rollup: cost %+v, note %q; want ε 1 and the subtotals' error explained", ex.Cost, ex.Aggregates[0].Note)
	}
	pred := ex.Aggregates[1].SubtotalHalfWidths
	if len(pred) != 2 || !(pred[0] > ex.Aggregates[1].HalfWidth && pred[1] > pred[0]) {
		t.Fatalf("explain predicts subtotal half-widths %v around a cell's %v; want two levels, growing", pred, ex.Aggregates[1].HalfWidth)
	}
	var res wire.Result
	w.f.mustDo(t, http.MethodPost, "/v1/queries", w.query, "application/json", nil, []byte(jsonQ), http.StatusOK, &res)
	for _, r := range res.Rows {
		if r.Subtotal > 0 {
			if got := r.Cells[1].Upper - r.Cells[1].Value; math.Abs(got-pred[r.Subtotal-1]) > 1e-6*got {
				t.Errorf("subtotal %v (level %d): half-width %v, explain predicted %v", r.Key, r.Subtotal, got, pred[r.Subtotal-1])
			}
		}
	}
	before := w.spent(t)
	status, msg, _ := w.f.do(t, http.MethodPost, "/v1/queries", w.query, "application/json", nil,
		[]byte(`{"group_by":[{"column":"channel","keys":["web","app"]}],"aggregates":[{"op":"distinct_customers"}],"epsilon":1,"rollup":true}`))
	if status != http.StatusBadRequest || !strings.Contains(msg.Error.Message, "count twice") || w.spent(t) != before {
		t.Errorf("a rollup of distinct customers: %d %q, spent %v; want 400 saying why, nothing spent", status, msg.Error.Message, w.spent(t)-before)
	}
}
