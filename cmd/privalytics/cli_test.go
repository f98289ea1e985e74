package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/dp/dptest"
)

// cliJSON runs a command with --output json and decodes what it printed.
func cliJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out, err := runCLI(t, append(args, "--output", "json")...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args[:2], " "), describe(err), out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%s --output json printed something that is not JSON: %v\n%s", strings.Join(args[:2], " "), err, out)
	}
}

// cliCSV runs a command with --output csv and parses what it printed.
func cliCSV(t *testing.T, args ...string) [][]string {
	t.Helper()
	// Standard output only, as `> file.csv` keeps it: notes go to stderr.
	out, err := runCLIStdout(t, append(args, "--output", "csv")...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args[:2], " "), describe(err), out)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("%s --output csv printed bad CSV: %v\n%s", strings.Join(args[:2], " "), err, out)
	}
	return recs
}

// TestCLICommandsEndToEnd drives every client command through a real server on
// 127.0.0.1:0, in each output format, and checks what each prints against what
// the server holds.
func TestCLICommandsEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mech := dptest.NoNoise()
	ts := startServer(t, &mech, "")
	admin, ingest, query := ts.tenantKeys(t, "clishop", wire.Cost{Epsilon: 5, Delta: 1e-5})
	var lines strings.Builder
	for i := range 12 {
		lines.WriteString(`{"customer_id":"c` + string(rune('a'+i)) + `","ts":"2025-03-01T10:00:00Z","type":"purchase","channel":"` + []string{"web", "app"}[i%2] + `"}` + "\n")
	}
	if _, err := ingest.Ingest(ctx, []byte(lines.String()), client.IngestOptions{}); err != nil {
		t.Fatal(err)
	}
	srv := []string{"--server", ts.app.URL()}
	as := func(c *client.Client, args ...string) []string {
		return append(append(args, srv...), "--key", c.Token())
	}

	var b api.BuildInfo
	cliJSON(t, &b, "version")
	if b.GoVersion != runtime.Version() || b.Version == "" || b.Commit == "" {
		t.Errorf("version printed %+v, want the Go version %s and a version and commit", b, runtime.Version())
	}

	var tn wire.Tenant
	cliJSON(t, &tn, as(ts.operator, "tenant", "get", "clishop")...)
	if tn.ID != "clishop" || tn.Budget.Epsilon != 5 {
		t.Errorf("tenant get clishop (operator) printed %+v", tn)
	}
	var created wire.CreateTenantResponse
	cliJSON(t, &created, as(ts.operator, "tenant", "create", "--id", "clishop-two", "--epsilon", "1")...)
	if created.Tenant == nil || created.Tenant.ID != "clishop-two" || created.Tenant.Period != "month" || created.AdminKey == nil || !strings.HasPrefix(created.AdminKey.Token, "pvk_") {
		t.Fatalf("tenant create --output json printed %+v, want the tenant and its admin key", created)
	}
	var issued wire.IssuedKey
	cliJSON(t, &issued, as(ts.operator.WithToken(created.AdminKey.Token), "keys", "create", "--name", "etl", "--role", "ingest")...)
	if issued.Role != wire.RoleIngest || !strings.HasPrefix(issued.Token, "pvk_") {
		t.Errorf("keys create --output json printed %+v", issued)
	}
	tenants := cliCSV(t, as(ts.operator, "tenant", "list")...)
	if len(tenants) != 3 || tenants[1][0] != "clishop" || tenants[2][0] != "clishop-two" {
		t.Errorf("tenant list --output csv: want a header, clishop and clishop-two, got %q", tenants)
	}
	// --period lifetime asks for one budget (the API's default is a month's);
	// so does --accounting zcdp.
	for _, args := range [][]string{{"--id", "clishop-life", "--period", "lifetime"}, {"--id", "clishop-z", "--accounting", "zcdp", "--delta", "1e-5"}} {
		var one wire.CreateTenantResponse
		cliJSON(t, &one, as(ts.operator, append([]string{"tenant", "create", "--epsilon", "1"}, args...)...)...)
		if one.Tenant == nil || one.Tenant.Period != "" {
			t.Errorf("tenant create %v: %+v, want one budget (no period)", args, one.Tenant)
		}
	}
	if _, err := runCLI(t, as(admin, "tenant", "list")...); privalytics.ErrorCode(err) != privalytics.EFORBIDDEN {
		t.Errorf("tenant list with a tenant's admin key: got %v, want EFORBIDDEN", err)
	}
	if out, err := runCLI(t, as(admin, "tenant", "get")...); err != nil || !strings.Contains(out, "clishop") || !strings.Contains(out, "basic") {
		t.Errorf("tenant get (own key): %v\n%s", err, out)
	}

	keys := cliCSV(t, as(admin, "keys", "list")...)
	if len(keys) != 4 || strings.Join(keys[0], ",") != "id,name,role,created,revoked" {
		t.Fatalf("keys list --output csv: want a header and 3 keys, got %q", keys)
	}
	var queryKeyID string
	for _, k := range keys[1:] {
		if k[2] == "query" {
			queryKeyID = k[0]
		}
	}
	var kb wire.KeyBudget
	cliJSON(t, &kb, as(admin, "keys", "allocate", queryKeyID, "--epsilon", "2")...)
	if kb.KeyID != queryKeyID || kb.Total.Epsilon != 2 || kb.Shared {
		t.Errorf("keys allocate printed %+v, want key %s with ε=2 of its own", kb, queryKeyID)
	}

	q := `{"group_by":[{"column":"channel"}],"aggregates":[{"name":"buyers","op":"count"}],"epsilon":0.5}`
	rows := cliCSV(t, as(query, "query", q)...)
	// channel's keys are public (web, app, store): every one is a row.
	if len(rows) != 4 || strings.Join(rows[0], ",") != "channel,buyers,buyers_lower,buyers_upper" {
		t.Fatalf("query --output csv: want a header and 3 channels, got %q", rows)
	}
	want := map[string]string{"web": "6", "app": "6", "store": "0"}
	for _, r := range rows[1:] {
		if r[1] != want[r[0]] {
			t.Errorf("query --output csv: %s has %s buyers, want %s (no noise)", r[0], r[1], want[r[0]])
		}
	}
	// The repeat is answered from the cache and the table says so.
	if out, err := runCLI(t, as(query, "query", q)...); err != nil || !strings.Contains(out, "no new cost") {
		t.Errorf("repeated query: %v\n%s", err, out)
	}
	if out, err := runCLI(t, as(query, "explain", "--sql", "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 0.25) channel, COUNT(*) AS buyers FROM events GROUP BY channel")...); err != nil || !strings.Contains(out, "Would cost ε=0.25") {
		t.Errorf("explain --sql: %v\n%s", err, out)
	}

	var bs wire.BudgetStatus
	cliJSON(t, &bs, as(admin, "budget")...)
	if bs.Spent.Epsilon != 0.5 || bs.Remaining.Epsilon != 4.5 {
		t.Errorf("budget printed spent ε=%g remaining ε=%g, want 0.5 and 4.5", bs.Spent.Epsilon, bs.Remaining.Epsilon)
	}
	if charges := cliCSV(t, as(admin, "budget", "charges")...); len(charges) != 2 || charges[1][3] != "0.5" {
		t.Errorf("budget charges --output csv: want one charge of ε=0.5, got %q", charges)
	}
	if changes := cliCSV(t, as(admin, "budget", "changes")...); len(changes) != 2 || changes[1][2] != "allocate" {
		t.Errorf("budget changes --output csv: want the allocation, got %q", changes)
	}

	var rec wire.ConsentsRecorded
	cliJSON(t, &rec, as(ingest, "consent", "record", "--customer", "ca", "--purpose", "analytics", "--granted=false")...)
	if rec.Recorded != 1 {
		t.Errorf("consent record printed %+v", rec)
	}
	if _, err := runCLI(t, as(ingest, "consent", "record", "--customer", "ca", "--purpose", "analytics")...); privalytics.ErrorCode(err) != privalytics.EINVALID {
		t.Errorf("consent record without --granted: got %v, want EINVALID", err)
	}
	var cs wire.ConsentStatus
	cliJSON(t, &cs, as(admin, "consent", "status", "ca")...)
	if p, ok := cs.Purposes["analytics"]; !ok || p.Granted || len(cs.History) != 1 {
		t.Errorf("consent status ca printed %+v, want analytics withdrawn after one decision", cs)
	}

	export := cliCSV(t, as(admin, "subjects", "export", "cb")...)
	if len(export) != 2 {
		t.Errorf("subjects export cb --output csv: want a header and 1 event, got %q", export)
	}
	if out, err := runCLI(t, as(admin, "subjects", "export", "cb")...); err != nil || !strings.Contains(out, "1 events about customer cb") {
		t.Errorf("subjects export cb: %v\n%s", err, out)
	}
	var rr wire.ErasureReceipt
	cliJSON(t, &rr, as(admin, "subjects", "rectify", "cb", "--set", "channel=web")...)
	if rr.Rows != 1 {
		t.Errorf("subjects rectify cb printed %+v, want 1 row", rr)
	}
	var er wire.ErasureReceipt
	cliJSON(t, &er, as(admin, "subjects", "erase", "cc")...)
	if er.Subjects != 1 || er.ID == "" {
		t.Errorf("subjects erase cc printed %+v", er)
	}
	var again wire.ErasureReceipt
	cliJSON(t, &again, as(admin, "subjects", "receipt", er.ID)...)
	if again.ID != er.ID {
		t.Errorf("subjects receipt %s printed %+v", er.ID, again)
	}

	if out, err := runCLI(t, as(admin, "retention", "30")...); err != nil || !strings.Contains(out, "30 days") {
		t.Errorf("retention 30: %v\n%s", err, out)
	}
	if _, err := runCLI(t, as(admin, "retention", "forever")...); privalytics.ErrorCode(err) != privalytics.EINVALID {
		t.Errorf("retention forever: got %v, want EINVALID", err)
	}

	var entries []wire.AuditEntry
	cliJSON(t, &entries, as(admin, "audit", "list")...)
	if len(entries) == 0 {
		t.Error("audit list --output json printed no entries after a day of administration")
	}
	file := filepath.Join(t.TempDir(), "late.ndjson")
	if err := os.WriteFile(file, []byte(`{"customer_id":"cz","ts":"2025-03-02T10:00:00Z","type":"purchase","channel":"web"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var rep wire.ImportReport
	cliJSON(t, &rep, as(ingest, "ingest", file, "--quiet")...)
	if rep.Rows != 1 || rep.Skipped != 0 {
		t.Errorf("ingest --output json printed %+v, want 1 row stored", rep)
	}
	if os.Getenv("PRIVALYTICS_API_KEY") == "" {
		if _, err := runCLI(t, append([]string{"budget"}, srv...)...); privalytics.ErrorCode(err) != privalytics.EUNAUTHORIZED || !strings.Contains(describe(err), "pass --key or set PRIVALYTICS_API_KEY") {
			t.Errorf("budget without a key: got %v, want EUNAUTHORIZED saying how to give one", err)
		}
	}
	if _, err := runCLI(t, as(admin, "keys", "list", "--output", "yaml")...); err == nil || !strings.Contains(err.Error(), "table, json or csv") {
		t.Errorf("--output yaml: got %v, want an error naming the formats", err)
	}
}
