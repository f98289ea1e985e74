package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/privalytics/privalytics"
)

// specConformance sends requests to a live server and holds each exchange to
// the spec the server itself serves: the request must be one the spec allows,
// the status must be one it documents for the operation, and a JSON answer must
// match the documented schema.
type specConformance struct {
	t      *testing.T
	doc    *openapi3.T
	router routers.Router
	base   string
}

func newSpecConformance(t *testing.T, base string) *specConformance {
	t.Helper()
	resp, err := http.Get(base + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi.yaml: %d %v", resp.StatusCode, err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatalf("the served spec does not load: %v", err)
	}
	// The spec names the default address; requests here go to this test's port.
	doc.Servers = openapi3.Servers{{URL: base}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatalf("router from the spec: %v", err)
	}
	return &specConformance{t: t, doc: doc, router: router, base: base}
}

// example returns the request example the spec gives for an operation, encoded
// as it is sent; the test fails when the spec has none.
func (sc *specConformance) example(method, path, contentType string) []byte {
	sc.t.Helper()
	item := sc.doc.Paths.Find(path)
	if item == nil || item.GetOperation(method) == nil || item.GetOperation(method).RequestBody == nil {
		sc.t.Fatalf("%s %s: no request body in the spec", method, path)
	}
	mt := item.GetOperation(method).RequestBody.Value.Content.Get(contentType)
	if mt == nil || mt.Example == nil {
		sc.t.Fatalf("%s %s: the spec gives no %s example", method, path, contentType)
	}
	if s, ok := mt.Example.(string); ok && contentType != "application/json" {
		return []byte(s)
	}
	b, err := json.Marshal(mt.Example)
	if err != nil {
		sc.t.Fatal(err)
	}
	return b
}

// call sends one request and checks the exchange against the spec; it returns
// the answer's body.
func (sc *specConformance) call(key, method, path, contentType string, body []byte, want int) []byte {
	sc.t.Helper()
	ctx := context.Background()
	newRequest := func() *http.Request {
		req, err := http.NewRequestWithContext(ctx, method, sc.base+path, bytes.NewReader(body))
		if err != nil {
			sc.t.Fatal(err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		return req
	}
	req := newRequest()
	route, params, err := sc.router.FindRoute(req)
	if err != nil {
		sc.t.Fatalf("%s %s: no such operation in the spec: %v", method, path, err)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
		sc.t.Errorf("%s %s: the request does not match the spec: %v", method, path, err)
	}
	resp, err := http.DefaultClient.Do(newRequest())
	if err != nil {
		sc.t.Fatalf("%s %s: %v", method, path, err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		sc.t.Fatal(err)
	}
	if resp.StatusCode != want {
		sc.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
	media, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		// Bodies other than JSON (YAML, Prometheus text, CSV, Markdown) are checked for status only.
		Options: &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: media != "application/json"},
	}
	out.SetBodyBytes(raw)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		sc.t.Errorf("%s %s: the %d answer does not match the spec: %v\n%s", method, path, resp.StatusCode, err, raw)
	}
	return raw
}

func decodeInto[T any](t *testing.T, raw []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return v
}

// TestSpecAgainstServer sends the spec's own request examples to a real server
// and holds every answer, errors included, to the documented statuses and
// schemas: a field renamed or a status added in the server without the spec
// fails here, and so does an example a user would copy that does not work.
func TestSpecAgainstServer(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, "")
	sc := newSpecConformance(t, ts.app.URL())
	const js, text = "application/json", "text/plain"
	operator := ts.operator.Token()

	sc.call("", "GET", "/healthz", "", nil, 200)
	sc.call("", "GET", "/readyz", "", nil, 200)
	sc.call("", "GET", "/openapi.yaml", "", nil, 200)
	sc.call(operator, "GET", "/metrics", "", nil, 200)

	created := decodeInto[struct {
		Tenant   struct{ ID string }
		AdminKey struct{ Token string } `json:"admin_key"`
	}](t, sc.call(operator, "POST", "/v1/tenants", js, sc.example("POST", "/v1/tenants", js), 201))
	admin := created.AdminKey.Token
	type issued struct{ ID, Token string }
	analyst := decodeInto[issued](t, sc.call(admin, "POST", "/v1/keys", js, sc.example("POST", "/v1/keys", js), 201))
	loader := decodeInto[issued](t, sc.call(admin, "POST", "/v1/keys", js, []byte(`{"name":"loader","role":"ingest"}`), 201))

	sc.call(loader.Token, "POST", "/v1/events", js, sc.example("POST", "/v1/events", js), 200)
	sc.call(analyst.Token, "POST", "/v1/queries:explain", js, sc.example("POST", "/v1/queries:explain", js), 200)
	query := sc.example("POST", "/v1/queries", js)
	res := decodeInto[struct{ Rows []json.RawMessage }](t, sc.call(analyst.Token, "POST", "/v1/queries", js, query, 200))
	if len(res.Rows) == 0 {
		t.Errorf("the spec's query example released no row over its own events example")
	}
	again := decodeInto[struct{ Cached bool }](t, sc.call(analyst.Token, "POST", "/v1/queries", js, query, 200))
	if !again.Cached {
		t.Errorf("a repeat of the example query was not served from the cache")
	}
	sc.call(analyst.Token, "POST", "/v1/sql:explain", text, sc.example("POST", "/v1/sql:explain", text), 200)
	sc.call(analyst.Token, "POST", "/v1/sql", text, sc.example("POST", "/v1/sql", text), 200)
	sc.call(analyst.Token, "GET", "/v1/budget", "", nil, 200)
	sc.call(analyst.Token, "GET", "/v1/budget/charges?limit=10", "", nil, 200)
	sc.call(analyst.Token, "GET", "/v1/privacy-notice", "", nil, 200)
	sc.call(analyst.Token, "GET", "/v1/tenant", "", nil, 200)

	sc.call(admin, "PUT", "/v1/keys/"+analyst.ID+"/budget", js, sc.example("PUT", "/v1/keys/{id}/budget", js), 200)
	sc.call(admin, "POST", "/v1/budget/grants", js, sc.example("POST", "/v1/budget/grants", js), 200)
	sc.call(admin, "GET", "/v1/budget/changes", "", nil, 200)
	sc.call(admin, "GET", "/v1/tenants/"+created.Tenant.ID, "", nil, 200)
	sc.call(admin, "GET", "/v1/keys", "", nil, 200)
	sc.call(admin, "PUT", "/v1/tenant/retention", js, sc.example("PUT", "/v1/tenant/retention", js), 200)
	sc.call(admin, "PUT", "/v1/tenant/privacy", js, sc.example("PUT", "/v1/tenant/privacy", js), 200)

	sc.call(loader.Token, "POST", "/v1/consents", js, sc.example("POST", "/v1/consents", js), 200)
	sc.call(admin, "GET", "/v1/consents/c-1001", "", nil, 200)
	sc.call(admin, "GET", "/v1/subjects/c-1002", "", nil, 200)
	fields := sc.doc.Paths.Find("/v1/subjects/{customer_id}").Patch.RequestBody.Value.Content.Get(js).Schema.Value.Properties["fields"].Value.Example
	patch, err := json.Marshal(map[string]any{"fields": fields})
	if err != nil {
		t.Fatal(err)
	}
	sc.call(admin, "PATCH", "/v1/subjects/c-1002", js, patch, 200)
	receipt := decodeInto[struct{ ID string }](t, sc.call(admin, "DELETE", "/v1/subjects/c-1002", "", nil, 202))
	sc.call(admin, "GET", "/v1/erasures/"+receipt.ID, "", nil, 200)
	sc.call(admin, "GET", "/v1/audit", "", nil, 200)

	sc.call(admin, "POST", "/v1/models/subscribe", js, sc.example("POST", "/v1/models/{name}", js), 201)
	sc.call(analyst.Token, "GET", "/v1/models", "", nil, 200)
	sc.call(analyst.Token, "GET", "/v1/models/subscribe?version=1", "", nil, 200)
	sc.call(analyst.Token, "GET", "/v1/models/nope", "", nil, 404)
	fa := decodeInto[struct{ ID string }](t, sc.call(admin, "POST", "/v1/fairness-audits", js, sc.example("POST", "/v1/fairness-audits", js), 201))
	sc.call(analyst.Token, "GET", "/v1/fairness-audits/"+fa.ID, "", nil, 200)

	// Error answers are part of the contract too.
	sc.call("", "GET", "/v1/budget", "", nil, 401)
	sc.call(analyst.Token, "POST", "/v1/keys", js, sc.example("POST", "/v1/keys", js), 403)
	sc.call(admin, "GET", "/v1/erasures/no-such-receipt", "", nil, 404)
	over := bytes.Replace(query, []byte(`"epsilon":0.5`), []byte(`"epsilon":1000`), 1)
	if bytes.Equal(over, query) {
		t.Fatalf("the query example changed shape; cannot make it exceed the budget: %s", query)
	}
	body := sc.call(analyst.Token, "POST", "/v1/queries", js, over, 403)
	if e := decodeInto[struct{ Error struct{ Code string } }](t, body); e.Error.Code != privalytics.EBUDGET {
		t.Errorf("an over-budget query got code %q, want %q", e.Error.Code, privalytics.EBUDGET)
	}
	if !strings.Contains(string(body), "request_id") {
		t.Errorf("error answers carry the request ID: %s", body)
	}
}
