package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api"
	"github.com/privalytics/privalytics/dp/dptest"
)

// hookLog records what the privacy hooks were told.
type hookLog struct {
	mu      sync.Mutex
	erasure []string
	purges  []privalytics.PurgeReceipt
}

func TestSubjectRightsOverHTTP(t *testing.T) {
	t.Parallel()
	var hooks hookLog
	f := newFixtureDeps(t, api.DefaultLimits(), func(d *api.Deps) {
		d.Mechanisms = dptest.NoNoise()
		d.Privacy = api.PrivacyHooks{
			Erased: func(_ context.Context, action string, r privalytics.ErasureReceipt) {
				hooks.mu.Lock()
				defer hooks.mu.Unlock()
				hooks.erasure = append(hooks.erasure, fmt.Sprintf("%s %d", action, r.Rows))
			},
			Purged: func(_ context.Context, r privalytics.PurgeReceipt) {
				hooks.mu.Lock()
				defer hooks.mu.Unlock()
				hooks.purges = append(hooks.purges, r)
			},
		}
	})
	var b strings.Builder
	for i := range 12 {
		fmt.Fprintf(&b, `{"customer_id":"c%d","ts":"2025-0%d-10T10:00:00Z","type":"purchase","amount":"1.500"}`+"\n", i%3, 1+i%2)
	}
	f.mustDo(t, http.MethodPost, "/v1/events", f.admin, "application/x-ndjson", nil, []byte(b.String()), http.StatusOK, nil)
	count := func() float64 {
		var res privalytics.Result
		f.mustDo(t, http.MethodPost, "/v1/queries", f.admin, "application/json", nil,
			[]byte(`{"aggregates":[{"op":"count"}],"bounds":{"max_groups":1,"max_rows_per_group":100},"epsilon":0.1}`), http.StatusOK, &res)
		return res.Rows[0].Cells[0].Value
	}
	if got := count(); got != 12 {
		t.Fatalf("count = %v, want 12", got)
	}

	var exp api.SubjectExport
	f.mustDo(t, http.MethodGet, "/v1/subjects/c1", f.admin, "", nil, nil, http.StatusOK, &exp)
	if exp.Rows != 4 || len(exp.Events) != 4 || exp.Events[0]["customer_id"] != "c1" || exp.Events[0]["amount"] != json.Number("1.500") && exp.Events[0]["amount"] != 1.5 {
		t.Errorf("export of c1: %+v", exp)
	}
	status, _, raw := f.do(t, http.MethodGet, "/v1/subjects/c1", f.admin, "", map[string]string{"Accept": "text/csv"}, nil)
	if status != http.StatusOK || strings.Count(string(raw), "\n") != 5 || !strings.HasPrefix(string(raw), "customer_id,ts,type") {
		t.Errorf("CSV export: %d %q", status, raw)
	}
	for _, tc := range []struct {
		method, path, token string
		want                int
	}{
		{http.MethodGet, "/v1/subjects/c1?format=xml", f.admin, http.StatusBadRequest},
		{http.MethodGet, "/v1/subjects/c1", f.operator, http.StatusForbidden},
		{http.MethodDelete, "/v1/subjects/c1", f.operator, http.StatusForbidden},
		{http.MethodGet, "/v1/erasures/er_missing", f.admin, http.StatusNotFound},
		{http.MethodGet, "/v1/subjects/c1", "", http.StatusUnauthorized},
	} {
		if status, eb, _ := f.do(t, tc.method, tc.path, tc.token, "", nil, nil); status != tc.want {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, status, eb.Error.Message, tc.want)
		}
	}

	var rc privalytics.ErasureReceipt
	f.mustDo(t, http.MethodDelete, "/v1/subjects/c1", f.admin, "", nil, nil, http.StatusAccepted, &rc)
	if rc.Rows != 4 {
		t.Errorf("erasure receipt %+v, want 4 rows", rc)
	}
	if got := count(); got != 8 {
		t.Errorf("count right after erasure = %v, want 8 (a cached answer for the old snapshot was served?)", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rc.Status != privalytics.ErasureComplete && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		f.mustDo(t, http.MethodGet, "/v1/erasures/"+rc.ID, f.admin, "", nil, nil, http.StatusOK, &rc)
	}
	if rc.Status != privalytics.ErasureComplete || rc.CompletedAt == nil {
		t.Errorf("receipt after 10 s: %+v, want complete", rc)
	}

	// Rectification goes through the ingest checks.
	if status, eb, _ := f.do(t, http.MethodPatch, "/v1/subjects/c2", f.admin, "application/json", nil, []byte(`{"fields":{"type":"theft"}}`)); status != http.StatusBadRequest {
		t.Errorf("rectify with a value not allowed: %d %s, want 400", status, eb.Error.Message)
	}
	f.mustDo(t, http.MethodPatch, "/v1/subjects/c2", f.admin, "application/json", nil, []byte(`{"fields":{"country":"FR"}}`), http.StatusOK, &rc)
	f.mustDo(t, http.MethodGet, "/v1/subjects/c2", f.admin, "", nil, nil, http.StatusOK, &exp)
	for _, ev := range exp.Events {
		if ev["country"] != "FR" {
			t.Errorf("after rectification: %v", ev)
		}
	}
	if got := count(); got != 8 {
		t.Errorf("count after rectification = %v, want 8", got)
	}

	// Retention: a 40-day period on 1 March 2025 purges January.
	var tn privalytics.Tenant
	f.mustDo(t, http.MethodPut, "/v1/tenant/retention", f.admin, "application/json", nil, []byte(`{"retention_days":40}`), http.StatusOK, &tn)
	if tn.RetentionDays != 40 {
		t.Errorf("tenant after setting retention: %+v", tn)
	}
	purged, err := f.server.PurgeExpired(context.Background(), time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
	if err != nil || len(purged) != 1 || purged[0].Rows != 4 {
		t.Errorf("purge: %+v, %v; want 4 rows of January", purged, err)
	}
	if got := count(); got != 4 {
		t.Errorf("count after the purge = %v, want 4", got)
	}
	hooks.mu.Lock()
	defer hooks.mu.Unlock()
	if fmt.Sprint(hooks.erasure) != "[erase 4 rectify 4]" || len(hooks.purges) != 1 {
		t.Errorf("hooks saw erasures %v and purges %+v", hooks.erasure, hooks.purges)
	}
}
