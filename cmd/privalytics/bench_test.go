package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/privalytics/privalytics/internal/bench"
)

// measured is a table line's measured column: a number and a unit, after the
// figure's column.
var measured = regexp.MustCompile(`\S  +[0-9][0-9.]* ?(k |M )?(events/s|rows/s|requests/s|B/row|×|ms)`)

// TestBenchSmall runs the whole benchmark on small sizes, scaling tenant
// included, and checks that every figure is printed with a measurement (the
// figures themselves are only meaningful at the documented sizes).
func TestBenchSmall(t *testing.T) {
	var out bytes.Buffer
	opt := bench.Options{HTTPRows: 5_000, ImportRows: 5_000, Rows: 40_000, ScaleRows: 10_000, Repeat: 1, Senders: 2, UCI: "/nonexistent/uci.csv.gz",
		Track:   bench.TrackOptions{Requests: 2_000, Senders: 8},
		Utility: bench.UtilityOptions{Customers: 500, Events: 20_000, Seed: 3, Epsilon: 0.5, Runs: 1, Candidates: 1}}
	if err := bench.Run(context.Background(), &out, startBenchServer, opt); err != nil {
		t.Fatal(err)
	}
	for _, figure := range []string{
		"HTTP ingest, NDJSON", "single events through /v1/track", "GET /healthz, same server", "file import, CSV", "on disk, 40000 rows sealed",
		"DP group-by with bounding, 40000 rows warm", "non-private path", "DP time ÷ non-private time",
		"process heap with 40000 rows warm", "DP group-by time, 40000 rows ÷ 10000 rows (same process)",
		"first DP query over HTTP after a restart, 40000 rows", "tenant load at start", "per core",
		"p99", "accuracy on UCI Online Retail",
		// the utility section, its shop sent through the server's HTTP ingest
		"revenue per month  ", "customers per store  ", "average line per category  ", "tuned ÷ defaults, share within 10%",
	} {
		line := ""
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.Contains(l, figure) {
				line = l
				break
			}
		}
		if line == "" {
			t.Errorf("no %q figure in the output:\n%s", figure, out.String())
		} else if cols := measured.FindStringSubmatch(line); figure != "accuracy on UCI Online Retail" && !strings.HasSuffix(figure, "  ") && !strings.HasPrefix(figure, "tuned") && cols == nil {
			t.Errorf("figure %q has no measurement in its column: %q", figure, line)
		}
	}
	if !strings.Contains(out.String(), "≤ 4.4×") { // 1.1 × 40,000 ÷ 10,000
		t.Errorf("the scaling target is not 1.1 × the row ratio:\n%s", out.String())
	}
}
