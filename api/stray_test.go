package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/privalytics/privalytics/api"
	"github.com/privalytics/privalytics/dp"
)

const noteSchema = `"schema":{"subject":"customer_id","time":"ts","columns":[
	{"name":"customer_id","type":"string","required":true},
	{"name":"ts","type":"timestamp","required":true},
	{"name":"note","type":"string","free_text":true,"max_length":200}]}`

func TestStrayPersonalDataOverHTTP(t *testing.T) {
	t.Parallel()
	body := []byte(`{"customer_id":"c1","ts":"2025-03-01T10:00:00Z","note":"fine"}
{"customer_id":"c2","ts":"2025-03-01T10:00:00Z","note":"pay from DE89 3704 0044 0532 0130 00"}
`)
	f := newFixtureWith(t, api.DefaultLimits(), dp.Secure(), `{"id":"shop","period":"lifetime","budget":{"epsilon":1},`+noteSchema+`}`)
	status, eb, _ := f.do(t, http.MethodPost, "/v1/events", f.admin, "application/x-ndjson", nil, body)
	if status != http.StatusBadRequest || eb.Error.Details["line"] != float64(2) || eb.Error.Details["field"] != "note" || !strings.Contains(eb.Error.Message, "IBAN") {
		t.Fatalf("reject policy: %d %+v; want 400 naming line 2, field note, an IBAN", status, eb.Error)
	}

	var created api.CreateTenantResponse
	f.mustDo(t, http.MethodPost, "/v1/tenants", f.operator, "application/json", nil, []byte(`{"id":"redacting","period":"lifetime","budget":{"epsilon":1},"privacy":{"stray_data":"redact"},`+noteSchema+`}`), http.StatusCreated, &created)
	f.mustDo(t, http.MethodPost, "/v1/events", created.AdminKey.Token, "application/x-ndjson", nil, body, http.StatusOK, nil)
}
