package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// TestConfigPrecedence: defaults < file < environment < flags.
func TestConfigPrecedence(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(file, []byte(`{"addr":"127.0.0.1:1111","seal_rows":5000,"query_timeout":"5s","log_level":"debug"}`), 0o600)
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	bindFlags(fs)
	if err := fs.Parse([]string{"--config", file, "--addr", "127.0.0.1:3333"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PRIVALYTICS_ADDR": "127.0.0.1:2222", "PRIVALYTICS_SEAL_ROWS": "7000"}
	cfg, err := loadConfig(fs, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:3333" || cfg.SealRows != 7000 || cfg.QueryTimeout != 5*time.Second || cfg.LogLevel != "debug" || cfg.MaxBatchRows != 100_000 {
		t.Errorf("got addr %s seal %d timeout %s level %s batch %d", cfg.Addr, cfg.SealRows, cfg.QueryTimeout, cfg.LogLevel, cfg.MaxBatchRows)
	}
}

// TestConfigValidateReportsEverything lists every problem at once.
func TestConfigValidateReportsEverything(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.Addr, c.LogFormat, c.SealRows, c.MaxBatchRows, c.Postgres = "nowhere", "xml", 1, 0, "mysql://x"
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"addr", "log-format", "seal-rows", "max-batch-rows", "postgres"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q not reported in:\n%v", want, err)
		}
	}
}

// TestConfigHumanSizes: sizes take units on flags, in the environment and in
// the file, and every unreadable value is reported at once.
func TestConfigHumanSizes(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(file, []byte(`{"he_max_upload_bytes":"2GiB","he_max_held_bytes":8589934592}`), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	bindFlags(fs)
	if err := fs.Parse([]string{"--config", file, "--max-body-bytes", "64MiB", "--query-timeout", "90s", "--encrypt-at-rest"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PRIVALYTICS_MAX_DECODED_BYTES": "0.5GB"}
	cfg, err := loadConfig(fs, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxBodyBytes != 64<<20 || cfg.MaxDecodedBytes != 500_000_000 || cfg.HEMaxUploadBytes != 2<<30 || cfg.HEMaxHeldBytes != 8<<30 || cfg.QueryTimeout != 90*time.Second || !cfg.EncryptAtRest {
		t.Errorf("got body %d decoded %d upload %d held %d timeout %s encrypt %v", cfg.MaxBodyBytes, cfg.MaxDecodedBytes, cfg.HEMaxUploadBytes, cfg.HEMaxHeldBytes, cfg.QueryTimeout, cfg.EncryptAtRest)
	}
	if got := fs.Lookup("max-body-bytes").Value.Type(); got != "bytes" {
		t.Errorf("--max-body-bytes is of type %q in --help, want bytes", got)
	}

	fs = pflag.NewFlagSet("t", pflag.ContinueOnError)
	bindFlags(fs)
	if err := fs.Parse([]string{"--max-body-bytes", "64 parsecs", "--query-timeout", "soon", "--seal-rows", "many"}); err != nil {
		t.Fatal(err)
	}
	_, err = loadConfig(fs, func(k string) string { return map[string]string{"PRIVALYTICS_HE_MAX_HELD_BYTES": "-1GiB"}[k] })
	for _, want := range []string{"--max-body-bytes", "64MiB", "--query-timeout", "--seal-rows", "PRIVALYTICS_HE_MAX_HELD_BYTES"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q not reported in: %v", want, err)
		}
	}
}

func TestParseBytes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"1024": 1024, "64MiB": 64 << 20, "64MB": 64e6, "1.5GiB": 3 << 29, "500 KB": 500e3, "1TiB": 1 << 40, "7B": 7} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1e30", "12 apples", "9223372036854775807KiB", "NaNMiB"} {
		if got, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) = %d, want an error", in, got)
		}
	}
	for n, want := range map[int64]string{64 << 20: "64MiB", 1 << 30: "1GiB", 1000: "1000", 0: "0", 3 << 29: "1536MiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// FuzzParseBytes: any text either fails or gives a size ≥ 0 that survives
// formatting for --help and reading back.
func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"64MiB", "1.5GiB", "500 KB", "1024", "", "-1", "1e30"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseBytes(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("parseBytes(%q) = %d < 0", s, n)
		}
		if back, err := parseBytes(formatBytes(n)); err != nil || back != n {
			t.Fatalf("%d → %q → %d, %v", n, formatBytes(n), back, err)
		}
	})
}
