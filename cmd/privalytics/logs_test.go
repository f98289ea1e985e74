package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
)

// syncBuffer is a bytes.Buffer safe for the server's concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestJSONLogsCarryRequestIDsAndNoPersonalData: with --log-format json every
// request is one JSON line with its request ID, route and status, and nothing a
// customer sent — identifiers, values, a customer ID in a URL — reaches the log.
func TestJSONLogsCarryRequestIDsAndNoPersonalData(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	cfg := DefaultConfig()
	cfg.RatePerKey = 0
	cfg.Addr, cfg.DataDir, cfg.LogFormat, cfg.LogLevel = "127.0.0.1:0", t.TempDir(), "json", "info"
	cfg.MasterKeyFile = cfg.DataDir + "/master.key"
	ctx, cancel := context.WithCancel(context.Background())
	app, err := openApp(ctx, cfg, appOptions{logOutput: &logs})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.serve(ctx) }()
	defer func() { cancel(); <-done }()
	ts := &testServer{app: app, operator: client.New(app.URL(), app.OperatorToken)}
	admin, ingest, query := ts.tenantKeys(t, "logshop", wire.Cost{Epsilon: 5})
	secrets := []string{"alice.private@example.org", "cust-7788-secret", "ORD-99881", "Rue Secrète"}
	body := `{"customer_id":"alice.private@example.org","ts":"2025-03-01T10:00:00Z","type":"purchase","order_id":"ORD-99881","store":"Rue Secrète","amount":"12.34"}` + "\n" +
		`{"customer_id":"cust-7788-secret","ts":"2025-03-02T10:00:00Z","type":"view"}` + "\n"
	if _, err := ingest.Ingest(ctx, []byte(body), client.IngestOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := query.QueryJSON(ctx, []byte(`{"where":[{"column":"store","eq":"Rue Secrète"}],"aggregates":[{"op":"count"}],"epsilon":0.5}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ExportSubject(ctx, "cust-7788-secret"); err != nil {
		t.Fatal(err)
	}
	text := logs.String()
	requests := 0
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("a log line is not JSON: %q", line)
		}
		if e["msg"] == "request" {
			requests++
			if id, _ := e["request_id"].(string); id == "" || e["route"] == nil || e["status"] == nil {
				t.Errorf("request line without request_id, route or status: %s", line)
			}
		}
	}
	if requests < 3 {
		t.Fatalf("only %d request lines logged:\n%s", requests, text)
	}
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("the log holds %q", s)
		}
	}
}
