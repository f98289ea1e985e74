package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/dp/dptest"
)

// TestMetricsTokenGaugesAndRequestLogs: Prometheus reads /metrics with a token
// that opens nothing else; the scrape carries each tenant's remaining budget
// and the build; every request line in the JSON log names the tenant, the key
// ID, the route, the status and the error code, and never a token or a query
// string.
func TestMetricsTokenGaugesAndRequestLogs(t *testing.T) {
	t.Parallel()
	const metricsToken = "m3tr1cs-t0ken-0123456789abcdef0123456789"
	var logs syncBuffer
	cfg := DefaultConfig()
	cfg.RatePerKey = 0
	cfg.Addr, cfg.DataDir, cfg.LogFormat, cfg.LogLevel = "127.0.0.1:0", t.TempDir(), "json", "info"
	cfg.MasterKeyFile = cfg.DataDir + "/master.key"
	cfg.MetricsToken = metricsToken
	mech := dptest.NoNoise()
	ctx, cancel := context.WithCancel(context.Background())
	app, err := openApp(ctx, cfg, appOptions{logOutput: &logs, mechanisms: &mech})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.serve(ctx) }()
	defer func() { cancel(); <-done }()
	ts := &testServer{app: app, operator: client.New(app.URL(), app.OperatorToken)}
	admin, ingest, query := ts.tenantKeys(t, "opsshop", wire.Cost{Epsilon: 5, Delta: 1e-5})
	if _, err := ingest.Ingest(ctx, []byte(`{"customer_id":"c1","ts":"2025-03-01T10:00:00Z","type":"purchase","channel":"web"}`+"\n"), client.IngestOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := query.QueryJSON(ctx, []byte(`{"aggregates":[{"op":"count"}],"epsilon":0.5}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := query.Keys(ctx); err == nil {
		t.Fatal("a query key listed keys")
	}

	get := func(path, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, app.URL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	status, scrape := get("/metrics?probe=1", metricsToken)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics with the metrics token: %d\n%s", status, scrape)
	}
	for _, want := range []string{
		`privalytics_budget_remaining_epsilon{tenant="opsshop"} 4.5`,
		`privalytics_budget_remaining_delta{tenant="opsshop"} 1e-05`,
		`go_version="` + runtime.Version() + `"`,
		`privalytics_build_info{`,
	} {
		if !strings.Contains(scrape, want) {
			t.Errorf("the scrape lacks %s", want)
		}
	}
	if status, _ := get("/metrics", app.OperatorToken); status != http.StatusOK {
		t.Errorf("GET /metrics with the operator key: %d, want 200", status)
	}
	if status, _ := get("/metrics", query.Token()); status != http.StatusForbidden {
		t.Errorf("GET /metrics with a query key: %d, want 403", status)
	}
	if status, _ := get("/metrics", "not-the-token-but-just-as-long-as-it-0000"); status != http.StatusUnauthorized {
		t.Errorf("GET /metrics with a wrong token: %d, want 401", status)
	}
	if status, _ := get("/v1/tenant", metricsToken); status != http.StatusUnauthorized {
		t.Errorf("the metrics token read /v1/tenant: %d, want 401", status)
	}

	keys, err := admin.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var queryKeyID string
	for _, k := range keys {
		if k.Role == wire.RoleQuery {
			queryKeyID = k.ID
		}
	}
	var answered, refused, scraped bool
	text := logs.String()
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("a log line is not JSON: %q", line)
		}
		if e["msg"] != "request" {
			continue
		}
		switch {
		case e["route"] == "/v1/queries" && e["status"] == 200.0:
			answered = e["tenant"] == "opsshop" && e["key_id"] == queryKeyID && e["error_code"] == nil
		case e["route"] == "/v1/keys" && e["status"] == 403.0:
			refused = e["tenant"] == "opsshop" && e["key_id"] == queryKeyID && e["error_code"] == "forbidden"
		case e["route"] == "/metrics" && e["status"] == 200.0 && e["key_id"] == "metrics-token":
			scraped = true
		}
	}
	if !answered || !refused || !scraped {
		t.Errorf("request lines: answered query with tenant and key %v, refused with error code %v, scrape by the metrics token %v:\n%s", answered, refused, scraped, text)
	}
	for _, secret := range []string{metricsToken, query.Token(), app.OperatorToken, "probe=1"} {
		if strings.Contains(text, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
}

// TestMetricsTokenTooShort: a guessable metrics token is refused at start-up.
func TestMetricsTokenTooShort(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.MetricsToken = "prometheus"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "PRIVALYTICS_METRICS_TOKEN must be at least 32") {
		t.Errorf("Validate() = %v, want the short metrics token named", err)
	}
}
