package api_test

import (
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/privalytics/privalytics/api"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/dp"
)

// TestViewsKeepTheirReservation is issue 16's "a view that would overrun is
// refused at creation, not mid-month" over HTTP: on a tenant with ε 1 per
// month, a daily view at ε 0.02 (31 × 0.02 = 0.62 of January) and a monthly
// one at ε 0.1 reserve ε 0.72 of January. The views have used part of it by
// 10 January; ad-hoc questions about January fill the free ε 0.28 and are
// refused at the line with words naming the reservation; every release of
// January is still made, and January ends with exactly ε 1 spent. Deleting a
// view frees its reservation of February.
func TestViewsKeepTheirReservation(t *testing.T) {
	t.Parallel()
	clock := &simClock{t: time.Date(2026, 1, 10, 1, 0, 0, 0, time.UTC)}
	f := newFixtureOpts(t, api.DefaultLimits(), dp.Secure(), `{"id":"shop","budget":{"epsilon":1},"period":"month"}`, func(d *api.Deps) { d.Now = clock.Now })
	var events strings.Builder
	for d := 1; d <= 31; d++ {
		events.WriteString(`{"customer_id":"c` + string(rune('a'+d%7)) + `","ts":"2026-01-` + two(d) + `T10:00:00Z","type":"purchase"}` + "\n")
	}
	f.mustDo(t, http.MethodPost, "/v1/events", f.admin, "application/x-ndjson", nil, []byte(events.String()), http.StatusOK, nil)
	var daily, monthly wire.View
	f.mustDo(t, http.MethodPost, "/v1/views", f.admin, "application/json", nil,
		[]byte(`{"name":"daily","cadence":"day","epsilon":0.02,"start":"2026-01-01","query":{"aggregates":[{"op":"count"}]}}`), http.StatusCreated, &daily)
	f.mustDo(t, http.MethodPost, "/v1/views", f.admin, "application/json", nil,
		[]byte(`{"name":"monthly","cadence":"month","epsilon":0.1,"start":"2026-01-01","query":{"aggregates":[{"op":"count"}]}}`), http.StatusCreated, &monthly)
	releases := func(v wire.View) []wire.Release {
		var rels wire.Releases
		f.mustDo(t, http.MethodGet, "/v1/views/"+v.ID+"/releases", f.admin, "", nil, nil, http.StatusOK, &rels)
		return rels.Releases
	}
	if n := len(releases(daily)); n != 9 {
		t.Fatalf("10 January: %d daily releases, want 1 to 9 January", n)
	}
	january := func(eps string) (int, api.ErrorBody) {
		status, eb, _ := f.do(t, http.MethodPost, "/v1/queries", f.admin, "application/json", nil,
			[]byte(`{"where":[{"column":"ts","gte":"2026-01-01","lt":"2026-02-01"}],"aggregates":[{"op":"count"}],"epsilon":`+eps+`}`))
		return status, eb
	}
	// (Different ε: the same question about the same data is answered from
	// the cache, free.)
	for _, eps := range []string{"0.12", "0.1"} {
		if status, eb := january(eps); status != http.StatusOK {
			t.Fatalf("ad-hoc ε %s about January: %d %s", eps, status, eb.Error.Message)
		}
	}
	// 0.06 is free: 0.07 is refused, at no cost, naming the reservation.
	status, eb := january("0.07")
	if status != http.StatusForbidden || eb.Error.Code != "budget" {
		t.Fatalf("ad-hoc ε 0.07 past the views' line: %d %+v", status, eb.Error)
	}
	for _, w := range []string{"only ε 0.06 of the privacy budget of 2026-01 is free", "ε 0.54 of it is reserved for the releases of this tenant's views", "delete a view", "next month"} {
		if !strings.Contains(eb.Error.Message, w) {
			t.Errorf("refusal %q lacks %q", eb.Error.Message, w)
		}
	}
	if r, _ := eb.Error.Details["reserved"].(map[string]any); r == nil || math.Abs(r["epsilon"].(float64)-0.54) > 1e-9 {
		t.Errorf("refusal details %v: want reserved ε 0.54 (22 daily releases and the monthly one)", eb.Error.Details)
	}
	var jb api.BudgetResponse
	f.mustDo(t, http.MethodGet, "/v1/budget", f.admin, "", nil, nil, http.StatusOK, &jb)
	if len(jb.Periods) != 1 || math.Abs(jb.Periods[0].Reserved.Epsilon-0.54) > 1e-9 || math.Abs(jb.Periods[0].Remaining.Epsilon-0.6) > 1e-9 {
		t.Errorf("GET /v1/budget: %+v, want January with ε 0.6 remaining of which 0.54 reserved by the views", jb.Periods)
	}
	if status, eb := january("0.06"); status != http.StatusOK {
		t.Fatalf("ad-hoc ε 0.06, the last free of January: %d %s", status, eb.Error.Message)
	}
	// January is spent or reserved: a new view with releases of January is
	// refused at creation, one starting in February is not.
	status, eb, _ = f.do(t, http.MethodPost, "/v1/views", f.admin, "application/json", nil,
		[]byte(`{"name":"late","cadence":"day","epsilon":0.005,"start":"2026-01-01","query":{"aggregates":[{"op":"count"}]}}`))
	if status != http.StatusConflict || !strings.Contains(eb.Error.Message, "its releases of 2026-01 would not all be made: they need ε 0.155 of that month, and only ε 0 of it is left") {
		t.Errorf("a view with January releases when January is full: %d %s", status, eb.Error.Message)
	}
	var pc wire.ViewCost
	f.mustDo(t, http.MethodPost, "/v1/views/preview", f.admin, "application/json", nil,
		[]byte(`{"name":"late","cadence":"day","epsilon":0.005,"start":"2026-02-01","query":{"aggregates":[{"op":"count"}]}}`), http.StatusOK, &pc)
	if !pc.Fits {
		t.Errorf("the same view from February: %s", pc.Message)
	}
	// The views read through January and after it: every release is made.
	for _, day := range []int{20, 31} {
		clock.Set(time.Date(2026, 1, day, 12, 0, 0, 0, time.UTC))
		if n := len(releases(daily)); n != day-1 {
			t.Fatalf("%d January: %d daily releases, want %d", day, n, day-1)
		}
	}
	clock.Set(time.Date(2026, 2, 1, 0, 10, 0, 0, time.UTC))
	for _, v := range []wire.View{daily, monthly} {
		rels := releases(v)
		want := map[string]int{"daily": 31, "monthly": 1}[v.Name]
		if len(rels) != want {
			t.Fatalf("%s: %d releases of January, want %d", v.Name, len(rels), want)
		}
		for _, r := range rels {
			if r.State != "closed" || r.Result == nil {
				t.Errorf("%s %s: state %s, result %v, parameters %v", v.Name, r.Bucket, r.State, r.Result, r.Parameters)
			}
		}
	}
	var b api.BudgetResponse
	f.mustDo(t, http.MethodGet, "/v1/budget", f.admin, "", nil, nil, http.StatusOK, &b)
	if len(b.Periods) == 0 || b.Periods[0].Period != "2026-01" || math.Abs(b.Periods[0].Spent.Epsilon-1) > 1e-9 || b.Periods[0].Reserved.Epsilon != 0 {
		t.Fatalf("January: %+v, want ε 1 spent (0.28 ad-hoc + 31 × 0.02 + 0.1)", b.Periods)
	}
	// February: the views reserve 28 × 0.02 + 0.1 = 0.66 of it (a daily view
	// reserves the days the month has), so 0.34 is free...
	february := func(eps string) int {
		status, _, _ := f.do(t, http.MethodPost, "/v1/queries", f.admin, "application/json", nil,
			[]byte(`{"where":[{"column":"ts","gte":"2026-02-01","lt":"2026-03-01"}],"aggregates":[{"op":"count"}],"epsilon":`+eps+`}`))
		return status
	}
	if s := february("0.35"); s != http.StatusForbidden {
		t.Errorf("ad-hoc ε 0.35 about February with 0.34 free: %d, want 403", s)
	}
	// ... until the daily view is deleted: then 0.9.
	f.mustDo(t, http.MethodDelete, "/v1/views/"+daily.ID, f.admin, "", nil, nil, http.StatusNoContent, nil)
	if s := february("0.9"); s != http.StatusOK {
		t.Errorf("ad-hoc ε 0.9 about February after deleting the daily view: %d, want 200", s)
	}
	if s := february("0.01"); s != http.StatusForbidden {
		t.Errorf("ad-hoc ε 0.01 more about February: %d, want 403 (the monthly view's 0.1 stays reserved)", s)
	}
}

func two(d int) string {
	if d < 10 {
		return "0" + string(rune('0'+d))
	}
	return string(rune('0'+d/10)) + string(rune('0'+d%10))
}

// TestNewTenantsBudgetEachMonth: POST /v1/tenants without "period" gives a
// budget per month (issue 16), which refuses a question without a time
// filter; "lifetime" keeps one budget; zCDP, which does not combine with
// periods yet, keeps one budget when period is omitted.
func TestNewTenantsBudgetEachMonth(t *testing.T) {
	t.Parallel()
	f := newFixture(t, api.DefaultLimits())
	for _, tt := range []struct{ body, period string }{
		{`{"id":"fresh","budget":{"epsilon":1}}`, "month"},
		{`{"id":"kept","budget":{"epsilon":1},"period":"lifetime"}`, ""},
		{`{"id":"monthly","budget":{"epsilon":1},"period":"month"}`, "month"},
		{`{"id":"zed","budget":{"epsilon":1,"delta":1e-5},"accounting":"zcdp"}`, ""},
	} {
		var created wire.CreateTenantResponse
		f.mustDo(t, http.MethodPost, "/v1/tenants", f.operator, "application/json", nil, []byte(tt.body), http.StatusCreated, &created)
		if created.Tenant.Period != tt.period {
			t.Errorf("%s: period %q, want %q", tt.body, created.Tenant.Period, tt.period)
		}
		status, eb, _ := f.do(t, http.MethodPost, "/v1/queries", created.AdminKey.Token, "application/json", nil, []byte(`{"aggregates":[{"op":"count"}],"epsilon":0.1}`))
		if tt.period == "month" && (status != http.StatusBadRequest || !strings.Contains(eb.Error.Message, "time filter")) {
			t.Errorf("%s: a question without a time filter: %d %s, want 400 asking for a time filter", tt.body, status, eb.Error.Message)
		}
		if tt.period == "" && status != http.StatusOK {
			t.Errorf("%s: a question without a time filter on one budget: %d %s", tt.body, status, eb.Error.Message)
		}
	}
	f.mustDo(t, http.MethodPost, "/v1/tenants", f.operator, "application/json", nil, []byte(`{"id":"odd","budget":{"epsilon":1},"period":"year"}`), http.StatusBadRequest, nil)
}
