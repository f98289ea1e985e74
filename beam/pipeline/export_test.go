package pipeline

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/analytics"
)

// TestExportLeavesOutHiddenAndPseudonymises checks what leaves the server: no
// row of a hidden (non-consenting) customer, no stored identifier, and
// pseudonyms that are stable within an export and unlinkable across keys.
func TestExportLeavesOutHiddenAndPseudonymises(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	evs := boundedEvents(rng, 200)
	snap := snapshotOf(evs, 300)
	hidden := make([]bool, snap.Subjects)
	for i := range hidden {
		hidden[i] = i%3 == 0
	}
	stored := map[uint64]bool{}
	visible := 0
	for _, ch := range snap.Chunks {
		ids := privalytics.Uint64s(ch.Record.Column(0))
		for j, s := range ch.Subjects {
			stored[ids[j]] = true
			if !hidden[s] {
				visible++
			}
		}
	}
	export := func(key string) map[uint64]int {
		dir := filepath.Join(t.TempDir(), "snap")
		n, files, err := analytics.ExportSnapshot(context.Background(), dir, snap, hidden, []byte(key))
		if err != nil {
			t.Fatal(err)
		}
		if n != visible {
			t.Fatalf("exported %d rows, want the %d of customers not hidden", n, visible)
		}
		seen := map[uint64]int{}
		for _, f := range files {
			chunks, err := analytics.ReadSnapshotFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, ch := range chunks {
				for _, id := range privalytics.Uint64s(ch.Record.Column(0)) {
					if stored[id] {
						t.Fatalf("a stored identifier %d left the server", id)
					}
					seen[id]++
				}
			}
		}
		return seen
	}
	a, b := export("first-key-0123456789abcdef"), export("second-key-0123456789abcdef")
	hiddenCount := 0
	for _, h := range hidden {
		if h {
			hiddenCount++
		}
	}
	if len(a) != snap.Subjects-hiddenCount {
		t.Errorf("%d pseudonyms, want one per visible customer (%d)", len(a), snap.Subjects-hiddenCount)
	}
	for id := range a {
		if _, ok := b[id]; ok {
			t.Fatalf("pseudonym %d appears under two keys: exports are linkable", id)
		}
	}
}
