package dp

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
)

// TestReserved counts, by hand, the releases not made yet that draw on one
// month: 1 March 2026 is a Sunday, so the ISO weeks touching March start on
// 23 Feb, 2, 9, 16, 23 and 30 March (W09 to W14); touching April, on 30 March,
// 6, 13, 20 and 27 April.
func TestReserved(t *testing.T) {
	t.Parallel()
	daily := ViewReservation{Cadence: privalytics.CadenceDay, Start: "2026-03-10", PerRelease: eps(0.1)}
	dailyDone := daily
	dailyDone.Done = map[string]bool{"2026-03-10/closed": true, "2026-03-11/closed": true, "2026-02-28/closed": true}
	weekly := ViewReservation{Cadence: privalytics.CadenceWeek, Start: "2026-03-04", SoFar: true, PerRelease: eps(0.5)}
	weeklyDone := weekly
	// W10 closed: its so_far is no longer due either; W11 so_far made: its
	// closed release still is.
	weeklyDone.Done = map[string]bool{"2026-W10/closed": true, "2026-W11/so_far": true}
	monthly := ViewReservation{Cadence: privalytics.CadenceMonth, Start: "2026-01-15", PerRelease: Units{Eps: 2e9, Delta: 1000}}
	tests := []struct {
		name   string
		vs     []ViewReservation
		period string
		want   Units
	}{
		{"daily from 10 March: 22 days of March", []ViewReservation{daily}, "2026-03", eps(2.2)},
		{"daily: two of them made (a February one does not count)", []ViewReservation{dailyDone}, "2026-03", eps(2.0)},
		{"daily: nothing before its start", []ViewReservation{daily}, "2026-02", Units{}},
		{"daily: all of April", []ViewReservation{daily}, "2026-04", eps(3.0)},
		{"weekly with so_far from the week of 2 March: W10 to W14, two releases each", []ViewReservation{weekly}, "2026-03", eps(5)},
		{"weekly: W10 closed, W11's so_far made", []ViewReservation{weeklyDone}, "2026-03", eps(3.5)},
		{"weekly: the week of 30 March draws on April too", []ViewReservation{weeklyDone}, "2026-04", eps(5)},
		{"monthly: one release, δ too", []ViewReservation{monthly}, "2026-03", Units{Eps: 2e9, Delta: 1000}},
		{"all three", []ViewReservation{dailyDone, weeklyDone, monthly}, "2026-03", Units{Eps: 2e9 + 35e8 + 2e9, Delta: 1000}},
		{"an unreadable period reserves nothing", []ViewReservation{daily}, "2026-3", Units{}},
	}
	for _, tt := range tests {
		if got := Reserved(tt.vs, tt.period); got != tt.want {
			t.Errorf("%s: Reserved = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

// TestDecideStopsAtTheViewsReservation: an ad-hoc charge fits in what neither
// spending nor the views' reservation holds, to the unit; past it the refusal
// names the reservation and what to do; past the month's budget itself it is
// the month's refusal.
func TestDecideStopsAtTheViewsReservation(t *testing.T) {
	t.Parallel()
	a := Account{Period: privalytics.PeriodMonth, Total: eps(1), Spent: eps(3),
		PeriodSpent: map[string]Units{"2026-03": eps(0.25)}, Reserved: map[string]Units{"2026-03": eps(0.5), "2026-04": eps(0.9)}}
	if err := Decide(a, eps(0.25), []string{"2026-03"}); err != nil {
		t.Fatalf("what is free of March: %v", err)
	}
	if err := Decide(a, eps(0.1), []string{"2026-03", "2026-04"}); err != nil {
		t.Fatalf("0.1 of March and April: %v", err)
	}
	err := Decide(a, Units{Eps: 25e7 + 1}, []string{"2026-03"})
	if privalytics.ErrorCode(err) != privalytics.EBUDGET {
		t.Fatalf("one unit past the reservation: %v, want EBUDGET", err)
	}
	d := privalytics.ErrorDetails(err)
	want := map[string]any{"period": "2026-03", "reserved": privalytics.Cost{Epsilon: 0.5}, "remaining": privalytics.Cost{Epsilon: 0.25}, "needed": Units{Eps: 25e7 + 1}.Cost()}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("details (-want +got):\n%s", diff)
	}
	msg := privalytics.ErrorMessage(err)
	for _, w := range []string{"only ε 0.25 of the privacy budget of 2026-03 is free", "ε 0.5 of it is reserved for the releases of this tenant's views", "delete a view", "next month", "smaller epsilon"} {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q lacks %q", msg, w)
		}
	}
	// April binds: 0.1 free.
	if err := Decide(a, eps(0.2), []string{"2026-03", "2026-04"}); privalytics.ErrorDetails(err)["period"] != "2026-04" {
		t.Errorf("April's reservation: %v", err)
	}
	// Past the month's own budget it is the month's refusal, without the views.
	err = Decide(a, eps(0.8), []string{"2026-03"})
	if d := privalytics.ErrorDetails(err); privalytics.ErrorCode(err) != privalytics.EBUDGET || d["reserved"] != nil || d["remaining"] != (privalytics.Cost{Epsilon: 0.75}) {
		t.Errorf("past March's budget: %v %v", err, d)
	}
	// A view's release is decided without its own reservation (the store
	// leaves it out): the same charge fits.
	a.Reserved = nil
	if err := Decide(a, Units{Eps: 25e7 + 1}, []string{"2026-03"}); err != nil {
		t.Errorf("without the reservation: %v", err)
	}
}
