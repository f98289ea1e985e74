package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/privalytics/privalytics/api"
)

// The limits of api.Limits hold on every route that reads them, and a
// refusal says the limit.
func TestLimitsIdempotencyKeyAndPageSize(t *testing.T) {
	t.Parallel()
	limits := api.DefaultLimits()
	limits.MaxPageSize = 10
	f := newFixture(t, limits)
	long := map[string]string{"Idempotency-Key": strings.Repeat("k", 129)}
	for _, tc := range []struct {
		name, method, path, ctype string
		hdr                       map[string]string
		body                      string
		want                      int
		says                      string
	}{
		{"ingest key too long", http.MethodPost, "/v1/events", "application/x-ndjson", long, "{}\n", http.StatusBadRequest, "at most 128 bytes"},
		{"import key too long", http.MethodPost, "/v1/imports?format=csv", "application/octet-stream", long, "customer_id\n", http.StatusBadRequest, "at most 128 bytes"},
		{"page over the maximum", http.MethodGet, "/v1/audit?limit=11", "", nil, "", http.StatusBadRequest, "limit 1..10"},
		{"page at the maximum", http.MethodGet, "/v1/audit?limit=10", "", nil, "", http.StatusOK, ""},
		{"negative offset", http.MethodGet, "/v1/audit?offset=-1", "", nil, "", http.StatusBadRequest, "offset must be ≥ 0"},
	} {
		var body []byte
		if tc.body != "" {
			body = []byte(tc.body)
		}
		status, eb, _ := f.do(t, tc.method, tc.path, f.admin, tc.ctype, tc.hdr, body)
		if status != tc.want || !strings.Contains(eb.Error.Message, tc.says) {
			t.Errorf("%s: %d %q, want %d saying %q", tc.name, status, eb.Error.Message, tc.want, tc.says)
		}
	}
}
