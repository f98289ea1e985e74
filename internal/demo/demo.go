// Package demo is the data side of `privalytics demo`: the demo tenant and
// its keys, a synthetic shop sent through the real HTTP ingest API, and the
// questions a marketer asks first. Everything goes through the Go SDK, so the
// demo exercises the same path as a customer; the command only starts the
// server and prints.
package demo

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/internal/bench"
	"github.com/privalytics/privalytics/internal/progress"
	"github.com/privalytics/privalytics/synth"
)

// Tenant is the demo's tenant: the default retail schema and purposes, a
// lifetime budget of ε = 10. Its privacy notice is in the README (golden-tested).
func Tenant() wire.CreateTenantRequest {
	return wire.CreateTenantRequest{ID: "demo", Name: "Demo Bakery & Co.", Budget: wire.Cost{Epsilon: 10, Delta: 1e-5}, Period: "lifetime"}
}

// Keys are the demo tenant's API keys, one per role a shop would hand out.
type Keys struct {
	Admin, Ingest, Query string
}

// Setup creates the demo tenant with the operator's client, then an ingest
// key and a query key ("demo-ingest", "demo-marketer").
func Setup(ctx context.Context, operator *client.Client) (*Keys, error) {
	created, err := operator.CreateTenant(ctx, Tenant())
	if err != nil {
		return nil, fmt.Errorf("create demo tenant: %w", err)
	}
	admin := operator.WithToken(created.AdminKey.Token)
	ingest, err := admin.CreateKey(ctx, "demo-ingest", wire.RoleIngest)
	if err != nil {
		return nil, err
	}
	query, err := admin.CreateKey(ctx, "demo-marketer", wire.RoleQuery)
	if err != nil {
		return nil, err
	}
	return &Keys{Admin: created.AdminKey.Token, Ingest: ingest.Token, Query: query.Token}, nil
}

// Run loads the demo into the server at url with the operator's token: the
// tenant and its keys (Setup), cfg's shop sent through the ingest API with a
// progress bar on a terminal, and the Questions answered, all printed to out.
func Run(ctx context.Context, url, operatorToken string, cfg synth.Config, out io.Writer) (*Keys, error) {
	keys, err := Setup(ctx, client.New(url, operatorToken))
	if err != nil {
		return nil, err
	}
	bar := progress.New(out, int64(cfg.Events), "ingesting", false, false)
	n, elapsed, err := Ingest(ctx, client.New(url, keys.Ingest), cfg, bar.Add)
	bar.Finish()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "Ingested %d events through POST /v1/events in %.1fs (%.0f events/s, fsynced before each ack)\n\n", n, elapsed.Seconds(), float64(n)/elapsed.Seconds())
	if err := Ask(ctx, client.New(url, keys.Query), Questions(cfg), out); err != nil {
		return nil, err
	}
	return keys, nil
}

// WriteText prints the keys and how to use them on the server at url.
func (k *Keys) WriteText(out io.Writer, url string) {
	fmt.Fprintf(out, "Server:          %s\nDashboard:       %s/dashboard/ (sign in with the query key)\nQuery API key:   %s\nIngest API key:  %s\nAdmin API key:   %s\n\n", url, url, k.Query, k.Ingest, k.Admin)
	fmt.Fprintf(out, "Try:\n  curl -s -X POST %s/v1/queries -H 'Authorization: Bearer %s' \\\n    -d '{\"group_by\":[{\"column\":\"channel\"}],\"aggregates\":[{\"op\":\"distinct_customers\"}],\"epsilon\":0.5}'\n\n", url, k.Query)
}

// Ingest sends the generator's events through the benchmark harness's loader
// (NDJSON batches of 20,000 from four concurrent senders, as a busy web shop
// would); sent, if not nil, is called with each stored batch's rows.
func Ingest(ctx context.Context, c *client.Client, cfg synth.Config, sent func(rows int)) (int, time.Duration, error) {
	start := time.Now()
	n, err := bench.Stream(ctx, c, cfg, 20_000, 4, sent)
	if err != nil {
		return 0, 0, fmt.Errorf("ingest: %w", err)
	}
	return n, time.Since(start), nil
}

// Question is a titled query.
type Question struct {
	Title string
	Query *wire.Query
}

func ptr(v float64) *float64 { return &v }

// Questions are the questions a marketer asks first, over cfg's data: their
// time filters cover exactly the generated period, so buckets are public.
func Questions(cfg synth.Config) []Question {
	from := cfg.Start.Format(time.DateOnly)
	to := cfg.Start.AddDate(0, 0, cfg.Days).Format(time.DateOnly)
	period := wire.Filter{Column: "ts", Gte: from, Lt: to}
	purchases := wire.Filter{Column: "type", In: []any{privalytics.EventPurchase}}
	return []Question{
		{"Revenue and purchases per month (public time buckets)", &wire.Query{
			Where:      []wire.Filter{purchases, period},
			GroupBy:    []wire.GroupKey{{Time: "month"}},
			Aggregates: []wire.Aggregate{{Name: "purchases", Op: "count"}, {Name: "revenue", Op: "sum", Column: "amount", Lower: ptr(0), Upper: ptr(60)}},
			Bounds:     wire.Bounds{MaxGroups: 2, MaxRowsPerGroup: 4},
			Epsilon:    1,
		}},
		{"Revenue per category (keys chosen by DP partition selection)", &wire.Query{
			Where:      []wire.Filter{purchases},
			GroupBy:    []wire.GroupKey{{Column: "category"}},
			Aggregates: []wire.Aggregate{{Name: "revenue", Op: "sum", Column: "amount", Lower: ptr(0), Upper: ptr(60)}, {Name: "avg_line", Op: "mean", Column: "amount", Lower: ptr(0), Upper: ptr(60)}},
			Bounds:     wire.Bounds{MaxGroups: 2, MaxRowsPerGroup: 3},
			Epsilon:    1, Delta: 1e-6,
		}},
		{"Distinct customers per channel", &wire.Query{
			GroupBy:    []wire.GroupKey{{Column: "channel"}},
			Aggregates: []wire.Aggregate{{Name: "customers", Op: "distinct_customers"}},
			Bounds:     wire.Bounds{MaxGroups: 3},
			Epsilon:    0.5,
		}},
		{"The funnel: events per type", &wire.Query{
			Where:      []wire.Filter{period},
			GroupBy:    []wire.GroupKey{{Column: "type"}},
			Aggregates: []wire.Aggregate{{Name: "events", Op: "count"}, {Name: "customers", Op: "distinct_customers"}},
			Bounds:     wire.Bounds{MaxGroups: 5, MaxRowsPerGroup: 20},
			Epsilon:    0.5,
		}},
	}
}

// Ask runs the questions with the query key's client and prints each answer,
// then the tenant's budget left.
func Ask(ctx context.Context, marketer *client.Client, qs []Question, out io.Writer) error {
	for _, q := range qs {
		res, err := marketer.Query(ctx, q.Query)
		if err != nil {
			return fmt.Errorf("%s: %w", q.Title, err)
		}
		WriteResult(out, q.Title, res)
	}
	// The budget line is a courtesy: the answers above are the demo.
	if b, err := marketer.Budget(ctx); err == nil {
		fmt.Fprintf(out, "Privacy budget of tenant %q: ε %.2f of %.2f left (δ %.2g of %.2g).\n", b.TenantID, b.Remaining.Epsilon, b.Total.Epsilon, b.Remaining.Delta, b.Total.Delta)
	}
	return nil
}

// WriteResult prints a result as an aligned table: one column per key, and
// per aggregate its value with the interval; then its cost and the budget
// left. The query command prints its answers the same way.
func WriteResult(out io.Writer, title string, r *wire.Result) {
	fmt.Fprintf(out, "%s\n", title)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	var hdr []string
	hdr = append(hdr, r.GroupBy...)
	for _, a := range r.Aggregates {
		hdr = append(hdr, a.Name, fmt.Sprintf("%.0f%% interval", r.Confidence*100))
	}
	fmt.Fprintln(tw, strings.Join(hdr, "\t")+"\t")
	hidden := 0
	for _, row := range r.Rows {
		cols := append([]string{}, row.Key...)
		for i, c := range row.Cells {
			prec := 0
			if r.Aggregates[i].Op == "mean" {
				prec = 2
			}
			v := fmt.Sprintf("%.*f", prec, c.Value)
			if c.Hidden {
				v, hidden = v+" (hidden)", hidden+1
			}
			cols = append(cols, v, fmt.Sprintf("[%.*f, %.*f]", prec, c.Lower, prec, c.Upper))
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t")
	}
	tw.Flush()
	note := ""
	if r.Thresholded {
		note = "; groups released through DP partition selection"
	}
	if hidden > 0 {
		note += fmt.Sprintf("; %d of the cells hidden (too few customers for this ε): read them as unknown", hidden)
	}
	cached := ""
	if r.Cached {
		cached = " (cached: no new cost)"
	}
	remaining := 0.0
	if r.Budget != nil {
		remaining = r.Budget.Remaining.Epsilon
	}
	fmt.Fprintf(out, "  cost ε=%g δ=%g%s%s; budget left ε=%.2f\n\n", r.Cost.Epsilon, r.Cost.Delta, cached, note, remaining)
}
