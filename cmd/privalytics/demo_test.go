package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/privalytics/privalytics/internal/demo"
	"github.com/privalytics/privalytics/synth"
)

// TestDemoRuns runs the demo end to end on a small shop: a server on
// 127.0.0.1:0, the tenant and its keys, ingest through the API, and every
// question answered with its cost and the budget left.
func TestDemoRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := runDemo(ctx, &out, demoOptions{events: 3_000, seed: 7, addr: "127.0.0.1:0", dataDir: t.TempDir()}); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	got := out.String()
	want := []string{"Ingested 3000 events through POST /v1/events", "Privacy budget of tenant \"demo\"", "Demo ready in", "Query API key:   pvk_"}
	for _, q := range demo.Questions(synth.DefaultConfig()) {
		want = append(want, q.Title+"\n")
	}
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("demo output lacks %q:\n%s", w, got)
		}
	}
	if n := strings.Count(got, "  cost ε="); n != 4 {
		t.Errorf("demo printed %d answers' costs, want 4:\n%s", n, got)
	}
}
