package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/analytics"
	"github.com/privalytics/privalytics/api"
	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/dp/dptest"
	"github.com/privalytics/privalytics/store/audit"
	"github.com/privalytics/privalytics/store/events"
	"github.com/privalytics/privalytics/store/keyring"
	"github.com/privalytics/privalytics/store/sqlite"
)

// fixture is a server on real stores in a temp dir, with an operator key and a
// tenant "shop" whose admin key is known.
type fixture struct {
	server   *api.Server
	srv      *httptest.Server
	operator string
	admin    string
	audit    *audit.Log
}

func newFixture(t *testing.T, limits api.Limits) *fixture {
	t.Helper()
	return newFixtureWith(t, limits, dp.Secure(), `{"id":"shop","period":"lifetime","budget":{"epsilon":1}}`)
}

// newFixtureDeps is newFixture with a change to the server's dependencies.
func newFixtureDeps(t *testing.T, limits api.Limits, change func(*api.Deps)) *fixture {
	return newFixtureOpts(t, limits, dp.Secure(), `{"id":"shop","period":"lifetime","budget":{"epsilon":1}}`, change)
}

// newFixtureWith is newFixture with chosen mechanisms and tenant; the server
// keeps an audit log in the temp dir (f.audit).
func newFixtureWith(t *testing.T, limits api.Limits, mech dp.Mechanisms, tenantJSON string) *fixture {
	return newFixtureOpts(t, limits, mech, tenantJSON, nil)
}

func newFixtureOpts(t *testing.T, limits api.Limits, mech dp.Mechanisms, tenantJSON string, change func(*api.Deps)) *fixture {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	meta, err := sqlite.Open(ctx, filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.Open(filepath.Join(dir, "events"), events.Options{SealRows: 10_000, SyncWrites: true})
	if err != nil {
		t.Fatal(err)
	}
	mk, _, err := keyring.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	al, err := audit.Open(filepath.Join(dir, audit.FileName))
	if err != nil {
		t.Fatal(err)
	}
	deps := api.Deps{Meta: meta, Events: ev, Keys: mk, Audit: al, Mechanisms: mech, Limits: limits, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if change != nil {
		change(&deps)
	}
	s := api.New(deps)
	f0 := &fixture{server: s, audit: al}
	s.SetReady(true)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.Close()
		ev.Close()
		meta.Close()
		al.Close()
	})
	op, err := s.IssueKey(ctx, "", "operator", privalytics.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	f := f0
	f.srv, f.operator = srv, op.Token
	var created api.CreateTenantResponse
	f.mustDo(t, http.MethodPost, "/v1/tenants", f.operator, "application/json", nil, []byte(tenantJSON), http.StatusCreated, &created)
	f.admin = created.AdminKey.Token
	return f
}

// do sends a request and returns the status and the decoded error code, if any.
func (f *fixture) do(t *testing.T, method, path, token, contentType string, hdr map[string]string, body []byte) (int, api.ErrorBody, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var eb api.ErrorBody
	if resp.StatusCode >= 300 {
		if err := json.Unmarshal(raw, &eb); err != nil {
			t.Fatalf("%s %s: status %d with a body that is not a JSON error: %q", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, eb, raw
}

func (f *fixture) mustDo(t *testing.T, method, path, token, ct string, hdr map[string]string, body []byte, want int, out any) {
	t.Helper()
	status, eb, raw := f.do(t, method, path, token, ct, hdr, body)
	if status != want {
		t.Fatalf("%s %s: status %d (%s: %s), want %d", method, path, status, eb.Error.Code, eb.Error.Message, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatal(err)
		}
	}
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

const okLine = `{"customer_id":"c1","ts":"2025-03-01T10:00:00Z","type":"view"}` + "\n"

func TestIngestLimitsAndEncodings(t *testing.T) {
	t.Parallel()
	lim := api.DefaultLimits()
	lim.MaxBodyBytes, lim.MaxDecodedBytes = 4096, 16384
	f := newFixture(t, lim)

	big := bytes.Repeat([]byte(okLine), 240) // ~15 KB: over the sent limit, under the decoded one
	tests := []struct {
		name     string
		ct       string
		hdr      map[string]string
		body     []byte
		status   int
		code     string
		contains string
	}{
		{"plain ndjson", "application/x-ndjson", nil, []byte(okLine), 200, "", ""},
		{"json array", "application/json", nil, []byte("[" + strings.TrimSpace(okLine) + "]"), 200, "", ""},
		{"gzip", "application/x-ndjson", map[string]string{"Content-Encoding": "gzip"}, gz(t, []byte(okLine)), 200, "", ""},
		{"gzip small on the wire, within decoded limit", "application/x-ndjson", map[string]string{"Content-Encoding": "gzip"}, gz(t, big), 200, "", ""},
		{"body over the limit", "application/x-ndjson", nil, big, 413, privalytics.ETOOLARGE, "limit"},
		{"gzip bomb over the decoded limit", "application/x-ndjson", map[string]string{"Content-Encoding": "gzip"}, gz(t, bytes.Repeat([]byte(okLine), 400)), 413, privalytics.ETOOLARGE, "decoded"},
		{"not gzip", "application/x-ndjson", map[string]string{"Content-Encoding": "gzip"}, []byte(okLine), 400, privalytics.EINVALID, "gzip"},
		{"unknown encoding", "application/x-ndjson", map[string]string{"Content-Encoding": "br"}, []byte(okLine), 415, privalytics.EUNSUPPORTED, "gzip"},
		{"unknown content type", "text/csv", nil, []byte(okLine), 415, privalytics.EUNSUPPORTED, "x-ndjson"},
		{"malformed line", "application/x-ndjson", nil, []byte(okLine + "{\"customer_id\":\n"), 400, privalytics.EINVALID, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, eb, _ := f.do(t, http.MethodPost, "/v1/events", f.admin, tt.ct, tt.hdr, tt.body)
			if status != tt.status || eb.Error.Code != tt.code {
				t.Fatalf("status %d code %q (%s), want %d %q", status, eb.Error.Code, eb.Error.Message, tt.status, tt.code)
			}
			if !strings.Contains(eb.Error.Message, tt.contains) {
				t.Errorf("message %q should mention %q", eb.Error.Message, tt.contains)
			}
			if status >= 400 && eb.Error.RequestID == "" {
				t.Errorf("error without a request ID")
			}
		})
	}
}

func TestAuthAndRouting(t *testing.T) {
	t.Parallel()
	f := newFixture(t, api.DefaultLimits())
	tests := []struct {
		name, method, path, token string
		body                      string
		status                    int
		code                      string
	}{
		{"no key", "GET", "/v1/budget", "", "", 401, privalytics.EUNAUTHORIZED},
		{"garbage key", "GET", "/v1/budget", "nonsense", "", 401, privalytics.EUNAUTHORIZED},
		{"well-formed unknown key", "GET", "/v1/budget", "pvk_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "", 401, privalytics.EUNAUTHORIZED},
		{"admin reads budget", "GET", "/v1/budget", f.admin, "", 200, ""},
		{"admin cannot create tenants", "POST", "/v1/tenants", f.admin, `{"id":"x","period":"lifetime","budget":{"epsilon":1}}`, 403, privalytics.EFORBIDDEN},
		{"duplicate tenant", "POST", "/v1/tenants", f.operator, `{"id":"shop","period":"lifetime","budget":{"epsilon":1}}`, 409, privalytics.ECONFLICT},
		{"tenant with unknown field", "POST", "/v1/tenants", f.operator, `{"id":"y","period":"lifetime","budget":{"epsilon":1},"color":"red"}`, 400, privalytics.EINVALID},
		{"tenant with bad budget", "POST", "/v1/tenants", f.operator, `{"id":"z","period":"lifetime","budget":{"epsilon":-1}}`, 400, privalytics.EINVALID},
		{"unknown route", "GET", "/v1/nothing", f.admin, "", 404, privalytics.ENOTFOUND},
		{"bad key role", "POST", "/v1/keys", f.admin, `{"name":"x","role":"root"}`, 400, privalytics.EINVALID},
		{"bad paging", "GET", "/v1/budget/charges?limit=0", f.admin, "", 400, privalytics.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body []byte
			ct := ""
			if tt.body != "" {
				body, ct = []byte(tt.body), "application/json"
			}
			status, eb, _ := f.do(t, tt.method, tt.path, tt.token, ct, nil, body)
			if status != tt.status || eb.Error.Code != tt.code {
				t.Errorf("status %d code %q (%s), want %d %q", status, eb.Error.Code, eb.Error.Message, tt.status, tt.code)
			}
		})
	}
	if status, _, _ := f.do(t, "GET", "/readyz", "", "", nil, nil); status != 200 {
		t.Errorf("/readyz: %d", status)
	}
	if status, _, raw := f.do(t, "GET", "/openapi.yaml", "", "", nil, nil); status != 200 || !bytes.HasPrefix(raw, []byte("openapi: 3")) {
		t.Errorf("/openapi.yaml: %d", status)
	}
}

// TestQueryTooLongIsABadRequest: a query stopped by the time limit is the
// query's fault (a 4xx saying what to change), and it is charged: it stopped
// after reading data, and a free refusal would tell how much data matched
// (issue 13).
func TestQueryTooLongIsABadRequest(t *testing.T) {
	t.Parallel()
	limits := api.DefaultLimits()
	limits.QueryTimeout = time.Nanosecond
	f := newFixture(t, limits)
	var lines strings.Builder
	for i := range 200 {
		fmt.Fprintf(&lines, `{"customer_id":"c%d","ts":"2025-03-01T10:00:00Z","type":"purchase","amount":"3.20"}`+"\n", i)
	}
	f.mustDo(t, http.MethodPost, "/v1/events", f.admin, "application/x-ndjson", nil, []byte(lines.String()), http.StatusOK, nil)
	status, eb, _ := f.do(t, http.MethodPost, "/v1/queries", f.admin, "application/json", nil, []byte(`{"aggregates":[{"op":"count"}],"epsilon":0.5}`))
	if status != http.StatusBadRequest || !strings.Contains(eb.Error.Message, "Narrow") {
		t.Fatalf("status %d %q, want 400 saying what to narrow", status, eb.Error.Message)
	}
	var b privalytics.BudgetStatus
	f.mustDo(t, http.MethodGet, "/v1/budget", f.admin, "", nil, nil, http.StatusOK, &b)
	if b.Spent.Epsilon != 0.5 || !strings.Contains(eb.Error.Message, "charged") {
		t.Errorf("a stopped query spent ε %v (want 0.5) and said %q (want: it was charged)", b.Spent.Epsilon, eb.Error.Message)
	}
}

// TestRateLimitPerKey: past its burst a key gets 429 with Retry-After and a
// message saying what to do; other keys are not affected.
func TestRateLimitPerKey(t *testing.T) {
	t.Parallel()
	limits := api.DefaultLimits()
	limits.RatePerKey, limits.RateBurst = 0.5, 2
	f := newFixture(t, limits)
	for range 2 {
		f.mustDo(t, http.MethodGet, "/v1/budget", f.admin, "", nil, nil, http.StatusOK, nil)
	}
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/v1/budget", nil)
	req.Header.Set("Authorization", "Bearer "+f.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var eb api.ErrorBody
	json.NewDecoder(resp.Body).Decode(&eb)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || eb.Error.Code != privalytics.ERATELIMIT {
		t.Fatalf("third request in a burst of 2: %d %s, want 429 %s", resp.StatusCode, eb.Error.Code, privalytics.ERATELIMIT)
	}
	// One token every 2 s: the wait is at most 2 s, rounded up to whole seconds.
	if ra := resp.Header.Get("Retry-After"); ra != "1" && ra != "2" {
		t.Errorf("Retry-After %q, want 1 or 2 (seconds)", ra)
	}
	if !strings.Contains(eb.Error.Message, "retry after") {
		t.Errorf("message %q does not say when to retry", eb.Error.Message)
	}
	// The operator's key has its own bucket.
	f.mustDo(t, http.MethodGet, "/v1/tenants/shop", f.operator, "", nil, nil, http.StatusOK, nil)
}

// TestMetrics: the operator scrapes request, ingest, query and budget figures;
// other keys are refused; no customer identifier reaches the output.
func TestMetrics(t *testing.T) {
	t.Parallel()
	f := newFixture(t, api.DefaultLimits())
	f.mustDo(t, http.MethodPost, "/v1/events", f.admin, "application/x-ndjson", nil,
		[]byte(`{"customer_id":"cust-secret-42","ts":"2025-03-01T10:00:00Z","type":"purchase","amount":"3.20"}`+"\n"+
			`{"customer_id":"cust-secret-43","ts":"2025-03-01T11:00:00Z","type":"view"}`+"\n"), http.StatusOK, nil)
	q := []byte(`{"aggregates":[{"op":"count"}],"epsilon":0.25}`)
	f.mustDo(t, http.MethodPost, "/v1/queries", f.admin, "application/json", nil, q, http.StatusOK, nil)
	f.mustDo(t, http.MethodPost, "/v1/queries", f.admin, "application/json", nil, q, http.StatusOK, nil) // cached
	f.do(t, http.MethodPost, "/v1/queries", f.admin, "application/json", nil, []byte(`{"aggregates":[{"op":"count"}],"epsilon":50}`))

	if status, _, _ := f.do(t, http.MethodGet, "/metrics", f.admin, "", nil, nil); status != http.StatusForbidden {
		t.Errorf("a tenant admin key scraped metrics: %d, want 403", status)
	}
	status, _, body := f.do(t, http.MethodGet, "/metrics", f.operator, "", nil, nil)
	if status != http.StatusOK {
		t.Fatalf("operator scrape: %d", status)
	}
	text := string(body)
	for _, want := range []string{
		`privalytics_ingest_rows_total{tenant="shop"} 2`,
		`privalytics_queries_total{outcome="answered",tenant="shop"} 1`,
		`privalytics_queries_total{outcome="cached",tenant="shop"} 1`,
		`privalytics_queries_total{outcome="refused",tenant="shop"} 1`,
		`privalytics_budget_spent_epsilon_total{tenant="shop"} 0.25`,
		`privalytics_http_requests_total{method="POST",route="/v1/queries",status="200"} 2`,
		`privalytics_http_request_duration_seconds_bucket{route="/v1/events"`,
		`privalytics_segments{tenant="shop"}`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(text, "cust-secret") {
		t.Error("a customer identifier appears in the metrics")
	}
}

// TestSQLOverHTTP: the SQL form answers exactly like the JSON form (one cached
// answer serves both), and a mistake comes back as a 400 pointing at it.
func TestSQLOverHTTP(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, api.DefaultLimits(), dptest.NoNoise(), `{"id":"shop","period":"lifetime","budget":{"epsilon":5}}`)
	var lines strings.Builder
	for i := range 30 {
		fmt.Fprintf(&lines, `{"customer_id":"c%d","ts":"2025-03-01T10:00:00Z","type":"purchase","channel":"%s","amount":"2.50"}`+"\n", i, []string{"web", "app", "store"}[i%3])
	}
	f.mustDo(t, http.MethodPost, "/v1/events", f.admin, "application/x-ndjson", nil, []byte(lines.String()), http.StatusOK, nil)
	sql := `SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1) channel, COUNT(*) AS n,
		SUM(amount, contribution_bounds_per_row => (0, 10)) AS revenue FROM events WHERE type = 'purchase' GROUP BY channel`
	var viaSQL, viaJSON privalytics.Result
	f.mustDo(t, http.MethodPost, "/v1/sql", f.admin, "text/plain", nil, []byte(sql), http.StatusOK, &viaSQL)
	f.mustDo(t, http.MethodPost, "/v1/queries", f.admin, "application/json", nil,
		[]byte(`{"where":[{"column":"type","eq":"purchase"}],"group_by":[{"column":"channel"}],
		"aggregates":[{"name":"n","op":"count"},{"name":"revenue","op":"sum","column":"amount","lower":0,"upper":10}],"epsilon":1}`), http.StatusOK, &viaJSON)
	if !viaJSON.Cached || len(viaSQL.Rows) != 3 {
		t.Fatalf("the JSON form was not served from the SQL form's cache entry (cached %v), rows %d", viaJSON.Cached, len(viaSQL.Rows))
	}
	for i, r := range viaSQL.Rows {
		if r.Cells[0].Value != 10 || r.Cells[1].Value != 25 || r.Cells[0] != viaJSON.Rows[i].Cells[0] {
			t.Errorf("row %v: %+v, want count 10 and revenue 25 (as the JSON form: %+v)", r.Key, r.Cells, viaJSON.Rows[i].Cells)
		}
	}
	status, eb, _ := f.do(t, http.MethodPost, "/v1/sql", f.admin, "text/plain", nil, []byte("SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1) COUNT(*) FROM orders"))
	if status != http.StatusBadRequest || !strings.Contains(eb.Error.Message, "1:70") || !strings.Contains(eb.Error.Message, "^") {
		t.Errorf("bad table: %d %q, want 400 at 1:70 with a caret", status, eb.Error.Message)
	}
	var ex struct {
		Cost privalytics.Cost `json:"cost"`
	}
	f.mustDo(t, http.MethodPost, "/v1/sql:explain", f.admin, "application/json", nil, []byte(`{"sql":"SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 0.3) COUNT(*) FROM events"}`), http.StatusOK, &ex)
	if ex.Cost.Epsilon != 0.3 {
		t.Errorf("explain of SQL: cost %+v, want ε 0.3", ex.Cost)
	}
}

// TestMedianOverHTTP: a median asked over HTTP, with the secure mechanisms,
// over rows that were sealed (so held in the compact in-memory form), comes
// back with an interval that holds the value, sits inside the bounds and is
// far narrower than them for a group of 12,000 customers; explain states the
// interval's rank half-width.
func TestMedianOverHTTP(t *testing.T) {
	t.Parallel()
	var store *events.Store
	f := newFixtureOpts(t, api.DefaultLimits(), dp.Secure(), `{"id":"shop","period":"lifetime","budget":{"epsilon":5}}`, func(d *api.Deps) { store = d.Events.(*events.Store) })
	var lines strings.Builder
	for i := range 12_000 {
		// Amounts 0.00 … 99.99 spread evenly: the median is about 50.
		fmt.Fprintf(&lines, `{"customer_id":"c%d","ts":"2025-03-01T10:00:00Z","type":"purchase","amount":"%d.%02d"}`+"\n", i, (i*37)%100, (i*7)%100)
	}
	f.mustDo(t, http.MethodPost, "/v1/events", f.admin, "application/x-ndjson", nil, []byte(lines.String()), http.StatusOK, nil)
	if err := store.Seal(context.Background(), "shop"); err != nil {
		t.Fatal(err)
	}
	snap, err := store.Snapshot(context.Background(), "shop", privalytics.DefaultRetailSchema())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := snap.Chunks[0].Record.Column(snap.Chunks[0].Record.Schema().FieldIndices("amount")[0]).(*array.Dictionary); !ok {
		t.Fatalf("the sealed amounts are held as %s, want the compact dictionary form", snap.Chunks[0].Record.Schema())
	}
	q := []byte(`{"aggregates":[{"name":"med","op":"median","column":"amount","lower":0,"upper":100}],
		"bounds":{"max_groups":1,"max_rows_per_group":1},"epsilon":1}`)
	var ex analytics.Explanation
	f.mustDo(t, http.MethodPost, "/v1/queries:explain", f.admin, "application/json", nil, q, http.StatusOK, &ex)
	if len(ex.Aggregates) != 1 || !strings.Contains(ex.Aggregates[0].Note, "rows of the quantile") {
		t.Errorf("explain: %+v, want the quantile's rank half-width in the note", ex.Aggregates)
	}
	var res privalytics.Result
	f.mustDo(t, http.MethodPost, "/v1/queries", f.admin, "application/json", nil, q, http.StatusOK, &res)
	if len(res.Rows) != 1 {
		t.Fatalf("%d rows, want 1", len(res.Rows))
	}
	c := res.Rows[0].Cells[0]
	if c.Lower > c.Value || c.Value > c.Upper || c.Lower < 0 || c.Upper > 100 {
		t.Errorf("median %v with interval [%v, %v]: the interval must hold the value inside [0, 100]", c.Value, c.Lower, c.Upper)
	}
	if w := c.Upper - c.Lower; w <= 0 || w > 20 {
		t.Errorf("median interval width %v: want a useful interval (0 < width ≤ 20) for 12,000 customers", w)
	}
	if math.Abs(c.Value-50) > 10 {
		t.Errorf("median %v, want about 50", c.Value)
	}
}
