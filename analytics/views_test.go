package analytics

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/privalytics/privalytics"
)

// releasedStore is a ViewStore whose view has every bucket released already:
// Rollup reads it and must not make a release.
type releasedStore struct {
	privalytics.ViewStore // nil: any other call panics
	rels                  []privalytics.Release
}

func (s releasedStore) Releases(context.Context, string, string) ([]privalytics.Release, error) {
	return s.rels, nil
}

// TestRollupAddsUp: quarter and total roll-ups of hand-made weekly releases —
// sums, intervals whose sides add in quadrature, weeks in the quarter of their
// Monday, "complete" only for an ended quarter, non-additive aggregates left out.
func TestRollupAddsUp(t *testing.T) {
	t.Parallel()
	aggs := []privalytics.AggregateInfo{{Name: "count", Op: "count"}, {Name: "mean_amount", Op: "mean"}}
	week := func(start string, a, al, ah, b, bl, bh float64) privalytics.Release {
		s, _ := time.Parse(time.DateOnly, start)
		return privalytics.Release{ViewID: "v", Bucket: label(s, "week"), Start: s, End: s.AddDate(0, 0, 7), State: privalytics.ReleaseClosed,
			Result: &privalytics.Result{GroupBy: []string{"category"}, Aggregates: aggs, Rows: []privalytics.Row{
				{Key: []string{"a"}, Cells: []privalytics.Cell{{Value: a, Lower: al, Upper: ah}, {Value: 99, Lower: 0, Upper: 200}}},
				{Key: []string{"b"}, Cells: []privalytics.Cell{{Value: b, Lower: bl, Upper: bh}, {Value: 99, Lower: 0, Upper: 200}}},
			}}}
	}
	store := releasedStore{rels: []privalytics.Release{
		week("2026-03-23", 10, 8, 13, 5, 4, 6),
		week("2026-03-30", 20, 17, 23, 7, 5, 9), // Monday in March: Q1, though most of it is April
		week("2026-04-06", 1, 0, 2, 2, 1, 3),
	}}
	now := time.Date(2026, 4, 13, 0, 10, 0, 0, time.UTC)
	v := NewViews(ViewsDeps{Store: store, Queries: NewService(ServiceDeps{}), Now: func() time.Time { return now }})
	view := &privalytics.View{ID: "v", ViewSpec: privalytics.ViewSpec{Cadence: "week", Start: "2026-03-23", Epsilon: 1,
		Query: privalytics.Query{GroupBy: []privalytics.GroupKey{{Column: "category", Keys: []string{"a", "b"}}}}}}
	r := ViewRequest{Tenant: &privalytics.Tenant{ID: "shop"}}
	row := func(bucket string, group map[string]string, sum, lo2, hi2 float64, n int, complete bool) RollupRow {
		return RollupRow{Bucket: bucket, Group: group, Values: map[string]float64{"count": sum},
			Intervals: map[string][2]float64{"count": {sum - math.Sqrt(lo2), sum + math.Sqrt(hi2)}}, Buckets: n, Complete: complete}
	}
	a, b, all := map[string]string{"category": "a"}, map[string]string{"category": "b"}, map[string]string{}
	sortRows := cmpopts.SortSlices(func(x, y RollupRow) bool {
		return x.Bucket+x.Group["category"] < y.Bucket+y.Group["category"]
	})
	tol := cmpopts.EquateApprox(0, 1e-12)
	got, err := v.Rollup(context.Background(), r, view, "quarter")
	if err != nil {
		t.Fatal(err)
	}
	want := []RollupRow{
		row("2026-Q1", a, 30, 4+9, 9+9, 2, true),
		row("2026-Q1", b, 12, 1+4, 1+4, 2, true),
		row("2026-Q1", all, 42, 4+9+1+4, 9+9+1+4, 2, true),
		row("2026-Q2", a, 1, 1, 1, 1, false),
		row("2026-Q2", b, 2, 1, 1, 1, false),
		row("2026-Q2", all, 3, 2, 2, 1, false),
	}
	if diff := cmp.Diff(want, got, sortRows, tol); diff != "" {
		t.Errorf("quarters (-want +got):\n%s", diff)
	}
	got, err = v.Rollup(context.Background(), r, view, "total")
	if err != nil {
		t.Fatal(err)
	}
	want = []RollupRow{
		row("total", a, 31, 4+9+1, 9+9+1, 3, false),
		row("total", b, 14, 1+4+1, 1+4+1, 3, false),
		row("total", all, 45, 4+9+1+4+1+1, 9+9+1+4+1+1, 3, false),
	}
	if diff := cmp.Diff(want, got, sortRows, tol); diff != "" {
		t.Errorf("total (-want +got):\n%s", diff)
	}
	if _, err := v.Rollup(context.Background(), r, view, "month"); privalytics.ErrorCode(err) != privalytics.EINVALID {
		t.Errorf("by=month: %v, want invalid", err)
	}
}
