package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privalytics/privalytics/api"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/dp"
)

// simClock is the injected clock of a simulated run.
type simClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *simClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// documentedRoutes lists "METHOD /path" of every /v1 operation of the served spec.
func documentedRoutes(t *testing.T, f *fixture) []string {
	t.Helper()
	resp, err := http.Get(f.srv.URL + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var out []string
	path := ""
	for _, line := range strings.Split(string(spec), "\n") {
		if m := regexp.MustCompile(`^  (/v1/\S*):\s*$`).FindStringSubmatch(line); m != nil {
			path = m[1]
		} else if regexp.MustCompile(`^  \S`).MatchString(line) {
			path = ""
		} else if m := regexp.MustCompile(`^    (get|post|put|delete|patch):\s*$`).FindStringSubmatch(line); m != nil && path != "" {
			out = append(out, strings.ToUpper(m[1])+" "+path)
		}
	}
	sort.Strings(out)
	return out
}

// viewSpecs are the shop's six views (ε per release chosen so that all of them
// fit in one month's ε 10: see wantPerMonth).
func viewSpecs() []string {
	return []string{
		`{"name":"purchases per day","cadence":"day","epsilon":0.05,"start":"2026-01-01","query":{"where":[{"column":"type","eq":"purchase"}],"aggregates":[{"op":"count"}]}}`,
		`{"name":"revenue per week by category","cadence":"week","epsilon":0.2,"start":"2026-01-01","query":{"where":[{"column":"type","eq":"purchase"}],"group_by":[{"column":"category","keys":["bread","cake","coffee"]}],"aggregates":[{"op":"count"},{"op":"sum","column":"amount","lower":0,"upper":50}]}}`,
		`{"name":"visits per month by channel","cadence":"month","epsilon":0.5,"so_far":true,"start":"2026-01-01","query":{"group_by":[{"column":"channel","keys":["web","app","store"]}],"aggregates":[{"op":"count"}]}}`,
		`{"name":"customers per day","cadence":"day","epsilon":0.05,"start":"2026-01-01","query":{"aggregates":[{"op":"distinct_customers"}]}}`,
		`{"name":"events per week by type","cadence":"week","epsilon":0.1,"so_far":true,"start":"2026-01-01","query":{"group_by":[{"column":"type","keys":["purchase","view"]}],"aggregates":[{"op":"count"}]}}`,
		`{"name":"revenue per month","cadence":"month","epsilon":0.5,"start":"2026-01-01","query":{"where":[{"column":"type","eq":"purchase"}],"aggregates":[{"op":"sum","column":"amount","lower":0,"upper":50}]}}`,
	}
}

// TestViewsSixtyDays is the end-to-end run on a real server: a shop
// ingests every four simulated hours for 60 days; a dashboard of 6 views is
// refreshed every hour by 3 users (query keys) at once. The ε charged must be
// exactly the views' releases (each closed bucket once, each so_far once) —
// nothing per refresh or per reader; every closed bucket reads the same every
// time; roll-ups add up; a share link reads its dashboard and nothing else.
func TestViewsSixtyDays(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &simClock{t: start}
	f := newFixtureOpts(t, api.DefaultLimits(), dp.Secure(), `{"id":"shop","budget":{"epsilon":10,"delta":1e-5},"period":"month"}`,
		func(d *api.Deps) { d.Now = clock.Now })
	var users []string
	for i := range 3 {
		var k api.IssuedKey
		f.mustDo(t, http.MethodPost, "/v1/keys", f.admin, "application/json", nil, []byte(fmt.Sprintf(`{"name":"marketer%d","role":"query"}`, i)), http.StatusCreated, &k)
		users = append(users, k.Token)
	}

	// Creating the views: each preview's cost adds up to the next one's total.
	var views []wire.View
	allPerMonth := 0.0
	for _, spec := range viewSpecs() {
		var cost wire.ViewCost
		f.mustDo(t, http.MethodPost, "/v1/views/preview", users[0], "application/json", nil, []byte(spec), http.StatusOK, &cost)
		if !cost.Fits || cost.PeriodsBudgetLasts != nil || !strings.Contains(cost.Message, "weaker promise") {
			t.Fatalf("preview of %s: %+v; want it to fit, renew each month, and say the guarantee is per month", spec, cost)
		}
		var v wire.View
		f.mustDo(t, http.MethodPost, "/v1/views", users[0], "application/json", nil, []byte(spec), http.StatusCreated, &v)
		views = append(views, v)
		allPerMonth += cost.PerPeriod.Epsilon
		if math.Abs(cost.AllViewsPerPeriod.Epsilon-allPerMonth) > 1e-9 {
			t.Errorf("view %s: all views cost ε %g per month, want ε %g", v.Name, cost.AllViewsPerPeriod.Epsilon, allPerMonth)
		}
	}
	// 31×0.05 + 6×0.2 + 2×0.5 + 31×0.05 + 2×6×0.1 + 0.5, by hand.
	if want := 1.55 + 1.2 + 1.0 + 1.55 + 1.2 + 0.5; math.Abs(allPerMonth-want) > 1e-9 {
		t.Fatalf("the six views cost ε %g per month, want ε %g", allPerMonth, want)
	}
	// A seventh view that would pass the month's ε 10 is refused, nothing created.
	over := `{"name":"too much","cadence":"day","epsilon":0.2,"start":"2026-01-01","query":{"aggregates":[{"op":"count"}]}}`
	status, eb, _ := f.do(t, http.MethodPost, "/v1/views", users[1], "application/json", nil, []byte(over))
	if status != http.StatusConflict || eb.Error.Details["cost"] == nil || !strings.Contains(eb.Error.Message, "does not fit") {
		t.Fatalf("over-budget view: %d %+v; want 409 with the cost", status, eb.Error)
	}
	var listed wire.Views
	f.mustDo(t, http.MethodGet, "/v1/views", users[2], "", nil, nil, http.StatusOK, &listed)
	if len(listed.Views) != 6 {
		t.Fatalf("%d views listed, want 6 (the refused one is not created)", len(listed.Views))
	}

	ids := make([]string, len(views))
	for i, v := range views {
		ids[i] = v.ID
	}
	body, _ := json.Marshal(wire.CreateDashboard{Name: "shop", ViewIDs: ids})
	var dash wire.Dashboard
	f.mustDo(t, http.MethodPost, "/v1/dashboards", users[0], "application/json", nil, body, http.StatusCreated, &dash)

	// 60 days: ingest every 4 hours, three users refresh every hour.
	rng := mrand.New(mrand.NewPCG(1, 2))
	seen := map[string][]byte{} // view/bucket → the closed release's result as first read
	var seenMu sync.Mutex
	reads := 0
	end := start.AddDate(0, 0, 60)
	for now := start; now.Before(end); now = now.Add(time.Hour) {
		clock.Set(now)
		if now.Hour()%4 == 0 {
			var lines bytes.Buffer
			for range 12 {
				ts := now.Add(time.Duration(rng.IntN(4*3600)) * time.Second)
				typ := []string{"purchase", "view"}[rng.IntN(2)]
				fmt.Fprintf(&lines, `{"customer_id":"c%d","ts":%q,"type":%q,"channel":%q,"category":%q,"amount":%d}`+"\n", rng.IntN(300), ts.Format(time.RFC3339), typ,
					[]string{"web", "app", "store"}[rng.IntN(3)], []string{"bread", "cake", "coffee"}[rng.IntN(3)], 1+rng.IntN(40))
			}
			f.mustDo(t, http.MethodPost, "/v1/events", f.admin, "application/x-ndjson", nil, lines.Bytes(), http.StatusOK, nil)
		}
		var wg sync.WaitGroup
		errs := make(chan error, len(users)*len(ids))
		for _, u := range users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				from := now.AddDate(0, 0, -35).Format(time.DateOnly)
				for _, id := range ids {
					var rels wire.Releases
					if err := getJSON(f, "/v1/views/"+id+"/releases?from="+from, u, &rels); err != nil {
						errs <- err
						return
					}
					seenMu.Lock()
					for _, r := range rels.Releases {
						if r.State != "closed" {
							continue
						}
						if r.Result == nil {
							errs <- fmt.Errorf("view %s bucket %s: failed release: %v", id, r.Bucket, r.Parameters["error"])
							continue
						}
						b, _ := json.Marshal(r)
						k := id + "/" + r.Bucket
						if prev, ok := seen[k]; !ok {
							seen[k] = b
						} else if !bytes.Equal(prev, b) {
							errs <- fmt.Errorf("view %s bucket %s changed between reads:\n%s\n%s", id, r.Bucket, prev, b)
						}
					}
					reads++
					seenMu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	final := end.Add(-time.Hour)

	// Late events: 40 purchases dated inside a day released weeks ago change
	// nothing — no release counts them, none is charged for them.
	var late bytes.Buffer
	for i := range 40 {
		fmt.Fprintf(&late, `{"customer_id":"late%d","ts":"2026-01-10T12:00:00Z","type":"purchase","amount":5}`+"\n", i)
	}
	f.mustDo(t, http.MethodPost, "/v1/events", f.admin, "application/x-ndjson", nil, late.Bytes(), http.StatusOK, nil)
	var again wire.Releases
	f.mustDo(t, http.MethodGet, "/v1/views/"+ids[0]+"/releases?from=2026-01-10&to=2026-01-10", users[0], "", nil, nil, http.StatusOK, &again)
	if len(again.Releases) != 1 {
		t.Fatalf("releases of 2026-01-10: %+v", again.Releases)
	}
	if b, _ := json.Marshal(again.Releases[0]); !bytes.Equal(b, seen[ids[0]+"/2026-01-10"]) {
		t.Errorf("a late event changed a closed release:\n%s\n%s", seen[ids[0]+"/2026-01-10"], b)
	}

	// What the releases must have cost, counted here from the calendar: each
	// bucket closed by the last refresh once, each so_far once, each charging
	// every month its time range touches.
	wantPerMonth := map[string]float64{}
	wantCharges := 0
	for _, spec := range viewSpecs() {
		var s struct {
			Cadence string  `json:"cadence"`
			Epsilon float64 `json:"epsilon"`
			SoFar   bool    `json:"so_far"`
		}
		json.Unmarshal([]byte(spec), &s)
		for b := bucketStart(s.Cadence, start); !b.After(final); b = bucketNext(s.Cadence, b) {
			e := bucketNext(s.Cadence, b)
			n := 0
			if !e.Add(5 * time.Minute).After(final) {
				n++ // closed
			}
			if s.SoFar && final.Sub(b) >= e.Sub(b)/2 {
				n++ // its so_far, made once half the bucket had passed
			}
			for m := time.Date(b.Year(), b.Month(), 1, 0, 0, 0, 0, time.UTC); m.Before(e); m = m.AddDate(0, 1, 0) {
				wantPerMonth[m.Format("2006-01")] += float64(n) * s.Epsilon
			}
			wantCharges += n
		}
	}
	var budget api.BudgetResponse
	f.mustDo(t, http.MethodGet, "/v1/budget", f.admin, "", nil, nil, http.StatusOK, &budget)
	got := map[string]float64{}
	for _, p := range budget.Periods {
		got[p.Period] = p.Spent.Epsilon
	}
	for m, want := range wantPerMonth {
		if math.Abs(got[m]-want) > 1e-6 {
			t.Errorf("month %s: ε %g charged, want ε %g (the views' releases and nothing else)", m, got[m], want)
		}
		if got[m] > allPerMonth+1e-9 {
			t.Errorf("month %s: ε %g charged, more than the views' declared ε %g per month", m, got[m], allPerMonth)
		}
	}
	if len(got) != len(wantPerMonth) {
		t.Errorf("months charged %v, want %v", got, wantPerMonth)
	}
	charges := 0
	for off := 0; ; off += 500 {
		var page struct {
			Charges []wire.Charge `json:"charges"`
		}
		f.mustDo(t, http.MethodGet, fmt.Sprintf("/v1/budget/charges?limit=500&offset=%d", off), f.admin, "", nil, nil, http.StatusOK, &page)
		charges += len(page.Charges)
		if len(page.Charges) < 500 {
			break
		}
	}
	if charges != wantCharges {
		t.Errorf("%d charges, want %d: one per release, none per refresh (%d reads) or reader", charges, wantCharges, reads)
	}
	t.Logf("60 days, 6 views, 3 users, %d release reads: %d charges, ε per month %v (declared ε %g)", reads, charges, got, allPerMonth)

	// Roll-ups add up: quarters to the total, groups to all groups, and the
	// total to the sum of the closed releases read above.
	weekly := ids[1]
	var total, quarters wire.Rollup
	f.mustDo(t, http.MethodGet, "/v1/views/"+weekly+"/rollup?by=total", users[1], "", nil, nil, http.StatusOK, &total)
	f.mustDo(t, http.MethodGet, "/v1/views/"+weekly+"/rollup?by=quarter", users[2], "", nil, nil, http.StatusOK, &quarters)
	direct := map[string]float64{} // group → Σ sum over closed releases
	for k, b := range seen {
		if !strings.HasPrefix(k, weekly+"/") {
			continue
		}
		var r wire.Release
		json.Unmarshal(b, &r)
		for _, row := range r.Result.Rows {
			direct[row.Key[0]] += row.Cells[1].Value
			direct[""] += row.Cells[1].Value
		}
	}
	byGroup := func(rows []wire.RollupRow) map[string]float64 {
		out := map[string]float64{}
		for _, r := range rows {
			out[r.Group["category"]] += r.Values["sum_amount"]
			if lo, hi := r.Intervals["sum_amount"][0], r.Intervals["sum_amount"][1]; !(lo <= r.Values["sum_amount"] && r.Values["sum_amount"] <= hi && hi > lo) {
				t.Errorf("roll-up %s %v: interval [%g, %g] around %g", r.Bucket, r.Group, lo, hi, r.Values["sum_amount"])
			}
		}
		return out
	}
	tg, qg := byGroup(total.Rows), byGroup(quarters.Rows)
	if len(tg) != 4 {
		t.Fatalf("total roll-up groups %v, want 3 categories and all", tg)
	}
	parts := 0.0
	for g, v := range tg {
		if math.Abs(v-qg[g]) > 1e-6 || math.Abs(v-direct[g]) > 1e-6 {
			t.Errorf("group %q: total %g, quarters add to %g, releases add to %g", g, v, qg[g], direct[g])
		}
		if g != "" {
			parts += v
		}
	}
	if math.Abs(parts-tg[""]) > 1e-6 {
		t.Errorf("the categories add to %g, all groups %g", parts, tg[""])
	}

	// A share link reads its dashboard, its views' releases and roll-ups, and
	// is refused (403) everywhere else — every documented route.
	var link wire.ShareLink
	f.mustDo(t, http.MethodPost, "/v1/dashboards/"+dash.ID+"/share", users[0], "", nil, nil, http.StatusCreated, &link)
	if link.URL != "/dashboard/#share="+link.Token {
		t.Errorf("share url %q", link.URL)
	}
	var shared wire.Dashboard
	f.mustDo(t, http.MethodGet, "/v1/dashboards/"+dash.ID, link.Token, "", nil, nil, http.StatusOK, &shared)
	var rels wire.Releases
	f.mustDo(t, http.MethodGet, "/v1/views/"+weekly+"/releases", link.Token, "", nil, nil, http.StatusOK, &rels)
	for _, r := range rels.Releases {
		if b, ok := seen[weekly+"/"+r.Bucket]; ok && r.State == "closed" {
			if mine, _ := json.Marshal(r); !bytes.Equal(mine, b) {
				t.Errorf("share link reads bucket %s differently", r.Bucket)
			}
		}
	}
	var sv wire.View
	f.mustDo(t, http.MethodGet, "/v1/views/"+weekly, link.Token, "", nil, nil, http.StatusOK, &sv)
	if sv.Cost != nil {
		t.Errorf("a share link sees the view's cost: %+v", sv.Cost)
	}
	f.mustDo(t, http.MethodGet, "/v1/views/"+weekly+"/rollup?by=year", link.Token, "", nil, nil, http.StatusOK, nil)
	// A view outside the dashboard, and another dashboard, are refused.
	var other wire.View
	f.mustDo(t, http.MethodPost, "/v1/views", users[0], "application/json", nil, []byte(`{"name":"private","cadence":"month","epsilon":0.1,"start":"2026-01-01","query":{"aggregates":[{"op":"count"}]}}`), http.StatusCreated, &other)
	var dash2 wire.Dashboard
	f.mustDo(t, http.MethodPost, "/v1/dashboards", users[0], "application/json", nil, []byte(`{"name":"private","view_ids":["`+other.ID+`"]}`), http.StatusCreated, &dash2)
	fill := strings.NewReplacer("{tenant}", "shop", "{customer_id}", "c1", "{fed}", "f_nope", "{round}", "1", "{dataset}", "d_nope", "{job}", "j_nope", "{share_id}", link.ID)
	allowed := map[string]bool{"GET /v1/dashboards/{id}": true, "GET /v1/views/{id}": true, "GET /v1/views/{id}/releases": true, "GET /v1/views/{id}/rollup": true}
	routes := documentedRoutes(t, f)
	if len(routes) < 60 {
		t.Fatalf("only %d documented routes", len(routes))
	}
	for _, route := range routes {
		method, path, _ := strings.Cut(route, " ")
		var body []byte
		if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
			body = []byte(`{}`)
		}
		// Outside its scope even where the route takes share links.
		id := other.ID
		if strings.Contains(path, "dashboards") {
			id = dash2.ID
		}
		status, _, _ := f.do(t, method, fill.Replace(strings.ReplaceAll(path, "{id}", id)), link.Token, "application/json", nil, body)
		// GET /v1/tenants/{tenant} answers any non-operator, non-admin key 404 (TestLeastPrivilege).
		if status != http.StatusForbidden && !(route == "GET /v1/tenants/{tenant}" && status == http.StatusNotFound) {
			t.Errorf("%s with a share link, outside its dashboard: status %d, want 403", route, status)
		}
		if allowed[route] {
			in := strings.ReplaceAll(path, "{id}", weekly)
			if strings.Contains(path, "dashboards") {
				in = strings.ReplaceAll(path, "{id}", dash.ID)
			}
			if status, eb, _ := f.do(t, method, in, link.Token, "", nil, nil); status != http.StatusOK {
				t.Errorf("%s with a share link, inside its dashboard: %d %s", route, status, eb.Error.Message)
			}
		}
	}
	// Revoked, it reads nothing.
	f.mustDo(t, http.MethodDelete, "/v1/dashboards/"+dash.ID+"/share/"+link.ID, users[0], "", nil, nil, http.StatusNoContent, nil)
	if status, _, _ := f.do(t, http.MethodGet, "/v1/dashboards/"+dash.ID, link.Token, "", nil, nil); status != http.StatusUnauthorized {
		t.Errorf("revoked share link: status %d, want 401", status)
	}
	// A share key cannot be made through /v1/keys.
	if status, _, _ := f.do(t, http.MethodPost, "/v1/keys", f.admin, "application/json", nil, []byte(`{"name":"x","role":"share"}`)); status != http.StatusBadRequest {
		t.Errorf("POST /v1/keys role share: %d, want 400", status)
	}
}

func getJSON(f *fixture, path, token string, out any) error {
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

// bucketStart and bucketNext are the test's own calendar (UTC days, ISO weeks
// from Monday, months).
func bucketStart(cadence string, t time.Time) time.Time {
	switch cadence {
	case "week":
		return time.Date(t.Year(), t.Month(), t.Day()-(int(t.Weekday())+6)%7, 0, 0, 0, 0, time.UTC)
	case "month":
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func bucketNext(cadence string, t time.Time) time.Time {
	switch cadence {
	case "week":
		return t.AddDate(0, 0, 7)
	case "month":
		return t.AddDate(0, 1, 0)
	}
	return t.AddDate(0, 0, 1)
}

// TestViewReleaseRefusedForBudgetIsRetried: ad-hoc questions share a month
// with the views; a release the month can no longer pay is refused before any
// data is read — nothing charged, nothing stored — and made at a later read
// once the budget allows, exactly once.
func TestViewReleaseRefusedForBudgetIsRetried(t *testing.T) {
	t.Parallel()
	clock := &simClock{t: time.Date(2026, 1, 5, 1, 0, 0, 0, time.UTC)}
	f := newFixtureOpts(t, api.DefaultLimits(), dp.Secure(), `{"id":"shop","period":"lifetime","budget":{"epsilon":1}}`, func(d *api.Deps) { d.Now = clock.Now })
	f.mustDo(t, http.MethodPost, "/v1/events", f.admin, "application/x-ndjson", nil, []byte(`{"customer_id":"c1","ts":"2026-01-02T10:00:00Z","type":"purchase"}`+"\n"), http.StatusOK, nil)
	var v wire.View
	f.mustDo(t, http.MethodPost, "/v1/views", f.admin, "application/json", nil,
		[]byte(`{"name":"daily","cadence":"day","epsilon":0.02,"start":"2026-01-01","query":{"aggregates":[{"op":"count"}]}}`), http.StatusCreated, &v)
	// On a tenant with one budget nothing is reserved for views: an ad-hoc
	// question leaves ε 0.05 of it, two releases.
	f.mustDo(t, http.MethodPost, "/v1/queries", f.admin, "application/json", nil,
		[]byte(`{"where":[{"column":"ts","gte":"2026-01-01","lt":"2026-02-01"}],"aggregates":[{"op":"count"}],"epsilon":0.95}`), http.StatusOK, nil)
	var rels wire.Releases
	f.mustDo(t, http.MethodGet, "/v1/views/"+v.ID+"/releases", f.admin, "", nil, nil, http.StatusOK, &rels)
	if len(rels.Releases) != 2 || rels.Releases[0].Bucket != "2026-01-01" || rels.Releases[1].Bucket != "2026-01-02" {
		t.Fatalf("releases with ε 0.05 left: %+v, want 2026-01-01 and 2026-01-02", rels.Releases)
	}
	var b api.BudgetResponse
	f.mustDo(t, http.MethodGet, "/v1/budget", f.admin, "", nil, nil, http.StatusOK, &b)
	if math.Abs(b.Spent.Epsilon-0.99) > 1e-9 {
		t.Fatalf("spent ε %g, want 0.95 + 2 × 0.02: the refused releases cost nothing", b.Spent.Epsilon)
	}
	// Read again, still refused (free); after a grant, the two missing days are made.
	f.mustDo(t, http.MethodGet, "/v1/views/"+v.ID+"/releases", f.admin, "", nil, nil, http.StatusOK, &rels)
	f.mustDo(t, http.MethodPost, "/v1/budget/grants", f.admin, "application/json", nil, []byte(`{"epsilon":1}`), http.StatusOK, nil)
	f.mustDo(t, http.MethodGet, "/v1/views/"+v.ID+"/releases", f.admin, "", nil, nil, http.StatusOK, &rels)
	f.mustDo(t, http.MethodGet, "/v1/views/"+v.ID+"/releases", f.admin, "", nil, nil, http.StatusOK, &rels)
	if len(rels.Releases) != 4 {
		t.Fatalf("after the grant: %d releases, want the 4 closed days", len(rels.Releases))
	}
	f.mustDo(t, http.MethodGet, "/v1/budget", f.admin, "", nil, nil, http.StatusOK, &b)
	if math.Abs(b.Spent.Epsilon-(0.95+4*0.02)) > 1e-9 {
		t.Errorf("spent ε %g, want 0.95 + 4 × 0.02", b.Spent.Epsilon)
	}
}

// TestViewsReuseTheirTuning: a tuned view (revenue without bounds, the
// aggregate unnamed: the report names it sum_amount) tunes its
// first release and reuses those limits — a DP output already paid for — for
// the next three, each of which spends its whole ε on the answer and says so;
// the fifth tunes afresh. Every release is charged the view's ε, no more.
func TestViewsReuseTheirTuning(t *testing.T) {
	t.Parallel()
	clock := &simClock{t: time.Date(2026, 5, 5, 1, 0, 0, 0, time.UTC)}
	f := newFixtureOpts(t, api.DefaultLimits(), dp.Secure(), `{"id":"shop","period":"lifetime","budget":{"epsilon":100}}`, func(d *api.Deps) { d.Now = clock.Now })
	var events []string
	for c := range 2000 {
		for m := 1; m <= 5; m++ {
			events = append(events, fmt.Sprintf(`{"customer_id":"c%d","ts":"2026-%02d-%02dT10:00:00Z","type":"purchase","amount":"%d.00"}`, c, m, 1+c%27, 5+c%40))
		}
	}
	f.mustDo(t, http.MethodPost, "/v1/events", f.admin, "application/x-ndjson", nil, []byte(strings.Join(events, "\n")+"\n"), http.StatusOK, nil)
	var v wire.View
	f.mustDo(t, http.MethodPost, "/v1/views", f.admin, "application/json", nil,
		[]byte(`{"name":"revenue","cadence":"month","epsilon":1,"start":"2026-01-01","query":{"aggregates":[{"op":"sum","column":"amount"}]}}`), http.StatusCreated, &v)
	var rels wire.Releases
	f.mustDo(t, http.MethodGet, "/v1/views/"+v.ID+"/releases", f.admin, "", nil, nil, http.StatusOK, &rels)
	if len(rels.Releases) != 4 {
		t.Fatalf("%d releases by 5 May, want January to April", len(rels.Releases))
	}
	first := rels.Releases[0].Result.Tuning
	if first == nil || first.Epsilon <= 0 {
		t.Fatalf("January's release did not tune: %+v", first)
	}
	for _, r := range rels.Releases[1:] {
		tr := r.Result.Tuning
		if tr == nil || tr.Epsilon != 0 || !strings.Contains(tr.Reason, "reused") || !strings.Contains(tr.Reason, "2026-01") ||
			tr.MaxGroups != first.MaxGroups || tr.Aggregates[0].Upper != first.Aggregates[0].Upper {
			t.Errorf("%s: tuning %+v; want January's limits (L0 %d, clamp %v) reused, no ε spent on tuning", r.Bucket, tr, first.MaxGroups, first.Aggregates[0].Upper)
		}
		if got := r.Result.Aggregates[0].ContributionBoundsPerGroup; got == nil || got.Upper != first.Aggregates[0].Upper {
			t.Errorf("%s: the answer's bounds %+v are not January's clamp %v", r.Bucket, got, first.Aggregates[0].Upper)
		}
		// January's estimate of what its limits remove goes with them: the
		// cell says it, the report gives its correction (the factor, tested
		// in analytics TestViewReuseAppliesTheCorrection).
		if tr != nil && tr.Aggregates[0].Correction != first.Aggregates[0].Correction {
			t.Errorf("%s: correction %v, January's %v", r.Bucket, tr.Aggregates[0].Correction, first.Aggregates[0].Correction)
		}
		if c := r.Result.Rows[0].Cells[0]; c.BoundingLoss != first.Aggregates[0].BoundingLoss {
			t.Errorf("%s: the cell's bounding loss %v, January's estimate %v", r.Bucket, c.BoundingLoss, first.Aggregates[0].BoundingLoss)
		}
	}
	clock.Set(time.Date(2026, 6, 5, 1, 0, 0, 0, time.UTC))
	f.mustDo(t, http.MethodGet, "/v1/views/"+v.ID+"/releases", f.admin, "", nil, nil, http.StatusOK, &rels)
	if len(rels.Releases) != 5 || rels.Releases[4].Result.Tuning == nil || rels.Releases[4].Result.Tuning.Epsilon <= 0 {
		t.Fatalf("May's release after three reuses: %+v; want it tuned afresh", rels.Releases[len(rels.Releases)-1].Result.Tuning)
	}
	var b api.BudgetResponse
	f.mustDo(t, http.MethodGet, "/v1/budget", f.admin, "", nil, nil, http.StatusOK, &b)
	if math.Abs(b.Spent.Epsilon-5) > 1e-9 {
		t.Errorf("spent ε %g, want 5 releases × 1", b.Spent.Epsilon)
	}
}
