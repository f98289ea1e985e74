package analytics

import (
	"testing"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

// TestReservationBucketsAreTheViewsBuckets: the ledger reserves by the
// buckets dp.ViewBucketsIn lists, and a release is marked done under the
// label bucketAt gives it, so both must name and bound every bucket alike —
// over three years of days, including the ISO weeks across new year.
func TestReservationBucketsAreTheViewsBuckets(t *testing.T) {
	t.Parallel()
	from := time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(3, 0, 0)
	for _, cadence := range []string{privalytics.CadenceDay, privalytics.CadenceWeek, privalytics.CadenceMonth} {
		got := dp.ViewBucketsIn(cadence, from, from, to)
		n := 0
		for b := bucketAt(cadence, from); b.start.Before(to); b = bucketAt(cadence, b.end) {
			if n >= len(got) {
				t.Fatalf("%s: dp lists %d buckets, the views more", cadence, len(got))
			}
			if g := got[n]; g.Label != b.label || !g.Start.Equal(b.start) || !g.End.Equal(b.end) {
				t.Fatalf("%s bucket %d: dp %+v, views %+v", cadence, n, g, b)
			}
			n++
		}
		if n != len(got) || n < 36 {
			t.Fatalf("%s: dp lists %d buckets, the views %d", cadence, len(got), n)
		}
	}
}
