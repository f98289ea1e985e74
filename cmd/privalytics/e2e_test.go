package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/dp/dptest"
	"github.com/privalytics/privalytics/synth"
)

// testServer runs the real App on 127.0.0.1:0 in a temp dir until the test ends.
type testServer struct {
	app      *App
	operator *client.Client
}

func startServer(t *testing.T, mech *dp.Mechanisms, dataDir string) *testServer {
	t.Helper()
	return startServerWith(t, mech, dataDir, nil)
}

// startServerWith is startServer with a change to the default configuration.
func startServerWith(t *testing.T, mech *dp.Mechanisms, dataDir string, change func(*Config)) *testServer {
	t.Helper()
	cfg := DefaultConfig()
	cfg.RatePerKey = 0 // see TestMain
	if change != nil {
		change(&cfg)
	}
	cfg.Addr = "127.0.0.1:0"
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	cfg.DataDir = dataDir
	cfg.MasterKeyFile = dataDir + "/master.key"
	cfg.LogLevel = "warn"
	ctx, cancel := context.WithCancel(context.Background())
	app, err := openApp(ctx, cfg, appOptions{mechanisms: mech, logOutput: io.Discard})
	if err != nil {
		t.Fatalf("openApp: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- app.serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &testServer{app: app, operator: client.New(app.URL(), app.OperatorToken)}
}

// tenantKeys creates a tenant and returns clients with its admin, ingest and query keys.
func (ts *testServer) tenantKeys(t *testing.T, id string, budget wire.Cost) (admin, ingest, query *client.Client) {
	t.Helper()
	ctx := context.Background()
	res, err := ts.operator.CreateTenant(ctx, wire.CreateTenantRequest{Period: "lifetime", ID: id, Budget: budget})
	if err != nil {
		t.Fatalf("create tenant: %v", err)
	}
	admin = ts.operator.WithToken(res.AdminKey.Token)
	ik, err := admin.CreateKey(ctx, "ingest", wire.RoleIngest)
	if err != nil {
		t.Fatalf("create ingest key: %v", err)
	}
	qk, err := admin.CreateKey(ctx, "query", wire.RoleQuery)
	if err != nil {
		t.Fatalf("create query key: %v", err)
	}
	return admin, admin.WithToken(ik.Token), admin.WithToken(qk.Token)
}

// monthTruth is the plain reference computed from the generator's events.
type monthTruth struct {
	purchases      map[string]int64
	revenueMilli   map[string]int64
	maxRowsPerCell int // most purchase rows one customer has in one month
	maxMonths      int // most months one customer buys in
}

// loadSynthetic sends n generated events in batches and computes the reference.
func loadSynthetic(t *testing.T, c *client.Client, cfg synth.Config) monthTruth {
	t.Helper()
	gen, err := synth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr := monthTruth{purchases: map[string]int64{}, revenueMilli: map[string]int64{}}
	perCell := map[[2]string]int{}
	months := map[string]map[string]bool{}
	var buf []byte
	rows := 0
	flush := func() {
		if rows == 0 {
			return
		}
		res, err := c.Ingest(context.Background(), buf, client.IngestOptions{Gzip: true})
		if err != nil {
			t.Fatalf("ingest: %v", err)
		}
		if res.Rows != rows {
			t.Fatalf("ingest stored %d rows, sent %d", res.Rows, rows)
		}
		buf, rows = buf[:0], 0
	}
	var ev synth.Event
	end := cfg.Start.AddDate(0, 0, cfg.Days)
	for gen.Next(&ev) {
		buf = synth.AppendNDJSON(buf, &ev)
		rows++
		// The generator keeps events inside the period; the guard keeps the reference honest if that changes.
		if ev.Type == privalytics.EventPurchase && ev.TS.Before(end) {
			m := ev.TS.UTC().Format("2006-01")
			tr.purchases[m]++
			tr.revenueMilli[m] += ev.AmountMilli
			perCell[[2]string{ev.CustomerID, m}]++
			if months[ev.CustomerID] == nil {
				months[ev.CustomerID] = map[string]bool{}
			}
			months[ev.CustomerID][m] = true
		}
		if rows == 5000 {
			flush()
		}
	}
	flush()
	for _, n := range perCell {
		tr.maxRowsPerCell = max(tr.maxRowsPerCell, n)
	}
	for _, m := range months {
		tr.maxMonths = max(tr.maxMonths, len(m))
	}
	return tr
}

func ptr(v float64) *float64 { return &v }

func smallSynth() synth.Config {
	cfg := synth.DefaultConfig()
	cfg.Seed, cfg.Customers, cfg.Events = 7, 2_000, 40_000
	return cfg
}

func monthlyQuery(cfg synth.Config, tr monthTruth, confidence float64) *wire.Query {
	return &wire.Query{
		Where: []wire.Filter{
			{Column: "type", Eq: privalytics.EventPurchase},
			{Column: "ts", Gte: cfg.Start.Format(time.RFC3339), Lt: cfg.Start.AddDate(0, 0, cfg.Days).Format(time.RFC3339)},
		},
		GroupBy:    []wire.GroupKey{{Time: "month"}},
		Aggregates: []wire.Aggregate{{Name: "purchases", Op: "count"}, {Name: "revenue", Op: "sum", Column: "amount", Lower: ptr(0), Upper: ptr(100_000)}},
		// Bounds wide enough that nothing is dropped, so the bounded truth is the plain truth.
		Bounds:     wire.Bounds{MaxGroups: tr.maxMonths, MaxRowsPerGroup: tr.maxRowsPerCell},
		Epsilon:    1,
		Confidence: confidence,
	}
}

// TestEndToEndExact ingests through HTTP and checks every answer equals the truth
// in noise-free mode (dptest.NoNoise: tests only).
func TestEndToEndExact(t *testing.T) {
	t.Parallel()
	mech := dptest.NoNoise()
	ts := startServer(t, &mech, "")
	_, ingest, query := ts.tenantKeys(t, "shop", wire.Cost{Epsilon: 100, Delta: 1e-3})
	cfg := smallSynth()
	tr := loadSynthetic(t, ingest, cfg)

	res, err := query.Query(context.Background(), monthlyQuery(cfg, tr, 0.95))
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	got := map[string][2]float64{}
	for _, r := range res.Rows {
		got[r.Key[0]] = [2]float64{r.Cells[0].Value, r.Cells[1].Value}
	}
	want := map[string][2]float64{}
	for m, n := range tr.purchases {
		want[m] = [2]float64{float64(n), float64(tr.revenueMilli[m]) / 1000}
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b float64) bool { return a == b || (a-b < 1e-6 && b-a < 1e-6) })); diff != "" {
		t.Errorf("monthly purchases and revenue (-want +got):\n%s", diff)
	}
	if res.Thresholded {
		t.Errorf("month buckets inside a bounded time filter are public; got Thresholded")
	}
	if res.Budget == nil || res.Budget.Remaining.Epsilon > 99.0000001 {
		t.Errorf("budget after one ε=1 query: %+v, want 99 remaining", res.Budget)
	}
}

// TestEndToEndIntervals checks with real noise that the truth lies inside the
// released intervals. At confidence 0.999 the chance that 2 or more of the 26
// cells miss is below C(26,2)·0.001² ≈ 3.3e-4, so the test fails falsely about
// once in 3,000 runs.
func TestEndToEndIntervals(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, "")
	_, ingest, query := ts.tenantKeys(t, "shop", wire.Cost{Epsilon: 10, Delta: 1e-5})
	cfg := smallSynth()
	tr := loadSynthetic(t, ingest, cfg)
	res, err := query.Query(context.Background(), monthlyQuery(cfg, tr, 0.999))
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	if len(res.Rows) != len(tr.purchases) {
		t.Fatalf("got %d months, want %d", len(res.Rows), len(tr.purchases))
	}
	misses := 0
	for _, r := range res.Rows {
		m := r.Key[0]
		for i, truth := range []float64{float64(tr.purchases[m]), float64(tr.revenueMilli[m]) / 1000} {
			c := r.Cells[i]
			if truth < c.Lower || truth > c.Upper {
				misses++
				t.Logf("%s %s: truth %.2f outside [%.2f, %.2f]", m, res.Aggregates[i].Name, truth, c.Lower, c.Upper)
			}
			if c.Lower > c.Value || c.Value > c.Upper {
				t.Errorf("%s: value %.2f outside its own interval [%.2f, %.2f]", m, c.Value, c.Lower, c.Upper)
			}
		}
	}
	if misses > 1 {
		t.Errorf("%d of %d cells miss their 99.9%% interval", misses, 2*len(res.Rows))
	}
}

// TestEndToEndRules covers what the API refuses and why.
func TestEndToEndRules(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, "")
	ctx := context.Background()
	admin, ingest, query := ts.tenantKeys(t, "alpha", wire.Cost{Epsilon: 1, Delta: 1e-6})
	otherAdmin, _, _ := ts.tenantKeys(t, "beta", wire.Cost{Epsilon: 1})
	line := `{"customer_id":"c1","ts":"2025-03-01T10:00:00Z","type":"purchase","amount":"12.5","quantity":1}` + "\n"

	code := func(err error) string { return privalytics.ErrorCode(err) }

	t.Run("idempotency", func(t *testing.T) {
		for i, wantDup := range []bool{false, true} {
			res, err := ingest.Ingest(ctx, []byte(line+line), client.IngestOptions{IdempotencyKey: "batch-1"})
			if err != nil {
				t.Fatal(err)
			}
			if res.Duplicate != wantDup || res.Rows != 2 {
				t.Errorf("attempt %d: got %+v, want rows 2 duplicate %v", i, res, wantDup)
			}
		}
	})
	t.Run("bad row names line and field", func(t *testing.T) {
		bad := line + `{"customer_id":"c2","ts":"2025-03-01T10:00:00Z","type":"purchase","amount":"lots"}` + "\n"
		_, err := ingest.Ingest(ctx, []byte(bad), client.IngestOptions{})
		if code(err) != privalytics.EINVALID {
			t.Fatalf("got %v, want invalid", err)
		}
		d := privalytics.ErrorDetails(err)
		if fmt.Sprint(d["line"]) != "2" || d["field"] != "amount" {
			t.Errorf("details %v, want line 2 field amount", d)
		}
	})
	t.Run("unknown field is minimised away by rejection", func(t *testing.T) {
		_, err := ingest.Ingest(ctx, []byte(`{"customer_id":"c3","ts":"2025-03-01T10:00:00Z","type":"view","email":"a@b.c"}`), client.IngestOptions{})
		if code(err) != privalytics.EINVALID || privalytics.ErrorDetails(err)["field"] != "email" {
			t.Errorf("got %v, want invalid naming field email", err)
		}
	})
	t.Run("roles", func(t *testing.T) {
		if _, err := ingest.Budget(ctx); code(err) != privalytics.EFORBIDDEN {
			t.Errorf("ingest key reading budget: %v, want forbidden", err)
		}
		if _, err := query.Ingest(ctx, []byte(line), client.IngestOptions{}); code(err) != privalytics.EFORBIDDEN {
			t.Errorf("query key ingesting: %v, want forbidden", err)
		}
		if _, err := query.CreateKey(ctx, "x", wire.RoleAdmin); code(err) != privalytics.EFORBIDDEN {
			t.Errorf("query key issuing keys: %v, want forbidden", err)
		}
		if _, err := ts.operator.Budget(ctx); code(err) != privalytics.EFORBIDDEN {
			t.Errorf("operator key reading a budget: %v, want forbidden", err)
		}
	})
	t.Run("tenants are invisible to each other", func(t *testing.T) {
		if _, err := otherAdmin.TenantByID(ctx, "alpha"); code(err) != privalytics.ENOTFOUND {
			t.Errorf("beta admin reading alpha: %v, want not found", err)
		}
		keys, err := admin.Keys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := otherAdmin.RevokeKey(ctx, keys[0].ID); code(err) != privalytics.ENOTFOUND {
			t.Errorf("beta admin revoking alpha's key: %v, want not found", err)
		}
		if _, err := admin.TenantByID(ctx, "alpha"); err != nil {
			t.Errorf("alpha admin reading alpha: %v", err)
		}
	})
	t.Run("budget is enforced and explained", func(t *testing.T) {
		q := &wire.Query{GroupBy: []wire.GroupKey{{Column: "channel"}}, Aggregates: []wire.Aggregate{{Op: "count"}}, Epsilon: 0.6}
		if _, err := query.Query(ctx, q); err != nil {
			t.Fatalf("first query: %v", err)
		}
		// The same query again is its cached answer, free even past the
		// budget (issue 17); another query is refused.
		if again, err := query.Query(ctx, q); err != nil || !again.Cached {
			t.Fatalf("repeated query: %v (cached %v), want the cached answer", err, again != nil && again.Cached)
		}
		other := *q
		other.Confidence = 0.9
		_, err := query.Query(ctx, &other)
		if code(err) != privalytics.EBUDGET {
			t.Fatalf("second query over budget: %v, want budget", err)
		}
		if !strings.Contains(privalytics.ErrorMessage(err), "remain") || privalytics.ErrorDetails(err)["remaining"] == nil {
			t.Errorf("budget error should say what is left: %v", err)
		}
		b, err := query.Budget(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b.Spent.Epsilon < 0.6-1e-9 || b.Spent.Epsilon > 0.6+1e-6 {
			t.Errorf("spent %v, want 0.6", b.Spent.Epsilon)
		}
	})
	t.Run("bad query costs nothing", func(t *testing.T) {
		before, _ := query.Budget(ctx)
		_, err := query.QueryJSON(ctx, []byte(`{"aggregates":[{"op":"count"}],"group_by":[{"column":"nope"}],"epsilon":0.1}`))
		if code(err) != privalytics.EINVALID || !strings.Contains(privalytics.ErrorMessage(err), "nope") {
			t.Errorf("unknown column: %v", err)
		}
		after, _ := query.Budget(ctx)
		if before.Spent != after.Spent {
			t.Errorf("a rejected query changed the budget: %+v → %+v", before.Spent, after.Spent)
		}
	})
	t.Run("revoked key is refused", func(t *testing.T) {
		k, err := admin.CreateKey(ctx, "temp", wire.RoleQuery)
		if err != nil {
			t.Fatal(err)
		}
		temp := admin.WithToken(k.Token)
		if _, err := temp.Budget(ctx); err != nil {
			t.Fatalf("fresh key: %v", err)
		}
		if err := admin.RevokeKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := temp.Budget(ctx); code(err) != privalytics.EUNAUTHORIZED {
			t.Errorf("revoked key: %v, want unauthorized", err)
		}
	})
	t.Run("oversized and unsupported bodies", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, ts.app.URL()+"/v1/events", bytes.NewReader([]byte(line)))
		req.Header.Set("Content-Type", "text/csv")
		req.Header.Set("Authorization", "Bearer "+ingest.Token())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("text/csv: status %d, want 415", resp.StatusCode)
		}
	})
}

// TestEndToEndCacheAndExplain: explain costs nothing and predicts the interval
// width; a repeated query on unchanged data is answered from the cache, identical
// and free; new data makes a new snapshot and a fresh (charged) answer.
func TestEndToEndCacheAndExplain(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, "")
	ctx := context.Background()
	_, ingest, query := ts.tenantKeys(t, "cache", wire.Cost{Epsilon: 5, Delta: 1e-5})
	cfg := smallSynth()
	cfg.Events = 5000
	loadSynthetic(t, ingest, cfg)
	q := []byte(`{"group_by":[{"column":"channel"}],"aggregates":[{"op":"count"},{"name":"revenue","op":"sum","column":"amount","lower":0,"upper":50}],"bounds":{"max_groups":3,"max_rows_per_group":5},"epsilon":0.5}`)

	// Through the SDK, so its Explain is checked against the real server.
	ex, err := query.ExplainJSON(ctx, q)
	if err != nil || ex.Cost.Epsilon != 0.5 || len(ex.Aggregates) != 2 || ex.Aggregates[0].HalfWidth <= 0 || ex.Aggregates[0].Mechanism == "" {
		t.Fatalf("explain: %+v, %v", ex, err)
	}
	if b, _ := query.Budget(ctx); b.Spent.Epsilon != 0 {
		t.Errorf("explain spent budget: %+v", b.Spent)
	}

	first, err := query.QueryJSON(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	// The released interval is as wide as explain said.
	if hw := (first.Rows[0].Cells[0].Upper - first.Rows[0].Cells[0].Lower) / 2; math.Abs(hw-ex.Aggregates[0].HalfWidth) > 1 {
		t.Errorf("count interval half-width %v, explain said %v", hw, ex.Aggregates[0].HalfWidth)
	}
	second, err := query.QueryJSON(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Cached || second.Cost.Epsilon != 0 || !cmp.Equal(first.Rows, second.Rows) {
		t.Errorf("repeat on unchanged data: cached %v cost %+v, rows equal %v", second.Cached, second.Cost, cmp.Equal(first.Rows, second.Rows))
	}
	if b, _ := query.Budget(ctx); math.Abs(b.Spent.Epsilon-0.5) > 1e-9 {
		t.Errorf("spent %v after a fresh and a cached answer, want 0.5", b.Spent.Epsilon)
	}
	if _, err := ingest.Ingest(ctx, []byte(`{"customer_id":"new","ts":"2025-05-01T10:00:00Z","type":"view","channel":"web"}`), client.IngestOptions{}); err != nil {
		t.Fatal(err)
	}
	third, err := query.QueryJSON(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if third.Cached || third.Snapshot == first.Snapshot {
		t.Errorf("after new data: cached %v, answer %s (was %s)", third.Cached, third.Snapshot, first.Snapshot)
	}
}

// TestEndToEndKeyShares: a marketer with a share of the budget cannot spend
// another's, over HTTP.
func TestEndToEndKeyShares(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, "")
	ctx := context.Background()
	admin, _, _ := ts.tenantKeys(t, "shares", wire.Cost{Epsilon: 2})
	alice, err := admin.CreateKey(ctx, "alice", wire.RoleQuery)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := admin.CreateKey(ctx, "bob", wire.RoleQuery)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Allocate(ctx, bob.ID, wire.Cost{Epsilon: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Allocate(ctx, alice.ID, wire.Cost{Epsilon: 1.5}); privalytics.ErrorCode(err) != privalytics.EINVALID {
		t.Errorf("allocating 1 + 1.5 of 2: %v, want invalid", err)
	}
	q := func(c *client.Client, i int) error {
		_, err := c.QueryJSON(ctx, []byte(fmt.Sprintf(`{"aggregates":[{"op":"count"}],"epsilon":0.4,"where":[{"column":"quantity","gte":%d}]}`, -i)))
		return err
	}
	a, b := admin.WithToken(alice.Token), admin.WithToken(bob.Token)
	for i := range 2 {
		if err := q(a, i); err != nil {
			t.Fatalf("alice query %d: %v", i, err)
		}
	}
	if err := q(a, 9); privalytics.ErrorCode(err) != privalytics.EBUDGET {
		t.Errorf("alice past the shared pool of 1: %v, want budget", err)
	}
	for i := range 2 {
		// Distinct from alice's queries: her answers would come from the cache for free.
		if err := q(b, 100+i); err != nil {
			t.Errorf("bob spending his own share: %v", err)
		}
	}
	kb, err := b.KeyBudget(ctx)
	if err != nil || kb.Shared || math.Abs(kb.Remaining.Epsilon-0.2) > 1e-9 {
		t.Errorf("bob's share after two queries: %+v %v", kb, err)
	}
	// The admin grants more; alice's pool grows; both changes are on record.
	if _, err := b.Grant(ctx, wire.Cost{Epsilon: 1}); privalytics.ErrorCode(err) != privalytics.EFORBIDDEN {
		t.Errorf("a query key granting budget: %v, want forbidden", err)
	}
	if _, err := admin.Grant(ctx, wire.Cost{Epsilon: 1}); err != nil {
		t.Fatal(err)
	}
	if err := q(a, 50); err != nil {
		t.Errorf("alice after a grant: %v", err)
	}
	changes, err := admin.BudgetChanges(ctx, 0, 10)
	if err != nil || len(changes) != 2 || changes[0].Kind != "grant" || changes[1].KeyID != bob.ID {
		t.Errorf("recorded changes: %+v %v", changes, err)
	}
}

// TestEndToEndMonthlyBudgets: a tenant with monthly budgets needs bounded time
// filters, charges every month a query touches, and refuses a spent month while
// other months still answer.
func TestEndToEndMonthlyBudgets(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, "")
	ctx := context.Background()
	res, err := ts.operator.CreateTenant(ctx, wire.CreateTenantRequest{ID: "monthly", Budget: wire.Cost{Epsilon: 1}, Period: privalytics.PeriodMonth})
	if err != nil {
		t.Fatal(err)
	}
	admin := ts.operator.WithToken(res.AdminKey.Token)
	q := func(from, to string, eps float64) error {
		_, err := admin.QueryJSON(ctx, []byte(fmt.Sprintf(`{"where":[{"column":"ts","gte":%q,"lt":%q}],"aggregates":[{"op":"count"}],"epsilon":%v}`, from, to, eps)))
		return err
	}
	if _, err := admin.QueryJSON(ctx, []byte(`{"aggregates":[{"op":"count"}],"epsilon":0.1}`)); privalytics.ErrorCode(err) != privalytics.EINVALID || !strings.Contains(err.Error(), "time filter") {
		t.Errorf("unbounded query on a monthly tenant: %v, want invalid asking for a time filter", err)
	}
	if err := q("2025-01-01", "2025-03-01", 0.8); err != nil {
		t.Fatalf("January and February: %v", err)
	}
	if err := q("2025-02-01", "2025-03-01", 0.3); privalytics.ErrorCode(err) != privalytics.EBUDGET || !strings.Contains(err.Error(), "2025-02") {
		t.Errorf("February again past its budget: %v, want budget naming 2025-02", err)
	}
	if err := q("2025-03-01", "2025-04-01", 0.9); err != nil {
		t.Errorf("March has its own budget: %v", err)
	}
	b, err := admin.Budget(ctx)
	if err != nil || b.Period != privalytics.PeriodMonth || len(b.Periods) != 3 {
		t.Errorf("budget: %+v %v", b, err)
	}
}

// TestEndToEndZCDP: with zCDP accounting, many Gaussian answers fit in a budget
// that basic composition would exhaust after ten, and the converted ε spent never
// passes the total.
func TestEndToEndZCDP(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, "")
	ctx := context.Background()
	res, err := ts.operator.CreateTenant(ctx, wire.CreateTenantRequest{ID: "z", Budget: wire.Cost{Epsilon: 1, Delta: 1e-5}, Accounting: privalytics.AccountingZCDP})
	if err != nil {
		t.Fatal(err)
	}
	admin := ts.operator.WithToken(res.AdminKey.Token)
	answered, refused := 0, false
	for i := range 200 {
		_, err := admin.QueryJSON(ctx, []byte(fmt.Sprintf(`{"aggregates":[{"op":"count"}],"epsilon":0.1,"delta":1e-7,"noise":"gaussian","where":[{"column":"quantity","gte":%d}]}`, -i)))
		if privalytics.ErrorCode(err) == privalytics.EBUDGET {
			refused = true
			break
		} else if err != nil {
			t.Fatal(err)
		}
		answered++
	}
	if !refused {
		t.Errorf("200 answers and the budget never bound")
	}
	b, err := admin.Budget(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if answered <= 10 {
		t.Errorf("only %d Gaussian answers at ε=0.1 fit in ε=1 under zCDP; basic composition alone allows 10", answered)
	}
	if b.Accounting != privalytics.AccountingZCDP || b.Spent.Epsilon > b.Total.Epsilon+1e-9 || b.Spent.Rho > b.Total.Rho {
		t.Errorf("budget %+v: the converted ε or ρ spent passes the total", b)
	}
	t.Logf("%d answers at (ε=0.1, δ=1e-7); spent ρ=%.5f of %.5f, i.e. ε=%.3f of 1", answered, b.Spent.Rho, b.Total.Rho, b.Spent.Epsilon)
}

// TestEndToEndAutoBoundsAndAccuracyFirst: over HTTP, explain picks ε for a stated
// error without spending anything, the query then charges exactly that ε, and
// "bounds": "auto" reports the range it estimated and charges no more than ε.
func TestEndToEndAutoBoundsAndAccuracyFirst(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, "")
	ctx := context.Background()
	_, ingest, query := ts.tenantKeys(t, "auto", wire.Cost{Epsilon: 5, Delta: 1e-5})
	cfg := smallSynth()
	cfg.Events = 20000
	loadSynthetic(t, ingest, cfg)

	target := []byte(`{"aggregates":[{"op":"count","within":20}],"bounds":{"max_rows_per_group":4}}`)
	req, _ := http.NewRequest(http.MethodPost, ts.app.URL()+"/v1/queries:explain", bytes.NewReader(target))
	req.Header.Set("Authorization", "Bearer "+query.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ex struct {
		Cost          wire.Cost `json:"cost"`
		AccuracyFirst bool      `json:"accuracy_first"`
		Aggregates    []struct {
			HalfWidth float64 `json:"half_width"`
		} `json:"aggregates"`
	}
	json.NewDecoder(resp.Body).Decode(&ex)
	resp.Body.Close()
	if resp.StatusCode != 200 || !ex.AccuracyFirst || ex.Cost.Epsilon <= 0 || ex.Aggregates[0].HalfWidth > 20 {
		t.Fatalf("accuracy-first explain: status %d, %+v", resp.StatusCode, ex)
	}
	if b, _ := query.Budget(ctx); b.Spent.Epsilon != 0 {
		t.Fatalf("explain spent %v", b.Spent)
	}
	res, err := query.QueryJSON(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	if res.Cost.Epsilon != ex.Cost.Epsilon {
		t.Errorf("query charged ε %v, explain promised %v", res.Cost.Epsilon, ex.Cost.Epsilon)
	}
	if hw := (res.Rows[0].Cells[0].Upper - res.Rows[0].Cells[0].Lower) / 2; hw > 20 {
		t.Errorf("released half-width %v, asked for ≤ 20", hw)
	}

	auto, err := query.QueryJSON(ctx, []byte(`{"where":[{"column":"type","eq":"purchase"}],"aggregates":[{"name":"basket","op":"mean","column":"amount","bounds":"auto"}],"epsilon":1}`))
	if err != nil {
		t.Fatal(err)
	}
	info := auto.Aggregates[0]
	if !info.AutoBounds || info.Upper <= 0 || info.BoundsEpsilon != 0.2 || auto.Cost.Epsilon != 1 {
		t.Fatalf("auto bounds: %+v, cost %+v", info, auto.Cost)
	}
	if c := auto.Rows[0].Cells[0]; c.Value < info.Lower || c.Value > info.Upper {
		t.Errorf("mean %v outside the estimated range [%v, %v]", c.Value, info.Lower, info.Upper)
	}
}
