package analytics

import (
	"context"
	"slices"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp/dptest"
)

// TestExecuteHidingLeavesOutHiddenCustomers hides every third customer (as a
// consent withdrawal does) and checks, without noise, that exactly the others
// are counted — across several chunks, with a customer's rows in many.
func TestExecuteHidingLeavesOutHiddenCustomers(t *testing.T) {
	t.Parallel()
	events := randomEvents(newRNG(7, 11), 5000, 60)
	snap := snapshotOf(events, 700)
	visible := func(s uint64) bool { return s%3 != 0 }
	hidden, err := HiddenSubjects(snap, visible)
	if err != nil {
		t.Fatal(err)
	}
	// The store holds pseudonyms dictionary-encoded in memory: the same
	// customers must be hidden.
	if h2, err := HiddenSubjects(compacted(t, snap), visible); err != nil || !slices.Equal(h2, hidden) {
		t.Fatalf("HiddenSubjects over compact chunks: %v (err %v), want %v", h2, err, hidden)
	}
	want := map[uint64]bool{}
	for _, e := range events {
		if visible(e.subj) {
			want[e.subj] = true
		}
	}
	q := &privalytics.Query{Aggregates: []privalytics.Aggregate{{Op: "distinct_customers"}}, Bounds: privalytics.Bounds{MaxGroups: 1}, Epsilon: 1} // fixed bounds: executed directly, not tuned
	p, err := NewPlan(q, schema, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string][]bool{"hidden": hidden, "none hidden": nil} {
		part, err := ExecuteHiding(context.Background(), p, snap, h)
		if err != nil {
			t.Fatal(err)
		}
		res, err := release(p, part, dptest.NoNoise())
		if err != nil {
			t.Fatal(err)
		}
		n := len(want)
		if h == nil {
			n = snap.Subjects
		}
		if got := res.Rows[0].Cells[0].Value; got != float64(n) {
			t.Errorf("%s: %v customers counted, want %d", name, got, n)
		}
	}
	if h, err := HiddenSubjects(snap, func(uint64) bool { return true }); err != nil || h != nil {
		t.Errorf("nobody hidden: HiddenSubjects = %v, %v; want nil", h, err)
	}
}
