// Package beamjob is the analytics.RemoteEngine that runs a charged query on
// Apache Beam: it exports the query's snapshot (consent-filtered, pseudonymised
// Parquet) to a job directory, runs the privalytics-beam pipeline binary
// (beam/, its own module, so this module never compiles Beam) on the
// configured runner, waits for it and reads back the released cells. The
// Service has charged the ledger before Run is called; nothing here refunds.
package beamjob

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/analytics"
)

// Engine runs jobs with one pipeline binary and runner.
type Engine struct {
	Binary string   // path of privalytics-beam
	Runner string   // Beam runner: "direct" (default), "prism", "dataflow", "flink"
	Args   []string // more pipeline flags (e.g. --project, --region, --endpoint)
	// WorkDir holds the job directories (snapshot export, spec, cells); they are
	// removed when the job ends. For Dataflow or Flink it must be a path the
	// workers read (docs/beam.md). "": the system temp dir.
	WorkDir string
	// TestMode runs pbeam without noise: exactness tests only, never wired to a server flag.
	TestMode bool
	Log      *slog.Logger

	jobs atomic.Int64
}

// Running is the number of jobs in flight.
func (e *Engine) Running() int64 { return e.jobs.Load() }

// Run implements analytics.RemoteEngine.
func (e *Engine) Run(ctx context.Context, job analytics.RemoteJob) ([]analytics.RemoteCell, error) {
	e.jobs.Add(1)
	defer e.jobs.Add(-1)
	log := e.Log
	if log == nil {
		log = slog.Default()
	}
	dir, err := os.MkdirTemp(e.WorkDir, "beam-job-")
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "beam: job directory: %v", err)
	}
	defer os.RemoveAll(dir)
	key := make([]byte, 32) // fresh per job: pseudonyms never link across jobs
	if _, err := rand.Read(key); err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "beam: %v", err)
	}
	start := time.Now()
	rows, _, err := analytics.ExportSnapshot(ctx, filepath.Join(dir, "snapshot"), job.Snapshot, job.Hidden, key)
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "beam: %v", err)
	}
	spec, err := json.Marshal(job.Spec)
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "beam: %v", err)
	}
	specFile, out := filepath.Join(dir, "spec.json"), filepath.Join(dir, "cells.ndjson")
	if err := os.WriteFile(specFile, spec, 0o600); err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "beam: %v", err)
	}
	runner := e.Runner
	if runner == "" {
		runner = "direct"
	}
	args := append([]string{"--input", filepath.Join(dir, "snapshot"), "--spec", specFile, "--output", out, "--runner", runner}, e.Args...)
	if e.TestMode {
		args = append(args, "--test_mode")
	}
	cmd := exec.CommandContext(ctx, e.Binary, args...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	log.Info("beam job started", "tenant", job.TenantID, "rows", rows, "runner", runner, "export", time.Since(start))
	if err := cmd.Run(); err != nil {
		log.Error("beam job failed", "tenant", job.TenantID, "err", err, "took", time.Since(start))
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "beam: the pipeline failed (%v): %s", err, lastLines(stderr.String(), 5))
	}
	cells, err := ReadCells(out)
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "beam: %v", err)
	}
	log.Info("beam job done", "tenant", job.TenantID, "rows", rows, "cells", len(cells), "took", time.Since(start))
	return cells, nil
}

// ReadCells reads the pipeline's output: one analytics.RemoteCell per line.
func ReadCells(name string) ([]analytics.RemoteCell, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var cells []analytics.RemoteCell
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var c analytics.RemoteCell
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, n, err)
		}
		cells = append(cells, c)
	}
	return cells, sc.Err()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}
