package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIngestDryRun runs `privalytics ingest --dry-run` on a preset's sample
// export: it prints the rows and the summary and stores nothing (no server is
// reachable at the address given).
func TestIngestDryRun(t *testing.T) {
	sample := filepath.Join("..", "..", "ingest", "testdata", "presets", "woocommerce_orders.csv")
	root := rootCommand()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"ingest", sample, "--mapping", "woocommerce-orders", "--time-zone", "Europe/Berlin", "--dry-run", "--show", "2", "--server", "http://127.0.0.1:1", "--key", ""})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	for _, want := range []string{
		"CANDLE-LAV", "2024-03-05T13:02:11Z", "24.000", // the first row, in UTC, amount with its point
		"rows kept: 4", "rows skipped: 3", "2 unpaid order", "1 no customer identifier",
		"customers: 2", "time span: 2024-03-05T13:02:11Z to 2024-03-08T15:20:00Z", "Nothing was stored",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "LAMP-XL") {
		t.Errorf("--show 2 printed a third row:\n%s", out.String())
	}
	if !strings.Contains(errOut.String(), "default retail schema") {
		t.Errorf("stderr does not say which schema was used: %q", errOut.String())
	}

	// A schema file that is not one is an error, not a silent fallback.
	bad := filepath.Join(t.TempDir(), "schema.json")
	if err := os.WriteFile(bad, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	root = rootCommand()
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"ingest", sample, "--mapping", "woocommerce-orders", "--dry-run", "--schema", bad})
	if err := root.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "not a JSON schema") {
		t.Errorf("bad --schema: %v", err)
	}
}
