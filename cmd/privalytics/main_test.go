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
	os.Exit(m.Run())
}

// childCLI runs the privalytics command line with the arguments in
// PRIVALYTICS_TEST_ARGS (a JSON array), as the binary would.
func childCLI() int {
	var args []string
	if err := json.Unmarshal([]byte(os.Getenv("PRIVALYTICS_TEST_ARGS")), &args); err != nil {
		fmt.Fprintln(os.Stderr, "PRIVALYTICS_TEST_ARGS:", err)
		return 2
	}
	cmd := rootCommand()
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
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
