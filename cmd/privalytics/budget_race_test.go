package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/store/storetest"
)

// raceQueries runs 100 trials: each creates a tenant whose budget allows exactly
// k of 64 concurrent, distinct queries, and checks that exactly k are answered.
func raceQueries(t *testing.T, ts *testServer) {
	ctx := context.Background()
	for trial := range 100 {
		k := 1 + (trial*7)%48
		res, err := ts.operator.CreateTenant(ctx, wire.CreateTenantRequest{Period: "lifetime", ID: fmt.Sprintf("race-%d", trial), Budget: wire.Cost{Epsilon: float64(k) * 0.25}})
		if err != nil {
			t.Fatal(err)
		}
		c := ts.operator.WithToken(res.AdminKey.Token)
		var ok, refused atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				// Distinct queries: a repeated one would be answered from the cache.
				_, err := c.QueryJSON(ctx, []byte(fmt.Sprintf(`{"aggregates":[{"op":"count"}],"epsilon":0.25,"where":[{"column":"quantity","gte":%d}]}`, -i)))
				switch privalytics.ErrorCode(err) {
				case "":
					ok.Add(1)
				case privalytics.EBUDGET:
					refused.Add(1)
				default:
					t.Errorf("query: %v", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if ok.Load() != int64(k) || refused.Load() != int64(64-k) {
			t.Fatalf("trial %d: %d answered and %d refused, want exactly %d and %d", trial, ok.Load(), refused.Load(), k, 64-k)
		}
	}
}

// TestConcurrentQueriesExactlyKSQLite: through the HTTP query path on SQLite.
func TestConcurrentQueriesExactlyKSQLite(t *testing.T) {
	t.Parallel()
	raceQueries(t, startServer(t, nil, ""))
}

// TestConcurrentQueriesExactlyKPostgres: the same on PostgreSQL.
func TestConcurrentQueriesExactlyKPostgres(t *testing.T) {
	base := os.Getenv("PRIVALYTICS_TEST_POSTGRES")
	if base == "" {
		t.Skip("SKIPPED: set PRIVALYTICS_TEST_POSTGRES to run the PostgreSQL query race; .ci/run does")
	}
	t.Parallel()
	ctx := context.Background()
	cfg := DefaultConfig()
	dir := t.TempDir()
	cfg.Addr, cfg.DataDir, cfg.MasterKeyFile, cfg.LogLevel = "127.0.0.1:0", dir, dir+"/master.key", "warn"
	cfg.Postgres = storetest.PostgresSchema(t, base)
	runCtx, cancel := context.WithCancel(ctx)
	app, err := openApp(runCtx, cfg, appOptions{logOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.serve(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	raceQueries(t, &testServer{app: app, operator: client.New(app.URL(), app.OperatorToken)})
}
