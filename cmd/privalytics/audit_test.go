package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/dp/dptest"
	"github.com/privalytics/privalytics/store/audit"
)

// runCLI runs the privalytics command with args and returns its output and error.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := rootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestEndToEndAudit drives a real server through administrative actions, a
// query and two denials, reads the trail back through the API, then checks
// that `privalytics audit verify` accepts the log and rejects tampered copies,
// naming the first bad line.
func TestEndToEndAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mech := dptest.NoNoise()
	dir := t.TempDir()
	ts := startServer(t, &mech, dir)
	admin, ingest, query := ts.tenantKeys(t, "shop", wire.Cost{Epsilon: 10, Delta: 1e-5})
	if _, err := ingest.Ingest(ctx, []byte(`{"customer_id":"c1","ts":"2025-03-01T10:00:00Z","type":"purchase","amount":"3.20"}`+"\n"), client.IngestOptions{}); err != nil {
		t.Fatal(err)
	}
	q := &wire.Query{Aggregates: []wire.Aggregate{{Op: "count"}}, Epsilon: 0.5}
	if _, err := query.Query(ctx, q); err != nil {
		t.Fatal(err)
	}
	if _, err := ingest.Query(ctx, q); privalytics.ErrorCode(err) != privalytics.EFORBIDDEN {
		t.Fatalf("ingest key querying: %v, want forbidden", err)
	}
	if _, err := query.Audit(ctx, 0, 10); privalytics.ErrorCode(err) != privalytics.EFORBIDDEN {
		t.Fatalf("query key reading the audit trail: %v, want forbidden", err)
	}
	if _, err := admin.Grant(ctx, wire.Cost{Epsilon: 1}); err != nil {
		t.Fatal(err)
	}

	entries, err := admin.Audit(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		got = append(got, e.Action+" "+e.Outcome)
		if e.TenantID != "shop" || e.Hash == "" {
			t.Errorf("entry %+v: want tenant shop and a hash", e)
		}
		if e.Action == "query.run" && e.Outcome == "ok" && (e.Details["epsilon"] != "0.5" || e.Details["charge_id"] == "" || e.Target != "analytics") {
			t.Errorf("query entry details %v: want epsilon 0.5, a charge ID and target analytics", e.Details)
		}
	}
	want := []string{"tenant.create ok", "key.issue ok", "key.issue ok", "key.issue ok", "query.run ok", "access.denied forbidden", "access.denied forbidden", "budget.grant ok"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("audit trail, oldest first:\n got %s\nwant %s", strings.Join(got, ", "), strings.Join(want, ", "))
	}

	out, err := runCLI(t, "audit", "verify", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "OK: 8 entries") {
		t.Fatalf("audit verify on the live log: %v\n%s", err, out)
	}

	raw, err := os.ReadFile(filepath.Join(dir, audit.FileName))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(raw), "\n")
	lines = lines[:len(lines)-1]
	tampered := map[string]struct {
		lines []string
		want  string
	}{
		"edited":    {append(append(append([]string(nil), lines[:4]...), strings.Replace(lines[4], `"epsilon":"0.5"`, `"epsilon":"0.1"`, 1)), lines[5:]...), "line 5 (seq 5): the entry does not hash"},
		"deleted":   {append(append([]string(nil), lines[:5]...), lines[6:]...), "line 6 (seq 7): seq 7 where 6"},
		"reordered": {append(append([]string(nil), lines[:2]...), append([]string{lines[3], lines[2]}, lines[4:]...)...), "line 3 (seq 4)"},
	}
	for name, tc := range tampered {
		path := filepath.Join(t.TempDir(), name+".log")
		if err := os.WriteFile(path, []byte(strings.Join(tc.lines, "")), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := runCLI(t, "audit", "verify", "--file", path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(out, "FAILED") {
			t.Errorf("%s log: verify said %v\n%s\nwant a failure naming %q", name, err, out, tc.want)
		}
	}
}
