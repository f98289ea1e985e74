package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
)

// ViewsOptions size the views benchmark.
type ViewsOptions struct {
	Days          int // simulated days
	Users         int // users refreshing the dashboard every hour
	EventsPerHour int // events ingested every simulated hour
	Reads         int // view reads timed for the latency figure
}

// DefaultViewsOptions are the README's sizes.
func DefaultViewsOptions() ViewsOptions {
	return ViewsOptions{Days: 60, Users: 3, EventsPerHour: 10, Reads: 2000}
}

// benchViews are the dashboard's six views: ε per release, and the query.
var benchViews = []struct {
	name, cadence string
	epsilon       float64
	soFar         bool
	query         string
}{
	{"purchases per day", "day", 0.05, false, `{"where":[{"column":"type","eq":"purchase"}],"aggregates":[{"op":"count"}]}`},
	{"revenue per week by category", "week", 0.2, false, `{"where":[{"column":"type","eq":"purchase"}],"group_by":[{"column":"category","keys":["bread","cake","coffee"]}],"aggregates":[{"op":"count"},{"op":"sum","column":"amount","lower":0,"upper":50}]}`},
	{"visits per month by channel", "month", 0.5, true, `{"group_by":[{"column":"channel","keys":["web","app","store"]}],"aggregates":[{"op":"count"}]}`},
	{"customers per day", "day", 0.05, false, `{"aggregates":[{"op":"distinct_customers"}]}`},
	{"events per week by type", "week", 0.1, true, `{"group_by":[{"column":"type","keys":["purchase","view"]}],"aggregates":[{"op":"count"}]}`},
	{"revenue per month", "month", 0.5, false, `{"where":[{"column":"type","eq":"purchase"}],"aggregates":[{"op":"sum","column":"amount","lower":0,"upper":50}]}`},
}

// benchClock is the server's simulated clock.
type benchClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *benchClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *benchClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// adhocQuery is what a dashboard without views asked at each refresh: the
// view's question over the window shown (the last 35 days), one group per
// cadence bucket, at the view's ε.
func adhocQuery(query, cadence string, epsilon float64, from, to time.Time) ([]byte, error) {
	var q map[string]any
	if err := json.Unmarshal([]byte(query), &q); err != nil {
		return nil, err
	}
	where, _ := q["where"].([]any)
	q["where"] = append(where, map[string]any{"column": "ts", "gte": from.Format(time.RFC3339), "lt": to.Format(time.RFC3339)})
	groups, _ := q["group_by"].([]any)
	q["group_by"] = append([]any{map[string]any{"time": cadence}}, groups...)
	q["epsilon"] = epsilon
	q["bounds"] = map[string]any{"max_groups": 8}
	return json.Marshal(q)
}

// RunViews runs the views benchmark (see `privalytics bench views`).
func RunViews(ctx context.Context, out io.Writer, start StartFunc, opt ViewsOptions) error {
	begin := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &benchClock{t: begin}
	app, stop, err := start(ctx, "privalytics-bench-views-", ServerOptions{Now: clock.now})
	if err != nil {
		return err
	}
	defer stop()
	op := client.New(app.URL(), app.OperatorKey())
	tenant := func(id, period string, eps float64) (*client.Client, *client.Client, []*client.Client, error) {
		res, err := op.CreateTenant(ctx, wire.CreateTenantRequest{ID: id, Budget: wire.Cost{Epsilon: eps, Delta: 1e-5}, Period: period})
		if err != nil {
			return nil, nil, nil, err
		}
		admin := op.WithToken(res.AdminKey.Token)
		ik, err := admin.CreateKey(ctx, "ingest", wire.RoleIngest)
		if err != nil {
			return nil, nil, nil, err
		}
		var users []*client.Client
		for i := range opt.Users {
			k, err := admin.CreateKey(ctx, fmt.Sprintf("marketer%d", i), wire.RoleQuery)
			if err != nil {
				return nil, nil, nil, err
			}
			users = append(users, op.WithToken(k.Token))
		}
		return admin, op.WithToken(ik.Token), users, nil
	}
	vAdmin, vIngest, vUsers, err := tenant("views", "month", 10)
	if err != nil {
		return err
	}
	aAdmin, aIngest, aUsers, err := tenant("adhoc", "lifetime", 1e6)
	if err != nil {
		return err
	}
	var ids []string
	for _, v := range benchViews {
		spec := wire.ViewSpec{Name: v.name, Cadence: v.cadence, Epsilon: v.epsilon, SoFar: v.soFar, Start: begin.Format(time.DateOnly), Query: json.RawMessage(v.query)}
		created, err := vUsers[0].CreateView(ctx, spec)
		if err != nil {
			return fmt.Errorf("view %s: %w", v.name, err)
		}
		ids = append(ids, created.ID)
	}
	if _, err := vUsers[0].CreateDashboard(ctx, wire.CreateDashboard{Name: "shop", ViewIDs: ids}); err != nil {
		return err
	}

	fmt.Fprintf(out, "views: %d simulated days, a dashboard of %d views refreshed hourly by %d users, %d events ingested every hour …\n", opt.Days, len(ids), opt.Users, opt.EventsPerHour)
	rng := rand.New(rand.NewPCG(7, 11))
	end := begin.AddDate(0, 0, opt.Days)
	reads, adhocReads := 0, 0
	var mu sync.Mutex
	for now := begin; now.Before(end); now = now.Add(time.Hour) {
		clock.set(now)
		var lines bytes.Buffer
		for range opt.EventsPerHour {
			ts := now.Add(-time.Duration(rng.IntN(3600)) * time.Second)
			fmt.Fprintf(&lines, `{"customer_id":"c%d","ts":%q,"type":%q,"channel":%q,"category":%q,"amount":%d}`+"\n", rng.IntN(500), ts.Format(time.RFC3339),
				[]string{"purchase", "view"}[rng.IntN(2)], []string{"web", "app", "store"}[rng.IntN(3)], []string{"bread", "cake", "coffee"}[rng.IntN(3)], 1+rng.IntN(40))
		}
		for _, c := range []*client.Client{vIngest, aIngest} {
			if _, err := c.Ingest(ctx, lines.Bytes(), client.IngestOptions{}); err != nil {
				return err
			}
		}
		from := now.AddDate(0, 0, -35)
		// The view readers at once (they share the releases); the ad-hoc
		// readers one after the other, so the second and third find the
		// first's answer in the cache, as they would a minute apart.
		var wg sync.WaitGroup
		errs := make(chan error, len(vUsers))
		for u := range vUsers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, id := range ids {
					if _, err := vUsers[u].ViewReleases(ctx, id, from.Format(time.DateOnly), ""); err != nil {
						errs <- err
						return
					}
					mu.Lock()
					reads++
					mu.Unlock()
				}
			}()
		}
		for u := range aUsers {
			for _, v := range benchViews {
				q, err := adhocQuery(v.query, v.cadence, v.epsilon, from, now)
				if err == nil {
					_, err = aUsers[u].QueryJSON(ctx, q)
				}
				if err != nil {
					return fmt.Errorf("ad-hoc %s: %w", v.name, err)
				}
				adhocReads++
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			return err
		}
	}
	vb, err := vAdmin.Budget(ctx)
	if err != nil {
		return err
	}
	ab, err := aAdmin.Budget(ctx)
	if err != nil {
		return err
	}
	var months []string
	for _, p := range vb.Periods {
		months = append(months, fmt.Sprintf("%s ε %.4g", p.Period, p.Spent.Epsilon))
	}
	ratio := ab.Spent.Epsilon / vb.Spent.Epsilon

	// Latency: reads of the dashboard's views at the end, nothing due.
	lat := make([]time.Duration, 0, opt.Reads)
	from := end.AddDate(0, 0, -35).Format(time.DateOnly)
	for i := range opt.Reads {
		t0 := time.Now()
		if _, err := vUsers[i%len(vUsers)].ViewReleases(ctx, ids[i%len(ids)], from, ""); err != nil {
			return err
		}
		lat = append(lat, time.Since(t0))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p50, p99 := lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]

	rows := []benchRow{
		{fmt.Sprintf("ε charged for the %d-view dashboard, %d days (%d reads)", len(ids), opt.Days, reads), fmt.Sprintf("ε %.4g", vb.Spent.Epsilon), "", ""},
		{"  per month of data (a week across two months draws on both)", strings.Join(months, ", "), "", ""},
		{fmt.Sprintf("ε charged for the same reads as ad-hoc queries (%d)", adhocReads), fmt.Sprintf("ε %.4g", ab.Spent.Epsilon), "", ""},
		{"ad-hoc ÷ views", fmt.Sprintf("%.0f×", ratio), "≥ 100×", verdict(ratio >= 100)},
		{fmt.Sprintf("view read latency over HTTP, %d reads", len(lat)), fmt.Sprintf("p50 %s, p99 %s", p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond)), "p99 ≤ 10 ms", verdict(p99 <= 10*time.Millisecond)},
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\n%d CPUs, %s\n", runtime.NumCPU(), runtime.Version())
	fmt.Fprintln(tw, "figure\tmeasured\ttarget\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.figure, r.measured, r.target, r.verdict)
	}
	return tw.Flush()
}
