package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/internal/bench"
	"github.com/privalytics/privalytics/synth"
)

func demoCommand() *cobra.Command {
	var (
		events  int
		seed    uint64
		addr    string
		dataDir string
		noWait  bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start a server, load a synthetic shop through the API, and show DP answers",
		Long: `demo starts a server on 127.0.0.1 with a fresh data directory, creates a demo
tenant, generates a synthetic retail dataset (deterministic by --seed), sends it
through the real HTTP ingest API, runs a handful of differentially private
queries, prints them with 95% intervals and the budget left, and keeps serving
until Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), demoOptions{events: events, seed: seed, addr: addr, dataDir: dataDir, wait: !noWait})
		},
	}
	cmd.Flags().IntVar(&events, "events", 1_000_000, "synthetic events to generate")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "seed of the synthetic dataset")
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "listen address; if taken, a free port on 127.0.0.1 is used")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data directory (default: a new temporary directory, removed on exit)")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "exit after the queries instead of serving until Ctrl-C")
	return cmd
}

type demoOptions struct {
	events  int
	seed    uint64
	addr    string
	dataDir string
	wait    bool
}

func runDemo(ctx context.Context, out io.Writer, opt demoOptions) error {
	start := time.Now()
	cfg := DefaultConfig()
	cfg.Addr = opt.addr
	cfg.LogLevel = "warn"
	if opt.dataDir == "" {
		dir, err := os.MkdirTemp("", "privalytics-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.DataDir = dir
	} else {
		cfg.DataDir = opt.dataDir
	}
	cfg.MasterKeyFile = cfg.DataDir + "/master.key"
	if err := cfg.Validate(); err != nil {
		return err
	}
	app, err := openApp(ctx, cfg, appOptions{})
	if err != nil && strings.Contains(err.Error(), "listen on") {
		cfg.Addr = "127.0.0.1:0"
		app, err = openApp(ctx, cfg, appOptions{})
	}
	if err != nil {
		return err
	}
	if app.OperatorToken == "" {
		app.close()
		return errors.New("demo needs a fresh data directory; omit --data-dir or point it at an empty directory")
	}
	serveCtx, stopServing := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var serveErr error
	wg.Add(1)
	go func() { defer wg.Done(); serveErr = app.serve(serveCtx) }()
	defer func() { stopServing(); wg.Wait() }()

	fmt.Fprintf(out, "Privalytics demo — server at %s (data in %s)\n\n", app.URL(), cfg.DataDir)
	op := client.New(app.URL(), app.OperatorToken)
	created, err := op.CreateTenant(ctx, demoTenant())
	if err != nil {
		return fmt.Errorf("create demo tenant: %w", err)
	}
	admin := op.WithToken(created.AdminKey.Token)
	ingestKey, err := admin.CreateKey(ctx, "demo-ingest", wire.RoleIngest)
	if err != nil {
		return err
	}
	queryKey, err := admin.CreateKey(ctx, "demo-marketer", wire.RoleQuery)
	if err != nil {
		return err
	}

	gcfg := synth.DefaultConfig()
	gcfg.Seed, gcfg.Events = opt.seed, opt.events
	n, elapsed, err := ingestSynthetic(ctx, admin.WithToken(ingestKey.Token), gcfg, out)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Ingested %d events through POST /v1/events in %.1fs (%.0f events/s, fsynced before each ack)\n\n", n, elapsed.Seconds(), float64(n)/elapsed.Seconds())

	marketer := admin.WithToken(queryKey.Token)
	for _, dq := range demoQueries(gcfg) {
		res, err := marketer.Query(ctx, dq.query)
		if err != nil {
			return fmt.Errorf("%s: %w", dq.title, err)
		}
		printResult(out, dq.title, res)
	}
	if b, err := marketer.Budget(ctx); err == nil {
		fmt.Fprintf(out, "Privacy budget of tenant %q: ε %.2f of %.2f left (δ %.2g of %.2g).\n", b.TenantID, b.Remaining.Epsilon, b.Total.Epsilon, b.Remaining.Delta, b.Total.Delta)
	}
	fmt.Fprintf(out, "Demo ready in %.1fs.\n\n", time.Since(start).Seconds())
	fmt.Fprintf(out, "Server:          %s\nDashboard:       %s/dashboard/ (sign in with the query key)\nQuery API key:   %s\nIngest API key:  %s\nAdmin API key:   %s\n\n", app.URL(), app.URL(), queryKey.Token, ingestKey.Token, created.AdminKey.Token)
	fmt.Fprintf(out, "Try:\n  curl -s -X POST %s/v1/queries -H 'Authorization: Bearer %s' \\\n    -d '{\"group_by\":[{\"column\":\"channel\"}],\"aggregates\":[{\"op\":\"distinct_customers\"}],\"epsilon\":0.5}'\n\n", app.URL(), queryKey.Token)
	if !opt.wait {
		return nil
	}
	fmt.Fprintln(out, "Serving until Ctrl-C.")
	<-ctx.Done()
	stopServing()
	wg.Wait()
	return serveErr
}

// ingestSynthetic sends the generator's events through the benchmark
// harness's loader (NDJSON batches from a few concurrent senders, as a busy
// web shop would), with a progress bar for a terminal.
func ingestSynthetic(ctx context.Context, c *client.Client, cfg synth.Config, out io.Writer) (int, time.Duration, error) {
	bar := progressbar.NewOptions(cfg.Events, progressbar.OptionSetWriter(out), progressbar.OptionSetDescription("ingesting"),
		progressbar.OptionShowCount(), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish(),
		progressbar.OptionSetVisibility(isTerminal(out)))
	start := time.Now()
	n, err := bench.Stream(ctx, c, cfg, 20_000, 4, func(rows int) { _ = bar.Add(rows) })
	_ = bar.Finish()
	if err != nil {
		return 0, 0, fmt.Errorf("ingest: %w", err)
	}
	return n, time.Since(start), nil
}

type demoQuery struct {
	title string
	query *wire.Query
}

func ptr(v float64) *float64 { return &v }

// demoQueries are the questions a marketer asks first.
func demoQueries(cfg synth.Config) []demoQuery {
	from := cfg.Start.Format(time.DateOnly)
	to := cfg.Start.AddDate(0, 0, cfg.Days).Format(time.DateOnly)
	period := wire.Filter{Column: "ts", Gte: from, Lt: to}
	purchases := wire.Filter{Column: "type", In: []any{privalytics.EventPurchase}}
	return []demoQuery{
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

// printResult prints a result as an aligned table: one column per key, and per
// aggregate its value with the interval.
func printResult(out io.Writer, title string, r *wire.Result) {
	fmt.Fprintf(out, "%s\n", title)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	var hdr []string
	hdr = append(hdr, r.GroupBy...)
	for _, a := range r.Aggregates {
		hdr = append(hdr, a.Name, fmt.Sprintf("%.0f%% interval", r.Confidence*100))
	}
	fmt.Fprintln(tw, strings.Join(hdr, "\t")+"\t")
	for _, row := range r.Rows {
		cols := append([]string{}, row.Key...)
		for i, c := range row.Cells {
			prec := 0
			if r.Aggregates[i].Op == "mean" {
				prec = 2
			}
			cols = append(cols, fmt.Sprintf("%.*f", prec, c.Value), fmt.Sprintf("[%.*f, %.*f]", prec, c.Lower, prec, c.Upper))
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t")
	}
	tw.Flush()
	note := ""
	if r.Thresholded {
		note = "; groups released through DP partition selection"
	}
	cached := ""
	if r.Cached {
		cached = " (cached: no new cost)"
	}
	fmt.Fprintf(out, "  cost ε=%g δ=%g%s%s; budget left ε=%.2f\n\n", r.Cost.Epsilon, r.Cost.Delta, cached, note, remainingEps(r))
}

func remainingEps(r *wire.Result) float64 {
	if r.Budget == nil {
		return 0
	}
	return r.Budget.Remaining.Epsilon
}

// isTerminal reports whether w is a terminal: progress bars are for people, and
// in logs and pipes they are noise.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// demoTenant is the demo's tenant: the default retail schema and purposes, a
// lifetime budget of ε = 10. Its privacy notice is in the README (golden-tested).
func demoTenant() wire.CreateTenantRequest {
	return wire.CreateTenantRequest{ID: "demo", Name: "Demo Bakery & Co.", Budget: wire.Cost{Epsilon: 10, Delta: 1e-5}}
}
