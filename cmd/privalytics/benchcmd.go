package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/internal/bench"
	"github.com/privalytics/privalytics/store/events"
)

func benchCommand() *cobra.Command {
	opt := bench.DefaultOptions()
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure ingest, import, storage and DP query speed; print them beside the targets",
		Long: `bench starts a real server on 127.0.0.1:0 in a temporary directory and measures,
in one process so ratios compare like with like:
  - durable HTTP ingest of NDJSON (fsynced before each ack) on loopback,
  - single events through /v1/track, each durable before its 204, beside GET /healthz
    on the same server and connections (see "bench track", which runs it alone),
  - file import of a CSV through POST /v1/imports,
  - bytes per row on disk after sealing,
  - a DP group-by with contribution bounding over --rows warm rows, and the same
    query on the engine's non-private path (the baseline of the ratio),
  - the process heap with those rows warm,
  - past --scale-rows rows, the same DP query over a second tenant of
    --scale-rows rows, for the scaling ratio,
  - DP query latency over HTTP on 1M rows, and the accuracy on UCI Online Retail,
  - then the utility section (see "bench utility", which runs it alone).
Each timing is the median of --repeat runs. The README's table comes from this command.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return bench.Run(cmd.Context(), cmd.OutOrStdout(), startBenchServer, opt)
		},
	}
	cmd.AddCommand(benchHECommand(), benchViewsCommand(), benchUtilityCommand(), benchTrackCommand())
	f := cmd.Flags()
	f.IntVar(&opt.HTTPRows, "http-rows", opt.HTTPRows, "events sent through HTTP ingest")
	f.IntVar(&opt.ImportRows, "import-rows", opt.ImportRows, "rows in the imported CSV file")
	f.IntVar(&opt.Rows, "rows", opt.Rows, "rows in the store for the query benchmark")
	f.IntVar(&opt.ScaleRows, "scale-rows", opt.ScaleRows, "rows of the second tenant timed for the scaling ratio when --rows is larger (0: skip)")
	f.IntVar(&opt.Repeat, "repeat", opt.Repeat, "runs per query timing (median reported)")
	f.IntVar(&opt.Senders, "senders", opt.Senders, "concurrent HTTP senders")
	f.BoolVar(&opt.Encrypt, "encrypt-at-rest", opt.Encrypt, "encrypt logs and segments, as serve does by default; run with =false to measure the overhead")
	f.StringVar(&opt.CPUProfile, "cpuprofile", "", "write a CPU profile of the timed DP queries to this file (of the file import to FILE.import, of the scaling tenant's to FILE.scale, of the load after the restart to FILE.restart)")
	f.StringVar(&opt.UCI, "uci", opt.UCI, "UCI Online Retail file for the accuracy figure (skipped if absent)")
	f.IntVar(&opt.Track.Requests, "track-requests", opt.Track.Requests, "single events sent to /v1/track (0: skip)")
	f.IntVar(&opt.Track.Senders, "track-senders", opt.Track.Senders, "concurrent senders to /v1/track (browsers at once)")
	return cmd
}

func benchTrackCommand() *cobra.Command {
	opt := bench.DefaultTrackOptions()
	cmd := &cobra.Command{
		Use:   "track",
		Short: "Only the tracking figures: single durable events through /v1/track beside the loopback HTTP ceiling",
		Long: `bench track starts a real server with serve's defaults (its rate limits included),
issues a track key for one origin and sends --requests single events to /v1/track from
--senders connections, as a shop's pages do: one event per request, each durable before
its 204 (concurrent events of a tenant share one append and one fsync). It checks every
acknowledged event was stored, then sends as many GET /healthz on the same server and
connections — the loopback HTTP ceiling of this process — and prints both rates and their
ratio beside the target (≥ 20,000 requests/s on 2 cores). Senders and server share the
machine's cores.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return bench.RunTrack(cmd.Context(), cmd.OutOrStdout(), startBenchServer, opt)
		},
	}
	cmd.Flags().IntVar(&opt.Requests, "requests", opt.Requests, "single events sent")
	cmd.Flags().IntVar(&opt.Senders, "senders", opt.Senders, "concurrent senders (browsers at once)")
	return cmd
}

func benchHECommand() *cobra.Command {
	opt := bench.DefaultHEOptions()
	cmd := &cobra.Command{
		Use:   "he",
		Short: "Measure the encrypted mean of 1M values end to end over loopback",
		Long: `bench he starts a processor (serve --role processor) on 127.0.0.1:0 in a temporary
directory and, per preset, times the whole outsourced-analyst path for a mean of
--rows values in [0, 500]:

  encrypt   the owner encrypts the column (in memory; CSV parsing not included)
  upload    POST /v1/he/datasets: evaluation keys + table, decoded by the processor
  compute   POST …/jobs, the processor computes Σx, the owner polls until done
  download  GET …/jobs/{id}/result
  decrypt   decrypt with noise flooding, decode, divide by the row count

Key generation is a one-off and not timed. Owner and processor share this
process and the machine's cores. Each figure is the median of --repeat runs
after one warm-up; the reference column is ../shared/BENCHMARKS.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return bench.RunHE(cmd.Context(), cmd.OutOrStdout(), startBenchServer, opt)
		},
	}
	cmd.Flags().IntVar(&opt.Rows, "rows", opt.Rows, "values in the encrypted column")
	cmd.Flags().IntVar(&opt.Repeat, "repeat", opt.Repeat, "timed runs per preset (median reported)")
	cmd.Flags().StringSliceVar(&opt.Presets, "preset", opt.Presets, "presets to measure")
	return cmd
}

func franchiseBenchCommand() *cobra.Command {
	opt := bench.DefaultFranchiseOptions()
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a federation round end to end on loopback and print per-party costs",
		Long: `bench starts a real server on 127.0.0.1:0 in a temporary directory, sets up a
federation of --locations locations (threshold --threshold) as goroutines
speaking HTTP, then times one round with a full 8192-slot aggregate (4096
categories × count and sum): every location aggregates its CSV, adds its DP
noise share, encrypts and uploads; t locations send decryption shares; the
franchisor downloads and decrypts. The round time is printed beside the
target of BENCHMARKS.md (≤ 2 s for 10 locations), then each party's costs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return bench.RunFranchise(cmd.Context(), cmd.OutOrStdout(), startBenchServer, opt)
		},
	}
	cmd.Flags().IntVar(&opt.Locations, "locations", opt.Locations, "locations N")
	cmd.Flags().IntVar(&opt.Threshold, "threshold", opt.Threshold, "threshold t")
	cmd.Flags().IntVar(&opt.Rows, "rows", opt.Rows, "purchase rows per location")
	return cmd
}

// benchApp shows a running App to the benchmark harness.
type benchApp struct {
	app      *App
	cfg      Config
	operator string           // the key made at the first start
	now      func() time.Time // the server's clock; nil is the real one
	cancel   context.CancelFunc
	done     chan struct{}
}

func (b *benchApp) URL() string                 { return b.app.URL() }
func (b *benchApp) OperatorKey() string         { return b.operator }
func (b *benchApp) DataDir() string             { return b.app.cfg.DataDir }
func (b *benchApp) Events() *events.Store       { return b.app.events }
func (b *benchApp) Meta() privalytics.MetaStore { return b.app.meta }

// Restart stops the App as SIGTERM would and opens it again on its directory.
func (b *benchApp) Restart(ctx context.Context) (bench.Server, time.Time, error) {
	b.cancel()
	<-b.done
	opened := time.Now()
	if err := b.start(ctx); err != nil {
		return nil, opened, err
	}
	return b, opened, nil
}

func (b *benchApp) start(ctx context.Context) error {
	app, err := openApp(ctx, b.cfg, appOptions{logOutput: io.Discard, now: b.now})
	if err != nil {
		return err
	}
	serveCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = app.serve(serveCtx) }()
	b.app, b.cancel, b.done = app, cancel, done
	return nil
}

// startBenchServer is the harness's StartFunc: the real App on 127.0.0.1:0 in
// a new temporary directory, quiet, with the benchmark's changes to the
// defaults.
func startBenchServer(ctx context.Context, prefix string, opt bench.ServerOptions) (bench.Server, func(), error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, nil, err
	}
	cfg := DefaultConfig()
	cfg.Addr, cfg.DataDir, cfg.LogLevel = "127.0.0.1:0", dir, "error"
	cfg.MasterKeyFile = filepath.Join(dir, "master.key")
	if opt.SealRows > 0 {
		cfg.SealRows = opt.SealRows
	}
	cfg.EncryptAtRest = !opt.PlaintextAtRest
	if opt.Processor {
		cfg.Role = "processor"
	}
	if opt.Now != nil {
		cfg.RatePerKey = 0 // a simulated clock would make every request of an hour one burst
	}
	b := &benchApp{cfg: cfg, now: opt.Now}
	if err := b.start(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	b.operator = b.app.OperatorToken
	return b, func() { b.cancel(); <-b.done; os.RemoveAll(dir) }, nil
}

func benchViewsCommand() *cobra.Command {
	opt := bench.DefaultViewsOptions()
	cmd := &cobra.Command{
		Use:   "views",
		Short: "Budget of a 6-view dashboard over simulated days vs the same reads as ad-hoc queries; view read latency",
		Long: `bench views starts a real server on 127.0.0.1:0 whose clock is simulated, and runs
--days days of a shop ingesting --events-per-hour events every hour into two tenants:
one reads a dashboard of 6 views (day, week and month cadences, two with so-far
releases) refreshed every hour by --users users; the other asks the same questions
as ad-hoc queries over the same windows, as a dashboard did before views. It prints
the ε each spent and their ratio (target ≥ 100× less for views), then the p50/p99
latency of --reads view reads over HTTP (target p99 ≤ 10 ms).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return bench.RunViews(cmd.Context(), cmd.OutOrStdout(), startBenchServer, opt)
		},
	}
	f := cmd.Flags()
	f.IntVar(&opt.Days, "days", opt.Days, "simulated days")
	f.IntVar(&opt.Users, "users", opt.Users, "users refreshing the dashboard every hour")
	f.IntVar(&opt.EventsPerHour, "events-per-hour", opt.EventsPerHour, "events ingested every simulated hour")
	f.IntVar(&opt.Reads, "reads", opt.Reads, "view reads timed for the latency figure")
	return cmd
}

func benchUtilityCommand() *cobra.Command {
	opt := bench.DefaultUtilityOptions()
	cmd := &cobra.Command{
		Use:   "utility",
		Short: "Only the utility section: a marketer's workload answered with today's defaults, automatic tuning and the hindsight ceiling",
		Long: `bench utility starts a real server, sends the demo's shop through HTTP ingest and
answers twelve dashboard questions (revenue, purchases and customers per month; month ×
channel, category and store; per store, category and country; the average line) at
--epsilon each through analytics.Service, three ways: today's fixed defaults (L0 4, L∞ 8,
per-row clamp [0, 60], Laplace), automatic tuning, and the best fixed per-group parameters
found with hindsight on the exact data (the ceiling). Errors are against exact answers
computed by plain loops over the generator's rows. It prints per question the ε spent, the
median cell error and the share of cells within 10%, the workload totals and the targets.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return bench.RunUtility(cmd.Context(), cmd.OutOrStdout(), startBenchServer, opt)
		},
	}
	f := cmd.Flags()
	f.IntVar(&opt.Customers, "customers", opt.Customers, "customers in the synthetic shop")
	f.IntVar(&opt.Events, "events", opt.Events, "events in the synthetic shop")
	f.Float64Var(&opt.Epsilon, "epsilon", opt.Epsilon, "ε of each question")
	f.IntVar(&opt.Runs, "runs", opt.Runs, "noisy runs per configuration (cells pooled)")
	f.IntVar(&opt.Candidates, "candidates", opt.Candidates, "hindsight grid points, best ranked on the exact data, run through the engine per question")
	return cmd
}
