package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/privalytics/privalytics/api"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/dp/dptest"
)

// strict decodes raw into out refusing any field out does not have: what the
// server sends must be exactly a wire body, or the SDK silently drops it.
func strict(t *testing.T, what string, raw []byte, out any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		t.Errorf("%s: the server's answer is not a %T: %v\n%s", what, out, err, raw)
	}
}

// Every route's answer decodes strictly into its api/wire body, over HTTP
// from the real server: the contract the Go SDK is built on.
func TestServerAnswersAreWireBodies(t *testing.T) {
	t.Parallel()
	f := newFixtureDeps(t, api.DefaultLimits(), func(d *api.Deps) { d.Mechanisms = dptest.NoNoise() })
	var events strings.Builder
	for i := range 6 {
		events.WriteString(`{"customer_id":"c` + string(rune('0'+i%3)) + `","ts":"2025-01-1` + string(rune('0'+i)) + `T10:00:00Z","type":"purchase","amount":"2.50","channel":"web"}` + "\n")
	}
	get := func(path string) []byte {
		t.Helper()
		status, eb, raw := f.do(t, http.MethodGet, path, f.admin, "", nil, nil)
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, status, eb.Error.Message)
		}
		return raw
	}
	post := func(path, ctype, body string, want int) []byte {
		t.Helper()
		status, eb, raw := f.do(t, http.MethodPost, path, f.admin, ctype, nil, []byte(body))
		if status != want {
			t.Fatalf("POST %s: %d %s", path, status, eb.Error.Message)
		}
		return raw
	}
	query := `{"group_by":[{"column":"channel","keys":["web"]}],"aggregates":[{"op":"count"},{"op":"sum","column":"amount","lower":0,"upper":10}],"bounds":{"max_groups":1,"max_rows_per_group":5},"epsilon":0.5}`
	for _, tc := range []struct {
		what string
		raw  []byte
		out  any
	}{
		{"POST /v1/events", post("/v1/events", "application/x-ndjson", events.String(), http.StatusOK), &wire.AppendResult{}},
		{"POST /v1/imports", post("/v1/imports?format=ndjson", "application/octet-stream", events.String(), http.StatusOK), &wire.ImportReport{}},
		{"POST /v1/keys", post("/v1/keys", "application/json", `{"name":"q","role":"query"}`, http.StatusCreated), &wire.IssuedKey{}},
		{"GET /v1/keys", get("/v1/keys"), &wire.KeyList{}},
		{"GET /v1/tenant", get("/v1/tenant"), &wire.Tenant{}},
		{"GET /v1/tenants/shop", get("/v1/tenants/shop"), &wire.Tenant{}},
		{"POST /v1/consents", post("/v1/consents", "application/x-ndjson", `{"customer_id":"c1","purpose":"analytics","granted":false}`+"\n", http.StatusOK), &wire.ConsentsRecorded{}},
		{"GET /v1/consents/c1", get("/v1/consents/c1"), &wire.ConsentStatus{}},
		{"GET /v1/subjects/c2", get("/v1/subjects/c2"), &wire.SubjectExport{}},
		{"POST /v1/queries", post("/v1/queries", "application/json", query, http.StatusOK), &wire.Result{}},
		{"POST /v1/queries:explain", post("/v1/queries:explain", "application/json", query, http.StatusOK), &wire.Explanation{}},
		{"GET /v1/budget", get("/v1/budget"), &wire.BudgetResponse{}},
		{"GET /v1/budget/charges", get("/v1/budget/charges"), &wire.ChargePage{}},
		{"GET /v1/budget/changes", get("/v1/budget/changes"), &wire.BudgetChangePage{}},
		{"GET /v1/audit", get("/v1/audit"), &wire.AuditPage{}},
		{"GET /v1/privacy-notice", get("/v1/privacy-notice?format=json"), &wire.Notice{}},
		{"an error", func() []byte {
			_, _, raw := f.do(t, http.MethodGet, "/v1/subjects/c1?format=xml", f.admin, "", nil, nil)
			return raw
		}(), &wire.ErrorBody{}},
	} {
		strict(t, tc.what, tc.raw, tc.out)
	}
	var rc wire.ErasureReceipt
	status, _, raw := f.do(t, http.MethodDelete, "/v1/subjects/c2", f.admin, "", nil, nil)
	if strict(t, "DELETE /v1/subjects/c2", raw, &rc); status != http.StatusAccepted || rc.ID == "" {
		t.Fatalf("erase: %d %+v", status, rc)
	}
	strict(t, "GET /v1/erasures/{id}", get("/v1/erasures/"+rc.ID), &wire.ErasureReceipt{})
}
