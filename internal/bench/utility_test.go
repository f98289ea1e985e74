package bench

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/analytics"
	"github.com/privalytics/privalytics/ingest"
	"github.com/privalytics/privalytics/store/events"
	"github.com/privalytics/privalytics/synth"
)

// utilityStore imports opt's shop into a real event store (validation,
// pseudonymisation, Arrow), as the server's import does, and returns its
// snapshot.
func utilityStore(t *testing.T, opt UtilityOptions) (*privalytics.Tenant, *privalytics.Snapshot) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "shop.csv")
	gen, err := synth.New(utilityShop(opt))
	if err != nil {
		t.Fatal(err)
	}
	buf := []byte(strings.Join(synth.CSVHeader(), ",") + "\n")
	var ev synth.Event
	for gen.Next(&ev) {
		buf = synth.AppendCSV(buf, &ev)
	}
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := ingest.NewPseudonymiser(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	schema := privalytics.DefaultRetailSchema()
	conv, err := ingest.NewConverter(schema, p, ingest.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := events.Open(filepath.Join(dir, "events"), events.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := ingest.BenchImport(ctx, path, "csv", conv, nil, 10_000, func(r arrow.Record) error {
		_, err := st.Append(ctx, "utility", schema, privalytics.Batch{Record: r})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	snap, err := st.Snapshot(ctx, "utility", schema)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Rows() != opt.Events {
		t.Fatalf("store holds %d rows, want %d", snap.Rows(), opt.Events)
	}
	return &privalytics.Tenant{ID: "utility", Schema: schema, Purposes: []string{"analytics"}}, snap
}

// The reference's answers are exact: its purchases per month and customers
// per store equal the engine's non-private path (an independent count over
// the stored, pseudonymised rows), and the revenue per month sums to the
// revenue per category. The reduced workload reports every question, each
// with every cell, and the section prints each one and the targets.
func TestUtilityReduced(t *testing.T) {
	opt := UtilityOptions{Customers: 1_000, Events: 30_000, Seed: 5, Epsilon: 0.5, Runs: 1, Candidates: 2}
	tenant, snap := utilityStore(t, opt)
	cfg := utilityShop(opt)
	truths, err := utilReference(cfg, utilityWorkload)
	if err != nil {
		t.Fatal(err)
	}
	byTitle := map[string]*utilTruth{}
	for i, q := range utilityWorkload {
		byTitle[q.title] = truths[i]
	}
	plain := func(q *privalytics.Query) map[string]float64 {
		t.Helper()
		plan, err := analytics.NewPlan(q, tenant.Schema, analytics.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		res, err := analytics.ExecutePlain(context.Background(), plan, snap)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for i, k := range res.Keys {
			out[strings.Join(k, "|")] = res.Values[i][0]
		}
		return out
	}
	period := []privalytics.Filter{{Column: "type", Eq: privalytics.EventPurchase}, {Column: "ts", Gte: "2025-01-01", Lt: "2026-01-01"}}
	counts := plain(&privalytics.Query{Where: period, GroupBy: []privalytics.GroupKey{{Time: "month"}}, Aggregates: []privalytics.Aggregate{{Op: "count"}}, Bounds: privalytics.Bounds{MaxGroups: 1000, MaxRowsPerGroup: 100_000}, Epsilon: 1})
	want := byTitle["purchases per month"].cells
	if len(counts) != 12 || len(want) != 12 {
		t.Fatalf("engine %d months, reference %d; want 12", len(counts), len(want))
	}
	for k, v := range counts {
		if want[k] != v {
			t.Errorf("purchases in %s: reference %v, engine's non-private count %v", k, want[k], v)
		}
	}
	distinct := plain(&privalytics.Query{Where: period, GroupBy: []privalytics.GroupKey{{Column: "store", Keys: byTitle["customers per store"].keys[0]}}, Aggregates: []privalytics.Aggregate{{Op: "distinct_customers"}}, Bounds: privalytics.Bounds{MaxGroups: 1000}, Epsilon: 1})
	for k, v := range byTitle["customers per store"].cells {
		if distinct[k] != v {
			t.Errorf("customers of store %s: reference %v, engine's non-private count %v", k, v, distinct[k])
		}
	}
	var byMonth, byCat float64
	for _, v := range byTitle["revenue per month"].cells {
		byMonth += v
	}
	for _, v := range byTitle["revenue per category"].cells {
		byCat += v
	}
	if byMonth <= 0 || abs(byMonth-byCat) > 1e-6*byMonth {
		t.Errorf("revenue per month sums to %v, per category to %v", byMonth, byCat)
	}

	rows, err := utilityOn(context.Background(), tenant, snap, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(utilityWorkload) || len(rows) < 10 {
		t.Fatalf("%d questions reported, want the workload's %d (at least 10)", len(rows), len(utilityWorkload))
	}
	var out bytes.Buffer
	writeUtility(&out, rows, opt.Epsilon, time.Second)
	for i, r := range rows {
		tr := truths[i]
		for _, s := range []utilScore{r.base, r.auto, r.raw, r.ceil} {
			if s.cells != len(tr.cells) || s.eps != opt.Epsilon || s.median < 0 || s.within10 < 0 || s.within10 > 1 {
				t.Errorf("%s: score %+v, want %d cells at ε %v", r.q.title, s, len(tr.cells), opt.Epsilon)
			}
		}
		// The uncorrected answer is asked as such: tuning reports no
		// correction for it.
		if tr := r.raw.res.Tuning; r.raw.res != r.auto.res && (tr == nil || slices.ContainsFunc(tr.Aggregates, func(a privalytics.TunedAggregate) bool { return a.Correction != 0 })) {
			t.Errorf("%s: the uncorrected answer's tuning %+v", r.q.title, tr)
		}
		if r.auto.res.Tuning == nil {
			t.Errorf("%s: the tuned answer has no tuning report", r.q.title)
		}
		if !strings.Contains(out.String(), r.q.title+"  ") {
			t.Errorf("the report has no line for %q", r.q.title)
		}
		// One run each: the drawn cells are the last answer's cells not
		// hidden, and the counts of them held and far off are among them.
		for _, s := range []utilScore{r.base, r.auto} {
			drawn, held := 0, 0
			for _, row := range s.res.Rows {
				if c, w := row.Cells[0], tr.cells[strings.Join(row.Key, "|")]; w > 0 && !c.Hidden {
					drawn++
					if c.Lower <= w && w <= c.Upper {
						held++
					}
				}
			}
			if s.drawn != drawn || s.held != held || s.wild > drawn {
				t.Errorf("%s: %d drawn, %d held, %d more than 2× off; the answer has %d drawn, %d held", r.q.title, s.drawn, s.held, s.wild, drawn, held)
			}
		}
	}
	// Workload-aware: the per-month questions answered as rollups of their
	// per-month × channel questions (channel has 3 keys), each side charged
	// half of the joint query's 2ε, every cell and subtotal scored.
	joint := map[string]string{}
	for i, r := range rows {
		if r.joint == nil {
			continue
		}
		joint[r.q.title] = r.jointWith
		if s := *r.joint; s.cells != len(truths[i].cells) || s.eps != opt.Epsilon || s.median < 0 || abs(s.res.Cost.Epsilon-2*opt.Epsilon) > 1e-6 {
			t.Errorf("%s, workload-aware: score %+v (cost %+v), want %d cells at ε %v of a 2ε query", r.q.title, s, s.res.Cost, len(truths[i].cells), opt.Epsilon)
		}
	}
	wantJoint := map[string]string{"revenue per month": "revenue per month × channel", "revenue per month × channel": "revenue per month",
		"purchases per month": "purchases per month × channel", "purchases per month × channel": "purchases per month"}
	if diff := cmp.Diff(wantJoint, joint); diff != "" {
		t.Errorf("questions answered workload-aware (-want +got):\n%s", diff)
	}
	losses := 0
	for _, r := range rows {
		if r.hasLoss {
			losses++
			if r.exactLoss < 0 || r.exactLoss > 1 || r.estLoss < 0 || r.estLoss > 1 || r.heavy < 0 || r.heavy > 1 || r.exactLoss > 0 && r.heavy == 0 {
				t.Errorf("%s: estimated loss %v, exact %v, of it from the heaviest %v; want shares in [0, 1], the last above 0 when something is removed", r.q.title, r.estLoss, r.exactLoss, r.heavy)
			}
		}
	}
	if losses != 9 {
		t.Errorf("%d questions report a bounding loss, want the 9 tuned counts and sums", losses)
	}
	for _, s := range []string{"tuned ÷ defaults, share within 10%", "within 1.25× of the ceiling", "workload, ", "workload-aware ε", "estimated loss", "without the correction", "bootstrap over runs", fmt.Sprintf("of it, from the heaviest %d", utilHidden(opt.Epsilon)), "interval holds the truth"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("the report lacks %q:\n%s", s, out.String())
		}
	}
}

// TestRatioInterval: runs whose cells all read 2 against runs that read 1
// give exactly 2; when the tuned side's runs read 1 or 3, a resample of two
// runs has median 1 only when both are the 1-run (a quarter of draws), else
// 3 (the pooled six cells' upper median), so the interval spans 1 to 3.
func TestRatioInterval(t *testing.T) {
	ones := utilScore{runs: [][]float64{{1, 1, 1}}}
	if lo, hi := ratioInterval(utilScore{runs: [][]float64{{2, 2, 2}, {2, 2, 2}}}, ones); lo != 2 || hi != 2 {
		t.Errorf("interval [%v, %v], want [2, 2]", lo, hi)
	}
	if lo, hi := ratioInterval(utilScore{runs: [][]float64{{1, 1, 1}, {3, 3, 3}}}, ones); lo != 1 || hi != 3 {
		t.Errorf("interval [%v, %v], want [1, 3]", lo, hi)
	}
	if lo, hi := ratioInterval(utilScore{}, ones); !math.IsNaN(lo) || !math.IsNaN(hi) {
		t.Errorf("interval [%v, %v] without runs, want NaN", lo, hi)
	}
}

// TestUtilExactLoss: the exact bounding loss on a hand-made reference — two
// customers, A with 10 and 30 in two cells, B with 50 in one; 90 in all.
func TestUtilExactLoss(t *testing.T) {
	ref := &utilTruth{perCus: map[string]map[string]float64{"A": {"x": 10, "y": 30}, "B": {"x": 50}}}
	for _, tc := range []struct {
		name        string
		l0          int
		upper, norm float64
		want        float64
	}{
		// Clamp 20: A keeps 10 + 20, B 20: 50 of 90.
		{"clamp", 2, 20, 0, 1 - 50.0/90},
		// L0 1: A keeps half of its clamped 30 in expectation, B its 20: 35.
		{"L0 1", 1, 20, 0, 1 - 35.0/90},
		// Norm 20: A's clamped (10, 20) has norm √500, scaled by 20/√500;
		// B's (20) is within it.
		{"norm", 2, 20, 20, 1 - (30*20/math.Sqrt(500)+20)/90},
		{"nothing cut", 2, 100, 0, 0},
	} {
		if got, _ := utilExactLoss(ref, tc.l0, tc.upper, tc.norm, 1); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: loss %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestUtilHeaviestShare: utilExactLoss's second result on the same
// reference — clamp 20 removes 10 from A (its 30) and 30 from B: the
// heaviest one holds 30 of the 40 removed, both all of it; nothing removed,
// no share. One noise scale of a tuning histogram at ε 0.5 (5% of it:
// Laplace scale 40) is 40 customers.
func TestUtilHeaviestShare(t *testing.T) {
	ref := &utilTruth{perCus: map[string]map[string]float64{"A": {"x": 10, "y": 30}, "B": {"x": 50}}}
	for _, tc := range []struct {
		n     int
		upper float64
		want  float64
	}{{1, 20, 30.0 / 40}, {2, 20, 1}, {5, 20, 1}, {0, 20, 0}, {1, 100, 0}} {
		if _, got := utilExactLoss(ref, 2, tc.upper, 0, tc.n); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("heaviest %d at clamp %v: %v, want %v", tc.n, tc.upper, got, tc.want)
		}
	}
	if got := utilHidden(0.5); got != 40 {
		t.Errorf("utilHidden(0.5) = %d, want 40", got)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
