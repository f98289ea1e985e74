package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/privalytics/privalytics/api/wire"
)

// findChromium returns the headless browser the dashboard test drives: the
// PRIVALYTICS_CHROMIUM path, else Debian's chromium on PATH. Without one the test
// skips and says how to get it, unless PRIVALYTICS_REQUIRE_BROWSER is set (as
// .ci/run does), where a missing browser is a failure.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PRIVALYTICS_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium on PATH: install Debian's chromium (apt-get install -y chromium; .ci/run does) or set PRIVALYTICS_CHROMIUM to a Chrome binary"
	if os.Getenv("PRIVALYTICS_REQUIRE_BROWSER") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// browserProblems collects what the page reports as going wrong: uncaught
// exceptions, console errors and browser log errors (a Content-Security-Policy
// violation shows up there). A dashboard that draws while logging errors fails.
type browserProblems struct {
	mu   sync.Mutex
	list []string
	done chan struct{}
}

// collect reads the console of the context's tab until the context ends.
func (b *browserProblems) collect(ctx context.Context) {
	b.done = make(chan struct{})
	messages := chromedp.Console(ctx)
	go func() {
		defer close(b.done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type != chromedp.ConsoleError && !m.IsException() {
				continue
			}
			b.mu.Lock()
			b.list = append(b.list, fmt.Sprintf("%s (%s %s)", m, m.Source, m.URL))
			b.mu.Unlock()
		}
	}()
}

// unexpected reports the problems, ignoring those the test provoked on purpose.
func (b *browserProblems) unexpected(allow ...string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
next:
	for _, m := range b.list {
		for _, a := range allow {
			if strings.Contains(m, a) {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// jsNumber formats v as the dashboard's fmt does (en-GB grouping; no decimals
// from 100 up or for whole numbers, else two), so the test can look for the text a user reads.
func jsNumber(v float64) string {
	digits := 2
	if math.Abs(v) >= 100 || v == math.Trunc(v) {
		digits = 0
	}
	return jsFixed(v, digits)
}

// jsFixed formats v as toLocaleString("en-GB") does with exactly digits decimals.
func jsFixed(v float64, digits int) string {
	// JavaScript rounds the shortest decimal form of v, halves away from zero.
	r, _ := new(big.Rat).SetString(strconv.FormatFloat(v, 'f', -1, 64))
	scale := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(digits)), nil))
	r.Mul(r, scale)
	half := big.NewRat(1, 2)
	if r.Sign() < 0 {
		r.Sub(r, half)
	} else {
		r.Add(r, half)
	}
	n := new(big.Int).Quo(r.Num(), r.Denom()) // truncates toward zero
	s := new(big.Rat).SetFrac(n, scale.Num()).FloatString(digits)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	out := b.String()
	if frac != "" {
		out += "." + frac
	}
	if neg && strings.Trim(out, "0.,") != "" {
		out = "-" + out
	}
	return out
}

func TestJSNumber(t *testing.T) {
	t.Parallel()
	for v, want := range map[float64]string{0: "0", 7: "7", 7.5: "7.50", 1.234: "1.23", -5.5: "-5.50", 99.994: "99.99", 100: "100", 1234.5: "1,235", 0.125: "0.13", -0.125: "-0.13", 2.675: "2.68", -0.001: "0.00", 1234567.2: "1,234,567", -98765.4: "-98,765"} {
		if got := jsNumber(v); got != want {
			t.Errorf("jsNumber(%v) = %q, want %q", v, got, want)
		}
	}
}

// trendSummary is what the test reads back from the drawn trend chart.
type trendSummary struct {
	Labels   []string `json:"labels"`
	Datasets []struct {
		Label   string     `json:"label"`
		Role    string     `json:"role"`
		Data    []*float64 `json:"data"`
		Fill    any        `json:"fill"`
		Points  int        `json:"points"`  // elements Chart.js laid out inside the chart area
		Tension float64    `json:"tension"` // as Chart.js resolved it: 0 is straight segments
	} `json:"datasets"`
	Width       int `json:"width"`
	Height      int `json:"height"`
	Opaque      int `json:"opaque"`      // pixels of lines and points
	Translucent int `json:"translucent"` // pixels of the shaded interval bands
}

const readTrendJS = `(() => {
  const d = window.privalyticsDashboard, c = d.charts.trend;
  if (!c) return null;
  const area = c.chartArea;
  const datasets = c.data.datasets.map((ds, i) => ({
    label: ds.label, role: ds.role, data: ds.data, fill: ds.fill, tension: c.getDatasetMeta(i).dataset.options.tension,
    points: c.getDatasetMeta(i).data.filter((p) => !p.skip && p.x >= area.left - 1 && p.x <= area.right + 1 && p.y >= area.top - 1 && p.y <= area.bottom + 1).length,
  }));
  const cv = c.canvas, px = cv.getContext("2d").getImageData(0, 0, cv.width, cv.height).data;
  let opaque = 0, translucent = 0;
  for (let i = 3; i < px.length; i += 4) {
    if (px[i] >= 200) opaque++; else if (px[i] >= 20 && px[i] <= 90) translucent++;
  }
  return { labels: c.data.labels, datasets, width: cv.width, height: cv.height, opaque, translucent };
})()`

const readTableJS = `(() => {
  const t = document.getElementById("result-table");
  return {
    head: [...t.tHead.rows[0].cells].map((c) => c.textContent),
    rows: [...t.tBodies[0].rows].map((r) => ({
      text: [...r.cells].map((c) => c.textContent),
      values: [...r.cells].filter((c) => c.dataset.value !== undefined).map((c) => Number(c.dataset.value)),
    })),
  };
})()`

type tableSummary struct {
	Head []string `json:"head"`
	Rows []struct {
		Text   []string  `json:"text"`
		Values []float64 `json:"values"`
	} `json:"rows"`
}

// setFieldsJS fills the question form as a user would and fires the events the
// page listens to.
func setFieldsJS(fields [][2]string) string {
	b, _ := json.Marshal(fields)
	return `(() => {
  for (const [id, v] of ` + string(b) + `) {
    const el = document.getElementById(id);
    if (el.type === "checkbox") el.checked = v === "true";
    else el.value = v;
    el.dispatchEvent(new Event("input", { bubbles: true }));
    el.dispatchEvent(new Event("change", { bubbles: true }));
  }
  return true;
})()`
}

// TestDashboardInBrowser drives the embedded dashboard in headless Chromium
// against a real server with synthetic shop data: it signs in with a query key
// (after a wrong one is refused), reads the cost shown before running, runs the
// query, and checks the drawn chart (points and interval bands on the canvas,
// their data the API's) and the table (every row and value the API's answer);
// then a second question split by a data-derived column (partition selection,
// δ in the cost, only the largest series drawn, every row in the table).
// With PRIVALYTICS_SCREENSHOTS=dir it saves the README's screenshots there.
func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	browser := findChromium(t)
	shop := startDemoShop(t, wire.Cost{Epsilon: 10, Delta: 1e-5})
	ts, query, cfg := shop.server, shop.query, shop.cfg
	from, to := cfg.Start.Format(time.DateOnly), cfg.Start.AddDate(0, 0, cfg.Days).Format(time.DateOnly)

	// A first query from the API, so the budget history has a step before the dashboard's.
	if _, err := query.Query(context.Background(), &wire.Query{
		GroupBy:    []wire.GroupKey{{Column: "channel"}},
		Aggregates: []wire.Aggregate{{Op: "distinct_customers"}},
		Epsilon:    0.5,
	}); err != nil {
		t.Fatalf("warm-up query: %v", err)
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
	// The first call starts the browser and ties it to browserCtx, which has no
	// timeout of its own; the steps below run under one that has.
	var problems browserProblems
	problems.collect(browserCtx)
	defer func() {
		closeBrowser()
		<-problems.done
	}()
	ctx, cancel := context.WithTimeout(browserCtx, 2*time.Minute)
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
	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, actions...); err != nil {
			// What the page says is usually the reason: an API error it shows.
			said, _ := chromedp.Run(browserCtx, chromedp.Evaluate[string](`["login-error", "explain-body", "query-error"].map((id) => id + ": " + document.getElementById(id).textContent).join("; ") + "; rows: " + document.querySelectorAll("#result-table td[data-value]").length + "; run disabled: " + document.getElementById("run").disabled`))
			t.Fatalf("%s: %v\npage: %s\nbrowser problems so far: %q", step, err, said, problems.unexpected())
		}
	}
	text := func(step string, sel chromedp.ID) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.TextContent(sel))
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		return v
	}
	eval := func(step, expr string, out any) {
		t.Helper()
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr))
		if err != nil {
			t.Fatalf("%s: %v (browser problems so far: %q)", step, err, problems.unexpected())
		}
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s: decode %.200s: %v", step, raw, err)
		}
	}

	// Sign in: a wrong key is refused with a message, the query key is accepted.
	do("refuse a wrong key",
		chromedp.Navigate(ts.app.URL()+"/"), // the root redirects to the dashboard
		chromedp.WaitVisible(chromedp.ID("api-key")),
		chromedp.SendKeys(chromedp.ID("api-key"), "pvk_not-a-real-key"),
		chromedp.Click(chromedp.ID("login-button")),
		chromedp.WaitVisible(chromedp.ID("login-error")),
	)
	loginError := text("read the login error", "login-error")
	if !strings.Contains(loginError, "not accepted") {
		t.Errorf("login error for a wrong key = %q, want it to say the key was not accepted", loginError)
	}
	var cleared bool
	eval("clear the key field", `(() => { const f = document.getElementById("api-key"); f.value = ""; return f.value === ""; })()`, &cleared)
	do("sign in",
		chromedp.SendKeys(chromedp.ID("api-key"), query.Token()),
		screenshot("login.png", false),
		chromedp.Click(chromedp.ID("login-button")),
		chromedp.WaitVisible(chromedp.ID("app-view")),
		chromedp.WaitEnabled(chromedp.ID("run")),
	)
	var stored string
	eval("read session storage", `sessionStorage.getItem("privalytics.apiKey")`, &stored)
	if stored != query.Token() {
		t.Errorf("the key is not kept in session storage (got %q)", stored)
	}

	// The question: purchases per month and channel over the data's year.
	fill := chromedp.Evaluate[bool](setFieldsJS([][2]string{
		{"measure", "count"}, {"dimension", "channel"},
		{"event-type", "purchase"}, {"granularity", "month"}, {"from", from}, {"to", to},
		{"auto-bounds", "false"}, {"epsilon", "1"}, {"max-groups", "12"}, {"max-rows", "3"},
	}))
	do("ask and explain",
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error { _, err := fill(ctx, tg); return err }),
		chromedp.WaitEnabled(chromedp.ID("run")),
	)
	explainText := text("read the cost", "explain-body")
	var explained struct {
		Query json.RawMessage `json:"query"`
	}
	eval("read the explained query", `window.privalyticsDashboard.explained`, &explained)
	wantEx := explainOverHTTP(t, ts.app.URL(), query.Token(), explained.Query)
	if len(wantEx.Aggregates[0].SubtotalHalfWidths) != 2 {
		t.Fatalf("explain of the dashboard's rollup predicts %v subtotal half-widths, want 2 (per month, per year)", wantEx.Aggregates[0].SubtotalHalfWidths)
	}
	for _, want := range []string{"ε 1", "± " + jsNumber(wantEx.Aggregates[0].HalfWidth) + " per cell (95%), ± " + jsNumber(wantEx.Aggregates[0].SubtotalHalfWidths[0]) + " per total (free)", "Budget after"} {
		if !strings.Contains(explainText, want) {
			t.Errorf("the cost shown before running is %q; it lacks %q", explainText, want)
		}
	}
	do("screenshot the question", screenshot("question.png", false))

	// Run it.
	var valid bool
	eval("check the form", `document.getElementById("query-form").checkValidity()`, &valid)
	if !valid {
		t.Fatalf("the browser refuses to submit the question: a field fails its HTML constraints")
	}
	do("run the query",
		chromedp.Click(chromedp.ID("run")),
		chromedp.WaitVisible(chromedp.CSS(`#result-table td[data-value]`)),
		chromedp.WaitEnabled(chromedp.ID("run")),
	)
	// The same question again on unchanged data comes from the server's cache, at
	// no cost and with the very numbers the dashboard received.
	answerOfAPI := func() *wire.Result {
		t.Helper()
		var lastQuery json.RawMessage
		eval("read the query sent", `window.privalyticsDashboard.lastQuery`, &lastQuery)
		res, err := query.QueryJSON(context.Background(), lastQuery)
		if err != nil {
			t.Fatalf("the dashboard's query through the API: %v", err)
		}
		if !res.Cached {
			t.Fatalf("the repeated query was not served from the cache, so its numbers cannot be compared: %s", lastQuery)
		}
		return res
	}
	res := answerOfAPI()
	// channel's keys are public (the schema's allowed list) and the measure
	// a count: the dashboard asks for the month totals too (rollup), free.
	if len(res.Rows) != 12*3+12+1 {
		t.Fatalf("the API answered %d rows, want 49 (12 months × 3 channels, 12 month totals, the grand total)", len(res.Rows))
	}

	// The chart: one line per channel and one for the month totals, each
	// with a band from lower to upper, laid out by Chart.js and visibly
	// painted on the canvas.
	var trend trendSummary
	eval("read the chart", readTrendJS, &trend)
	want := map[string]map[string]wire.Cell{} // channel (or "total") → month → cell
	for _, r := range res.Rows {
		name := r.Key[1]
		switch r.Subtotal {
		case 1:
			name = "total"
		case 2:
			continue // the year's total: no point on a monthly chart
		}
		if want[name] == nil {
			want[name] = map[string]wire.Cell{}
		}
		want[name][r.Key[0]] = r.Cells[0]
	}
	if len(trend.Labels) != 12 || trend.Labels[0] != cfg.Start.Format("2006-01") {
		t.Errorf("chart labels %q, want the 12 months from %s", trend.Labels, cfg.Start.Format("2006-01"))
	}
	lines, bands := 0, 0
	for i, ds := range trend.Datasets {
		if ds.Points != len(trend.Labels) {
			t.Errorf("dataset %q: %d points laid out in the chart area, want %d", ds.Label, ds.Points, len(trend.Labels))
		}
		channel := strings.TrimSuffix(strings.TrimSuffix(ds.Label, " lower"), " 95% interval")
		for j, month := range trend.Labels {
			cell, ok := want[channel][month]
			if !ok || ds.Data[j] == nil {
				t.Errorf("dataset %q has a point for %s that the API did not answer (or lacks one it did)", ds.Label, month)
				continue
			}
			wantV := map[string]float64{"value": cell.Value, "band-lower": cell.Lower, "band-upper": cell.Upper}[ds.Role]
			if *ds.Data[j] != wantV {
				t.Errorf("dataset %q at %s = %v, the API answered %v", ds.Label, month, *ds.Data[j], wantV)
			}
		}
		if ds.Tension != 0 {
			t.Errorf("dataset %q is drawn with line tension %v; noisy values must be joined by straight segments (0)", ds.Label, ds.Tension)
		}
		switch ds.Role {
		case "value":
			lines++
		case "band-upper":
			bands++
			if ds.Fill != "-1" || i == 0 || trend.Datasets[i-1].Role != "band-lower" {
				t.Errorf("band %q does not fill down to its lower edge (fill %v)", ds.Label, ds.Fill)
			}
		}
	}
	if lines != 4 || bands != 4 {
		t.Errorf("chart has %d lines and %d interval bands, want 4 of each (web, app, store, total)", lines, bands)
	}
	// Each band is a few pixels high at least over most of the width; lines and
	// points are opaque. A blank or band-less canvas has neither.
	t.Logf("trend chart: %d×%d canvas, %d opaque and %d shaded pixels, %d datasets", trend.Width, trend.Height, trend.Opaque, trend.Translucent, len(trend.Datasets))
	if trend.Translucent < trend.Width*5 || trend.Opaque < trend.Width {
		t.Errorf("the canvas (%d×%d) has %d opaque and %d shaded pixels; the lines or the interval bands were not painted", trend.Width, trend.Height, trend.Opaque, trend.Translucent)
	}

	// The table: one row per cell, in key order, values as the API answered.
	checkTable := func(res *wire.Result, header string) []wire.Row {
		t.Helper()
		var table tableSummary
		eval("read the table", readTableJS, &table)
		if got := strings.Join(table.Head, "|"); got != header {
			t.Errorf("table header %q, want %q", got, header)
		}
		// Keys in order, each month's total after its channels, the grand
		// total last; a key a subtotal sums over reads "total".
		summed := func(r wire.Row, i int) bool { return r.Subtotal > 0 && i >= len(r.Key)-r.Subtotal }
		rows := slices.Clone(res.Rows)
		slices.SortFunc(rows, func(a, b wire.Row) int {
			for i := range a.Key {
				sa, sb := summed(a, i), summed(b, i)
				switch {
				case sa && !sb:
					return 1
				case sb && !sa:
					return -1
				case !sa:
					if c := strings.Compare(a.Key[i], b.Key[i]); c != 0 {
						return c
					}
				}
			}
			return 0
		})
		if len(table.Rows) != len(rows) {
			t.Fatalf("table has %d rows, the API answered %d", len(table.Rows), len(rows))
		}
		for i, r := range rows {
			got := table.Rows[i]
			c := r.Cells[0]
			keys := slices.Clone(r.Key)
			for j := range keys {
				if summed(r, j) {
					keys[j] = "total"
				}
			}
			wantText := append(keys, jsNumber(c.Value), jsNumber(c.Lower), jsNumber(c.Upper))
			if !slices.Equal(got.Text, wantText) {
				t.Errorf("table row %d reads %q, want %q", i, got.Text, wantText)
			}
			if !slices.Equal(got.Values, []float64{c.Value, c.Lower, c.Upper}) {
				t.Errorf("table row %d holds %v, the API answered %v", i, got.Values, []float64{c.Value, c.Lower, c.Upper})
			}
		}
		return rows
	}
	rows := checkTable(res, "month|channel|events|events 95% lower|events 95% upper")

	// The CSV export holds the full-precision values, one line per row.
	var csv string
	eval("export CSV", `window.privalyticsDashboard.toCSV(window.privalyticsDashboard.lastResult)`, &csv)
	csvLines := strings.Split(strings.TrimSuffix(csv, "\r\n"), "\r\n")
	if len(csvLines) != len(rows)+1 || csvLines[0] != "month,channel,events,events 95% lower,events 95% upper" {
		t.Errorf("CSV has %d lines (want %d) starting %q", len(csvLines), len(rows)+1, csvLines[0])
	}

	// The budget: the gauge shows what the API says is left; the history has a
	// step per charge (the warm-up query and the dashboard's).
	b, err := query.Budget(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var budget struct {
		Left    string    `json:"left"`
		Gauge   []float64 `json:"gauge"`
		History []float64 `json:"history"`
	}
	eval("read the budget", `(() => { const c = window.privalyticsDashboard.charts; return {
		left: document.getElementById("gauge-left").textContent,
		gauge: c.gauge.data.datasets[0].data, history: c.history.data.datasets[0].data }; })()`, &budget)
	if math.Abs(b.Remaining.Epsilon-8.5) > 1e-9 {
		t.Errorf("the API says ε %v is left after spending 0.5 + 1 of 10", b.Remaining.Epsilon)
	}
	if budget.Left != "ε 8.5" || len(budget.Gauge) != 2 || math.Abs(budget.Gauge[0]-b.Remaining.Epsilon) > 1e-9 || math.Abs(budget.Gauge[1]-1.5) > 1e-9 {
		t.Errorf("budget gauge shows %q with %v; the API says ε %v left of 10", budget.Left, budget.Gauge, b.Remaining.Epsilon)
	}
	if !slices.Equal(budget.History, []float64{0, 0.5, 1.5}) {
		t.Errorf("budget history %v, want the cumulative spend [0 0.5 1.5]", budget.History)
	}
	do("screenshot the results", screenshot("dashboard.png", true))

	// A second question whose split comes from the data: the average line per
	// quarter and category. Its keys pass DP partition selection, which needs δ;
	// the chart keeps the largest series and the table has them all.
	fill = chromedp.Evaluate[bool](setFieldsJS([][2]string{
		{"measure", "mean:amount"}, {"auto-bounds", "false"}, {"lower", "0"}, {"upper", "50"}, {"dimension", "category"},
		{"granularity", "quarter"}, {"epsilon", "1"}, {"max-groups", "4"}, {"max-rows", "2"},
	}))
	do("ask a second question",
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error { _, err := fill(ctx, tg); return err }),
		chromedp.WaitVisible(chromedp.ID("bounds-row")),
		chromedp.WaitEnabled(chromedp.ID("run")),
	)
	explainText = text("read the second cost", "explain-body")
	for _, want := range []string{"δ 1e-6", "chosen by DP partition selection", "declares for category (allowed) are all shown"} {
		if !strings.Contains(explainText, want) {
			t.Errorf("the cost of a split by category reads %q; it lacks %q", explainText, want)
		}
	}
	do("run the second question",
		chromedp.Click(chromedp.ID("run")),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[bool](`(window.privalyticsDashboard.lastResult || {aggregates: [{}]}).aggregates[0].op === "mean"`)(ctx, tg)
			return err
		}),
		chromedp.WaitEnabled(chromedp.ID("run")),
	)
	res = answerOfAPI()
	if !res.Thresholded || len(res.Rows) <= 8*4 {
		t.Fatalf("average per quarter and category: thresholded %v, %d rows; want partition selection to release more than 8 categories × 4 quarters", res.Thresholded, len(res.Rows))
	}
	checkTable(res, "quarter|category|mean_amount|mean_amount 95% lower|mean_amount 95% upper")
	eval("read the second chart", readTrendJS, &trend)
	lines = 0
	for _, ds := range trend.Datasets {
		if ds.Role == "value" {
			lines++
		}
	}
	if note := text("read the chart note", "trend-note"); lines != 8 || !strings.Contains(note, "the 8 largest of") {
		t.Errorf("the chart of %d rows draws %d lines with the note %q; want the 8 largest categories, and a note that says so", len(res.Rows), lines, note)
	}

	// A third question with the limits left to the data (the form's default):
	// revenue per month and channel. The query sent has no bounds, the cost
	// says the limits are chosen when it runs, and the answer line says what
	// tuning chose — as the API's own answer reports it.
	fill = chromedp.Evaluate[bool](setFieldsJS([][2]string{
		{"measure", "sum:amount"}, {"auto-bounds", "true"}, {"dimension", "channel"}, {"granularity", "month"}, {"epsilon", "1"},
	}))
	do("ask a tuned question",
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error { _, err := fill(ctx, tg); return err }),
		chromedp.WaitNotVisible(chromedp.ID("bounds-row")),
		chromedp.WaitEnabled(chromedp.ID("run")),
	)
	var disabled bool
	eval("the manual limits are off", `document.getElementById("max-groups").disabled && document.getElementById("max-rows").disabled`, &disabled)
	if !disabled {
		t.Errorf("with the limits chosen from the data, the manual limits can still be edited")
	}
	if explainText = text("read the tuned cost", "explain-body"); !strings.Contains(explainText, "chosen from the data when it runs") {
		t.Errorf("the cost of a tuned question reads %q; it should say the limits are chosen when it runs", explainText)
	}
	do("run the tuned question",
		chromedp.Click(chromedp.ID("run")),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[bool](`(window.privalyticsDashboard.lastResult || {aggregates: [{}]}).aggregates[0].op === "sum"`)(ctx, tg)
			return err
		}),
		chromedp.WaitEnabled(chromedp.ID("run")),
	)
	var sent struct {
		Bounds     *json.RawMessage `json:"bounds"`
		Aggregates []struct {
			Lower *float64 `json:"lower"`
		} `json:"aggregates"`
	}
	eval("read the tuned query sent", `window.privalyticsDashboard.lastQuery`, &sent)
	if sent.Bounds != nil || len(sent.Aggregates) != 1 || sent.Aggregates[0].Lower != nil {
		t.Errorf("the query sent with the limits left to the data carries bounds: %+v", sent)
	}
	res = answerOfAPI()
	if res.Tuning == nil || len(res.Tuning.Aggregates) != 1 {
		t.Fatalf("the tuned question's answer has no tuning report: %+v", res)
	}
	meta := text("read the answer line", "result-meta")
	if want := fmt.Sprintf("limits chosen from the data: a customer in at most %d groups", res.Tuning.MaxGroups); !strings.Contains(meta, want) ||
		!strings.Contains(meta, jsNumber(res.Tuning.Aggregates[0].Upper)) {
		t.Errorf("the answer line reads %q; want it to say %q and the clamp %s the API reports", meta, want, jsNumber(res.Tuning.Aggregates[0].Upper))
	}
	// The line says when the figures were corrected for bounding's estimated
	// bias, and only then.
	if corrected := strings.Contains(meta, "figures corrected for the"); corrected != (res.Tuning.Aggregates[0].Correction > 0) {
		t.Errorf("the answer line reads %q; the API reports a correction of %v", meta, res.Tuning.Aggregates[0].Correction)
	}
	checkTable(res, "month|channel|sum_amount|sum_amount 95% lower|sum_amount 95% upper")

	if p := problems.unexpected("status of 401"); len(p) > 0 {
		t.Errorf("the page reported problems:\n%s", strings.Join(p, "\n"))
	}
}

// explanation is the part of POST /v1/queries:explain the test compares.
type explanation struct {
	Aggregates []struct {
		HalfWidth          float64   `json:"half_width"`
		SubtotalHalfWidths []float64 `json:"subtotal_half_widths"`
	} `json:"aggregates"`
}

func explainOverHTTP(t *testing.T, baseURL, token string, q []byte) explanation {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, baseURL+"/v1/queries:explain", bytes.NewReader(q))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ex explanation
	if err := json.NewDecoder(resp.Body).Decode(&ex); err != nil || resp.StatusCode != http.StatusOK || len(ex.Aggregates) != 1 {
		t.Fatalf("explain %s: status %d, %v, %+v", q, resp.StatusCode, err, ex)
	}
	return ex
}
