package api_test

import (
	"fmt"
	"math"
	"net/http"
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
