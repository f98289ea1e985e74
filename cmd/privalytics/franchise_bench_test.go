package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/privalytics/privalytics/internal/bench"
)

// The benchmark command runs (small) so that it keeps working; its figures
// come from `privalytics franchise bench` with the defaults.
func TestFranchiseBenchRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a federation round; skipped with -short")
	}
	var out bytes.Buffer
	if err := bench.RunFranchise(context.Background(), &out, startBenchServer, bench.FranchiseOptions{Locations: 3, Threshold: 2, Rows: 200}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"round end to end", "round critical path", "location 2", "key switch of 2", "franchisor"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the benchmark output lacks %q:\n%s", want, out.String())
		}
	}
}
