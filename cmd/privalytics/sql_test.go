package main

import (
	"context"
	"strings"
	"testing"

	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/dp/dptest"
)

// TestQuerySQLCommand: `privalytics query --sql` answers through POST /v1/sql and
// prints the table; a mistake is reported with its position.
func TestQuerySQLCommand(t *testing.T) {
	t.Parallel()
	mech := dptest.NoNoise()
	ts := startServer(t, &mech, "")
	_, ingest, query := ts.tenantKeys(t, "sqlshop", wire.Cost{Epsilon: 5, Delta: 1e-5})
	var lines strings.Builder
	for i := range 12 {
		lines.WriteString(`{"customer_id":"c` + string(rune('a'+i)) + `","ts":"2025-03-01T10:00:00Z","type":"purchase","channel":"` + []string{"web", "app"}[i%2] + `"}` + "\n")
	}
	if _, err := ingest.Ingest(context.Background(), []byte(lines.String()), client.IngestOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "query", "--server", ts.app.URL(), "--key", query.Token(), "--sql",
		"SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 0.5) channel, COUNT(*) AS buyers FROM events GROUP BY channel")
	if err != nil {
		t.Fatalf("query --sql: %v\n%s", err, out)
	}
	for _, want := range []string{"buyers", "web", "app", "6"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A count without bounds is tuned, and the table says what tuning chose.
	// Twelve purchases show nothing above the histograms' noise, so nothing
	// is corrected: the 6 above is the count as bounded.
	if !strings.Contains(out, "Limits chosen from the data") || !strings.Contains(out, "groups per customer") || strings.Contains(out, "corrected for") {
		t.Errorf("the tuned answer's note does not say what tuning chose, or claims a correction:\n%s", out)
	}
	// --explain prints the cost and the interval, and spends nothing.
	before, err := query.Budget(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--sql", "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 0.25) channel, COUNT(*) AS buyers FROM events GROUP BY channel"},
		{`{"group_by":[{"column":"channel"}],"aggregates":[{"name":"buyers","op":"count"}],"epsilon":0.25}`},
	} {
		out, err := runCLI(t, append([]string{"query", "--explain", "--server", ts.app.URL(), "--key", query.Token()}, args...)...)
		if err != nil || !strings.Contains(out, "Would cost ε=0.25") || !strings.Contains(out, "buyers") || !strings.Contains(out, "laplace") {
			t.Errorf("query --explain %s: %v\n%s", args[0], err, out)
		}
	}
	if after, err := query.Budget(context.Background()); err != nil || after.Spent != before.Spent {
		t.Errorf("explain spent budget: %+v → %+v (%v)", before.Spent, after.Spent, err)
	}
	out, err = runCLI(t, "query", "--server", ts.app.URL(), "--key", query.Token(), "--sql",
		"SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 0.5) COUNT(*) FROM events WHERE channel = 'web' OR channel = 'app'")
	if err == nil || !strings.Contains(describe(err)+out, "1:101") {
		t.Errorf("a query with OR: %v\n%s\nwant an error at 1:101", err, out)
	}
}
