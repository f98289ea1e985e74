package api_test

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/privalytics/privalytics/api"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/dp"
)

// TestTunedDefaultNeighbours is a black-box neighbouring-dataset test of the
// tuned default path (a sum without bounds), over HTTP with the secure
// mechanisms: two servers whose data differ by one heavy customer (50
// purchases of 1,000.00 in tea, where everyone else bought once for 10.00) are
// asked the same query 200 times each (a different confidence each time, so no
// answer is a cached repeat). For tail events of the tea cell's released value,
// P(event | one dataset) ≤ e^ε · P(event | the other) + a sampling tolerance must
// hold both ways. Without the per-group clamp the heavy customer would move
// the cell by 50,000 against a noise of about 20, and every tail test would fail.
func TestTunedDefaultNeighbours(t *testing.T) {
	t.Parallel()
	var base []string
	for i := range 2000 {
		base = append(base, fmt.Sprintf(`{"customer_id":"c%d","ts":"2025-03-%02dT10:00:00Z","type":"purchase","channel":"web","category":%q,"store":"s1","amount":"10.00"}`,
			i, 1+i%28, []string{"bread", "tea"}[i%2]))
	}
	heavy := slices.Clone(base)
	for i := range 50 {
		heavy = append(heavy, fmt.Sprintf(`{"customer_id":"heavy","ts":"2025-03-%02dT11:00:00Z","type":"purchase","channel":"web","category":"tea","store":"s1","amount":"1000.00"}`, 1+i%28))
	}
	const eps = 1.0
	const runs = 200
	released := func(events []string) []float64 {
		w := newWorld(t, api.DefaultLimits(), dp.Secure(), events)
		var out []float64
		for i := range runs {
			q := fmt.Sprintf(`{"where":[{"column":"ts","gte":"2025-03-01","lt":"2025-04-01"}],"group_by":[{"column":"category","keys":["bread","tea"]}],
				"aggregates":[{"name":"revenue","op":"sum","column":"amount"}],"epsilon":%v,"confidence":%v}`, eps, 0.9+float64(i)*1e-4)
			var res wire.Result
			w.f.mustDo(t, http.MethodPost, "/v1/queries", w.query, "application/json", nil, []byte(q), http.StatusOK, &res)
			if res.Tuning == nil || !res.Aggregates[0].Tuned {
				t.Fatalf("a sum without bounds was not tuned: %+v", res)
			}
			if i == 0 && (res.Tuning.MaxGroups != 1 || res.Tuning.Aggregates[0].Upper < 8 || res.Tuning.Aggregates[0].Upper > 64) {
				t.Errorf("tuning chose L0 %d and clamp %v; every customer buys once in one category for 10.00: want 1 and 16-ish (%s)",
					res.Tuning.MaxGroups, res.Tuning.Aggregates[0].Upper, res.Tuning.Reason)
			}
			out = append(out, res.Rows[1].Cells[0].Value) // tea
		}
		return out
	}
	without, with := released(base), released(heavy)
	sorted := slices.Sorted(slices.Values(without))
	frac := func(v []float64, pred func(float64) bool) float64 {
		n := 0
		for _, x := range v {
			if pred(x) {
				n++
			}
		}
		return float64(n) / float64(len(v))
	}
	// Two binomial standard errors at p = 1/2 over 200 runs, twice.
	tol := 4 * math.Sqrt(0.25/runs)
	var failures []string
	for _, q := range []float64{0.05, 0.1, 0.9, 0.95} {
		cut := sorted[int(q*runs)]
		above := func(x float64) bool { return x > cut }
		below := func(x float64) bool { return x <= cut }
		for _, ev := range []struct {
			name string
			pred func(float64) bool
		}{{"above", above}, {"below", below}} {
			pw, po := frac(with, ev.pred), frac(without, ev.pred)
			if pw > math.Exp(eps)*po+tol || po > math.Exp(eps)*pw+tol {
				failures = append(failures, fmt.Sprintf("value %s %.1f: P(with heavy) %.3f, P(without) %.3f", ev.name, cut, pw, po))
			}
		}
	}
	if len(failures) > 0 {
		t.Errorf("the heavy customer moves the tuned answer beyond ε = %v:\n%s", eps, strings.Join(failures, "\n"))
	}
}

// TestCountsWithoutBoundsAreTuned: a query of counts that gives no bounds is
// tuned like a sum (the answer says what tuning chose; each customer here buys
// in 3 of the 4 weeks, so L0 3 to 4); one whose ε cannot pay for the tuning
// histograms (ε 1e-14: each histogram would get 7.5e-16, below the library's
// 2^-50) runs on the fixed defaults instead, as before — decided from ε alone;
// and any bound given keeps the query on fixed bounds.
func TestCountsWithoutBoundsAreTuned(t *testing.T) {
	t.Parallel()
	var events []string
	for i := range 3000 {
		for w := range 3 {
			events = append(events, fmt.Sprintf(`{"customer_id":"c%d","ts":"2025-03-%02dT10:00:00Z","type":"purchase","channel":"web","category":"tea","store":"s1","amount":"10.00"}`, i, 1+7*((i+w)%4)))
		}
	}
	w := newWorld(t, api.DefaultLimits(), dp.Secure(), events)
	ask := func(q string) wire.Result {
		var res wire.Result
		w.f.mustDo(t, http.MethodPost, "/v1/queries", w.query, "application/json", nil, []byte(q), http.StatusOK, &res)
		return res
	}
	const weekly = `"where":[{"column":"ts","gte":"2025-03-01","lt":"2025-03-29"}],"group_by":[{"time":"week"}]`
	res := ask(`{` + weekly + `,"aggregates":[{"op":"count"},{"op":"distinct_customers"}],"epsilon":1}`)
	if res.Tuning == nil || !res.Aggregates[0].Tuned {
		t.Fatalf("counts without bounds were not tuned: %+v", res)
	}
	if l0 := res.Tuning.MaxGroups; l0 < 3 || l0 > 4 {
		t.Errorf("tuning chose L0 %d; every customer buys in 3 of the 4 weeks: want 3 or 4 (%s)", l0, res.Tuning.Reason)
	}
	if res := ask(`{` + weekly + `,"aggregates":[{"op":"count"}],"epsilon":1e-14}`); res.Tuning != nil {
		t.Errorf("ε 1e-14 cannot pay for the histograms, yet the query was tuned: %+v", res.Tuning)
	}
	if res := ask(`{` + weekly + `,"aggregates":[{"op":"count"}],"bounds":{"max_groups":2},"epsilon":1}`); res.Tuning != nil {
		t.Errorf("a query with bounds was tuned: %+v", res.Tuning)
	}
}
