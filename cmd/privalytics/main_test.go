package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
)

// TestMain doubles as the server child of the crash tests: with
// PRIVALYTICS_TEST_CHILD=serve the test binary runs a real server (configured by
// PRIVALYTICS_* variables, like the binary) instead of the tests, prints its URL and
// first-start operator key on stdout, and serves until it is killed.
func TestMain(m *testing.M) {
	switch os.Getenv("PRIVALYTICS_TEST_CHILD") {
	case "serve":
		os.Exit(childServe())
	case "cli":
		os.Exit(childCLI())
	}
	// The end-to-end tests send query and ingest storms from one key; the per-key
	// rate limit has its own tests, so servers started here (and their child
	// processes, through the environment) run without it.
	os.Setenv("PRIVALYTICS_RATE_PER_KEY", "0")
	os.Exit(m.Run())
}

// childCLI runs the CLI with the arguments in PRIVALYTICS_TEST_ARGS (a JSON
// array), so that end-to-end tests run each party as its own process.
func childCLI() int {
	var args []string
	if err := json.Unmarshal([]byte(os.Getenv("PRIVALYTICS_TEST_ARGS")), &args); err != nil {
		fmt.Fprintln(os.Stderr, "PRIVALYTICS_TEST_ARGS:", err)
		return 2
	}
	root := rootCommand()
	root.SetArgs(args)
	if err := root.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, describe(err))
		return 1
	}
	return 0
}

func childServe() int {
	cfg, err := loadConfig(serveCommand().Flags(), os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	app, err := openApp(context.Background(), cfg, appOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Printf("URL %s\nOPERATOR %s\n", app.URL(), app.OperatorToken)
	if err := app.serve(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
