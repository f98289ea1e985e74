package storetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
)

// testViews: views, their releases — one per (view, bucket, kind) however
// many readers claim it at once —, dashboards and share links, each tenant's
// own.
func testViews(t *testing.T, ms privalytics.MetaStore) {
	s, ok := ms.(privalytics.ViewStore)
	if !ok {
		t.Fatal("the store keeps no views (privalytics.ViewStore)")
	}
	ctx := context.Background()
	mustCreate(t, ms, tenant("shop", 10, 0))
	mustCreate(t, ms, tenant("other", 10, 0))
	v := &privalytics.View{ID: "view_1", TenantID: "shop", KeyID: "k1", CreatedAt: at(1), ViewSpec: privalytics.ViewSpec{Name: "daily", Cadence: "day", Epsilon: 0.1, Start: "2026-01-01",
		Query: privalytics.Query{Aggregates: []privalytics.Aggregate{{Op: "count"}}}}}
	if err := s.CreateView(ctx, v); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "a taken view ID", s.CreateView(ctx, v), privalytics.ECONFLICT)
	got, err := s.View(ctx, "shop", "view_1")
	if err != nil || got.Name != "daily" || got.Query.Aggregates[0].Op != "count" || !got.CreatedAt.Equal(at(1)) {
		t.Fatalf("View: %+v, %v", got, err)
	}
	_, err = s.View(ctx, "other", "view_1")
	wantCode(t, "another tenant's view", err, privalytics.ENOTFOUND)

	// Eight readers claim the same release at once: one wins.
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	claim := func(state string, claimedAt, staleBefore time.Time) error {
		return s.ClaimRelease(ctx, "shop", &privalytics.Release{ViewID: "view_1", Bucket: "2026-01-01", Start: day, End: day.AddDate(0, 0, 1), State: state, ClaimedAt: claimedAt}, staleBefore)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := claim(privalytics.ReleaseClosed, at(10), at(0))
			if err == nil {
				wins.Add(1)
			} else if privalytics.ErrorCode(err) != privalytics.ECONFLICT {
				t.Errorf("claim: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d readers won the claim of one release, want 1", wins.Load())
	}
	// A fresh claim is kept; a stale one is taken over.
	wantCode(t, "a fresh pending claim", claim(privalytics.ReleaseClosed, at(20), at(5)), privalytics.ECONFLICT)
	if err := claim(privalytics.ReleaseClosed, at(30), at(15)); err != nil {
		t.Fatalf("taking over a stale claim: %v", err)
	}
	rels, err := s.Releases(ctx, "shop", "view_1")
	if err != nil || len(rels) != 1 || rels[0].State != privalytics.ReleasePending || rels[0].Parameters["kind"] != privalytics.ReleaseClosed {
		t.Fatalf("pending release: %+v, %v", rels, err)
	}
	res := &privalytics.Result{GroupBy: []string{}, Rows: []privalytics.Row{{Key: []string{}, Cells: []privalytics.Cell{{Value: 41.5, Lower: 40, Upper: 43}}}}, Confidence: 0.95}
	done := &privalytics.Release{ViewID: "view_1", Bucket: "2026-01-01", State: privalytics.ReleaseClosed, ReleasedAt: at(31), Result: res, Parameters: map[string]any{"epsilon": 0.1}}
	wantCode(t, "completing another tenant's release", s.CompleteRelease(ctx, "other", done), privalytics.ECONFLICT)
	if err := s.CompleteRelease(ctx, "shop", done); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "completing a release twice", s.CompleteRelease(ctx, "shop", done), privalytics.ECONFLICT)
	wantCode(t, "claiming a made release, however old", claim(privalytics.ReleaseClosed, at(99), at(98)), privalytics.ECONFLICT)
	rels, err = s.Releases(ctx, "shop", "view_1")
	if err != nil || len(rels) != 1 || rels[0].State != privalytics.ReleaseClosed || rels[0].Result.Rows[0].Cells[0].Value != 41.5 || !rels[0].Start.Equal(day) || rels[0].Parameters["epsilon"] != 0.1 {
		t.Fatalf("made release: %+v, %v", rels, err)
	}
	// A so_far claim of the same bucket is another release; abandoned, it goes.
	if err := claim(privalytics.ReleaseSoFar, at(40), at(0)); err != nil {
		t.Fatal(err)
	}
	if err := s.AbandonRelease(ctx, "shop", "view_1", "2026-01-01", privalytics.ReleaseSoFar); err != nil {
		t.Fatal(err)
	}
	if rels, _ := s.Releases(ctx, "shop", "view_1"); len(rels) != 1 {
		t.Errorf("after abandoning the so_far claim: %d releases, want 1", len(rels))
	}
	if rels, _ := s.Releases(ctx, "other", "view_1"); len(rels) != 0 {
		t.Errorf("another tenant reads %d releases", len(rels))
	}

	d := &privalytics.Dashboard{ID: "dash_1", TenantID: "shop", Name: "main", ViewIDs: []string{"view_1"}, Layout: map[string]any{"cols": 2.0}, CreatedAt: at(50)}
	if err := s.CreateDashboard(ctx, d); err != nil {
		t.Fatal(err)
	}
	gd, err := s.Dashboard(ctx, "shop", "dash_1")
	if err != nil || gd.ViewIDs[0] != "view_1" || gd.Layout["cols"] != 2.0 {
		t.Fatalf("Dashboard: %+v, %v", gd, err)
	}
	if ds, _ := s.Dashboards(ctx, "other"); len(ds) != 0 {
		t.Errorf("another tenant lists %d dashboards", len(ds))
	}
	key := &privalytics.APIKey{ID: "k_share", TenantID: "shop", Name: "share dash_1", Role: privalytics.RoleShare, Hash: []byte("h"), CreatedAt: at(51)}
	if err := ms.CreateKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateShare(ctx, &privalytics.Share{ID: "k_share", TenantID: "shop", DashboardID: "dash_1", CreatedAt: at(51)}); err != nil {
		t.Fatal(err)
	}
	sh, err := s.ShareOf(ctx, "k_share")
	if err != nil || sh.DashboardID != "dash_1" || sh.RevokedAt != nil {
		t.Fatalf("ShareOf: %+v, %v", sh, err)
	}
	wantCode(t, "revoking another tenant's share", s.RevokeShare(ctx, "other", "dash_1", "k_share", at(52)), privalytics.ENOTFOUND)
	// Deleting the dashboard revokes its share and the share's key.
	if err := s.DeleteDashboard(ctx, "shop", "dash_1", at(53)); err != nil {
		t.Fatal(err)
	}
	if sh, _ := s.ShareOf(ctx, "k_share"); sh == nil || sh.RevokedAt == nil {
		t.Errorf("share after its dashboard's deletion: %+v", sh)
	}
	if k, _ := ms.Key(ctx, "k_share"); k == nil || k.RevokedAt == nil {
		t.Errorf("share key after its dashboard's deletion: %+v", k)
	}
	wantCode(t, "deleting another tenant's view", s.DeleteView(ctx, "other", "view_1"), privalytics.ENOTFOUND)
	if err := s.DeleteView(ctx, "shop", "view_1"); err != nil {
		t.Fatal(err)
	}
	if vs, _ := s.Views(ctx, "shop"); len(vs) != 0 {
		t.Errorf("%d views after deletion", len(vs))
	}
}
