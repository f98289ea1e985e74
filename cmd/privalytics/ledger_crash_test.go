package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/store/sqlite"
	"github.com/privalytics/privalytics/store/storetest"
)

// storm sends distinct queries (each a new fingerprint, so none is served from
// the cache) from 8 goroutines until ctx ends, and counts the answers received.
func storm(ctx context.Context, c *client.Client, eps float64, answered *atomic.Int64, seq *atomic.Int64) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				n := seq.Add(1)
				q := fmt.Sprintf(`{"aggregates":[{"op":"count"}],"epsilon":%v,"where":[{"column":"quantity","gte":%d}]}`, eps, -n)
				if _, err := c.QueryJSON(ctx, []byte(q)); err == nil {
					answered.Add(1)
				} else if privalytics.ErrorCode(err) == privalytics.EBUDGET {
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestCrashQueryStorm kills a server under a query storm with SIGKILL at random
// moments, several times. After each restart the ledger holds a charge for every
// answer any client received, and the spent total never exceeds the budget.
func TestCrashQueryStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs several server processes; skipped with -short")
	}
	t.Parallel()
	dir := t.TempDir()
	var answered, seq atomic.Int64
	var queryTok string
	const budget, eps = 200.0, 0.01 // room for 20,000 answers: the storm never runs dry
	for cycle := range 4 {
		c := startChild(t, dir)
		if cycle == 0 {
			res, err := client.New(c.url, c.operator).CreateTenant(context.Background(), wire.CreateTenantRequest{Period: "lifetime", ID: "storm", Budget: wire.Cost{Epsilon: budget}})
			if err != nil {
				c.kill()
				t.Fatal(err)
			}
			k, err := client.New(c.url, res.AdminKey.Token).CreateKey(context.Background(), "q", wire.RoleQuery)
			if err != nil {
				c.kill()
				t.Fatal(err)
			}
			queryTok = k.Token
		}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { storm(ctx, client.New(c.url, queryTok), eps, &answered, &seq); close(done) }()
		time.Sleep(time.Duration(300+mrand.IntN(900)) * time.Millisecond)
		c.kill()
		stop()
		<-done

		db, err := sqlite.Open(context.Background(), filepath.Join(dir, "meta.db"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := db.Budget(context.Background(), "storm")
		charges, _ := db.Charges(context.Background(), "storm", "", 0, 100_000)
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		live := 0
		for _, ch := range charges {
			if !ch.Refunded {
				live++
			}
		}
		if int64(live) < answered.Load() {
			t.Fatalf("cycle %d: %d answers received but only %d charges in the ledger", cycle, answered.Load(), live)
		}
		if b.Spent.Epsilon > b.Total.Epsilon {
			t.Fatalf("cycle %d: spent %v > total %v", cycle, b.Spent.Epsilon, b.Total.Epsilon)
		}
		if want := float64(live) * eps; b.Spent.Epsilon < want-1e-6 || b.Spent.Epsilon > want+1e-6 {
			t.Fatalf("cycle %d: spent %v but %d charges of %v", cycle, b.Spent.Epsilon, live, eps)
		}
	}
	if answered.Load() < 10 {
		t.Errorf("only %d answers over the storms: the load did not reach the server", answered.Load())
	}
	t.Logf("%d answers received, all charged, over 4 SIGKILLs", answered.Load())
}

// TestTwoServersShareAPostgresBudget: two server processes on one PostgreSQL
// ledger answer a concurrent storm against a budget that allows exactly k
// queries; exactly k are answered in total, and the ledger says the same.
func TestTwoServersShareAPostgresBudget(t *testing.T) {
	base := os.Getenv("PRIVALYTICS_TEST_POSTGRES")
	if base == "" {
		t.Skip("SKIPPED: set PRIVALYTICS_TEST_POSTGRES to run the two-server PostgreSQL test; .ci/run does")
	}
	t.Parallel()
	ctx := context.Background()
	dsn := storetest.PostgresSchema(t, base)
	key := make([]byte, 32)
	rand.Read(key)
	env := []string{"PRIVALYTICS_POSTGRES=" + dsn, "PRIVALYTICS_MASTER_KEY=" + base64.StdEncoding.EncodeToString(key)}
	s1 := startChildEnv(t, t.TempDir(), env)
	defer s1.kill()
	s2 := startChildEnv(t, t.TempDir(), env)
	defer s2.kill()
	if s2.operator != "" {
		t.Errorf("the second server created another operator key; the first one's is in the shared database")
	}
	const k = 23
	res, err := client.New(s1.url, s1.operator).CreateTenant(ctx, wire.CreateTenantRequest{Period: "lifetime", ID: "shared", Budget: wire.Cost{Epsilon: k}})
	if err != nil {
		t.Fatal(err)
	}
	qk, err := client.New(s1.url, res.AdminKey.Token).CreateKey(ctx, "q", wire.RoleQuery)
	if err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := s1.url
			if i%2 == 1 {
				url = s2.url
			}
			q := fmt.Sprintf(`{"aggregates":[{"op":"count"}],"epsilon":1,"where":[{"column":"quantity","gte":%d}]}`, -i)
			if _, err := client.New(url, qk.Token).QueryJSON(ctx, []byte(q)); err == nil {
				ok.Add(1)
			} else if privalytics.ErrorCode(err) != privalytics.EBUDGET {
				t.Errorf("query %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != k {
		t.Errorf("%d queries answered across two servers, want exactly %d", ok.Load(), k)
	}
	st, err := client.New(s2.url, qk.Token).Budget(ctx)
	if err != nil || st.Spent.Epsilon != k || st.Remaining.Epsilon != 0 {
		t.Errorf("budget after the storm: %+v %v", st, err)
	}
}
