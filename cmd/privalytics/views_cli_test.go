package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/dp/dptest"
)

// TestViewsCLI drives `privalytics views …` against a real server: a monthly
// view of last year's purchases, its exact (no-noise) releases and roll-up, a
// refused over-budget view, and a dashboard with a share link.
func TestViewsCLI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mech := dptest.NoNoise()
	ts := startServer(t, &mech, "")
	_, ingest, query := ts.tenantKeys(t, "viewshop", wire.Cost{Epsilon: 50, Delta: 1e-5})
	var lines strings.Builder
	for i := range 12 {
		lines.WriteString(`{"customer_id":"c` + string(rune('a'+i)) + `","ts":"2025-03-0` + string(rune('1'+i%9)) + `T10:00:00Z","type":"purchase"}` + "\n")
	}
	if _, err := ingest.Ingest(ctx, []byte(lines.String()), client.IngestOptions{}); err != nil {
		t.Fatal(err)
	}
	as := func(args ...string) []string { return append(args, "--server", ts.app.URL(), "--key", query.Token()) }
	dir := t.TempDir()
	spec := filepath.Join(dir, "view.json")
	os.WriteFile(spec, []byte(`{"name":"purchases per month","cadence":"month","epsilon":0.5,"start":"2025-03-01","query":{"where":[{"column":"type","eq":"purchase"}],"aggregates":[{"op":"count"}]}}`), 0o600)

	var cost wire.ViewCost
	cliJSON(t, &cost, as("views", "preview", "--spec", spec)...)
	if !cost.Fits || cost.PerPeriod.Epsilon != 0.5 || cost.PeriodsBudgetLasts == nil || *cost.PeriodsBudgetLasts < 1 {
		t.Fatalf("views preview printed %+v", cost)
	}
	var v wire.View
	cliJSON(t, &v, as("views", "create", "--spec", spec)...)
	if v.ID == "" || v.Cost == nil {
		t.Fatalf("views create printed %+v", v)
	}
	var rels wire.Releases
	cliJSON(t, &rels, as("views", "releases", v.ID, "--from", "2025-03-01", "--to", "2025-04-30")...)
	if len(rels.Releases) != 2 || rels.Releases[0].Bucket != "2025-03" || rels.Releases[0].State != "closed" || rels.Releases[0].Result.Rows[0].Cells[0].Value != 12 ||
		rels.Releases[1].Result.Rows[0].Cells[0].Value != 0 {
		t.Fatalf("views releases printed %+v; want March 12 purchases and April none", rels)
	}
	var ru wire.Rollup
	cliJSON(t, &ru, as("views", "rollup", v.ID, "--by", "year")...)
	if len(ru.Rows) < 2 || ru.Rows[0].Bucket != "2025" || ru.Rows[0].Values["count"] != 12 || !ru.Rows[0].Complete {
		t.Fatalf("views rollup --by year printed %+v; want 2025: 12, complete", ru)
	}
	table := cliCSV(t, as("views", "releases", v.ID, "--to", "2025-03-31")...)
	if len(table) != 2 || table[1][0] != "2025-03" || table[1][4] != "12" {
		t.Errorf("views releases --output csv: %v", table)
	}
	// A daily view of ε 1 since 2025 would spend the lifetime budget on its past days alone.
	os.WriteFile(spec, []byte(`{"name":"too much","cadence":"day","epsilon":1,"start":"2025-01-01","query":{"aggregates":[{"op":"count"}]}}`), 0o600)
	out, err := runCLI(t, as("views", "create", "--spec", spec)...)
	if err == nil || !strings.Contains(out+describe(err), "does not fit") {
		t.Errorf("an over-budget view was not refused in words: %v\n%s", describe(err), out)
	}
	var vs []wire.View
	cliJSON(t, &vs, as("views", "list")...)
	if len(vs) != 1 {
		t.Errorf("views list: %d views, want 1", len(vs))
	}
	var d wire.Dashboard
	cliJSON(t, &d, as("views", "dashboards", "create", "--name", "main", v.ID)...)
	var link wire.ShareLink
	cliJSON(t, &link, as("views", "dashboards", "share", d.ID)...)
	if !strings.HasPrefix(link.Token, "pvk_") {
		t.Fatalf("share printed %+v", link)
	}
	shared := ts.operator.WithToken(link.Token)
	if _, err := shared.ViewReleases(ctx, v.ID, "", ""); err != nil {
		t.Errorf("the share link cannot read its dashboard's view: %v", err)
	}
	if _, err := shared.Budget(ctx); err == nil {
		t.Error("the share link reads the budget")
	}
}
