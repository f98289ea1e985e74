package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api"
	"github.com/privalytics/privalytics/dp/dptest"
)

// consentFixture is a noise-free server with a tenant that declares analytics
// (opt-out) and marketing (opt-in), three customers' events, and a query key.
func consentFixture(t *testing.T) (f *fixture, ingest, query string) {
	t.Helper()
	f = newFixtureWith(t, api.DefaultLimits(), dptest.NoNoise(), `{"id":"shop","period":"lifetime","budget":{"epsilon":100,"delta":1e-3},"purposes":["analytics","marketing"]}`)
	var k api.IssuedKey
	f.mustDo(t, http.MethodPost, "/v1/keys", f.admin, "application/json", nil, []byte(`{"name":"pos","role":"ingest"}`), http.StatusCreated, &k)
	ingest = k.Token
	f.mustDo(t, http.MethodPost, "/v1/keys", f.admin, "application/json", nil, []byte(`{"name":"marketing","role":"query"}`), http.StatusCreated, &k)
	query = k.Token
	var events strings.Builder
	for _, c := range []string{"c1", "c2", "c3"} {
		for d := 1; d <= 2; d++ {
			fmt.Fprintf(&events, `{"customer_id":%q,"ts":"2025-03-0%dT10:00:00Z","type":"purchase","amount":"5"}`+"\n", c, d)
		}
	}
	f.mustDo(t, http.MethodPost, "/v1/events", ingest, "application/x-ndjson", nil, []byte(events.String()), http.StatusOK, nil)
	return f, ingest, query
}

// customers asks how many distinct customers a query for purpose sees.
func customers(t *testing.T, f *fixture, token, purpose string) privalytics.Result {
	t.Helper()
	q := fmt.Sprintf(`{"purpose":%q,"aggregates":[{"op":"distinct_customers"}],"epsilon":1}`, purpose)
	if purpose == "" {
		q = `{"aggregates":[{"op":"distinct_customers"}],"epsilon":1}`
	}
	var res privalytics.Result
	f.mustDo(t, http.MethodPost, "/v1/queries", token, "application/json", nil, []byte(q), http.StatusOK, &res)
	return res
}

func TestConsentWithdrawalChangesTheNextQuery(t *testing.T) {
	t.Parallel()
	f, ingest, query := consentFixture(t)
	count := func(purpose string) (float64, bool) {
		res := customers(t, f, query, purpose)
		return res.Rows[0].Cells[0].Value, res.Cached
	}
	// analytics is opt-out: everyone counts until they withdraw; the default
	// purpose of a query is analytics.
	if n, _ := count(""); n != 3 {
		t.Fatalf("analytics before any consent record: %v customers, want 3", n)
	}
	if n, cached := count("analytics"); n != 3 || !cached {
		t.Fatalf("the same query again: %v customers, cached %v; want 3 from the cache", n, cached)
	}
	// marketing is opt-in: no one counts until they grant.
	if n, _ := count("marketing"); n != 0 {
		t.Fatalf("marketing before any grant: %v customers, want 0", n)
	}

	var rec api.ConsentsRecorded
	f.mustDo(t, http.MethodPost, "/v1/consents", ingest, "application/x-ndjson", nil, []byte(
		`{"customer_id":"c2","purpose":"analytics","granted":false,"source":"web-form"}`+"\n"+
			`{"customer_id":"c1","purpose":"marketing","granted":true,"time":"2025-02-01T00:00:00Z","source":"pos"}`+"\n"), http.StatusOK, &rec)
	if rec.Recorded != 2 || rec.Version < 1 {
		t.Fatalf("recorded %+v", rec)
	}
	if n, cached := count("analytics"); n != 2 || cached {
		t.Errorf("analytics after c2 withdrew: %v customers (cached %v), want 2, freshly computed", n, cached)
	}
	if n, _ := count("marketing"); n != 1 {
		t.Errorf("marketing after c1 granted: %v customers, want 1", n)
	}
	// A single JSON object works too; c2 grants again and counts again.
	f.mustDo(t, http.MethodPost, "/v1/consents", f.admin, "application/json", nil, []byte(`{"customer_id":"c2","purpose":"analytics","granted":true}`), http.StatusOK, nil)
	if n, _ := count("analytics"); n != 3 {
		t.Errorf("analytics after c2 granted again: %v customers, want 3", n)
	}

	var status api.ConsentStatus
	f.mustDo(t, http.MethodGet, "/v1/consents/c2", f.admin, "", nil, nil, http.StatusOK, &status)
	if len(status.History) != 2 || status.History[0].Granted || !status.History[1].Granted || status.History[0].Source != "web-form" {
		t.Errorf("history of c2: %+v; want withdrawal (web-form) then grant", status.History)
	}
	if got := status.Purposes["analytics"]; !got.Granted || got.Policy != privalytics.OptOut {
		t.Errorf("c2 analytics standing %+v", got)
	}
	if got := status.Purposes["marketing"]; got.Granted || got.Policy != privalytics.OptIn {
		t.Errorf("c2 marketing standing %+v; want opt-in, not granted", got)
	}
	raw, _ := json.Marshal(status)
	if strings.Contains(string(raw), "c2") {
		t.Errorf("the consent status echoes the customer identifier: %s", raw)
	}
}

func TestConsentAndPurposeRules(t *testing.T) {
	t.Parallel()
	f, ingest, query := consentFixture(t)
	tests := []struct {
		name, token, ct, body string
		status                int
		field                 string
	}{
		{"undeclared purpose", ingest, "application/x-ndjson", `{"customer_id":"c1","purpose":"analytics","granted":true}` + "\n" + `{"customer_id":"c1","purpose":"profiling","granted":true}`, 400, "purpose"},
		{"no customer", ingest, "application/x-ndjson", `{"purpose":"analytics","granted":true}`, 400, "customer_id"},
		{"no decision", ingest, "application/json", `{"customer_id":"c1","purpose":"analytics"}`, 400, "granted"},
		{"future time", ingest, "application/json", `{"customer_id":"c1","purpose":"analytics","granted":true,"time":"2999-01-01T00:00:00Z"}`, 400, "time"},
		{"unknown field", ingest, "application/json", `{"customer_id":"c1","purpose":"analytics","granted":true,"email":"x@y.z"}`, 400, ""},
		{"empty body", ingest, "application/x-ndjson", "\n", 400, ""},
		{"query key cannot record", query, "application/json", `{"customer_id":"c1","purpose":"analytics","granted":false}`, 403, ""},
	}
	for _, tc := range tests {
		status, eb, _ := f.do(t, http.MethodPost, "/v1/consents", tc.token, tc.ct, nil, []byte(tc.body))
		if status != tc.status {
			t.Errorf("%s: status %d (%s), want %d", tc.name, status, eb.Error.Message, tc.status)
			continue
		}
		if tc.field != "" && eb.Error.Details["field"] != tc.field {
			t.Errorf("%s: error %+v does not name field %s", tc.name, eb.Error, tc.field)
		}
	}
	// Nothing of the rejected batches was recorded.
	var status api.ConsentStatus
	f.mustDo(t, http.MethodGet, "/v1/consents/c1", f.admin, "", nil, nil, http.StatusOK, &status)
	if len(status.History) != 0 {
		t.Errorf("rejected batches left %d records", len(status.History))
	}
	if st, _, _ := f.do(t, http.MethodGet, "/v1/consents/c1", query, "", nil, nil); st != http.StatusForbidden {
		t.Errorf("query key reading consent history: %d, want 403", st)
	}
	st, eb, _ := f.do(t, http.MethodPost, "/v1/queries", query, "application/json", nil, []byte(`{"purpose":"profiling","aggregates":[{"op":"count"}],"epsilon":1}`))
	if st != 400 || !strings.Contains(eb.Error.Message, "not declared") {
		t.Errorf("query for an undeclared purpose: %d %s", st, eb.Error.Message)
	}
	st, eb, _ = f.do(t, http.MethodPost, "/v1/queries", query, "application/json", nil, []byte(`{"purpose":"Bad Purpose","aggregates":[{"op":"count"}],"epsilon":1}`))
	if st != 400 {
		t.Errorf("query with a malformed purpose: %d %s", st, eb.Error.Message)
	}
}

func TestTenantPrivacyPolicyValidation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, api.DefaultLimits())
	for _, body := range []string{
		`{"id":"a1","period":"lifetime","budget":{"epsilon":1},"purposes":["analytics"],"privacy":{"consent":{"marketing":"opt-in"}}}`,
		`{"id":"a2","period":"lifetime","budget":{"epsilon":1},"privacy":{"consent":{"analytics":"maybe"}}}`,
		`{"id":"a3","period":"lifetime","budget":{"epsilon":1},"privacy":{"stray_data":"ignore"}}`,
		`{"id":"a4","period":"lifetime","budget":{"epsilon":1},"purposes":["Marketing!"]}`,
	} {
		if st, eb, _ := f.do(t, http.MethodPost, "/v1/tenants", f.operator, "application/json", nil, []byte(body)); st != 400 {
			t.Errorf("%s: status %d (%s), want 400", body, st, eb.Error.Message)
		}
	}
	var created api.CreateTenantResponse
	f.mustDo(t, http.MethodPost, "/v1/tenants", f.operator, "application/json", nil, []byte(`{"id":"b1","period":"lifetime","budget":{"epsilon":1},"purposes":["analytics","product"],"privacy":{"consent":{"analytics":"opt-in"}}}`), http.StatusCreated, &created)
	want := map[string]string{"analytics": privalytics.OptIn, "product": privalytics.OptIn}
	if fmt.Sprint(created.Tenant.Privacy.Consent) != fmt.Sprint(want) || created.Tenant.Privacy.StrayData != privalytics.StrayReject {
		t.Errorf("privacy policy with defaults = %+v, want consent %v and stray_data reject", created.Tenant.Privacy, want)
	}
}

// TestConsentPolicyChange switches analytics to opt-in: customers without a
// grant drop out of the next query, which is not served from the cache.
func TestConsentPolicyChange(t *testing.T) {
	t.Parallel()
	f, ingest, query := consentFixture(t)
	if res := customers(t, f, query, "analytics"); res.Rows[0].Cells[0].Value != 3 {
		t.Fatalf("before: %v customers", res.Rows[0].Cells[0].Value)
	}
	f.mustDo(t, http.MethodPost, "/v1/consents", ingest, "application/json", nil, []byte(`{"customer_id":"c3","purpose":"analytics","granted":true}`), http.StatusOK, nil)
	if st, _, _ := f.do(t, http.MethodPut, "/v1/tenant/privacy", query, "application/json", nil, []byte(`{"consent":{"analytics":"opt-in"}}`)); st != http.StatusForbidden {
		t.Errorf("query key changing the consent policy: %d, want 403", st)
	}
	var tn privalytics.Tenant
	f.mustDo(t, http.MethodPut, "/v1/tenant/privacy", f.admin, "application/json", nil, []byte(`{"consent":{"analytics":"opt-in"}}`), http.StatusOK, &tn)
	if tn.Privacy.Consent["analytics"] != privalytics.OptIn || tn.Privacy.Consent["marketing"] != privalytics.OptIn || tn.Privacy.StrayData != privalytics.StrayReject {
		t.Errorf("policy after the change: %+v", tn.Privacy)
	}
	if res := customers(t, f, query, "analytics"); res.Rows[0].Cells[0].Value != 1 || res.Cached {
		t.Errorf("after switching analytics to opt-in: %v customers (cached %v); want only c3, freshly computed", res.Rows[0].Cells[0].Value, res.Cached)
	}
	if st, _, _ := f.do(t, http.MethodPut, "/v1/tenant/privacy", f.admin, "application/json", nil, []byte(`{"consent":{"profiling":"opt-in"}}`)); st != http.StatusBadRequest {
		t.Errorf("a policy for an undeclared purpose: %d, want 400", st)
	}
}
