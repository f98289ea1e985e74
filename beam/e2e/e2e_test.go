// Package e2e runs a query through the real HTTP server on a local Beam runner.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/analytics"
	"github.com/privalytics/privalytics/analytics/beamjob"
	"github.com/privalytics/privalytics/api"
	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/store/audit"
	"github.com/privalytics/privalytics/store/events"
	"github.com/privalytics/privalytics/store/keyring"
	"github.com/privalytics/privalytics/store/sqlite"
)

// binary is the privalytics-beam pipeline, built once for the package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "privalytics-beam-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "privalytics-beam")
	out, err := exec.Command("go", "build", "-o", binary, "../cmd/privalytics-beam").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building the pipeline binary: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type server struct {
	srv   *httptest.Server
	admin string
	audit *audit.Log
}

func newServer(t *testing.T) *server {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	meta, err := sqlite.Open(ctx, filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.Open(filepath.Join(dir, "events"), events.Options{SealRows: 250_000})
	if err != nil {
		t.Fatal(err)
	}
	mk, _, err := keyring.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	al, err := audit.Open(filepath.Join(dir, audit.FileName))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng := &beamjob.Engine{Binary: binary, Runner: "direct", WorkDir: dir, Log: log}
	s := api.New(api.Deps{Meta: meta, Events: ev, Keys: mk, Audit: al, Mechanisms: dp.Secure(), Limits: api.DefaultLimits(), Logger: log,
		Engines: map[string]analytics.RemoteEngine{"beam": eng}})
	s.SetReady(true)
	srv := httptest.NewServer(s.Handler()) // 127.0.0.1
	t.Cleanup(func() { srv.Close(); ev.Close(); meta.Close(); al.Close() })
	op, err := s.IssueKey(ctx, "", "operator", privalytics.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	sv := &server{srv: srv, audit: al}
	var created api.CreateTenantResponse
	sv.do(t, "/v1/tenants", op.Token, "application/json", []byte(`{"id":"shop","budget":{"epsilon":10},"period":"lifetime"}`), http.StatusCreated, &created)
	sv.admin = created.AdminKey.Token
	return sv
}

func (s *server) do(t *testing.T, path, token, ct string, body []byte, want int, out any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.srv.URL+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", ct)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("POST %s: %d %s, want %d", path, resp.StatusCode, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("POST %s: %v in %s", path, err, raw)
		}
	}
}

// rows is the size of the E2E snapshot: at least 1M by default.
func rows(t *testing.T) int {
	if v := os.Getenv("PRIVALYTICS_BEAM_E2E_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("PRIVALYTICS_BEAM_E2E_ROWS=%q: %v", v, err)
		}
		return n
	}
	return 1_000_000
}

func TestBeamQueryOverHTTP(t *testing.T) {
	s := newServer(t)
	n := rows(t)
	channels := []string{"web", "app", "store"}
	start := time.Now()
	for lo := 0; lo < n; lo += 100_000 {
		var b strings.Builder
		for i := lo; i < min(n, lo+100_000); i++ {
			fmt.Fprintf(&b, `{"customer_id":"c%d","ts":"2025-03-%02dT10:00:00Z","type":"purchase","channel":"%s","amount":"%d.%02d"}`+"\n", i/4, 1+i%28, channels[i%3], i%50, i%100)
		}
		s.do(t, "/v1/events", s.admin, "application/x-ndjson", []byte(b.String()), http.StatusOK, nil)
	}
	t.Logf("ingested %d rows in %s", n, time.Since(start))
	q := []byte(`{"engine":"beam","group_by":[{"column":"channel"}],
		"aggregates":[{"op":"count"},{"op":"sum","column":"amount","lower":0,"upper":50}],
		"bounds":{"max_groups":3,"max_rows_per_group":4},"epsilon":1}`)
	start = time.Now()
	var res privalytics.Result
	s.do(t, "/v1/queries", s.admin, "application/json", q, http.StatusOK, &res)
	took := time.Since(start)
	t.Logf("beam query over %d rows: %s (%.0f rows/s end to end)", n, took, float64(n)/took.Seconds())
	if res.Cached || len(res.Rows) != 3 {
		t.Fatalf("answer: cached %v, %d rows; want a fresh answer with the 3 public channels", res.Cached, len(res.Rows))
	}
	for _, r := range res.Rows {
		want := float64(n) / 3 // each channel has a third of the rows
		c := r.Cells[0]
		if !(c.Lower <= c.Value && c.Value <= c.Upper && c.Upper > c.Lower) {
			t.Errorf("%v count %v: interval [%v, %v] must hold the value and have a width", r.Key, c.Value, c.Lower, c.Upper)
		}
		// Laplace, ε/2 on the count, L0·L∞ = 12: |noise| > 600 has probability e^-50.
		if math.Abs(c.Value-want) > 600 {
			t.Errorf("%v count %v, want about %v", r.Key, c.Value, want)
		}
		if s := r.Cells[1]; !(s.Lower <= s.Value && s.Value <= s.Upper && s.Upper > s.Lower) {
			t.Errorf("%v sum %v: interval [%v, %v]", r.Key, s.Value, s.Lower, s.Upper)
		}
	}
	if res.Budget == nil || res.Budget.Spent.Epsilon != 1 {
		t.Fatalf("budget after the query: %+v, want 1 spent (charged once)", res.Budget)
	}
	var again privalytics.Result
	s.do(t, "/v1/queries", s.admin, "application/json", q, http.StatusOK, &again)
	if !again.Cached || again.Snapshot != res.Snapshot || again.Budget.Spent.Epsilon != 1 {
		t.Fatalf("repeat: cached %v, answer %s (first %s), spent %v; want the cached answer at no cost", again.Cached, again.Snapshot, res.Snapshot, again.Budget.Spent.Epsilon)
	}
	entries, err := s.audit.Entries(context.Background(), "shop", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var charged, cached int
	for _, e := range entries {
		if e.Action != analytics.AuditActionQuery {
			continue
		}
		if e.Details["cached"] == "true" {
			cached++
		} else if e.Details["charge_id"] != "" && e.Details["answer_id"] == res.Snapshot {
			charged++
		}
	}
	if charged != 1 || cached != 1 {
		t.Errorf("audit: %d charged and %d cached query entries, want 1 and 1", charged, cached)
	}
}

func TestBeamRefusesWhatItCannotRunForFree(t *testing.T) {
	s := newServer(t)
	var e api.ErrorBody
	s.do(t, "/v1/queries", s.admin, "application/json", []byte(`{"engine":"beam","aggregates":[{"op":"variance","column":"amount","lower":0,"upper":5}],"epsilon":1}`), http.StatusBadRequest, &e)
	var res privalytics.Result
	s.do(t, "/v1/queries", s.admin, "application/json", []byte(`{"aggregates":[{"op":"count"}],"epsilon":1}`), http.StatusOK, &res)
	if res.Budget.Spent.Epsilon != 1 {
		t.Fatalf("spent %v after a refused beam query and one answered query of ε 1: the refusal must cost nothing", res.Budget.Spent.Epsilon)
	}
}
