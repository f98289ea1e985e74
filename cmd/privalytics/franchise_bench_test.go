package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The benchmark command runs (small) so that it keeps working; its figures
// come from `privalytics franchise bench` with the defaults.
func TestFranchiseBenchRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a federation round; skipped with -short")
	}
	var out bytes.Buffer
	if err := runFranchiseBench(context.Background(), &out, franchiseBenchOptions{locations: 3, threshold: 2, rows: 200}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"round end to end", "round critical path", "location 2", "key switch of 2", "franchisor"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the benchmark output lacks %q:\n%s", want, out.String())
		}
	}
}
