package api_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api"
)

// TestLeastPrivilege sends every documented route with every kind of key and
// checks who is let through: ingest keys cannot query, query keys cannot read
// consent histories, keys or the audit trail, only admin keys manage keys and
// budgets, and the operator key only creates tenants. Every denial must be in
// the audit trail.
func TestLeastPrivilege(t *testing.T) {
	t.Parallel()
	f := newFixture(t, api.DefaultLimits())
	keys := map[string]string{"operator": f.operator, "admin": f.admin}
	var k api.IssuedKey
	for _, role := range []string{"ingest", "query"} {
		f.mustDo(t, http.MethodPost, "/v1/keys", f.admin, "application/json", nil, []byte(`{"name":"`+role+`","role":"`+role+`"}`), http.StatusCreated, &k)
		keys[role] = k.Token
	}
	// Who may call each route. The rest get 403 (404 for another's tenant).
	allowed := map[string]string{
		"POST /v1/tenants":           "operator",
		"GET /v1/tenants":            "operator",
		"GET /v1/tenants/{tenant}":   "operator admin",
		"GET /v1/tenant":             "admin ingest query",
		"PUT /v1/tenant/privacy":     "admin",
		"GET /v1/privacy-notice":     "admin ingest query",
		"POST /v1/keys":              "admin",
		"GET /v1/keys":               "admin",
		"DELETE /v1/keys/{id}":       "admin",
		"PUT /v1/keys/{id}/budget":   "admin",
		"POST /v1/events":            "admin ingest",
		"POST /v1/imports":           "admin ingest",
		"POST /v1/queries":           "admin query",
		"POST /v1/queries:explain":   "admin query",
		"POST /v1/workloads:explain": "admin query",
		"POST /v1/sql":               "admin query",
		"POST /v1/sql:explain":       "admin query",
		"GET /v1/budget":             "admin query",
		"GET /v1/budget/charges":     "admin query",
		"POST /v1/budget/grants":     "admin",
		"GET /v1/budget/changes":     "admin",
		"GET /v1/audit":              "admin",
		"POST /v1/consents":          "admin ingest",
		// Web pages' events take a publishable track key in ?key=; no API key
		// in a header passes.
		"POST /v1/track":                 "",
		"GET /v1/consents/{customer_id}": "admin",
		// Franchise federations: the franchisor's admin key; the rest take a
		// location's pvl_… credential, which no API key is.
		"POST /v1/federations":                                        "admin",
		"GET /v1/federations/{fed}":                                   "admin",
		"GET /v1/federations/{fed}/public-key":                        "admin",
		"POST /v1/federations/{fed}/rounds":                           "admin",
		"GET /v1/federations/{fed}/rounds/{round}":                    "admin",
		"GET /v1/federations/{fed}/rounds/{round}/result":             "admin",
		"POST /v1/federations/{fed}/key-shares":                       "",
		"GET /v1/federations/{fed}/shamir-shares":                     "",
		"POST /v1/federations/{fed}/shamir-shares":                    "",
		"GET /v1/federations/{fed}/franchisor-key":                    "",
		"POST /v1/federations/{fed}/rounds/{round}/contributions":     "",
		"POST /v1/federations/{fed}/rounds/{round}/ready":             "",
		"GET /v1/federations/{fed}/rounds/{round}/aggregate":          "",
		"POST /v1/federations/{fed}/rounds/{round}/decryption-shares": "",
		// A customer's rights, retention, data keys.
		"GET /v1/subjects/{customer_id}":     "admin",
		"DELETE /v1/subjects/{customer_id}":  "admin",
		"GET /v1/erasures/{id}":              "admin",
		"PUT /v1/tenant/retention":           "admin",
		"POST /v1/tenant/data-keys":          "admin",
		"DELETE /v1/tenants/{tenant}/events": "operator",
		// Views, dashboards and share links (share keys: TestShareLinkScope).
		"POST /v1/views/preview":                      "admin query",
		"POST /v1/views":                              "admin query",
		"GET /v1/views":                               "admin query",
		"GET /v1/views/{id}":                          "admin query",
		"DELETE /v1/views/{id}":                       "admin query",
		"GET /v1/views/{id}/releases":                 "admin query",
		"GET /v1/views/{id}/rollup":                   "admin query",
		"POST /v1/dashboards":                         "admin query",
		"GET /v1/dashboards":                          "admin query",
		"GET /v1/dashboards/{id}":                     "admin query",
		"DELETE /v1/dashboards/{id}":                  "admin query",
		"POST /v1/dashboards/{id}/share":              "admin query",
		"DELETE /v1/dashboards/{id}/share/{share_id}": "admin query",
		// Encrypted datasets (processor role, or admin; the routes answer 404
		// unless the server runs with --role processor).
		"POST /v1/he/datasets":                            "admin",
		"GET /v1/he/datasets/{dataset}":                   "admin",
		"DELETE /v1/he/datasets/{dataset}":                "admin",
		"POST /v1/he/datasets/{dataset}/jobs":             "admin",
		"GET /v1/he/datasets/{dataset}/jobs/{job}":        "admin",
		"GET /v1/he/datasets/{dataset}/jobs/{job}/result": "admin",
		// Franchise models and their fairness audits (503 without a models
		// directory, as in this fixture: let through, not refused).
		"GET /v1/models":               "admin query",
		"GET /v1/models/{name}":        "admin query",
		"POST /v1/models/{name}":       "admin",
		"POST /v1/fairness-audits":     "admin query",
		"GET /v1/fairness-audits/{id}": "admin query",
	}
	// Every /v1 route of the spec must be in the table.
	resp, err := http.Get(f.srv.URL + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var documented []string
	path := ""
	for _, line := range strings.Split(string(spec), "\n") {
		if m := regexp.MustCompile(`^  (/v1/\S*):\s*$`).FindStringSubmatch(line); m != nil {
			path = m[1]
		} else if regexp.MustCompile(`^  \S`).MatchString(line) {
			path = ""
		} else if m := regexp.MustCompile(`^    (get|post|put|delete):\s*$`).FindStringSubmatch(line); m != nil && path != "" {
			documented = append(documented, strings.ToUpper(m[1])+" "+path)
		}
	}
	sort.Strings(documented)
	for _, r := range documented {
		if _, ok := allowed[r]; !ok {
			t.Errorf("route %s has no entry in the least-privilege table", r)
		}
	}
	if len(documented) != len(allowed) {
		t.Errorf("the spec documents %d /v1 routes, the table has %d", len(documented), len(allowed))
	}

	fill := strings.NewReplacer("{tenant}", "shop", "{id}", "k_nope", "{customer_id}", "c1", "{fed}", "f_nope", "{round}", "1", "{dataset}", "d_nope", "{job}", "j_nope", "{share_id}", "k_nope", "{name}", "m-nope")
	denied := map[string]int{} // audit tenant → denials expected
	for _, route := range documented {
		method, path, _ := strings.Cut(route, " ")
		for _, role := range []string{"operator", "admin", "ingest", "query"} {
			var body []byte
			if method == http.MethodPost || method == http.MethodPut {
				body = []byte(`{}`)
			}
			status, eb, _ := f.do(t, method, fill.Replace(path), keys[role], "application/json", nil, body)
			may := strings.Contains(" "+allowed[route]+" ", " "+role+" ")
			refused := status == http.StatusForbidden || (route == "GET /v1/tenants/{tenant}" && status == http.StatusNotFound && eb.Error.Message == `no tenant "shop"`)
			if may && refused {
				t.Errorf("%s with a %s key: refused (%d %s), but the role may", route, role, status, eb.Error.Message)
			}
			if !may && !refused {
				t.Errorf("%s with a %s key: status %d, want a refusal", route, role, status)
			}
			if !may {
				if role == "operator" {
					denied[""]++
				} else {
					denied["shop"]++
				}
			}
		}
	}
	for tenant, want := range denied {
		entries, err := f.audit.Entries(context.Background(), tenant, 0, 500)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, e := range entries {
			if e.Action == "access.denied" && (e.Outcome == privalytics.EFORBIDDEN || e.Outcome == privalytics.ENOTFOUND) && e.Actor != "" && strings.Contains(e.Target, "/v1/") {
				got++
			}
		}
		if got != want {
			t.Errorf("tenant %q: %d denials audited, want %d", tenant, got, want)
		}
	}
}

// TestRevokedKeyUseIsAudited checks that a revoked key is refused and that the
// attempt lands in its tenant's audit trail.
func TestRevokedKeyUseIsAudited(t *testing.T) {
	t.Parallel()
	f := newFixture(t, api.DefaultLimits())
	var k api.IssuedKey
	f.mustDo(t, http.MethodPost, "/v1/keys", f.admin, "application/json", nil, []byte(`{"name":"old","role":"query"}`), http.StatusCreated, &k)
	f.mustDo(t, http.MethodDelete, "/v1/keys/"+k.ID, f.admin, "", nil, nil, http.StatusNoContent, nil)
	if st, _, _ := f.do(t, http.MethodGet, "/v1/budget", k.Token, "", nil, nil); st != http.StatusUnauthorized {
		t.Fatalf("revoked key: status %d, want 401", st)
	}
	entries, err := f.audit.Entries(context.Background(), "shop", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if e := entries[0]; e.Action != "access.denied" || e.Outcome != privalytics.EUNAUTHORIZED || e.Details["reason"] != "revoked key" || e.Details["key_id"] != k.ID {
		t.Errorf("newest entry %+v; want the revoked key's refused use", e)
	}
	if e := entries[1]; e.Action != "key.revoke" || e.Target != k.ID || e.Outcome != privalytics.AuditOK {
		t.Errorf("entry before %+v; want the revocation", e)
	}
}
