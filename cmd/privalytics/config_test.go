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
