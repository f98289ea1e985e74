package analytics

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/dp/dptest"
)

var schema = privalytics.DefaultRetailSchema()

// event is one test row, kept plain for the reference implementation.
type event struct {
	subj     uint64
	ts       time.Time
	typ      string
	channel  string
	category string // "" = null
	quantity int64
	amount   int64 // milli-units
	hasAmt   bool
}

var cats = []string{"bread", "cake", "coffee", "tea", "wine"}

func randomEvents(rng *testRNG, n, subjects int) []event {
	out := make([]event, n)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range out {
		e := &out[i]
		// Skewed: a few subjects have many rows.
		e.subj = uint64(int(math.Pow(rng.Float64(), 3) * float64(subjects)))
		e.ts = start.Add(time.Duration(rng.Int64N(int64(365 * 24 * time.Hour))))
		e.typ = []string{"purchase", "view", "refund"}[rng.IntN(3)]
		e.channel = []string{"web", "app", "store"}[rng.IntN(3)]
		if rng.IntN(10) > 0 {
			e.category = cats[rng.IntN(len(cats))]
		}
		e.quantity = int64(rng.IntN(4))
		if rng.IntN(8) > 0 {
			e.amount, e.hasAmt = rng.Int64N(200_000)-20_000, true
		}
	}
	return out
}

// snapshotOf builds a snapshot of the events in chunks of chunkRows.
func snapshotOf(events []event, chunkRows int) *privalytics.Snapshot {
	as := schema.Arrow()
	snap := &privalytics.Snapshot{Version: 1}
	nums := map[uint64]uint32{}
	for start := 0; start < len(events); start += chunkRows {
		part := events[start:min(start+chunkRows, len(events))]
		rb := array.NewRecordBuilder(memory.DefaultAllocator, as)
		subjects := make([]uint32, len(part))
		for i, e := range part {
			if _, ok := nums[e.subj]; !ok {
				nums[e.subj] = uint32(len(nums))
			}
			subjects[i] = nums[e.subj]
			for f := range as.NumFields() {
				b := rb.Field(f)
				switch as.Field(f).Name {
				case privalytics.SubjectColumn:
					b.(*array.Uint64Builder).Append(e.subj)
				case "ts":
					b.(*array.TimestampBuilder).Append(arrow.Timestamp(e.ts.UnixMicro()))
				case "type":
					b.(*array.BinaryDictionaryBuilder).AppendString(e.typ)
				case "channel":
					b.(*array.BinaryDictionaryBuilder).AppendString(e.channel)
				case "category":
					if e.category == "" {
						b.AppendNull()
					} else {
						b.(*array.BinaryDictionaryBuilder).AppendString(e.category)
					}
				case "quantity":
					b.(*array.Int64Builder).Append(e.quantity)
				case "amount":
					if e.hasAmt {
						b.(*array.Int64Builder).Append(e.amount)
					} else {
						b.AppendNull()
					}
				default:
					b.AppendNull()
				}
			}
		}
		snap.Chunks = append(snap.Chunks, privalytics.Chunk{Record: rb.NewRecord(), Subjects: subjects})
		rb.Release()
	}
	snap.Subjects = len(nums)
	return snap
}

// compacted returns snap with every chunk in the event store's compact
// in-memory form, failing unless some column changed form.
func compacted(t *testing.T, snap *privalytics.Snapshot) *privalytics.Snapshot {
	t.Helper()
	out := *snap
	out.Chunks = make([]privalytics.Chunk, len(snap.Chunks))
	changed := false
	for i, c := range snap.Chunks {
		out.Chunks[i] = privalytics.Chunk{Record: privalytics.CompactRecord(c.Record), Subjects: c.Subjects}
		changed = changed || !out.Chunks[i].Record.Schema().Equal(c.Record.Schema())
	}
	if !changed {
		t.Fatal("CompactRecord changed no column")
	}
	return &out
}

func f64(v float64) *float64 { return &v }

// run plans and executes q, releasing with m.
func run(t *testing.T, q *privalytics.Query, snap *privalytics.Snapshot, m dp.Mechanisms) *privalytics.Result {
	t.Helper()
	p, err := NewPlan(q, schema, DefaultLimits())
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	p, err = p.ResolveBounds(context.Background(), snap, nil, m)
	if err != nil {
		t.Fatalf("bounds: %v", err)
	}
	part, err := Execute(context.Background(), p, snap)
	if err != nil {
		t.Fatalf("execute: %v", err)
	}
	res, err := release(p, part, m)
	if err != nil {
		t.Fatalf("release: %v", err)
	}
	return res
}

// reference computes the query plainly over the events: maps, no cleverness.
type refQuery struct {
	keep   func(e event) bool
	keys   func(e event) (string, bool) // group key, or false to drop the row
	lo, hi int64                        // amount clamp, milli-units
}

type refCell struct {
	count, sum int64
	n          int64
	sq         float64 // Σ x² of the clamped values, natural units
	subjects   map[uint64]bool
}

func reference(events []event, rq refQuery) map[string]*refCell {
	out := map[string]*refCell{}
	for _, e := range events {
		if !rq.keep(e) {
			continue
		}
		k, ok := rq.keys(e)
		if !ok {
			continue
		}
		c := out[k]
		if c == nil {
			c = &refCell{subjects: map[uint64]bool{}}
			out[k] = c
		}
		c.count++
		c.subjects[e.subj] = true
		if e.hasAmt {
			c.n++
			x := min(rq.hi, max(rq.lo, e.amount))
			c.sum += x
			c.sq += float64(x) / 1000 * float64(x) / 1000
		}
	}
	return out
}

// TestExactnessAgainstReference: with bounds that never bind and no noise, every
// cell equals the plain reference, over random data, filters and groupings; and
// so does every cell of ExecutePlain. The last seed is large enough (200k rows)
// that Execute splits subjects into several partitions.
func TestExactnessAgainstReference(t *testing.T) {
	t.Parallel()
	for seed := range uint64(26) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			rng := newRNG(seed, 99)
			events := randomEvents(rng, 500+rng.IntN(3000), 20+rng.IntN(200))
			chunkRows := 1 + rng.IntN(700)
			if seed == 25 {
				events, chunkRows = randomEvents(rng, 200_000, 30_000), 50_000
			}
			// Odd seeds run on chunks in the event store's compact in-memory
			// form, with amounts coarse enough to be dictionary-encoded.
			compact := seed%2 == 1
			if compact {
				for i := range events {
					events[i].amount -= events[i].amount % 5000
				}
			}
			snap := snapshotOf(events, chunkRows)
			if compact {
				snap = compacted(t, snap)
			}

			q := &privalytics.Query{Epsilon: 1, Delta: 1e-6,
				Aggregates: []privalytics.Aggregate{{Op: "count"}, {Op: "distinct_customers"},
					{Name: "s", Op: "sum", Column: "amount", Lower: f64(-5), Upper: f64(150)},
					{Name: "m", Op: "mean", Column: "amount", Lower: f64(-5), Upper: f64(150)},
					{Name: "v", Op: "variance", Column: "amount", Lower: f64(-5), Upper: f64(150)},
					{Name: "sd", Op: "stddev", Column: "amount", Lower: f64(-5), Upper: f64(150)}},
				Bounds: privalytics.Bounds{MaxGroups: 1000, MaxRowsPerGroup: 100_000}}
			rq := refQuery{keep: func(event) bool { return true }, lo: -5000, hi: 150_000}
			// A random filter.
			switch rng.IntN(5) {
			case 4:
				q.Where = []privalytics.Filter{{Column: "quantity", In: []any{1, 3}}}
				rq.keep = func(e event) bool { return e.quantity == 1 || e.quantity == 3 }
			case 0:
				q.Where = []privalytics.Filter{{Column: "type", Eq: "purchase"}}
				rq.keep = func(e event) bool { return e.typ == "purchase" }
			case 1:
				q.Where = []privalytics.Filter{{Column: "category", NotIn: []any{"wine", "tea"}}}
				rq.keep = func(e event) bool { return e.category != "" && e.category != "wine" && e.category != "tea" }
			case 2:
				q.Where = []privalytics.Filter{{Column: "amount", Gte: "10", Lt: "100.5"}}
				rq.keep = func(e event) bool { return e.hasAmt && e.amount >= 10_000 && e.amount < 100_500 }
			case 3:
				q.Where = []privalytics.Filter{{Column: "ts", Gte: "2025-03-01", Lt: "2025-07-01"}}
				rq.keep = func(e event) bool {
					return !e.ts.Before(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)) && e.ts.Before(time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC))
				}
			}
			// A random grouping.
			switch rng.IntN(4) {
			case 0:
				q.GroupBy = []privalytics.GroupKey{{Column: "category"}}
				rq.keys = func(e event) (string, bool) { return e.category, e.category != "" }
			case 1:
				q.GroupBy = []privalytics.GroupKey{{Column: "channel"}, {Time: "quarter"}}
				rq.keys = func(e event) (string, bool) {
					return fmt.Sprintf("%s|%d-Q%d", e.channel, e.ts.Year(), (int(e.ts.Month())-1)/3+1), true
				}
			case 2:
				q.GroupBy = []privalytics.GroupKey{{Column: "quantity"}}
				rq.keys = func(e event) (string, bool) { return fmt.Sprint(e.quantity), true }
			case 3:
				q.GroupBy = nil
				rq.keys = func(event) (string, bool) { return "", true }
			}
			want := reference(events, rq)
			res := run(t, q, snap, dptest.NoNoise())
			got := map[string]bool{}
			for _, row := range res.Rows {
				k := strings.Join(row.Key, "|")
				got[k] = true
				w := want[k]
				if w == nil {
					if row.Cells[0].Value != 0 {
						t.Errorf("group %q: count %v, the reference has no such group", k, row.Cells[0].Value)
					}
					continue
				}
				wantMean := 0.0
				if w.n > 0 {
					wantMean = float64(w.sum) / 1000 / float64(w.n)
				} else {
					wantMean = (-5 + 150) / 2.0
				}
				variance := 0.0
				if w.n > 0 {
					mu := float64(w.sum) / 1000 / float64(w.n)
					variance = math.Max(0, w.sq/float64(w.n)-mu*mu)
				}
				for i, exp := range []float64{float64(w.count), float64(len(w.subjects)), float64(w.sum) / 1000, wantMean, variance, math.Sqrt(variance)} {
					if math.Abs(row.Cells[i].Value-exp) > 1e-6*math.Max(1, math.Abs(exp)) {
						// (variance is computed around the midpoint: float rounding stays far below this)
						t.Errorf("group %q %s: got %v, want %v", k, res.Aggregates[i].Name, row.Cells[i].Value, exp)
					}
				}
			}
			for k := range want {
				if !got[k] {
					t.Errorf("group %q missing from the result", k)
				}
			}

			// The non-private baseline: the same cells, and only non-empty groups.
			p, err := NewPlan(q, schema, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			plain, err := ExecutePlain(context.Background(), p, snap)
			if err != nil {
				t.Fatal(err)
			}
			if len(plain.Keys) != len(want) {
				t.Errorf("ExecutePlain: %d groups, the reference has %d", len(plain.Keys), len(want))
			}
			for i, key := range plain.Keys {
				k := strings.Join(key, "|")
				w := want[k]
				if w == nil {
					t.Errorf("ExecutePlain: group %q is not in the reference", k)
					continue
				}
				exp := []float64{float64(w.count), float64(len(w.subjects)), float64(w.sum) / 1000}
				if w.n > 0 {
					exp = append(exp, float64(w.sum)/1000/float64(w.n))
				}
				for j, e := range exp {
					if got := plain.Values[i][j]; math.Abs(got-e) > 1e-6*math.Max(1, math.Abs(e)) {
						t.Errorf("ExecutePlain: group %q %s: got %v, want %v", k, res.Aggregates[j].Name, got, e)
					}
				}
			}
		})
	}
}

// TestBoundsHoldPerCustomer runs every customer alone through binding bounds: it
// reaches at most L0 groups with at most L∞ rows each (and, with a total cap, at
// most max_rows rows); over all customers, each bounded group count is at most
// the unbounded one.
func TestBoundsHoldPerCustomer(t *testing.T) {
	t.Parallel()
	rng := newRNG(21, 21)
	events := randomEvents(rng, 6000, 60)
	bySubject := map[uint64][]event{}
	for _, e := range events {
		bySubject[e.subj] = append(bySubject[e.subj], e)
	}
	tests := []struct {
		name               string
		l0, linf, maxRows  int
		groupBy            []privalytics.GroupKey
		wantTotalAtMostCap bool
	}{
		{name: "category", l0: 2, linf: 3, groupBy: []privalytics.GroupKey{{Column: "category", Keys: cats}}},
		{name: "channel x month", l0: 3, linf: 2, groupBy: []privalytics.GroupKey{{Column: "channel"}, {Time: "month"}}},
		{name: "total cap", l0: 4, linf: 5, maxRows: 6, groupBy: []privalytics.GroupKey{{Column: "category", Keys: cats}}, wantTotalAtMostCap: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := &privalytics.Query{Epsilon: 1, Delta: 1e-6, GroupBy: tt.groupBy,
				Aggregates: []privalytics.Aggregate{{Op: "count"}, {Op: "distinct_customers"}},
				Bounds:     privalytics.Bounds{MaxGroups: tt.l0, MaxRowsPerGroup: tt.linf, MaxRows: tt.maxRows}}
			heavy := 0
			for subj, evs := range bySubject {
				total, groups := 0.0, 0
				for _, r := range run(t, q, snapshotOf(evs, 100), dptest.NoNoise()).Rows {
					c, d := r.Cells[0].Value, r.Cells[1].Value
					if c > float64(tt.linf) || d > 1 {
						t.Errorf("customer %d: group %v got %v rows and %v customers; L∞ is %d", subj, r.Key, c, d, tt.linf)
					}
					if c > 0 {
						groups++
					}
					total += c
				}
				if groups > tt.l0 {
					t.Errorf("customer %d reached %d groups; L0 is %d", subj, groups, tt.l0)
				}
				if tt.wantTotalAtMostCap && total > float64(tt.maxRows) {
					t.Errorf("customer %d added %v rows; max_rows is %d", subj, total, tt.maxRows)
				}
				if len(evs) > tt.l0*tt.linf {
					heavy++
				}
			}
			if heavy == 0 {
				t.Fatal("no customer has enough rows for the bounds to bind; the test proves nothing")
			}
			p, err := NewPlan(q, schema, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			plain, err := ExecutePlain(context.Background(), p, snapshotOf(events, 700))
			if err != nil {
				t.Fatal(err)
			}
			unbounded := map[string]float64{}
			for i, k := range plain.Keys {
				unbounded[strings.Join(k, "|")] = plain.Values[i][0]
			}
			bounded, sum, sumPlain := run(t, q, snapshotOf(events, 700), dptest.NoNoise()), 0.0, 0.0
			for _, r := range bounded.Rows {
				k := strings.Join(r.Key, "|")
				if r.Cells[0].Value > unbounded[k] {
					t.Errorf("group %s: bounded count %v exceeds the unbounded %v", k, r.Cells[0].Value, unbounded[k])
				}
				sum += r.Cells[0].Value
			}
			for _, v := range unbounded {
				sumPlain += v
			}
			if sum >= sumPlain {
				t.Errorf("bounded total %v is not below the unbounded %v though bounds bind", sum, sumPlain)
			}
		})
	}
}

// TestBoundingSamplesUniformly: bounding keeps a uniformly random subset, never
// "the first k". One customer with 100 rows in one group and L∞ = 1: the kept
// row's index is below 50 in Binomial(2000, 1/2) of 2000 runs (mean 1000, sd
// 22.4); with rows in 10 groups and L0 = 1, each group is kept in Binomial(2000,
// 1/10) runs (mean 200, sd 13.4). The bands are ±5 sd: a false failure has
// probability below 1e-5 overall.
func TestBoundingSamplesUniformly(t *testing.T) {
	t.Parallel()
	var rows, groups []event
	for i := range 100 {
		rows = append(rows, event{subj: 7, ts: time.Date(2025, 3, 1, 0, 0, i, 0, time.UTC), typ: "purchase", channel: "web", category: "bread", amount: int64(i) * 1000, hasAmt: true})
	}
	keys := make([]string, 10)
	for i := range 10 {
		keys[i] = fmt.Sprintf("c%d", i)
		groups = append(groups, event{subj: 7, ts: time.Date(2025, 3, 1, 0, 0, i, 0, time.UTC), typ: "purchase", channel: "web", category: keys[i]})
	}
	rowQ := &privalytics.Query{Epsilon: 1, Aggregates: []privalytics.Aggregate{{Op: "sum", Column: "amount", Lower: f64(0), Upper: f64(1000)}},
		Bounds: privalytics.Bounds{MaxRowsPerGroup: 1}}
	groupQ := &privalytics.Query{Epsilon: 1, GroupBy: []privalytics.GroupKey{{Column: "category", Keys: keys}}, Aggregates: []privalytics.Aggregate{{Op: "count"}},
		Bounds: privalytics.Bounds{MaxGroups: 1, MaxRowsPerGroup: 1}}
	rowSnap, groupSnap := snapshotOf(rows, 100), snapshotOf(groups, 10)
	low, kept := 0, make([]int, 10)
	for range 2000 {
		if run(t, rowQ, rowSnap, dptest.NoNoise()).Rows[0].Cells[0].Value < 50 {
			low++
		}
		for i, r := range run(t, groupQ, groupSnap, dptest.NoNoise()).Rows {
			kept[i] += int(r.Cells[0].Value)
		}
	}
	if low < 888 || low > 1112 {
		t.Errorf("the kept row was in the first half %d times of 2000; want about 1000", low)
	}
	for i, k := range kept {
		if k < 133 || k > 267 {
			t.Errorf("group %s kept %d times of 2000; want about 200", keys[i], k)
		}
	}
}

// TestExecuteHonoursCancellation: a cancelled context stops the scan.
func TestExecuteHonoursCancellation(t *testing.T) {
	t.Parallel()
	snap := snapshotOf(randomEvents(newRNG(1, 1), 5000, 100), 100)
	// Fixed bounds: a query without any is tuned, and Execute needs its bounds resolved first.
	p, err := NewPlan(&privalytics.Query{Epsilon: 1, Bounds: privalytics.Bounds{MaxGroups: 1}, Aggregates: []privalytics.Aggregate{{Op: "count"}}}, schema, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Execute(ctx, p, snap); !errors.Is(err, context.Canceled) {
		t.Errorf("Execute: got %v, want context.Canceled", err)
	}
	if _, err := ExecutePlain(ctx, p, snap); !errors.Is(err, context.Canceled) {
		t.Errorf("ExecutePlain: got %v, want context.Canceled", err)
	}
}

// TestBoundsBind: with binding bounds, no customer adds more than L∞ rows to a
// group or touches more than L0 groups, so totals shrink but never grow, and a
// customer's distinct contribution is at most L0.
func TestBoundsBind(t *testing.T) {
	t.Parallel()
	rng := newRNG(5, 5)
	events := randomEvents(rng, 5000, 40)
	snap := snapshotOf(events, 333)
	q := &privalytics.Query{Epsilon: 1, Delta: 1e-6, GroupBy: []privalytics.GroupKey{{Column: "category"}},
		Aggregates: []privalytics.Aggregate{{Op: "count"}, {Op: "distinct_customers"}},
		Bounds:     privalytics.Bounds{MaxGroups: 2, MaxRowsPerGroup: 3}}
	res := run(t, q, snap, dptest.NoNoise())
	var count, distinct float64
	for _, r := range res.Rows {
		count += r.Cells[0].Value
		distinct += r.Cells[1].Value
	}
	subjects := map[uint64]bool{}
	for _, e := range events {
		subjects[e.subj] = true
	}
	if max := float64(len(subjects) * 2 * 3); count > max {
		t.Errorf("total count %v exceeds subjects×L0×L∞ = %v", count, max)
	}
	if distinct > float64(len(subjects)*2) {
		t.Errorf("distinct total %v exceeds subjects×L0 = %d", distinct, len(subjects)*2)
	}
	if count == 0 {
		t.Errorf("nothing counted")
	}
}

// TestHeavyCustomerMovesACellByItsSensitivity: a customer with thousands of rows
// changes any cell by at most L∞·max|bound| (sum) or L∞ (count).
func TestHeavyCustomerMovesACellByItsSensitivity(t *testing.T) {
	t.Parallel()
	rng := newRNG(8, 8)
	// Everyone else has one row, so bounding samples only the heavy customer.
	base := randomEvents(rng, 2000, 300)
	for i := range base {
		base[i].subj = uint64(i)
	}
	heavy := make([]event, 5000)
	for i := range heavy {
		heavy[i] = event{subj: 1 << 40, ts: time.Date(2025, 5, 1+i%28, 12, 0, 0, 0, time.UTC), typ: "purchase", channel: "web", category: cats[i%len(cats)], amount: 1_000_000, hasAmt: true}
	}
	q := &privalytics.Query{Epsilon: 1, GroupBy: []privalytics.GroupKey{{Column: "category", Keys: cats}},
		Aggregates: []privalytics.Aggregate{{Op: "count"}, {Name: "s", Op: "sum", Column: "amount", Lower: f64(0), Upper: f64(50)}},
		Bounds:     privalytics.Bounds{MaxGroups: 2, MaxRowsPerGroup: 4}}
	without := run(t, q, snapshotOf(base, 500), dptest.NoNoise())
	with := run(t, q, snapshotOf(append(append([]event{}, base...), heavy...), 500), dptest.NoNoise())
	touched := 0
	for i := range without.Rows {
		dc := with.Rows[i].Cells[0].Value - without.Rows[i].Cells[0].Value
		ds := with.Rows[i].Cells[1].Value - without.Rows[i].Cells[1].Value
		if dc < 0 || dc > 4 || ds < 0 || ds > 4*50+1e-9 {
			t.Errorf("%s: the heavy customer moved count by %v and sum by %v; bounds are 4 and 200", with.Rows[i].Key, dc, ds)
		}
		if dc > 0 {
			touched++
		}
	}
	if touched != 2 {
		t.Errorf("the heavy customer touched %d groups, want L0 = 2", touched)
	}
}

// TestBoundsApplyAfterFiltering: a customer whose many rows are filtered out still
// contributes the in-filter rows.
func TestBoundsApplyAfterFiltering(t *testing.T) {
	t.Parallel()
	var events []event
	for i := range 1000 {
		events = append(events, event{subj: 1, ts: time.Date(2025, 2, 1, 0, 0, i, 0, time.UTC), typ: "view", channel: "web"})
	}
	events = append(events, event{subj: 1, ts: time.Date(2025, 2, 2, 0, 0, 0, 0, time.UTC), typ: "purchase", channel: "web"})
	q := &privalytics.Query{Epsilon: 1, Where: []privalytics.Filter{{Column: "type", Eq: "purchase"}},
		Aggregates: []privalytics.Aggregate{{Op: "count"}}, Bounds: privalytics.Bounds{MaxRowsPerGroup: 1}}
	res := run(t, q, snapshotOf(events, 100), dptest.NoNoise())
	if len(res.Rows) != 1 || res.Rows[0].Cells[0].Value != 1 {
		t.Errorf("got %+v, want the one purchase counted", res.Rows)
	}
}

// TestLoneCustomerGroupIsSuppressed: a data-derived group holding one customer is
// released with probability at most about δ (here 1e-6 per try), so 200 tries all
// suppress it except with probability ≈ 2e-4; a group of 500 customers is kept.
func TestLoneCustomerGroupIsSuppressed(t *testing.T) {
	t.Parallel()
	var events []event
	for s := range 500 {
		events = append(events, event{subj: uint64(s), ts: time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC), typ: "purchase", channel: "web", category: "bread"})
	}
	events = append(events, event{subj: 9999, ts: time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC), typ: "purchase", channel: "web", category: "secret"})
	snap := snapshotOf(events, 1000)
	q := &privalytics.Query{Epsilon: 1, Delta: 1e-6, GroupBy: []privalytics.GroupKey{{Column: "category"}}, Aggregates: []privalytics.Aggregate{{Op: "count"}}}
	for range 200 {
		res := run(t, q, snap, dp.Secure())
		if !res.Thresholded {
			t.Fatal("data-derived keys must be thresholded")
		}
		var keys []string
		for _, r := range res.Rows {
			keys = append(keys, r.Key[0])
		}
		if len(keys) != 1 || keys[0] != "bread" {
			t.Fatalf("released keys %v, want only bread", keys)
		}
	}
}

// TestIntervalsCover: the 95% interval of a count covers the truth in at least
// about 95% of 1000 runs. The noise here (scale 200,000 for a truth of 3,000)
// often pushes the whole noisy interval below zero; the released interval is then
// [0, its width], which covers the truth (dp.atLeastZero), so a miss is
// essentially only the noisy lower bound above the truth (α/2) or an upper bound
// between 0 and the truth (rare): misses are Binomial(1000, p) with p between
// 0.025 (mean 25, sd 4.9) and 0.05 (mean 50, sd 6.9). The band [6, 85] is over
// 3.8 sd from either end, so a false failure has probability below 1e-4.
func TestIntervalsCover(t *testing.T) {
	t.Parallel()
	rng := newRNG(3, 3)
	events := randomEvents(rng, 3000, 100)
	snap := snapshotOf(events, 3000)
	q := &privalytics.Query{Epsilon: 0.5, Aggregates: []privalytics.Aggregate{{Op: "count"}}, Bounds: privalytics.Bounds{MaxRowsPerGroup: 100_000}}
	truth := float64(len(events))
	misses := 0
	for range 1000 {
		c := run(t, q, snap, dp.Secure()).Rows[0].Cells[0]
		if truth < c.Lower || truth > c.Upper {
			misses++
		}
	}
	if misses < 6 || misses > 85 {
		t.Errorf("%d of 1000 intervals missed the truth; expected 25 to 50", misses)
	}
}

func TestPublicEmptyGroupsAreReleased(t *testing.T) {
	t.Parallel()
	events := []event{{subj: 1, ts: time.Date(2025, 2, 10, 0, 0, 0, 0, time.UTC), typ: "purchase", channel: "web"}}
	q := &privalytics.Query{Epsilon: 1, Where: []privalytics.Filter{{Column: "ts", Gte: "2025-01-01", Lt: "2025-04-01"}},
		GroupBy: []privalytics.GroupKey{{Time: "month"}, {Column: "channel"}}, Aggregates: []privalytics.Aggregate{{Op: "count"}}}
	res := run(t, q, snapshotOf(events, 10), dptest.NoNoise())
	var keys []string
	for _, r := range res.Rows {
		keys = append(keys, strings.Join(r.Key, "/"))
	}
	sort.Strings(keys)
	if len(keys) != 9 || res.Thresholded {
		t.Errorf("got %d groups %v (thresholded %v), want all 3 months × 3 channels, public", len(keys), keys, res.Thresholded)
	}
}

func TestPlanErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, query, want string
	}{
		{"unknown column", `{"group_by":[{"column":"colour"}],"aggregates":[{"op":"count"}],"epsilon":1}`, `unknown column "colour"`},
		{"subject", `{"group_by":[{"column":"customer_id"}],"aggregates":[{"op":"count"}],"epsilon":1}`, "privacy unit"},
		{"epsilon zero", `{"aggregates":[{"op":"count"}],"epsilon":0}`, "epsilon must be > 0"},
		{"epsilon missing", `{"aggregates":[{"op":"count"}]}`, "epsilon must be > 0"},
		{"delta", `{"aggregates":[{"op":"count"}],"epsilon":1,"delta":1}`, "delta must be in [0, 1)"},
		{"reversed bounds", `{"aggregates":[{"op":"sum","column":"amount","lower":5,"upper":1}],"epsilon":1}`, "reversed"},
		{"missing bounds", `{"aggregates":[{"op":"sum","column":"amount"}],"bounds":{"max_groups":1},"epsilon":1}`, "needs clamping bounds"},
		{"sum of text", `{"aggregates":[{"op":"sum","column":"store","lower":0,"upper":1}],"epsilon":1}`, "numeric column"},
		{"data keys without delta", `{"group_by":[{"column":"category"}],"aggregates":[{"op":"count"}],"epsilon":1}`, "delta > 0"},
		{"gaussian without delta", `{"aggregates":[{"op":"count"}],"epsilon":1,"noise":"gaussian"}`, "gaussian noise needs delta"},
		{"too many groups", `{"where":[{"column":"ts","gte":"2020-01-01","lt":"2025-01-01"}],"group_by":[{"time":"hour"}],"aggregates":[{"op":"count"}],"epsilon":1}`, "too many"},
		{"bad bucket", `{"group_by":[{"time":"fortnight"}],"aggregates":[{"op":"count"}],"epsilon":1}`, "fortnight"},
		{"bad zone", `{"aggregates":[{"op":"count"}],"epsilon":1,"time_zone":"Mars/Olympus"}`, "IANA"},
		{"duplicate names", `{"aggregates":[{"op":"count"},{"op":"count"}],"epsilon":1}`, "used twice"},
		{"two filter families", `{"where":[{"column":"type","eq":"view","in":["purchase"]}],"aggregates":[{"op":"count"}],"epsilon":1}`, "exactly one"},
		{"empty range", `{"where":[{"column":"amount","gte":5,"lt":1}],"aggregates":[{"op":"count"}],"epsilon":1}`, "empty"},
		{"unknown field", `{"aggregates":[{"op":"count"}],"epsilon":1,"colour":"red"}`, "unknown field"},
		{"bad op", `{"aggregates":[{"op":"mode"}],"epsilon":1}`, "mode"},
		{"auto and bounds", `{"aggregates":[{"op":"sum","column":"amount","bounds":"auto","lower":0,"upper":1}],"epsilon":1}`, "not both"},
		{"bad bounds word", `{"aggregates":[{"op":"sum","column":"amount","bounds":"guess"}],"epsilon":1}`, `"auto" or absent`},
		{"auto share", `{"aggregates":[{"op":"mean","column":"amount","bounds":"auto","auto_share":1.5}],"epsilon":1}`, "auto_share must be between 0 and 1"},
		{"share without auto", `{"aggregates":[{"op":"sum","column":"amount","lower":0,"upper":1,"auto_share":0.5}],"epsilon":1}`, "only with"},
		{"quantile without rank", `{"aggregates":[{"op":"quantile","column":"amount","lower":0,"upper":1}],"epsilon":1}`, "rank between 0 and 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q, err := DecodeQuery([]byte(tt.query))
			if err == nil {
				_, err = NewPlan(q, schema, DefaultLimits())
			}
			if privalytics.ErrorCode(err) != privalytics.EINVALID || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want invalid mentioning %q", err, tt.want)
			}
		})
	}
}

func TestFingerprintIgnoresOrder(t *testing.T) {
	t.Parallel()
	a, _ := DecodeQuery([]byte(`{"where":[{"column":"type","in":["view","purchase"]},{"column":"channel","eq":"web"}],"aggregates":[{"op":"count"}],"epsilon":1}`))
	b, _ := DecodeQuery([]byte(`{"where":[{"column":"channel","eq":"web"},{"column":"type","in":["purchase","view"]}],"aggregates":[{"op":"count"}],"epsilon":1,"confidence":0.95}`))
	pa, _ := NewPlan(a, schema, DefaultLimits())
	pb, _ := NewPlan(b, schema, DefaultLimits())
	key := []byte("0123456789abcdef")
	if pa.Fingerprint(key) != pb.Fingerprint(key) {
		t.Errorf("equivalent queries have different fingerprints")
	}
	// Keyed: another tenant's key gives another fingerprint, and none is the
	// plain hash anyone could compute from a guessed query.
	if pa.Fingerprint(key) == pa.Fingerprint([]byte("fedcba9876543210")) {
		t.Errorf("the fingerprint does not depend on the key")
	}
	plain := sha256.Sum256(pa.canon)
	if pa.Fingerprint(key) == hex.EncodeToString(plain[:]) {
		t.Errorf("the fingerprint is the plain SHA-256 of the query")
	}
}

// TestVarianceIntervalCovers: the variance interval holds the bounded variance in
// at least 95% of 400 runs. Its three parts hold together with probability at
// least 0.95 (union bound), so misses are at most Binomial(400, 0.05): mean 20,
// sd 4.4; more than 40 misses has probability below 1e-4.
func TestVarianceIntervalCovers(t *testing.T) {
	t.Parallel()
	rng := newRNG(4, 4)
	events := randomEvents(rng, 4000, 400)
	for i := range events {
		events[i].subj = uint64(i) // one row each: nothing is sampled away
	}
	snap := snapshotOf(events, 4000)
	q := &privalytics.Query{Epsilon: 1, Aggregates: []privalytics.Aggregate{{Op: "variance", Column: "amount", Lower: f64(0), Upper: f64(100)}}, Bounds: privalytics.Bounds{MaxRowsPerGroup: 1}}
	truth := run(t, q, snap, dptest.NoNoise()).Rows[0].Cells[0].Value
	misses := 0
	for range 400 {
		c := run(t, q, snap, dp.Secure()).Rows[0].Cells[0]
		if truth < c.Lower || truth > c.Upper {
			misses++
		}
	}
	if misses > 40 {
		t.Errorf("%d of 400 variance intervals missed the truth %v", misses, truth)
	}
}

// TestHistogramBuckets: counts per declared bucket of a decimal column equal a
// plain count, edges inclusive below and exclusive above; buckets are public.
func TestHistogramBuckets(t *testing.T) {
	t.Parallel()
	rng := newRNG(6, 6)
	events := randomEvents(rng, 3000, 3000)
	for i := range events {
		events[i].subj = uint64(i)
		events[i].amount -= events[i].amount % 500 // few enough values to be dictionary-encoded in memory
	}
	edges := []float64{-20, 0, 10.5, 50, 180}
	q := &privalytics.Query{Epsilon: 1, GroupBy: []privalytics.GroupKey{{Column: "amount", Buckets: edges}}, Aggregates: []privalytics.Aggregate{{Op: "count"}}}
	for _, snap := range []*privalytics.Snapshot{snapshotOf(events, 1000), compacted(t, snapshotOf(events, 1000))} {
		checkHistogram(t, q, snap, events, edges)
	}
	if _, err := NewPlan(&privalytics.Query{Epsilon: 1, GroupBy: []privalytics.GroupKey{{Column: "amount", Buckets: []float64{5, 1}}}, Aggregates: []privalytics.Aggregate{{Op: "count"}}}, schema, DefaultLimits()); err == nil {
		t.Error("descending bucket edges accepted")
	}
}

func checkHistogram(t *testing.T, q *privalytics.Query, snap *privalytics.Snapshot, events []event, edges []float64) {
	t.Helper()
	res := run(t, q, snap, dptest.NoNoise())
	want := make([]float64, len(edges)-1)
	for _, e := range events {
		if !e.hasAmt {
			continue
		}
		for i := range len(edges) - 1 {
			if float64(e.amount) >= edges[i]*1000 && float64(e.amount) < edges[i+1]*1000 {
				want[i]++
			}
		}
	}
	if len(res.Rows) != 4 || res.Thresholded {
		t.Fatalf("got %d rows (thresholded %v), want the 4 declared buckets", len(res.Rows), res.Thresholded)
	}
	for i, r := range res.Rows {
		if label := fmt.Sprintf("[%g, %g)", edges[i], edges[i+1]); r.Key[0] != label || r.Cells[0].Value != want[i] {
			t.Errorf("bucket %s: %v, want %s: %v", r.Key[0], r.Cells[0].Value, label, want[i])
		}
	}
}

// TestQuantiles: without noise, the median and the 90th percentile per channel
// match the exact quantiles of the clamped values within the quantile tree's
// resolution (range/16⁴) plus the gap between neighbouring values.
func TestQuantiles(t *testing.T) {
	t.Parallel()
	rng := newRNG(9, 9)
	events := randomEvents(rng, 6000, 6000)
	for i := range events {
		events[i].subj = uint64(i)
	}
	q := &privalytics.Query{Epsilon: 1, GroupBy: []privalytics.GroupKey{{Column: "channel"}},
		Bounds: privalytics.Bounds{MaxGroups: 1, MaxRowsPerGroup: 1}, // one row per customer here
		Aggregates: []privalytics.Aggregate{{Name: "med", Op: "median", Column: "amount", Lower: f64(0), Upper: f64(100)},
			{Name: "p90", Op: "quantile", Rank: 0.9, Column: "amount", Lower: f64(0), Upper: f64(100)}}}
	res := run(t, q, snapshotOf(events, 2000), dptest.NoNoise())
	for _, r := range res.Rows {
		var vals []float64
		for _, e := range events {
			if e.channel == r.Key[0] && e.hasAmt {
				vals = append(vals, math.Min(100, math.Max(0, float64(e.amount)/1000)))
			}
		}
		sort.Float64s(vals)
		for i, rank := range []float64{0.5, 0.9} {
			want := vals[int(rank*float64(len(vals)))]
			if got := r.Cells[i].Value; math.Abs(got-want) > 0.5 {
				t.Errorf("%s %s: %v, want about %v", r.Key[0], res.Aggregates[i].Name, got, want)
			}
			// Without noise the interval runs between the quantiles at rank ± W/n
			// (W: dp.QuantileRankError at a third of the 5%), give or take the
			// tree's resolution.
			w := dp.QuantileRankError(dp.Laplace, 1, 1, dp.Budget{Epsilon: 0.5 * (1 - dp.QuantileCountShare)}, 0.05/3) / float64(len(vals))
			wantLo := vals[max(0, int((rank-w)*float64(len(vals))))]
			wantHi := vals[min(len(vals)-1, int((rank+w)*float64(len(vals))))]
			if c := r.Cells[i]; math.Abs(c.Lower-wantLo) > 0.5 || math.Abs(c.Upper-wantHi) > 0.5 || c.Lower > c.Value || c.Upper < c.Value {
				t.Errorf("%s %s: interval [%v, %v] around %v, want about [%v, %v]", r.Key[0], res.Aggregates[i].Name, c.Lower, c.Upper, c.Value, wantLo, wantHi)
			}
		}
	}
	if len(res.Rows) != 3 {
		t.Errorf("%d channels", len(res.Rows))
	}
	// With real noise, both noise kinds release a value inside the bounds.
	for _, kind := range []string{"laplace", "gaussian"} {
		q.Noise, q.Delta = kind, 0
		if kind == "gaussian" {
			q.Delta = 1e-6
		}
		for _, r := range run(t, q, snapshotOf(events, 2000), dp.Secure()).Rows {
			if v := r.Cells[0].Value; v < 0 || v > 100 {
				t.Errorf("%s median %v outside [0, 100]", kind, v)
			}
		}
	}
}

// TestMaxRowsCapsTotalAndNoise: with max_rows, a heavy customer adds at most that
// many rows across all groups, and under Laplace noise the count's interval is
// as narrow as L1 = max_rows allows (explain and the released width agree).
func TestMaxRowsCapsTotalAndNoise(t *testing.T) {
	t.Parallel()
	var events []event
	for i := range 5000 {
		events = append(events, event{subj: 1, ts: time.Date(2025, 5, 1+i%28, 12, 0, 0, 0, time.UTC), typ: "purchase", channel: "web", category: cats[i%len(cats)]})
	}
	q := &privalytics.Query{Epsilon: 1, GroupBy: []privalytics.GroupKey{{Column: "category", Keys: cats}},
		Aggregates: []privalytics.Aggregate{{Op: "count"}, {Op: "distinct_customers"}},
		Bounds:     privalytics.Bounds{MaxGroups: 5, MaxRowsPerGroup: 10, MaxRows: 7}}
	res := run(t, q, snapshotOf(events, 1000), dptest.NoNoise())
	total, groups := 0.0, 0.0
	for _, r := range res.Rows {
		total += r.Cells[0].Value
		groups += r.Cells[1].Value
	}
	if total != 7 || groups < 1 || groups > 5 {
		t.Errorf("the customer added %v rows in %v groups, want exactly the cap of 7 in at most 5", total, groups)
	}
	capped, _ := NewPlan(q, schema, DefaultLimits())
	uncapped := *q
	uncapped.Bounds.MaxRows = 0
	free, _ := NewPlan(&uncapped, schema, DefaultLimits())
	ec, _ := capped.Explain(dp.Secure())
	ef, _ := free.Explain(dp.Secure())
	// L1 drops from 5 × 10 = 50 to 7: the half-width shrinks by the same factor.
	if ratio := ef.Aggregates[0].HalfWidth / ec.Aggregates[0].HalfWidth; math.Abs(ratio-50.0/7) > 0.2 {
		t.Errorf("count half-width ratio uncapped/capped = %v, want about %v", ratio, 50.0/7)
	}
	c := run(t, q, snapshotOf(events, 1000), dp.Secure()).Rows[0].Cells[0]
	if hw := (c.Upper - c.Lower) / 2; c.Lower > 0 && math.Abs(hw-ec.Aggregates[0].HalfWidth) > 1 {
		t.Errorf("released half-width %v, explain said %v", hw, ec.Aggregates[0].HalfWidth)
	}
}

// TestZCDPCostChargesApproximateDeltas: in zCDP accounting, the δ charged is that
// of the approximate parts: partition selection, and quantile trees under
// Gaussian noise; a Gaussian count's δ is absorbed into its ρ.
func TestZCDPCostChargesApproximateDeltas(t *testing.T) {
	t.Parallel()
	plan := func(js string) *Plan {
		q, err := DecodeQuery([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewPlan(q, schema, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if d := plan(`{"aggregates":[{"op":"count"}],"epsilon":1,"delta":1e-6,"noise":"gaussian"}`).ZCDPCost().Delta; d != 0 {
		t.Errorf("Gaussian count: δ %v charged, want 0 (in ρ)", d)
	}
	if d := plan(`{"aggregates":[{"op":"count"},{"op":"median","column":"amount","lower":0,"upper":10}],"epsilon":1,"delta":1e-6,"noise":"gaussian"}`).ZCDPCost().Delta; math.Abs(d-4.5e-7) > 1e-18 {
		// The median's share is 5e-7; its tree takes 90% of it, its row count the rest (in ρ).
		t.Errorf("Gaussian median: δ %v charged, want its tree's share 4.5e-7", d)
	}
	if d := plan(`{"group_by":[{"column":"category"}],"aggregates":[{"op":"count"}],"epsilon":1,"delta":1e-6}`).ZCDPCost().Delta; d != 1e-6 {
		t.Errorf("Laplace with partition selection: δ %v charged, want 1e-6", d)
	}
}

// TestSnapshotEdges: an empty snapshot releases every public group (noise only)
// and no data-derived one; a chunk whose subject numbers break the snapshot's
// contract is an internal error, not a panic.
func TestSnapshotEdges(t *testing.T) {
	t.Parallel()
	empty := &privalytics.Snapshot{Version: 1}
	public := run(t, &privalytics.Query{Epsilon: 1, GroupBy: []privalytics.GroupKey{{Column: "channel"}}, Aggregates: []privalytics.Aggregate{{Op: "count"}}}, empty, dptest.NoNoise())
	if len(public.Rows) != 3 {
		t.Errorf("public keys over no data: %d rows, want the 3 channels", len(public.Rows))
	}
	derived := run(t, &privalytics.Query{Epsilon: 1, Delta: 1e-6, GroupBy: []privalytics.GroupKey{{Column: "category"}}, Aggregates: []privalytics.Aggregate{{Op: "count"}}}, empty, dptest.NoNoise())
	if len(derived.Rows) != 0 {
		t.Errorf("data-derived keys over no data: %d rows, want none", len(derived.Rows))
	}

	bad := snapshotOf(randomEvents(newRNG(2, 2), 100, 10), 50)
	bad.Subjects = 3 // fewer than the subject numbers in use
	p, err := NewPlan(&privalytics.Query{Epsilon: 1, Aggregates: []privalytics.Aggregate{{Op: "count"}}}, schema, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Execute(context.Background(), p, bad); privalytics.ErrorCode(err) != privalytics.EINTERNAL {
		t.Errorf("subject numbers beyond Snapshot.Subjects: got %v, want an internal error", err)
	}
}

// TestTimeRangeAcrossFilters: the lower and upper time limits may come in
// separate filters (they are ANDed); the buckets inside are still public, and
// the same as with one filter.
func TestTimeRangeAcrossFilters(t *testing.T) {
	t.Parallel()
	one := `{"where":[{"column":"ts","gte":"2025-01-01","lt":"2025-04-01"}],"group_by":[{"time":"month"}],"aggregates":[{"op":"count"}],"epsilon":1}`
	two := `{"where":[{"column":"ts","gte":"2025-01-01"},{"column":"ts","lt":"2025-04-01"},{"column":"ts","lt":"2025-06-01"}],"group_by":[{"time":"month"}],"aggregates":[{"op":"count"}],"epsilon":1}`
	var months [][]string
	for _, js := range []string{one, two} {
		q, err := DecodeQuery([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewPlan(q, schema, DefaultLimits())
		if err != nil {
			t.Fatalf("%s: %v (the months should be public: no delta needed)", js, err)
		}
		months = append(months, p.Months())
	}
	if fmt.Sprint(months[0]) != fmt.Sprint(months[1]) || len(months[0]) != 3 {
		t.Errorf("months %v and %v, want the same three", months[0], months[1])
	}
	q, _ := DecodeQuery([]byte(`{"where":[{"column":"ts","gte":"2025-05-01"},{"column":"ts","lt":"2025-04-01"}],"aggregates":[{"op":"count"}],"epsilon":1}`))
	if _, err := NewPlan(q, schema, DefaultLimits()); privalytics.ErrorCode(err) != privalytics.EINVALID || !strings.Contains(err.Error(), "leave no time") {
		t.Errorf("disjoint time filters: %v, want an invalid query saying so", err)
	}
}
