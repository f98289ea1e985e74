package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/privalytics/privalytics/internal/demo"
	"github.com/privalytics/privalytics/internal/progress"
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
	gcfg := synth.DefaultConfig()
	gcfg.Seed, gcfg.Events = opt.seed, opt.events
	keys, err := demo.Run(ctx, app.URL(), app.OperatorToken, gcfg, out)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Demo ready in %.1fs.\n\n", time.Since(start).Seconds())
	keys.WriteText(out, app.URL())
	if !opt.wait {
		return nil
	}
	fmt.Fprintln(out, "Serving until Ctrl-C.")
	<-ctx.Done()
	stopServing()
	wg.Wait()
	return serveErr
}

// printResult prints a query's answer as a table (internal/demo).
var printResult = demo.WriteResult

// isTerminal reports whether w is a terminal (internal/progress).
var isTerminal = progress.IsTerminal
