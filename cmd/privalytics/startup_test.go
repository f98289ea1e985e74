package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/store/events"
	"github.com/privalytics/privalytics/store/keyring"
)

// startupConfig is the configuration of a server on dir for the start-up tests.
func startupConfig(dir string) Config {
	cfg := DefaultConfig()
	cfg.RatePerKey = 0
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = dir
	cfg.MasterKeyFile = filepath.Join(dir, "master.key")
	cfg.LogLevel = "warn"
	return cfg
}

// runOnce starts a server on dir, lets use call it, and stops it.
func runOnce(t *testing.T, cfg Config, use func(a *App)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	app, err := openApp(ctx, cfg, appOptions{logOutput: io.Discard})
	if err != nil {
		cancel()
		t.Fatalf("openApp: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- app.serve(ctx) }()
	use(app)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// A lost or damaged master key or metadata database is never silently
// recreated over existing events: start refuses, says what to restore, and
// creates nothing.
func TestStartRefusesLostKeyOrMetadata(t *testing.T) {
	base := t.TempDir()
	runOnce(t, startupConfig(base), func(a *App) {
		ctx := context.Background()
		op := client.New(a.URL(), a.OperatorToken)
		res, err := op.CreateTenant(ctx, wire.CreateTenantRequest{Period: "lifetime", ID: "shop", Budget: wire.Cost{Epsilon: 10}})
		if err != nil {
			t.Fatal(err)
		}
		_, body := rightsEvents([]string{"alice", "bob"}, 3)
		ik, err := op.WithToken(res.AdminKey.Token).CreateKey(ctx, "ingest", wire.RoleIngest)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := op.WithToken(ik.Token).Ingest(ctx, body, client.IngestOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	otherKey := base64.StdEncoding.EncodeToString([]byte("testInsecureOtherMasterKey-32byt"))
	for _, tc := range []struct {
		name   string
		damage func(dir string, cfg *Config)
		want   string
		absent string // a file the refusal must not create
	}{
		{"master key deleted", func(dir string, _ *Config) { os.Remove(filepath.Join(dir, "master.key")) }, "master key file " + "DIR/master.key is missing", "master.key"},
		{"another master key", func(_ string, cfg *Config) { cfg.MasterKey = otherKey }, "not the master key the data directory was set up with", ""},
		{"meta.db deleted", func(dir string, _ *Config) { os.Remove(filepath.Join(dir, "meta.db")) }, "metadata database DIR/meta.db is missing", "meta.db"},
		{"meta.db emptied", func(dir string, _ *Config) { os.Truncate(filepath.Join(dir, "meta.db"), 0) }, "is empty (no operator key)", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if out, err := exec.Command("cp", "-a", base+"/.", dir).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
			cfg := startupConfig(dir)
			tc.damage(dir, &cfg)
			_, err := openApp(context.Background(), cfg, appOptions{logOutput: io.Discard})
			want := strings.ReplaceAll(tc.want, "DIR", dir)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("openApp error = %v, want one containing %q", err, want)
			}
			if privalytics.ErrorCode(err) != privalytics.ECONFLICT {
				t.Errorf("error code %q, want %q", privalytics.ErrorCode(err), privalytics.ECONFLICT)
			}
			if tc.absent != "" {
				if _, err := os.Stat(filepath.Join(dir, tc.absent)); !os.IsNotExist(err) {
					t.Errorf("the refused start created %s (stat err %v)", tc.absent, err)
				}
			}
		})
	}
	// The undamaged directory still starts, with its tenant.
	runOnce(t, startupConfig(base), func(a *App) {
		if a.OperatorToken != "" {
			t.Error("a restart created a new operator key")
		}
	})
}

// fsck reports a missing log and exits non-zero; repair without --yes changes
// nothing, with --yes it fixes it; fsck is then clean.
func TestFsckAndRepairCommands(t *testing.T) {
	dir := t.TempDir()
	runOnce(t, startupConfig(dir), func(a *App) {
		ctx := context.Background()
		op := client.New(a.URL(), a.OperatorToken)
		res, err := op.CreateTenant(ctx, wire.CreateTenantRequest{Period: "lifetime", ID: "shop", Budget: wire.Cost{Epsilon: 10}})
		if err != nil {
			t.Fatal(err)
		}
		_, body := rightsEvents([]string{"alice"}, 2)
		if _, err := op.WithToken(res.AdminKey.Token).Ingest(ctx, body, client.IngestOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	logPath := filepath.Join(dir, "events", "shop", "wal", "00000001.log")
	if err := os.Remove(logPath); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		var out strings.Builder
		root := rootCommand()
		root.SetOut(&out)
		root.SetArgs(append(args, "--data-dir", dir))
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}
	out, err := run("fsck")
	if err == nil || !strings.Contains(out, "DAMAGED events/shop/wal/00000001.log: is missing") {
		t.Fatalf("fsck: err %v, output:\n%s", err, out)
	}
	if out, err = run("repair"); err == nil || !strings.Contains(out, "run again with --yes") {
		t.Fatalf("repair without --yes: err %v, output:\n%s", err, out)
	}
	if _, err := os.Stat(logPath); !os.IsNotExist(err) {
		t.Fatalf("repair without --yes changed files (stat err %v)", err)
	}
	if out, err = run("repair", "--yes"); err != nil || !strings.Contains(out, "REPAIRED events/shop/wal/00000001.log") {
		t.Fatalf("repair --yes: err %v, output:\n%s", err, out)
	}
	if out, err = run("fsck"); err != nil || !strings.Contains(out, "no damage found") {
		t.Fatalf("fsck after repair: err %v, output:\n%s", err, out)
	}
}

// privalytics backup copies a running server's directory; restore puts it in
// a new directory, on which a server starts with the same operator key and
// the same events.
func TestBackupOfALiveServerRestores(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(t.TempDir(), "backup")
	restored := filepath.Join(t.TempDir(), "restored")
	run := func(args ...string) (string, error) {
		var out strings.Builder
		root := rootCommand()
		root.SetOut(&out)
		root.SetArgs(args)
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}
	var operator string
	runOnce(t, startupConfig(dir), func(a *App) {
		ctx := context.Background()
		operator = a.OperatorToken
		op := client.New(a.URL(), operator)
		res, err := op.CreateTenant(ctx, wire.CreateTenantRequest{Period: "lifetime", ID: "shop", Budget: wire.Cost{Epsilon: 10}})
		if err != nil {
			t.Fatal(err)
		}
		_, body := rightsEvents([]string{"alice", "bob", "carol"}, 4)
		for i := range 5 {
			if _, err := op.WithToken(res.AdminKey.Token).Ingest(ctx, body, client.IngestOptions{IdempotencyKey: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		// A released model (learn/registry keeps them under models/) must
		// come back with the rest.
		model := filepath.Join("models", "shop", "churn", "v1.json")
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, model)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, model), []byte(`{"probe":true}`), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := run("backup", dest, "--data-dir", dir)
		if err != nil || !strings.Contains(out, "backed up 1 tenants") {
			t.Fatalf("backup of the running server: err %v, output:\n%s", err, out)
		}
	})
	out, err := run("restore", dest, "--data-dir", restored)
	if err != nil || !strings.Contains(out, "the restored events check clean") {
		t.Fatalf("restore: err %v, output:\n%s", err, out)
	}
	count := func(d string) int {
		mk, _, err := keyring.LoadOrCreateMasterKey(filepath.Join(d, "master.key"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := events.Open(filepath.Join(d, "events"), events.Options{Encryption: mk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		snap, err := s.Snapshot(context.Background(), "shop", privalytics.DefaultRetailSchema())
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range snap.Chunks {
			n += int(c.Record.NumRows())
		}
		return n
	}
	if raw, err := os.ReadFile(filepath.Join(restored, "models", "shop", "churn", "v1.json")); err != nil || string(raw) != `{"probe":true}` {
		t.Errorf("the model file did not come back with the restore: %q, %v", raw, err)
	}
	if got, want := count(restored), count(dir); got != want || want != 5*12 {
		t.Errorf("the restored directory holds %d events, the original %d (want %d)", got, want, 5*12)
	}
	cfg := startupConfig(restored)
	runOnce(t, cfg, func(a *App) {
		if a.OperatorToken != "" {
			t.Error("the restored server made a new operator key: the metadata was not restored")
		}
		// The tenant exists there, known to the original operator key.
		_, err := client.New(a.URL(), operator).CreateTenant(context.Background(), wire.CreateTenantRequest{Period: "lifetime", ID: "shop", Budget: wire.Cost{Epsilon: 10}})
		if privalytics.ErrorCode(err) != privalytics.ECONFLICT {
			t.Errorf("creating tenant shop again on the restored server with the original operator key: %v, want a conflict", err)
		}
	})
}

// Tenants load in the background at start; /readyz answers 503 naming a
// tenant that failed to load (it said 200 while its requests failed).
func TestReadyzNamesATenantThatFailedToLoad(t *testing.T) {
	dir := t.TempDir()
	runOnce(t, startupConfig(dir), func(a *App) {
		ctx := context.Background()
		op := client.New(a.URL(), a.OperatorToken)
		res, err := op.CreateTenant(ctx, wire.CreateTenantRequest{Period: "lifetime", ID: "shop", Budget: wire.Cost{Epsilon: 10}})
		if err != nil {
			t.Fatal(err)
		}
		_, body := rightsEvents([]string{"alice"}, 2)
		if _, err := op.WithToken(res.AdminKey.Token).Ingest(ctx, body, client.IngestOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	if err := os.Remove(filepath.Join(dir, "events", "shop", "wal", "00000001.log")); err != nil {
		t.Fatal(err)
	}
	runOnce(t, startupConfig(dir), func(a *App) {
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, err := http.Get(a.URL() + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(raw), "failed to load") {
				if !strings.Contains(string(raw), "shop") || !strings.Contains(string(raw), "00000001.log") {
					t.Errorf("/readyz does not name the tenant and file: %s", raw)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz never reported the failed tenant; last: %d %s", resp.StatusCode, raw)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
