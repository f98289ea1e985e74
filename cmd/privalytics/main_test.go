package main

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// TestMain doubles as the server child of the crash tests: with
// PRIVALYTICS_TEST_CHILD=serve the test binary runs a real server (configured by
// PRIVALYTICS_* variables, like the binary) instead of the tests, prints its URL and
// first-start operator key on stdout, and serves until it is killed.
func TestMain(m *testing.M) {
	if os.Getenv("PRIVALYTICS_TEST_CHILD") == "serve" {
		os.Exit(childServe())
	}
	os.Exit(m.Run())
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
