package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
)

// callAPI sends one request with a bearer token and decodes the JSON answer
// into out (when out is not nil); it returns the status.
func callAPI(t *testing.T, method, u, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %.300s: %v", method, u, raw, err)
		}
	}
	return resp.StatusCode
}

// viewCost is the part of the ViewCost the dashboard puts into words.
type viewCost struct {
	PerRelease        wire.Cost `json:"per_release"`
	PerPeriod         wire.Cost `json:"per_period"`
	AllViewsPerPeriod wire.Cost `json:"all_views_per_period"`
	Period            string    `json:"period"`
	PeriodBudget      wire.Cost `json:"period_budget"`
	PeriodsLast       *int      `json:"periods_budget_lasts"`
	Fits              bool      `json:"fits"`
}

// testRelease is one released bucket of a view, as GET /v1/views/{id}/releases answers.
type testRelease struct {
	Bucket string    `json:"bucket"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	State  string    `json:"state"`
	Result struct {
		GroupBy []string `json:"group_by"`
		Rows    []struct {
			Key   []string `json:"key"`
			Cells []struct {
				Value  *float64 `json:"value"`
				Lower  float64  `json:"lower"`
				Upper  float64  `json:"upper"`
				Hidden bool     `json:"hidden"`
			} `json:"cells"`
		} `json:"rows"`
	} `json:"result"`
}

// wantKPI is a KPI tile computed here, independently of the page, from the
// releases the API answers: the total of the closed buckets overlapping
// [from, to) with an interval of half-width √(Σ half²), the bucket released
// "so far" apart, and the same number of closed buckets just before.
type wantKPI struct {
	Value, Half     float64
	Buckets         []string
	HasPrev         bool
	Prev, PrevHalf  float64
	PrevBuckets     []string
	DiffLo, DiffHi  float64
	InsideTheNoise  bool
	IntervalsTouch  bool
	SoFarBucket     string
	HiddenCells     int
	ReleasedBuckets []string
}

func computeKPI(releases []testRelease, from, to time.Time, channel string) wantKPI {
	rs := slices.Clone(releases)
	slices.SortFunc(rs, func(a, b testRelease) int { return a.Start.Compare(b.Start) })
	sum := func(r testRelease) (v, h2 float64, hidden int) {
		ch := slices.Index(r.Result.GroupBy, "channel")
		for _, row := range r.Result.Rows {
			if channel != "" && ch >= 0 && row.Key[ch] != channel {
				continue
			}
			c := row.Cells[0]
			if c.Hidden {
				hidden++
			}
			if c.Value == nil {
				continue
			}
			v += *c.Value
			h := (c.Upper - c.Lower) / 2
			h2 += h * h
		}
		return v, h2, hidden
	}
	var k wantKPI
	var closed []testRelease
	for _, r := range rs {
		if !(r.Start.Before(to) && r.End.After(from)) {
			continue
		}
		k.ReleasedBuckets = append(k.ReleasedBuckets, r.Bucket)
		_, _, hidden := sum(r)
		k.HiddenCells += hidden
		switch r.State {
		case "closed":
			closed = append(closed, r)
		case "so_far":
			k.SoFarBucket = r.Bucket
		}
	}
	var h2 float64
	for _, r := range closed {
		v, h, _ := sum(r)
		k.Value += v
		h2 += h
		k.Buckets = append(k.Buckets, r.Bucket)
	}
	k.Half = math.Sqrt(h2)
	if len(closed) == 0 {
		return k
	}
	var before []testRelease
	for _, r := range rs {
		if r.State == "closed" && r.Start.Before(closed[0].Start) {
			before = append(before, r)
		}
	}
	if len(before) < len(closed) {
		return k
	}
	k.HasPrev = true
	h2 = 0
	for _, r := range before[len(before)-len(closed):] {
		v, h, _ := sum(r)
		k.Prev += v
		h2 += h
		k.PrevBuckets = append(k.PrevBuckets, r.Bucket)
	}
	k.PrevHalf = math.Sqrt(h2)
	diff, dh := k.Value-k.Prev, math.Hypot(k.Half, k.PrevHalf)
	k.DiffLo, k.DiffHi = diff-dh, diff+dh
	k.InsideTheNoise = k.DiffLo <= 0 && 0 <= k.DiffHi
	k.IntervalsTouch = k.Value-k.Half <= k.Prev+k.PrevHalf && k.Prev-k.PrevHalf <= k.Value+k.Half
	return k
}

// pageKPI is what the page computed for a tile, read back to compare.
type pageKPI struct {
	ViewID   string                   `json:"view_id"`
	Value    float64                  `json:"value"`
	Half     float64                  `json:"half"`
	Buckets  []string                 `json:"buckets"`
	Text     string                   `json:"text"`
	SoFar    *struct{ Bucket string } `json:"so_far"`
	Previous *struct {
		Value       float64  `json:"value"`
		Half        float64  `json:"half"`
		Buckets     []string `json:"buckets"`
		DiffLower   float64  `json:"diff_lower"`
		DiffUpper   float64  `json:"diff_upper"`
		InsideNoise bool     `json:"inside_noise"`
		Overlap     bool     `json:"overlap"`
	} `json:"previous"`
}

const readKPIsJS = `(() => {
  const d = window.privalyticsDashboard.dash;
  if (!d || !d.kpis) return [];
  return d.kpis.map((k) => ({ view_id: k.view_id, value: k.value, half: k.half, buckets: k.buckets,
    so_far: k.so_far ? { bucket: k.so_far.bucket } : null,
    previous: k.previous ? { value: k.previous.value, half: k.previous.half, buckets: k.previous.buckets,
      diff_lower: k.previous.diff_lower, diff_upper: k.previous.diff_upper, inside_noise: k.previous.inside_noise, overlap: k.previous.overlap } : null,
    text: document.querySelector('#kpis .kpi[data-view="' + k.view_id + '"]').textContent }));
})()`

// readPanelsJS reads back each view's chart (datasets, their tension as
// Chart.js resolved it) and table (the text of each cell).
const readPanelsJS = `(() => window.privalyticsDashboard.dash.panels.map((p) => {
  const c = p.chart;
  return {
    view_id: p.view_id,
    labels: c.data.labels,
    datasets: c.data.datasets.map((ds, i) => ({ label: ds.label, role: ds.role, data: ds.data,
      tension: c.getDatasetMeta(i).dataset ? c.getDatasetMeta(i).dataset.options.tension : null })),
    rows: [...document.querySelectorAll('table.release-table[data-view="' + p.view_id + '"] tbody tr')].map((tr) => [...tr.cells].map((td) => td.textContent)),
  };
}))()`

type pagePanel struct {
	ViewID   string   `json:"view_id"`
	Labels   []string `json:"labels"`
	Datasets []struct {
		Label   string     `json:"label"`
		Role    string     `json:"role"`
		Data    []*float64 `json:"data"`
		Tension *float64   `json:"tension"`
	} `json:"datasets"`
	Rows [][]string `json:"rows"`
}

// jsMoney formats v as the dashboard's fmtMoney does for pounds (en-GB): whole
// pounds from £100 up, else pence; the minus sign before the £.
func jsMoney(v float64) string {
	digits := 2
	if math.Abs(v) >= 100 {
		digits = 0
	}
	s := jsFixed(math.Abs(v), digits)
	if v < 0 && strings.Trim(s, "0.,") != "" {
		return "-£" + s
	}
	return "£" + s
}

func TestJSMoney(t *testing.T) {
	t.Parallel()
	for v, want := range map[float64]string{0: "£0.00", 7: "£7.00", 99.994: "£99.99", 100: "£100", 1234.5: "£1,235", -1234.4: "-£1,234", -0.001: "£0.00"} {
		if got := jsMoney(v); got != want {
			t.Errorf("jsMoney(%v) = %q, want %q", v, got, want)
		}
	}
}

func monthStart(y int, m time.Month) time.Time { return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC) }

// TestViewsDashboardInBrowser drives the dashboard's views in headless
// Chromium against a real server holding a shop whose data runs up to today:
// it saves a question as a view after reading its cost in words (checked
// against POST /v1/views/preview), sees a view that would overrun the budget
// refused before anything is created (Create disabled, the reason in words),
// saves a dashboard of two views, and checks its KPI tiles (totals, currency,
// the previous-period comparison and whether the change is inside the noise),
// its filter on a public key, its charts (no line smoothing, points as the API
// released them) and tables (closed and "so far" releases, hidden cells) against
// the releases the API answers. Then it makes a share link, opens it in a fresh
// browser context (no key, no storage): the dashboard renders with the same
// numbers, and API calls outside the dashboard are refused; revoked, the link
// opens nothing. With PRIVALYTICS_SCREENSHOTS=dir it saves the README's
// screenshots of views there.
func TestViewsDashboardInBrowser(t *testing.T) {
	t.Parallel()
	browser := findChromium(t)
	// The server's clock and the page's are both fixed to the same moment: the
	// 20th of a month at noon, so this month is released "so far" (after half of
	// it) and the date presets and the closed months do not depend on the day the
	// test runs.
	clockAt := time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)
	began := time.Now()
	clock := func() time.Time { return clockAt.Add(time.Since(began)) }
	ts := startServerClock(t, clock)
	// Each month of data has its own budget of ε 10 (the default for new tenants).
	res, err := ts.operator.CreateTenant(context.Background(), wire.CreateTenantRequest{ID: "shop", Budget: wire.Cost{Epsilon: 10, Delta: 1e-5}, Period: privalytics.PeriodMonth})
	if err != nil {
		t.Fatalf("create tenant: %v", err)
	}
	admin := ts.operator.WithToken(res.AdminKey.Token)
	ik, err := admin.CreateKey(context.Background(), "ingest", wire.RoleIngest)
	if err != nil {
		t.Fatal(err)
	}
	qk, err := admin.CreateKey(context.Background(), "query", wire.RoleQuery)
	if err != nil {
		t.Fatal(err)
	}
	ingest := admin.WithToken(ik.Token)
	base, key := ts.app.URL(), qk.Token

	// A shop whose data runs from 13 months back to yesterday, so that the
	// presets have closed months on both sides.
	today := time.Date(clockAt.Year(), clockAt.Month(), clockAt.Day(), 0, 0, 0, 0, time.UTC)
	first := monthStart(today.Year(), today.Month()-13)
	cfg := smallSynth()
	cfg.Customers, cfg.Events = 10_000, 200_000
	cfg.Start, cfg.Days = first, int(today.Sub(first).Hours()/24)
	loadSynthetic(t, ingest, cfg)

	// A view that is not on the dashboard: a share link must not read it.
	var outside struct{ ID string }
	if st := callAPI(t, http.MethodPost, base+"/v1/views", key, map[string]any{
		"name": "not shared", "cadence": "month", "epsilon": 0.5, "start": first.Format(time.DateOnly),
		"query": map[string]any{"aggregates": []any{map[string]any{"name": "events", "op": "count"}}, "bounds": map[string]any{"max_groups": 14, "max_rows_per_group": 3}},
	}, &outside); st != http.StatusCreated || outside.ID == "" {
		t.Fatalf("create a view over the API: status %d", st)
	}

	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(browser),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1440, 1000),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	browserCtx, closeBrowser := chromedp.NewContext(allocCtx)
	var problems browserProblems
	problems.collect(browserCtx)
	defer func() {
		closeBrowser()
		<-problems.done
	}()
	ctx, cancel := context.WithTimeout(browserCtx, 3*time.Minute)
	defer cancel()

	shots := os.Getenv("PRIVALYTICS_SCREENSHOTS")
	screenshot := func(name string, full bool) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			if shots == "" {
				return chromedp.Void{}, nil
			}
			shot := chromedp.CaptureScreenshot()
			if full {
				shot = chromedp.FullScreenshot(100)
			}
			buf, err := shot(ctx, tg)
			if err != nil {
				return chromedp.Void{}, err
			}
			if err := os.MkdirAll(shots, 0o755); err != nil {
				return chromedp.Void{}, err
			}
			return chromedp.Void{}, os.WriteFile(filepath.Join(shots, name), buf, 0o644)
		}
	}
	pageSays := func(ctx context.Context) string {
		said, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`["login-error", "explain-body", "query-error", "views-error", "dashboard-error", "share-error"].map((id) => id + ": " + document.getElementById(id).textContent).join("; ") + "; views listed: " + document.querySelectorAll("#views-table tr[data-view]").length + "; run disabled: " + document.getElementById("run").disabled + "; name: " + document.getElementById("view-name").value + "; mode: " + document.getElementById("mode-view").checked + "; budget: " + JSON.stringify(window.privalyticsDashboard.budget && {p: window.privalyticsDashboard.budget.period, n: (window.privalyticsDashboard.budget.periods || []).length, k: window.privalyticsDashboard.budget.key}) + "; q: " + JSON.stringify(window.privalyticsDashboard.explained && window.privalyticsDashboard.explained.query.where)`))
		return said
	}
	doIn := func(ctx context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 45*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v\npage: %s\nbrowser problems so far: %q", step, err, pageSays(ctx), problems.unexpected())
		}
	}
	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		doIn(ctx, step, actions...)
	}
	evalIn := func(ctx context.Context, step, expr string, out any) {
		t.Helper()
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v (browser problems so far: %q)", step, err, problems.unexpected())
		}
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s: decode %.300s: %v", step, raw, err)
		}
	}
	eval := func(step, expr string, out any) {
		t.Helper()
		evalIn(ctx, step, expr, out)
	}
	poll := func(expr string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[bool](expr)(ctx, tg)
			return err
		})
	}
	fill := func(fields [][2]string) chromedp.Action[chromedp.Void] {
		f := chromedp.Evaluate[bool](setFieldsJS(fields))
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error { _, err := f(ctx, tg); return err })
	}
	text := func(id string) string {
		t.Helper()
		var s string
		eval("read #"+id, `document.getElementById("`+id+`").textContent`, &s)
		return s
	}

	do("sign in",
		fixClock(clockAt),
		chromedp.Navigate(base+"/dashboard/"),
		chromedp.WaitVisible(chromedp.ID("api-key")),
		chromedp.SendKeys(chromedp.ID("api-key"), key),
		chromedp.Click(chromedp.ID("login-button")),
		chromedp.WaitVisible(chromedp.ID("app-view")),
		chromedp.WaitEnabled(chromedp.ID("run")),
	)

	// The switch says which is which: ad-hoc questions are charged each run,
	// views have a fixed cost and are free to re-read.
	if s := text("mode"); !strings.Contains(s, "charged each run") || !strings.Contains(s, "fixed cost per period, free to re-read") {
		t.Errorf("the ad-hoc/view switch reads %q; it must say ad-hoc is charged each run and a view is free to re-read", s)
	}

	// A view: revenue per month and channel, with "so far" for this month.
	start := first.Format(time.DateOnly)
	previewed := func(name string, eps string) string {
		return `(() => { const p = window.privalyticsDashboard.preview; return !!p && p.spec.name === ` + fmt.Sprintf("%q", name) + ` && p.spec.epsilon === ` + eps + `; })()`
	}
	do("describe a view",
		chromedp.Click(chromedp.ID("mode-view")),
		chromedp.WaitVisible(chromedp.ID("view-fields")),
		fill([][2]string{{"view-name", "Revenue"}, {"measure", "sum:amount"}, {"lower", "0"}, {"upper", "50"},
			{"dimension", "channel"}, {"event-type", "purchase"}, {"cadence", "month"}, {"view-start", start},
			{"epsilon", "1"}, {"max-groups", "3"}, {"max-rows", "3"}}),
		chromedp.Click(chromedp.ID("so-far")),
		poll(previewed("Revenue", "1")+` && window.privalyticsDashboard.preview.spec.so_far`),
		chromedp.WaitEnabled(chromedp.ID("run")),
	)
	if s := text("run"); s != "Create view" {
		t.Errorf("in view mode the button reads %q, want Create view", s)
	}
	checkPreview := func(wantFits bool) viewCost {
		t.Helper()
		var spec json.RawMessage
		eval("read the previewed view", `window.privalyticsDashboard.preview.spec`, &spec)
		var c viewCost
		if st := callAPI(t, http.MethodPost, base+"/v1/views/preview", key, spec, &c); st != http.StatusOK {
			t.Fatalf("preview the page's view over the API: status %d", st)
		}
		if c.Fits != wantFits {
			t.Fatalf("the API says fits=%v for the page's view %s", c.Fits, spec)
		}
		body := text("explain-body")
		for _, want := range []string{
			fmt.Sprintf("Costs ε %s per %s", epsText(c.PerPeriod.Epsilon), c.Period),
			fmt.Sprintf("All your views together: %s of your %s per %s.", epsText(c.AllViewsPerPeriod.Epsilon), epsText(c.PeriodBudget.Epsilon), c.Period),
		} {
			if !strings.Contains(body, want) {
				t.Errorf("the cost preview reads %q; it lacks %q", body, want)
			}
		}
		verdict := text("preview-verdict")
		if wantFits && !strings.HasPrefix(verdict, "Fits") || !wantFits && !strings.HasPrefix(verdict, "Does not fit") {
			t.Errorf("the preview's verdict reads %q for fits=%v", verdict, wantFits)
		}
		// No ρ or δ unless asked: they are inside the closed "Accounting details".
		var visible string
		eval("read the visible preview", `[...document.querySelectorAll("#explain-body > p")].map((p) => p.textContent).join(" ")`, &visible)
		if strings.ContainsAny(visible, "ρδ") {
			t.Errorf("the preview shows jargon outside its details: %q", visible)
		}
		return c
	}
	cost := checkPreview(true)
	if cost.PerPeriod.Epsilon <= cost.PerRelease.Epsilon {
		t.Errorf("a monthly view with so far costs ε %v per period for ε %v per release; want the so-far release counted", cost.PerPeriod.Epsilon, cost.PerRelease.Epsilon)
	}
	do("screenshot the preview", screenshot("view-preview.png", true))
	do("create the view",
		chromedp.Click(chromedp.ID("run")),
		poll(`document.querySelectorAll("#views-table tr[data-view]").length === 2`), // with the API's
	)

	// A second view: purchases per month and channel.
	do("create a second view",
		fill([][2]string{{"view-name", "Purchases"}, {"measure", "count"}, {"epsilon", "1"}}),
		chromedp.Click(chromedp.ID("so-far")), // off again
		poll(previewed("Purchases", "1")+` && !window.privalyticsDashboard.preview.spec.so_far`),
		chromedp.WaitEnabled(chromedp.ID("run")),
		chromedp.Click(chromedp.ID("run")),
		poll(`document.querySelectorAll("#views-table tr[data-view]").length === 3`),
	)

	// A view that would overrun the budget is refused before it exists: the
	// preview says why in words and Create stays disabled.
	do("describe an over-budget view",
		fill([][2]string{{"view-name", "Too dear"}, {"epsilon", "12"}}),
		poll(previewed("Too dear", "12")),
	)
	checkPreview(false)
	var disabled bool
	eval("read the Create button", `document.getElementById("run").disabled`, &disabled)
	if !disabled {
		t.Errorf("Create is enabled for a view that does not fit the budget")
	}
	if cls := text("explain"); !strings.Contains(cls, "more than the") {
		t.Errorf("the refusal does not say why: %q", cls)
	}
	do("screenshot the refusal", screenshot("view-refused.png", true))
	var views struct {
		Views []struct {
			ID, Name string
		} `json:"views"`
	}
	callAPI(t, http.MethodGet, base+"/v1/views", key, nil, &views)
	ids := map[string]string{}
	for _, v := range views.Views {
		ids[v.Name] = v.ID
	}
	if len(views.Views) != 3 || ids["Revenue"] == "" || ids["Purchases"] == "" || ids["Too dear"] != "" {
		t.Fatalf("views after the refusal: %+v; want Revenue, Purchases and the API's one, not Too dear", views.Views)
	}

	// A dashboard of the two views.
	do("save a dashboard",
		chromedp.Click(chromedp.CSS(`#views-table tr[data-view="`+ids["Revenue"]+`"] input.pick-view`)),
		chromedp.Click(chromedp.CSS(`#views-table tr[data-view="`+ids["Purchases"]+`"] input.pick-view`)),
		fill([][2]string{{"dashboard-name", "Monthly review"}}),
		chromedp.Click(chromedp.ID("create-dashboard")),
		chromedp.WaitVisible(chromedp.ID("dashboards-view")),
		poll(`document.querySelectorAll("#kpis .kpi").length === 2`),
	)
	if s := text("dashboard-title"); s != "Monthly review" {
		t.Errorf("dashboard title %q", s)
	}

	// The comparison: the last 3 months against the 3 before.
	releasesOf := func(id string, from, to time.Time) []testRelease {
		t.Helper()
		var out struct {
			Releases []testRelease `json:"releases"`
		}
		u := fmt.Sprintf("%s/v1/views/%s/releases?from=%s&to=%s", base, url.PathEscape(id), from.Format(time.DateOnly), to.Format(time.DateOnly))
		if st := callAPI(t, http.MethodGet, u, key, nil, &out); st != http.StatusOK {
			t.Fatalf("GET %s: status %d", u, st)
		}
		return out.Releases
	}
	from, to := monthStart(today.Year(), today.Month()-3), today.AddDate(0, 0, 1)
	do("choose the last 3 months",
		fill([][2]string{{"preset", "last-3-months"}}),
		poll(`(() => { const d = window.privalyticsDashboard.dash; return d && d.range && d.range.from === "`+from.Format(time.DateOnly)+`" && !d.loading && d.kpis && d.kpis.length === 2; })()`),
	)
	checkKPIs := func(channel string) []pageKPI {
		t.Helper()
		var kpis []pageKPI
		eval("read the KPI tiles", readKPIsJS, &kpis)
		if len(kpis) != 2 {
			t.Fatalf("%d KPI tiles, want 2", len(kpis))
		}
		for _, k := range kpis {
			want := computeKPI(releasesOf(k.ViewID, from.AddDate(0, -6, 0), to), from, to, channel)
			money := k.ViewID == ids["Revenue"]
			format := jsNumber
			if money {
				format = jsMoney
			}
			if len(want.Buckets) != 3 || !slices.Equal(k.Buckets, want.Buckets) {
				t.Errorf("tile %s sums the buckets %q; the API released %q closed in the range (want 3)", k.ViewID, k.Buckets, want.Buckets)
			}
			if !closeTo(k.Value, want.Value) || !closeTo(k.Half, want.Half) {
				t.Errorf("tile %s: %v ± %v, from the API's releases %v ± %v", k.ViewID, k.Value, k.Half, want.Value, want.Half)
			}
			if !strings.Contains(k.Text, format(k.Value)) {
				t.Errorf("tile %s reads %q; it lacks the total %q", k.ViewID, k.Text, format(k.Value))
			}
			if money != strings.Contains(k.Text, "£") {
				t.Errorf("tile %s reads %q; money must be in pounds and counts not", k.ViewID, k.Text)
			}
			if (k.ViewID == ids["Revenue"]) != (want.SoFarBucket != "") || (k.SoFar != nil) != (want.SoFarBucket != "") {
				t.Errorf("tile %s: so far %+v, the API released so far %q (only Revenue asked for it)", k.ViewID, k.SoFar, want.SoFarBucket)
			} else if k.SoFar != nil && (k.SoFar.Bucket != want.SoFarBucket || !strings.Contains(k.Text, want.SoFarBucket+" so far")) {
				t.Errorf("tile %s reads %q; want %s shown as so far", k.ViewID, k.Text, want.SoFarBucket)
			}
			if !want.HasPrev || k.Previous == nil {
				t.Errorf("tile %s: comparison %+v; the API released the 3 months before: %v", k.ViewID, k.Previous, want.HasPrev)
				continue
			}
			p := k.Previous
			if !slices.Equal(p.Buckets, want.PrevBuckets) || !closeTo(p.Value, want.Prev) || !closeTo(p.DiffLower, want.DiffLo) || !closeTo(p.DiffUpper, want.DiffHi) ||
				p.InsideNoise != want.InsideTheNoise || p.Overlap != want.IntervalsTouch {
				t.Errorf("tile %s compares with %+v; from the API's releases: %q %v, difference [%v, %v], inside the noise %v, overlap %v",
					k.ViewID, *p, want.PrevBuckets, want.Prev, want.DiffLo, want.DiffHi, want.InsideTheNoise, want.IntervalsTouch)
			}
			verdict := "outside the noise"
			if want.InsideTheNoise {
				verdict = "inside the noise: the difference could be 0"
			}
			if !strings.Contains(k.Text, verdict) || !strings.Contains(k.Text, "vs the previous 3 periods ("+format(want.Prev)+")") {
				t.Errorf("tile %s reads %q; want the comparison with %s and %q", k.ViewID, k.Text, format(want.Prev), verdict)
			}
			t.Logf("tile %s (%s): %v ± %v vs %v ± %v: inside the noise %v", k.ViewID, channel, want.Value, want.Half, want.Prev, want.PrevHalf, want.InsideTheNoise)
		}
		return kpis
	}
	owner := checkKPIs("")

	// The charts: one line per channel with its band, straight segments (no
	// smoothing), the points the API released; the tables: every released cell,
	// closed or so far, and "hidden" for a cell hidden for too few customers.
	var panels []pagePanel
	eval("read the panels", readPanelsJS, &panels)
	if len(panels) != 2 {
		t.Fatalf("%d view panels, want 2", len(panels))
	}
	hiddenSeen := 0
	for _, p := range panels {
		rels := computeKPI(releasesOf(p.ViewID, from, to), from, to, "")
		if !slices.Equal(p.Labels, rels.ReleasedBuckets) {
			t.Errorf("chart %s has the buckets %q; the API released %q", p.ViewID, p.Labels, rels.ReleasedBuckets)
		}
		lines := 0
		for _, ds := range p.Datasets {
			if ds.Tension == nil {
				t.Errorf("chart %s, dataset %q: Chart.js resolved no line tension", p.ViewID, ds.Label)
			} else if *ds.Tension != 0 {
				t.Errorf("chart %s, dataset %q: line tension %v, want 0 (no smoothing of noisy numbers)", p.ViewID, ds.Label, *ds.Tension)
			}
			if ds.Role == "value" {
				lines++
			}
		}
		if lines != 3 {
			t.Errorf("chart %s draws %d lines, want one per channel (3)", p.ViewID, lines)
		}
		var wantRows [][]string
		var all []testRelease
		for _, r := range releasesOf(p.ViewID, from, to) {
			if r.Start.Before(to) && r.End.After(from) {
				all = append(all, r)
			}
		}
		slices.SortFunc(all, func(a, b testRelease) int { return a.Start.Compare(b.Start) })
		format := jsNumber
		if p.ViewID == ids["Revenue"] {
			format = jsMoney
		}
		for _, r := range all {
			state := map[string]string{"closed": "closed", "so_far": "so far"}[r.State]
			ch := slices.Index(r.Result.GroupBy, "channel")
			for _, row := range r.Result.Rows {
				c := row.Cells[0]
				if c.Hidden || c.Value == nil {
					hiddenSeen++
					wantRows = append(wantRows, []string{r.Bucket, row.Key[ch], "hidden", state})
					continue
				}
				wantRows = append(wantRows, []string{r.Bucket, row.Key[ch], format(*c.Value), format(c.Lower) + " to " + format(c.Upper), state})
			}
		}
		if !slicesEqual2(p.Rows, wantRows) {
			t.Errorf("table of %s:\n got %q\nwant %q", p.ViewID, p.Rows, wantRows)
		}
	}
	t.Logf("%d cells hidden for too few customers in the range", hiddenSeen)

	// The quarters the range touches, as the server rolled them up (free, made
	// consistent), all channels together.
	for name, agg := range map[string]string{"Revenue": "sum_amount", "Purchases": "events"} {
		var rollup struct {
			Rows []struct {
				Bucket    string                `json:"bucket"`
				Group     map[string]string     `json:"group"`
				Values    map[string]float64    `json:"values"`
				Intervals map[string][2]float64 `json:"intervals"`
				Buckets   int                   `json:"buckets"`
				Complete  bool                  `json:"complete"`
			} `json:"rows"`
		}
		if st := callAPI(t, http.MethodGet, base+"/v1/views/"+ids[name]+"/rollup?by=quarter", key, nil, &rollup); st != http.StatusOK {
			t.Fatalf("roll-up of %s: status %d", name, st)
		}
		format := jsNumber
		if name == "Revenue" {
			format = jsMoney
		}
		var want [][]string
		for _, r := range rollup.Rows {
			var y, q int
			if _, err := fmt.Sscanf(r.Bucket, "%d-Q%d", &y, &q); err != nil || len(r.Group) != 0 {
				continue
			}
			qs := monthStart(y, time.Month(3*q-2))
			if !(qs.Before(to) && qs.AddDate(0, 3, 0).After(from)) {
				continue
			}
			state := "complete"
			if !r.Complete {
				state = fmt.Sprintf("%d periods so far", r.Buckets)
				if r.Buckets == 1 {
					state = "1 period so far"
				}
			}
			iv := r.Intervals[agg]
			want = append(want, []string{r.Bucket, format(r.Values[agg]), format(iv[0]) + " to " + format(iv[1]), state})
		}
		var got [][]string
		eval("read the quarters of "+name, `[...document.querySelectorAll('table.rollup-table[data-view="`+ids[name]+`"] tr')].map((tr) => [...tr.cells].map((td) => td.textContent))`, &got)
		if len(want) != 2 || !slicesEqual2(got, want) {
			t.Errorf("quarters of %s:\n got %q\nwant %q (the API's roll-up, 2 quarters)", name, got, want)
		}
	}

	// A cell the server flags as hidden (too few customers for its ε: the
	// engine's per-cell flag, issue 15) is drawn as "hidden", not as a number,
	// and leaves a gap in its line. The engine on this branch flags none in
	// this shop, so the test flags one released cell as the server would and
	// redraws.
	var marked struct {
		Bucket, Group string
	}
	eval("flag a released cell hidden", `(() => {
		const d = window.privalyticsDashboard.dash, rels = d.releases["`+ids["Purchases"]+`"];
		const r = rels.find((r) => r.bucket === d.kpis[1].buckets[1]);
		const row = r.result.rows[0];
		row.cells[0] = { ...row.cells[0], hidden: true, reason: "too few customers for this ε" };
		const c = document.getElementById("compare");
		c.click(); c.click(); // each redraws from the releases in memory; the comparison stays on
		return { bucket: r.bucket, group: row.key[r.result.group_by.indexOf("channel")] };
	})()`, &marked)
	eval("read the panels again", readPanelsJS, &panels)
	var hiddenRow []string
	for _, row := range panels[1].Rows {
		if len(row) > 1 && row[0] == marked.Bucket && row[1] == marked.Group {
			hiddenRow = row
		}
	}
	if want := []string{marked.Bucket, marked.Group, "hidden", "closed"}; !slices.Equal(hiddenRow, want) {
		t.Errorf("the hidden cell's row reads %q, want %q", hiddenRow, want)
	}
	at := slices.Index(panels[1].Labels, marked.Bucket)
	for _, ds := range panels[1].Datasets {
		if ds.Role == "value" && ds.Label == marked.Group && (at < 0 || ds.Data[at] != nil) {
			t.Errorf("the %s line has a point at the hidden cell %s: %v", marked.Group, marked.Bucket, ds.Data)
		}
	}
	do("fetch the API's releases again",
		fill([][2]string{{"preset", "last-12-months"}}), poll(`!window.privalyticsDashboard.dash.loading`),
		fill([][2]string{{"preset", "last-3-months"}}), poll(`!window.privalyticsDashboard.dash.loading && document.getElementById("compare").checked`))

	// A filter on a public key: the web channel only.
	do("filter on the web channel",
		fill([][2]string{{"filter-channel", "web"}}),
		poll(`window.privalyticsDashboard.dash.filters.channel === "web"`),
	)
	web := checkKPIs("web")
	if closeTo(web[0].Value, owner[0].Value) {
		t.Errorf("the web channel alone totals %v, as much as all channels", web[0].Value)
	}
	// The date presets, from the page's "today" (the fixed clock): [from, to).
	var ranges map[string]struct{ From, To string }
	eval("read the presets", `Object.fromEntries([...document.getElementById("preset").options].map((o) => [o.value, window.privalyticsDashboard.presetRange(o.value)]))`, &ranges)
	y, m, tomorrow := today.Year(), today.Month(), today.AddDate(0, 0, 1)
	q := monthStart(y, (m-1)/3*3+1)
	for preset, want := range map[string][2]time.Time{
		"last-30-days":   {today.AddDate(0, 0, -29), tomorrow},
		"last-3-months":  {monthStart(y, m-3), tomorrow},
		"this-quarter":   {q, tomorrow},
		"last-quarter":   {q.AddDate(0, -3, 0), q},
		"this-year":      {monthStart(y, 1), tomorrow},
		"last-12-months": {monthStart(y, m-12), tomorrow},
		"last-year":      {monthStart(y-1, 1), monthStart(y, 1)},
	} {
		got, ok := ranges[preset]
		if !ok || got.From != want[0].Format(time.DateOnly) || got.To != want[1].Format(time.DateOnly) {
			t.Errorf("preset %s on %s: [%s, %s), want [%s, %s)", preset, today.Format(time.DateOnly), got.From, got.To, want[0].Format(time.DateOnly), want[1].Format(time.DateOnly))
		}
	}
	if len(ranges) != 7 {
		t.Errorf("the page offers %d date presets, want 7: %v", len(ranges), ranges)
	}

	// Amounts in the chosen currency.
	do("show euros", fill([][2]string{{"currency", "EUR"}}), poll(`document.querySelector('#kpis .kpi[data-view="`+ids["Revenue"]+`"] .kpi-value').textContent.startsWith("€")`))
	do("show pounds again", fill([][2]string{{"currency", "GBP"}}), poll(`document.querySelector('#kpis .kpi[data-view="`+ids["Revenue"]+`"] .kpi-value').textContent.startsWith("£")`))

	do("clear the filter",
		fill([][2]string{{"filter-channel", ""}}),
		poll(`Object.keys(window.privalyticsDashboard.dash.filters).length === 0`),
		screenshot("views-dashboard.png", true),
	)

	// A share link, opened in a fresh browser context: no key, no storage.
	do("make a share link",
		chromedp.Click(chromedp.ID("create-share")),
		chromedp.WaitVisible(chromedp.CSS(`#share-list input.share-url`)),
	)
	var shareURL string
	eval("read the share link", `document.querySelector("#share-list input.share-url").value`, &shareURL)
	token := ""
	if u, err := url.Parse(shareURL); err == nil {
		if frag, err := url.ParseQuery(u.Fragment); err == nil {
			token = frag.Get("share")
		}
	}
	if !strings.HasPrefix(shareURL, base+"/dashboard/#share=") || token == "" {
		t.Fatalf("share link %q, want %s/dashboard/#share=<token>", shareURL, base)
	}
	shareCtx, closeShare := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	defer closeShare()
	var shareProblems browserProblems
	shareProblems.collect(shareCtx)
	doIn(shareCtx, "open the share link",
		fixClock(clockAt),
		chromedp.Navigate(shareURL),
		chromedp.WaitVisible(chromedp.ID("dashboards-view")),
		poll(`(() => { const d = window.privalyticsDashboard.dash; return !!d && !d.loading && !!d.kpis && d.kpis.length === 2; })()`),
	)
	var look struct {
		Login, Form, Side bool
		Stored            int
		Title             string
	}
	evalIn(shareCtx, "read the shared page", `({ login: !document.getElementById("login-view").hidden, form: !document.getElementById("app-view").hidden,
		side: !document.getElementById("dashboard-side").hidden, stored: localStorage.length + sessionStorage.length - (localStorage.getItem("privalytics.currency") ? 1 : 0),
		title: document.getElementById("dashboard-title").textContent })`, &look)
	if look.Login || look.Form || look.Side || look.Stored != 0 || look.Title != "Monthly review" {
		t.Errorf("the shared page shows %+v; want the dashboard alone, read-only, nothing stored", look)
	}
	doIn(shareCtx, "choose the last 3 months on the shared page",
		fill([][2]string{{"preset", "last-3-months"}}),
		poll(`(() => { const d = window.privalyticsDashboard.dash; return d.range.from === "`+from.Format(time.DateOnly)+`" && !d.loading && d.kpis.length === 2; })()`),
		screenshot("shared-dashboard.png", true),
	)
	var shared []pageKPI
	evalIn(shareCtx, "read the shared tiles", readKPIsJS, &shared)
	for i := range owner {
		if i >= len(shared) || shared[i].ViewID != owner[i].ViewID || shared[i].Value != owner[i].Value || shared[i].Half != owner[i].Half {
			t.Errorf("the shared dashboard's tiles differ from the owner's: %+v vs %+v", shared, owner)
			break
		}
	}
	// From inside the shared page, with its token: the dashboard's views are
	// readable, everything else is refused.
	var statuses map[string]int
	evalIn(shareCtx, "call the API with the share token", `(async () => {
		const tok = new URLSearchParams(location.hash.slice(1)).get("share");
		const call = async (m, p, b) => (await fetch(p, { method: m, headers: { Authorization: "Bearer " + tok, "Content-Type": "application/json" }, body: b ? JSON.stringify(b) : undefined })).status;
		return {
			"GET view on the dashboard": await call("GET", "/v1/views/`+ids["Revenue"]+`"),
			"GET its roll-up": await call("GET", "/v1/views/`+ids["Revenue"]+`/rollup?by=quarter"),
			"GET a view not on it": await call("GET", "/v1/views/`+outside.ID+`"),
			"GET its releases": await call("GET", "/v1/views/`+outside.ID+`/releases"),
			"GET /v1/budget": await call("GET", "/v1/budget"),
			"GET /v1/tenant": await call("GET", "/v1/tenant"),
			"POST /v1/queries": await call("POST", "/v1/queries", { aggregates: [{ op: "count" }], epsilon: 0.1 }),
			"POST /v1/views": await call("POST", "/v1/views", { name: "x", cadence: "month", epsilon: 0.1, query: { aggregates: [{ op: "count" }] } }),
			"POST a share": await call("POST", "/v1/dashboards/" + window.privalyticsDashboard.dash.dashboard.id + "/share"),
		};
	})()`, &statuses)
	for call, st := range statuses {
		allowed := strings.HasPrefix(call, "GET view on") || strings.HasPrefix(call, "GET its roll-up")
		if allowed && st != http.StatusOK || !allowed && st != http.StatusForbidden && st != http.StatusNotFound {
			t.Errorf("%s with the share token: status %d, want %s", call, st, map[bool]string{true: "200", false: "403 (or 404)"}[allowed])
		}
	}
	if len(statuses) != 9 {
		t.Errorf("share-token calls: %v", statuses)
	}

	// Revoked, the link opens nothing.
	do("revoke the share link",
		chromedp.Click(chromedp.CSS(`#share-list button.revoke`)),
		chromedp.WaitVisible(chromedp.CSS(`#share-list input.share-url.revoked`)),
	)
	doIn(shareCtx, "open the revoked link",
		chromedp.Navigate("about:blank"),
		chromedp.Navigate(shareURL),
		chromedp.WaitVisible(chromedp.ID("dashboard-error")),
	)
	var revoked string
	evalIn(shareCtx, "read the revoked page", `document.getElementById("dashboard-error").textContent`, &revoked)
	if !strings.Contains(revoked, "not valid any more") {
		t.Errorf("the revoked link's page reads %q", revoked)
	}
	if st := callAPI(t, http.MethodGet, base+"/v1/views/"+ids["Revenue"], token, nil, nil); st != http.StatusUnauthorized && st != http.StatusForbidden {
		t.Errorf("a revoked share token reads a view: status %d", st)
	}

	// An ad-hoc question is charged each run, in every month its dates touch;
	// one that a month's budget cannot pay for is not run: Run is disabled and
	// the page says which month is short. The views' releases spent part of
	// each month.
	var budget wire.BudgetResponse
	callAPI(t, http.MethodGet, base+"/v1/budget", key, nil, &budget)
	adFrom, adTo := monthStart(today.Year(), today.Month()-3), monthStart(today.Year(), today.Month())
	left := map[string]float64{}
	for _, p := range budget.Periods {
		left[p.Period] = p.Remaining.Epsilon
	}
	shortMonth, shortLeft := "", 0.0
	for m := adFrom; m.Before(adTo); m = m.AddDate(0, 1, 0) {
		l, ok := left[m.Format("2006-01")]
		if !ok {
			l = budget.Total.Epsilon
		}
		if l < 8.5 && shortMonth == "" {
			shortMonth, shortLeft = m.Format("2006-01"), l
		}
	}
	if budget.Period != privalytics.PeriodMonth || shortMonth == "" {
		t.Fatalf("budget %+v: want a month budget with a month short of ε 8.5 after the views' releases", budget)
	}
	do("ask an ad-hoc question the budget cannot pay for",
		chromedp.Click(chromedp.ID("tab-ask")),
		chromedp.Click(chromedp.ID("mode-adhoc")),
		chromedp.WaitVisible(chromedp.ID("adhoc-fields")),
		fill([][2]string{{"from", adFrom.Format(time.DateOnly)}, {"to", adTo.Format(time.DateOnly)}, {"epsilon", "8.5"}}),
		chromedp.WaitVisible(chromedp.ID("explain-refusal")),
		// The form's previous question may have been refused too: wait for
		// the refusal of this one (its explain can arrive late on a busy machine).
		poll(`document.getElementById("explain-refusal").textContent.includes("costs ε 8.5 ")`),
	)
	eval("read the Run button", `document.getElementById("run").disabled`, &disabled)
	refusal := text("explain-refusal")
	if want := fmt.Sprintf("costs ε 8.5 in each month it covers, and %s has ε %s left", shortMonth, epsText(shortLeft)); !disabled || !strings.Contains(refusal, want) {
		t.Errorf("an ad-hoc question over the month's budget: Run disabled %v, the page says %q; want it disabled and %q", disabled, refusal, want)
	}
	do("ask one it can pay for",
		fill([][2]string{{"epsilon", "0.5"}}),
		chromedp.WaitEnabled(chromedp.ID("run")),
	)
	if s := text("explain-body"); strings.Contains(s, "Not enough budget") {
		t.Errorf("a question at ε 0.5 is refused: %q", s)
	}

	closeShare()
	<-shareProblems.done
	if p := shareProblems.unexpected("status of 403", "status of 404", "status of 401"); len(p) > 0 {
		t.Errorf("the shared page reported problems:\n%s", strings.Join(p, "\n"))
	}
	if p := problems.unexpected(); len(p) > 0 {
		t.Errorf("the page reported problems:\n%s", strings.Join(p, "\n"))
	}
}

// epsText is the dashboard's fmtEps: four significant digits, no trailing zeros.
func epsText(v float64) string {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 4, 64), 64)
	return strconv.FormatFloat(r, 'f', -1, 64)
}

func closeTo(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func slicesEqual2(a, b [][]string) bool {
	return slices.EqualFunc(a, b, func(x, y []string) bool { return slices.Equal(x, y) })
}

// startServerClock is startServer with the API's clock set by now.
func startServerClock(t *testing.T, now func() time.Time) *testServer {
	t.Helper()
	cfg := DefaultConfig()
	cfg.RatePerKey = 0 // see TestMain
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.MasterKeyFile = cfg.DataDir + "/master.key"
	cfg.LogLevel = "warn"
	ctx, cancel := context.WithCancel(context.Background())
	app, err := openApp(ctx, cfg, appOptions{logOutput: io.Discard, now: now})
	if err != nil {
		cancel()
		t.Fatalf("openApp: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- app.serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &testServer{app: app, operator: client.New(app.URL(), app.OperatorToken)}
}

// fixClock sets the page's clock (Date, Date.now) to at, running on from there,
// in every document the tab opens: the page's date presets count from "today",
// which must be the server's.
func fixClock(at time.Time) chromedp.Action[chromedp.Void] {
	src := fmt.Sprintf(`(() => {
  const Real = Date, offset = %d - Real.now();
  class Fixed extends Real {
    constructor(...a) { if (a.length === 0) super(Real.now() + offset); else super(...a); }
    static now() { return Real.now() + offset; }
  }
  window.Date = Fixed;
})();`, at.UnixMilli())
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src})
		return err
	})
}
