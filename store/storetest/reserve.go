package storetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
)

// testViewReservations: on a tenant with a budget per month, the views'
// declared cost of each month is reserved. An ad-hoc charge stops at the
// line (the refusal names the reservation); every release of the views still
// fits, also with ad-hoc charges racing them; a made release is charged, not
// reserved; deleting a view frees what it reserved of later months, not what
// its releases spent.
func testViewReservations(t *testing.T, ms privalytics.MetaStore) {
	s, ok := ms.(privalytics.ViewStore)
	if !ok {
		t.Fatal("the store keeps no views (privalytics.ViewStore)")
	}
	ctx := context.Background()
	tn := tenant("res", 1, 0)
	tn.Period = privalytics.PeriodMonth
	mustCreate(t, ms, tn)
	mustCreate(t, ms, tenant("life", 1, 0))
	count := privalytics.Query{Aggregates: []privalytics.Aggregate{{Op: "count"}}}
	views := []*privalytics.View{
		// March: 31 releases at 0.02 = 0.62; April: 30 = 0.6.
		{ID: "v_daily", TenantID: "res", KeyID: "k", CreatedAt: at(1), ViewSpec: privalytics.ViewSpec{Name: "daily", Cadence: "day", Epsilon: 0.02, Start: "2026-03-01", Query: count}},
		// One release a month at 0.1.
		{ID: "v_month", TenantID: "res", KeyID: "k", CreatedAt: at(2), ViewSpec: privalytics.ViewSpec{Name: "monthly", Cadence: "month", Epsilon: 0.1, Start: "2026-01-01", Query: count}},
		// Another tenant's view reserves nothing of this one.
		{ID: "v_life", TenantID: "life", KeyID: "k", CreatedAt: at(3), ViewSpec: privalytics.ViewSpec{Name: "other", Cadence: "day", Epsilon: 0.5, Start: "2026-03-01", Query: count}},
	}
	for _, v := range views {
		if err := s.CreateView(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	reserved := func(what, except string, want map[string]float64) {
		t.Helper()
		got, err := ms.Reserved(ctx, "res", except, []string{"2026-03", "2026-04"})
		if err != nil {
			t.Fatalf("%s: Reserved: %v", what, err)
		}
		eps := map[string]float64{}
		for p, c := range got {
			eps[p] = c.Epsilon
		}
		if diff := cmp.Diff(want, eps, approx); diff != "" {
			t.Errorf("%s: reserved ε by month (-want +got):\n%s", what, diff)
		}
	}
	reserved("two views", "", map[string]float64{"2026-03": 0.72, "2026-04": 0.7})
	reserved("a release's view left out", "v_daily", map[string]float64{"2026-03": 0.1, "2026-04": 0.1})
	if got, err := ms.Reserved(ctx, "life", "", []string{"2026-03"}); err != nil || len(got) != 0 {
		t.Errorf("a tenant with one budget reserves nothing by month: %v, %v", got, err)
	}

	chargeRelease := func(eps float64, viewID, bucket string, periods ...string) error {
		_, err := ms.Charge(ctx, &privalytics.Charge{TenantID: "res", KeyID: "k", Time: time.Now(), Cost: privalytics.Cost{Epsilon: eps}, Periods: periods,
			ViewID: viewID, ViewBucket: bucket, ViewKind: privalytics.ReleaseClosed})
		return err
	}
	charge := func(eps float64, viewID string, periods ...string) error {
		return chargeRelease(eps, viewID, "", periods...)
	}
	// Ad-hoc: 1 − 0.72 = 0.28 of March is free.
	if err := charge(0.2, "", "2026-03"); err != nil {
		t.Fatalf("ad-hoc 0.2 of March's free 0.28: %v", err)
	}
	if st, err := ms.Budget(ctx, "res"); err != nil || len(st.Periods) != 1 || !approxEq(st.Periods[0].Reserved.Epsilon, 0.72) || !approxEq(st.Periods[0].Remaining.Epsilon, 0.8) {
		t.Errorf("Budget: %+v, %v; want March with ε 0.8 remaining, 0.72 of it reserved", st.Periods, err)
	}
	err := charge(0.1, "", "2026-03")
	wantCode(t, "ad-hoc 0.1 past the views' line", err, privalytics.EBUDGET)
	d := privalytics.ErrorDetails(err)
	if r, _ := d["reserved"].(privalytics.Cost); d["period"] != "2026-03" || !approxEq(r.Epsilon, 0.72) {
		t.Errorf("refusal details %v: want period 2026-03 and ε 0.72 reserved", d)
	}

	release := func(v *privalytics.View, bucket string, start time.Time) error {
		r := &privalytics.Release{ViewID: v.ID, Bucket: bucket, Start: start, End: start.AddDate(0, 0, 1), State: privalytics.ReleaseClosed, ClaimedAt: at(10)}
		if err := s.ClaimRelease(ctx, "res", r, at(0)); err != nil {
			return err
		}
		if err := chargeRelease(v.Epsilon, v.ID, bucket, start.Format("2006-01")); err != nil {
			return err
		}
		r.ReleasedAt, r.Parameters = at(11), map[string]any{"epsilon": v.Epsilon}
		return s.CompleteRelease(ctx, "res", r)
	}
	// Every release of March fits, while ad-hoc charges race them for the
	// 0.08 still free: at most 8 of 0.01 pass.
	var adhoc atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 6 {
				switch err := charge(0.01, "", "2026-03"); privalytics.ErrorCode(err) {
				case "":
					adhoc.Add(1)
				case privalytics.EBUDGET:
				default:
					t.Errorf("ad-hoc charge: %v", err)
				}
			}
		}()
	}
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range 31 {
		b := day.AddDate(0, 0, i)
		if err := release(views[0], b.Format(time.DateOnly), b); err != nil {
			t.Errorf("the daily view's release of %s: %v", b.Format(time.DateOnly), err)
		}
	}
	wg.Wait()
	if n := adhoc.Load(); n != 8 {
		t.Errorf("%d ad-hoc charges of 0.01 passed, want the 8 that fit beside the reservation", n)
	}
	reserved("March's daily releases made", "", map[string]float64{"2026-03": 0.1, "2026-04": 0.7})
	m := &privalytics.Release{ViewID: "v_month", Bucket: "2026-03", Start: day, End: day.AddDate(0, 1, 0), State: privalytics.ReleaseClosed, ClaimedAt: at(20)}
	if err := s.ClaimRelease(ctx, "res", m, at(0)); err != nil {
		t.Fatal(err)
	}
	reserved("a pending release is still reserved", "", map[string]float64{"2026-03": 0.1, "2026-04": 0.7})
	if err := chargeRelease(0.1, "v_month", "2026-03", "2026-03"); err != nil {
		t.Fatalf("the monthly view's release of March, last of the month: %v", err)
	}
	// Charged but not stored yet: spent, no longer reserved — never both.
	reserved("a charged pending release", "", map[string]float64{"2026-03": 0, "2026-04": 0.7})
	m.ReleasedAt = at(21)
	if err := s.CompleteRelease(ctx, "res", m); err != nil {
		t.Fatal(err)
	}
	reserved("every March release made", "", map[string]float64{"2026-03": 0, "2026-04": 0.7})
	st := ledgerAddsUp(t, ms, "res")
	for _, p := range st.Periods {
		if p.Period == "2026-03" && !approxEq(p.Spent.Epsilon, 1) {
			t.Errorf("March spent ε %v, want the whole 1 (0.28 ad-hoc, 0.72 views)", p.Spent.Epsilon)
		}
	}
	// A release past the month's budget is refused like any charge.
	wantCode(t, "a view's release in a spent month", charge(0.02, "v_daily", "2026-03"), privalytics.EBUDGET)

	// Deleting the daily view frees April's 0.6, not March's spending.
	if err := s.DeleteView(ctx, "res", "v_daily"); err != nil {
		t.Fatal(err)
	}
	reserved("the daily view deleted", "", map[string]float64{"2026-03": 0, "2026-04": 0.1})
	if err := charge(0.9, "", "2026-04"); err != nil {
		t.Errorf("ad-hoc 0.9 of April once the daily view is gone: %v", err)
	}
	wantCode(t, "ad-hoc past April's line", charge(0.01, "", "2026-04"), privalytics.EBUDGET)
	err = charge(0.01, "", "2026-03")
	wantCode(t, "March after the deletion", err, privalytics.EBUDGET)
	if d := privalytics.ErrorDetails(err); d["reserved"] != nil {
		t.Errorf("March is spent, not reserved: details %v", d)
	}
}

func approxEq(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
