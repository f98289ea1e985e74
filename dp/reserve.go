package dp

import (
	"fmt"
	"time"

	"github.com/privalytics/privalytics"
)

// ViewReservation is one view's claim on the budget of the periods its
// releases draw on (tenants with data-period budgets): every release of the
// view not made yet — each closed bucket's, and with SoFar each open bucket's
// one so_far release until the closed one is made — is reserved at PerRelease
// in each month its bucket touches. A release that is made (or failed after
// its charge) is charged instead; one that is pending is still reserved, so a
// release between its charge and its completion is counted twice, never zero
// times.
type ViewReservation struct {
	Cadence string // privalytics.CadenceDay, CadenceWeek or CadenceMonth
	Start   string // the first bucket's day, YYYY-MM-DD
	SoFar   bool
	// PerRelease is the view's declared cost of one release.
	PerRelease Units
	// Done holds bucket+"/"+kind of every release made or failed.
	Done map[string]bool
}

// ViewBucket is one bucket of a view's cadence, labelled as the views label
// it (2026-03-02, 2026-W10, 2026-03).
type ViewBucket struct {
	Label      string
	Start, End time.Time
}

// ViewBucketsIn lists the buckets of a cadence, from the one holding start on,
// that overlap [from, to).
func ViewBucketsIn(cadence string, start, from, to time.Time) []ViewBucket {
	var out []ViewBucket
	b := viewBucketAt(cadence, start)
	if b.End.Before(from) {
		// Skip ahead: the bucket holding from, never before the first.
		if f := viewBucketAt(cadence, from); f.Start.After(b.Start) {
			b = f
		}
	}
	for ; b.Start.Before(to); b = viewBucketAt(cadence, b.End) {
		if b.End.After(from) {
			out = append(out, b)
		}
	}
	return out
}

func viewBucketAt(cadence string, t time.Time) ViewBucket {
	y, m, d := t.UTC().Date()
	switch cadence {
	case privalytics.CadenceDay:
		s := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		return ViewBucket{Label: s.Format(time.DateOnly), Start: s, End: s.AddDate(0, 0, 1)}
	case privalytics.CadenceWeek:
		back := (int(t.UTC().Weekday()) + 6) % 7 // days since Monday
		s := time.Date(y, m, d-back, 0, 0, 0, 0, time.UTC)
		wy, w := s.ISOWeek()
		return ViewBucket{Label: fmt.Sprintf("%d-W%02d", wy, w), Start: s, End: s.AddDate(0, 0, 7)}
	}
	s := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	return ViewBucket{Label: s.Format("2006-01"), Start: s, End: s.AddDate(0, 1, 0)}
}

// Reserved is what the views vs still reserve of the month period ("2026-03"):
// PerRelease for each of their releases touching that month not made yet.
// An unreadable period or start reserves nothing of it.
func Reserved(vs []ViewReservation, period string) Units {
	from, err := time.Parse("2006-01", period)
	if err != nil {
		return Units{}
	}
	to := from.AddDate(0, 1, 0)
	var sum Units
	for _, v := range vs {
		start, err := time.Parse(time.DateOnly, v.Start)
		if err != nil {
			continue
		}
		for _, b := range ViewBucketsIn(v.Cadence, start, from, to) {
			closed := v.Done[b.Label+"/"+privalytics.ReleaseClosed]
			if !closed {
				sum = sum.Plus(v.PerRelease)
			}
			if v.SoFar && !closed && !v.Done[b.Label+"/"+privalytics.ReleaseSoFar] {
				sum = sum.Plus(v.PerRelease)
			}
		}
	}
	return sum
}
