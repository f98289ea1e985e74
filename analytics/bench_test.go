package analytics

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

// Run with, e.g.:
//
//	go test -run '^$' -bench 'Execute(DP|Plain)' -benchtime=5x ./analytics/
//
// The 10M-row snapshot takes about 0.5 GiB and some seconds to build; it is
// built once per process and shared by both benchmarks.

// testRNG is a splitmix64 stream: deterministic test data without the standard
// PRNG package, which no file here may import (see dp's TestNoMathRandInPrivacyCode).
type testRNG uint64

func newRNG(a, b uint64) *testRNG {
	r := testRNG(splitmix64(a) ^ b)
	return &r
}

func (r *testRNG) next() uint64 {
	*r += 0x9e3779b97f4a7c15
	return splitmix64(uint64(*r))
}

// Float64 is uniform in [0, 1).
func (r *testRNG) Float64() float64 { return float64(r.next()>>11) / (1 << 53) }

// IntN and Int64N are uniform in [0, n) (modulo bias below 2⁻⁴⁰ for test sizes).
func (r *testRNG) IntN(n int) int       { return int(r.next() % uint64(n)) }
func (r *testRNG) Int64N(n int64) int64 { return int64(r.next() % uint64(n)) }

// normal is a standard normal draw (Box–Muller).
func (r *testRNG) normal() float64 {
	u := 1 - r.Float64()
	return math.Sqrt(-2*math.Log(u)) * math.Cos(2*math.Pi*r.Float64())
}

// syntheticRetail builds a snapshot of rows purchase-heavy retail events for
// DefaultRetailSchema, in chunks of 128 Ki rows: customers drawn with Zipf-like
// activity (rows ∝ rank^-0.6 over subjects customers, so about 80% of them appear
// at 10 rows per customer), 20 categories, 50 stores, 3 channels, one year of
// timestamps, log-normal amounts (median 20) with 3 decimals. Dense subject
// numbers are the customer ranks.
func syntheticRetail(rows, subjects int, seed uint64) *privalytics.Snapshot {
	const chunkRows = 1 << 17
	as := schema.Arrow()
	field := func(name string) int {
		idx := as.FieldIndices(name)
		if len(idx) != 1 {
			panic("schema has no column " + name)
		}
		return idx[0]
	}
	dictOf := func(values []string) arrow.Array {
		b := array.NewStringBuilder(memory.DefaultAllocator)
		defer b.Release()
		b.AppendValues(values, nil)
		return b.NewArray()
	}
	var categories, stores []string
	for i := range 20 {
		categories = append(categories, fmt.Sprintf("category-%02d", i))
	}
	for i := range 50 {
		stores = append(stores, fmt.Sprintf("store-%02d", i))
	}
	types := []string{privalytics.EventPurchase, privalytics.EventView, privalytics.EventRefund}
	dicts := map[string]arrow.Array{"type": dictOf(types), "store": dictOf(stores), "channel": dictOf([]string{"web", "app", "store"}), "category": dictOf(categories)}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	year := int64(365 * 24 * time.Hour / time.Microsecond)

	snap := &privalytics.Snapshot{Version: 1, Subjects: subjects}
	nChunks := (rows + chunkRows - 1) / chunkRows
	snap.Chunks = make([]privalytics.Chunk, nChunks)
	var wg sync.WaitGroup
	for c := range nChunks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := min(chunkRows, rows-c*chunkRows)
			rng := newRNG(seed, uint64(c))
			subj := make([]uint32, n)
			ids := make([]uint64, n)
			ts := make([]arrow.Timestamp, n)
			codes := map[string][]int32{"type": make([]int32, n), "store": make([]int32, n), "channel": make([]int32, n), "category": make([]int32, n)}
			qty := make([]int64, n)
			amt := make([]int64, n)
			for i := range n {
				s := min(subjects-1, int(float64(subjects)*math.Pow(rng.Float64(), 2.5)))
				subj[i], ids[i] = uint32(s), splitmix64(uint64(s)^seed)
				ts[i] = arrow.Timestamp(start + int64(rng.next()%uint64(year)))
				t := int32(0) // 80% purchases, 15% views, 5% refunds
				if u := rng.IntN(100); u >= 95 {
					t = 2
				} else if u >= 80 {
					t = 1
				}
				codes["type"][i] = t
				codes["store"][i] = int32(rng.IntN(len(stores)))
				codes["channel"][i] = int32(rng.IntN(3))
				codes["category"][i] = int32(rng.IntN(len(categories)))
				qty[i] = int64(1 + rng.IntN(5))
				amt[i] = int64(math.Round(20_000 * math.Exp(rng.normal())))
			}
			cols := make([]arrow.Array, as.NumFields())
			cols[field(privalytics.SubjectColumn)] = uint64Array(ids)
			cols[field("ts")] = timestampArray(as.Field(field("ts")).Type.(*arrow.TimestampType), ts)
			for name, d := range dicts {
				f := field(name)
				cols[f] = array.NewDictionaryArray(as.Field(f).Type, int32Array(codes[name]), d)
			}
			cols[field("quantity")] = int64Array(qty)
			cols[field("amount")] = int64Array(amt)
			for f := range cols {
				if cols[f] == nil {
					cols[f] = array.MakeArrayOfNull(memory.DefaultAllocator, as.Field(f).Type, n)
				}
			}
			snap.Chunks[c] = privalytics.Chunk{Record: array.NewRecord(as, cols, int64(n)), Subjects: subj}
		}()
	}
	wg.Wait()
	return snap
}

func uint64Array(v []uint64) arrow.Array {
	b := array.NewUint64Builder(memory.DefaultAllocator)
	defer b.Release()
	b.AppendValues(v, nil)
	return b.NewArray()
}

func int64Array(v []int64) arrow.Array {
	b := array.NewInt64Builder(memory.DefaultAllocator)
	defer b.Release()
	b.AppendValues(v, nil)
	return b.NewArray()
}

func int32Array(v []int32) arrow.Array {
	b := array.NewInt32Builder(memory.DefaultAllocator)
	defer b.Release()
	b.AppendValues(v, nil)
	return b.NewArray()
}

func timestampArray(typ *arrow.TimestampType, v []arrow.Timestamp) arrow.Array {
	b := array.NewTimestampBuilder(memory.DefaultAllocator, typ)
	defer b.Release()
	b.AppendValues(v, nil)
	return b.NewArray()
}

var (
	benchSnapsMu sync.Mutex
	benchSnaps   = map[int]*privalytics.Snapshot{}
)

// benchSnapshot returns the shared synthetic snapshot of rows rows (one
// customer per ten rows on the Zipf-like scale).
func benchSnapshot(rows int) *privalytics.Snapshot {
	benchSnapsMu.Lock()
	defer benchSnapsMu.Unlock()
	if s, ok := benchSnaps[rows]; ok {
		return s
	}
	s := syntheticRetail(rows, rows/10, 42)
	benchSnaps[rows] = s
	return s
}

// benchQuery is the query of BENCHMARKS.md and of `privalytics bench`: purchases
// by category (keys from the data, so partition selection), count and revenue,
// each customer bounded to 5 categories and 10 rows per category.
func benchQuery(tb testing.TB) *Plan {
	q := &privalytics.Query{
		Where:      []privalytics.Filter{{Column: "type", Eq: privalytics.EventPurchase}},
		GroupBy:    []privalytics.GroupKey{{Column: "category"}},
		Aggregates: []privalytics.Aggregate{{Op: "count"}, {Name: "revenue", Op: "sum", Column: "amount", Lower: f64(0), Upper: f64(500)}},
		Bounds:     privalytics.Bounds{MaxGroups: 5, MaxRowsPerGroup: 10},
		Epsilon:    1, Delta: 1e-6,
	}
	p, err := NewPlan(q, schema, DefaultLimits())
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

var benchSizes = []int{1_000_000, 10_000_000}

// BenchmarkExecuteDP: Execute + Release with the secure mechanisms.
func BenchmarkExecuteDP(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			snap, p, m := benchSnapshot(n), benchQuery(b), dp.Secure()
			b.ResetTimer()
			for b.Loop() {
				part, err := Execute(context.Background(), p, snap)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := release(p, part, m); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkExecutePlain: the same query, exact and unbounded — the baseline.
func BenchmarkExecutePlain(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			snap, p := benchSnapshot(n), benchQuery(b)
			b.ResetTimer()
			for b.Loop() {
				if _, err := ExecutePlain(context.Background(), p, snap); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkExecutePerGroup: the benchmark query with per-group bounds
// (issue 15): each customer's count and revenue per category clamped to 10
// rows and 500, no row sampling.
func BenchmarkExecutePerGroup(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			q := &privalytics.Query{
				Where:   []privalytics.Filter{{Column: "type", Eq: privalytics.EventPurchase}},
				GroupBy: []privalytics.GroupKey{{Column: "category"}},
				Aggregates: []privalytics.Aggregate{{Op: "count", ContributionBoundsPerGroup: &privalytics.GroupBounds{Lower: 0, Upper: 10}},
					{Name: "revenue", Op: "sum", Column: "amount", ContributionBoundsPerGroup: &privalytics.GroupBounds{Lower: 0, Upper: 500}}},
				Bounds:  privalytics.Bounds{MaxGroups: 5},
				Epsilon: 1, Delta: 1e-6,
			}
			p, err := NewPlan(q, schema, DefaultLimits())
			if err != nil {
				b.Fatal(err)
			}
			snap, m := benchSnapshot(n), dp.Secure()
			b.ResetTimer()
			for b.Loop() {
				part, err := Execute(context.Background(), p, snap)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := release(p, part, m); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
