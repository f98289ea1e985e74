package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/direct"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/analytics"
	"github.com/privalytics/privalytics/analytics/beamjob"
)

var schema = privalytics.DefaultRetailSchema()

type event struct {
	subj         uint64
	ts           time.Time
	typ, channel string
	category     string
	quantity     int64
	amount       int64 // milli-units
	hasAmount    bool
}

var cats = []string{"bread", "cake", "coffee", "tea", "wine"}

// boundedEvents gives every customer one month, one channel, at most two
// categories and at most three rows per category: inside the default bounds
// (4 groups, 8 rows per group) for every grouping the tests use, so contribution
// bounding keeps everything on both paths and exact answers can be compared.
func boundedEvents(rng *rand.Rand, subjects int) []event {
	var out []event
	for s := range subjects {
		month := time.Date(2025, time.Month(1+rng.IntN(12)), 1, 0, 0, 0, 0, time.UTC)
		channel := []string{"web", "app", "store"}[rng.IntN(3)]
		perm := rng.Perm(len(cats))[:1+rng.IntN(2)]
		for _, c := range perm {
			for range 1 + rng.IntN(3) {
				e := event{subj: uint64(1000 + s), ts: month.Add(time.Duration(rng.Int64N(int64(27 * 24 * time.Hour)))), typ: []string{"purchase", "view", "refund"}[rng.IntN(3)], channel: channel, category: cats[c], quantity: rng.Int64N(4)}
				if rng.IntN(8) > 0 {
					e.amount, e.hasAmount = rng.Int64N(200_000)-20_000, true
				}
				out = append(out, e)
			}
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

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
					b.(*array.BinaryDictionaryBuilder).AppendString(e.category)
				case "quantity":
					b.(*array.Int64Builder).Append(e.quantity)
				case "amount":
					if e.hasAmount {
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

func f64(v float64) *float64 { return &v }

// randomQuery draws filters, group keys (public lists, declared values, time
// buckets inside a bounded time filter, or keys from the data) and aggregates
// with random clamping bounds.
func randomQuery(rng *rand.Rand) *privalytics.Query {
	q := &privalytics.Query{Epsilon: 1, Delta: 1e-6}
	switch rng.IntN(3) {
	case 1:
		q.Where = append(q.Where, privalytics.Filter{Column: "type", In: []any{"purchase", "refund"}})
	case 2:
		q.Where = append(q.Where, privalytics.Filter{Column: "quantity", Gte: "1"})
	}
	bounded := rng.IntN(2) == 0
	if bounded {
		q.Where = append(q.Where, privalytics.Filter{Column: "ts", Gte: "2025-03-01", Lt: "2025-10-01"})
	}
	keys := [][]privalytics.GroupKey{
		nil,
		{{Column: "category", Keys: []string{"bread", "tea", "wine", "none-sold"}}},
		{{Column: "category"}}, // from the data: partition selection
		{{Column: "channel"}},  // declared values: public
		{{Column: "channel"}, {Column: "category"}},
	}
	q.GroupBy = keys[rng.IntN(len(keys))]
	if bounded && rng.IntN(2) == 0 {
		q.GroupBy = append(q.GroupBy, privalytics.GroupKey{Time: "month"})
	}
	q.Aggregates = []privalytics.Aggregate{{Op: "count"}, {Op: "distinct_customers"}}
	b := [][2]float64{{0, 50}, {-10, 100}, {0, 200}, {20, 60}}[rng.IntN(4)]
	q.Aggregates = append(q.Aggregates,
		privalytics.Aggregate{Op: "sum", Column: "amount", Lower: f64(b[0]), Upper: f64(b[1])},
		privalytics.Aggregate{Op: "mean", Column: "quantity", Lower: f64(0), Upper: f64(float64(1 + rng.IntN(3)))})
	return q
}

// runBeam exports snap and runs q's pipeline on the direct runner, noise-free.
func runBeam(t *testing.T, plan *analytics.Plan, snap *privalytics.Snapshot, test bool) []analytics.RemoteCell {
	t.Helper()
	dir := t.TempDir()
	if _, _, err := analytics.ExportSnapshot(context.Background(), filepath.Join(dir, "snap"), snap, nil, []byte("0123456789abcdef0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "snap", analytics.SnapshotFilePattern))
	out := filepath.Join(dir, "cells.ndjson")
	p, s := beam.NewPipelineWithRoot()
	if err := Build(s, files, plan.Remote(), out, test); err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Execute(context.Background(), p); err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	cells, err := beamjob.ReadCells(out)
	if err != nil {
		t.Fatal(err)
	}
	return cells
}

func TestBeamNoiseFreeEqualsInProcess(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 2026))
	snap := snapshotOf(boundedEvents(rng, 300), 500)
	for i := range 8 {
		q := randomQuery(rng)
		qj, _ := json.Marshal(q)
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			plan, err := analytics.NewPlan(q, schema, analytics.DefaultLimits())
			if err != nil {
				t.Fatalf("plan %s: %v", qj, err)
			}
			want, err := analytics.ExecutePlain(context.Background(), plan, snap)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]float64{}
			for _, c := range runBeam(t, plan, snap, true) {
				k, _ := json.Marshal(c.Key)
				if got[string(k)] == nil {
					got[string(k)] = make([]float64, len(q.Aggregates))
					for j := range got[string(k)] {
						got[string(k)][j] = math.NaN()
					}
				}
				got[string(k)][c.Aggregate] = c.Value
			}
			seen := map[string]bool{}
			for g, key := range want.Keys {
				k, _ := json.Marshal(key)
				seen[string(k)] = true
				cells, ok := got[string(k)]
				if !ok {
					t.Fatalf("query %s: group %v is missing on the Beam path", qj, key)
				}
				for a, w := range want.Values[g] {
					if math.Abs(cells[a]-w) > 1e-6*math.Max(1, math.Abs(w)) {
						t.Errorf("query %s: group %v %s: beam %v, in-process %v", qj, key, q.Aggregates[a].Op, cells[a], w)
					}
				}
			}
			for k, cells := range got {
				if seen[k] {
					continue
				}
				if plan.Remote().Selection {
					t.Errorf("query %s: group %s released on the Beam path from no data", qj, k)
				}
				// An empty public group: zero count, customers and sum.
				for a := range 3 {
					if cells[a] != 0 {
						t.Errorf("query %s: empty public group %s %s = %v, want 0", qj, k, q.Aggregates[a].Op, cells[a])
					}
				}
			}
			if len(want.Keys) == 0 {
				t.Fatalf("query %s selects no rows: the test data does not exercise it", qj)
			}
		})
	}
}

func TestMain(m *testing.M) {
	beam.Init()
	os.Exit(m.Run())
}
