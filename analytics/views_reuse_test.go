package analytics

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp/dptest"
	"github.com/privalytics/privalytics/store/sqlite"
)

// TestViewReuseAppliesTheCorrection: a tuned view's release that reuses an
// earlier release's limits applies that release's correction for the bias of
// bounding too — its cells are the fixed-bounds answer times the reported
// factor, and carry the estimated loss — while the same fixed-bounds question
// asked ad hoc, whose answer the cache may share with the view, stays
// uncorrected. January's release is stored by hand with a known report; the
// mechanisms are noise-free, so the answers are exact.
func TestViewReuseAppliesTheCorrection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tenant := *testTenant
	tenant.Name, tenant.Budget, tenant.WrappedKey = "Shop", privalytics.Cost{Epsilon: 100}, []byte("wrapped")
	if err := db.CreateTenant(ctx, &tenant); err != nil {
		t.Fatal(err)
	}
	var events []event
	for c := range 400 {
		events = append(events, event{subj: uint64(c), ts: time.Date(2026, 2, 1+c%27, 10, 0, 0, 0, time.UTC), typ: "purchase",
			channel: "web", category: "tea", amount: int64(10+c%200) * 1000, hasAmt: true})
	}
	ledger := &fakeLedger{total: privalytics.Cost{Epsilon: 100}}
	svc := newTestService(ledger, &fakePorts{snap: snapshotOf(events, 100)}, dptest.NoNoise(), 0)
	now := time.Date(2026, 3, 5, 1, 0, 0, 0, time.UTC)
	views := NewViews(ViewsDeps{Store: db, Queries: svc, Ledger: ledger, Now: func() time.Time { return now }})
	view := &privalytics.View{ID: "view_revenue", TenantID: tenant.ID, KeyID: "k1", CreatedAt: now,
		ViewSpec: privalytics.ViewSpec{Name: "revenue", Cadence: "month", Start: "2026-01-01", Epsilon: 1,
			Query: privalytics.Query{Aggregates: []privalytics.Aggregate{{Op: "sum", Column: "amount"}}}}}
	if err := db.CreateView(ctx, view); err != nil {
		t.Fatal(err)
	}
	jan := &privalytics.Release{ViewID: view.ID, Bucket: "2026-01", Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
		State: privalytics.ReleaseClosed, ClaimedAt: now, ReleasedAt: now}
	if err := db.ClaimRelease(ctx, tenant.ID, jan, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	report := &privalytics.TuningReport{Share: 0.1, Epsilon: 0.1, MaxGroups: 1, Noise: "laplace", Reason: "by hand",
		Aggregates: []privalytics.TunedAggregate{{Name: "sum_amount", Lower: 0, Upper: 100, BoundingLoss: 0.2, Correction: 1.25}}}
	jan.Result = &privalytics.Result{Tuning: report, Rows: []privalytics.Row{}}
	if err := db.CompleteRelease(ctx, tenant.ID, jan); err != nil {
		t.Fatal(err)
	}

	r := ViewRequest{Tenant: &tenant, KeyID: "k1", FingerprintKey: []byte("0123456789abcdef")}
	rels, err := views.Releases(ctx, r, view, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 1 || rels[0].Result == nil || rels[0].Result.Tuning == nil {
		t.Fatalf("February: %+v, want one release reusing January's tuning", rels)
	}
	feb := rels[0].Result
	if ta := feb.Tuning.Aggregates[0]; feb.Tuning.Epsilon != 0 || ta.Correction != 1.25 || ta.Upper != 100 {
		t.Fatalf("February's tuning %+v: want January's limits and correction, no ε on tuning", feb.Tuning)
	}
	// The same fixed-bounds question ad hoc: the bounded truth, uncorrected.
	// It is the very query February ran, so the answer comes from the cache.
	fixed := withTuning(bucketQuery(&tenant, &view.ViewSpec, bucketAt("month", time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))), report)
	adhoc, err := svc.Run(ctx, Request{Tenant: &tenant, KeyID: "k1", Query: fixed, FingerprintKey: r.FingerprintKey})
	if err != nil {
		t.Fatal(err)
	}
	if !adhoc.Cached {
		t.Errorf("the ad-hoc question was not answered from the cache: the test does not reach what it means to")
	}
	bounded := 0.0
	for c := range 400 {
		bounded += math.Min(float64(10+c%200), 100)
	}
	a, got := adhoc.Rows[0].Cells[0], feb.Rows[0].Cells[0]
	if math.Abs(a.Value-bounded) > 1e-6 || a.BoundingLoss != 0 {
		t.Errorf("ad hoc: %+v, want the bounded total %v and no loss", a, bounded)
	}
	if math.Abs(got.Value-1.25*bounded) > 1e-6 || math.Abs(got.Lower-1.25*a.Lower) > 1e-6 || math.Abs(got.Upper-1.25*a.Upper) > 1e-6 || got.BoundingLoss != 0.2 {
		t.Errorf("February: %+v, want the ad-hoc cell %+v × 1.25 with loss 0.2", got, a)
	}
}
