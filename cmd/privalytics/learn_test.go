package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLearnCLI trains a model across simulated locations, scores a location's
// own file locally with it, and audits predictions: the wiring of `learn`.
func TestLearnCLI(t *testing.T) {
	t.Parallel()
	data := filepath.Join("..", "..", "..", "shared", "data", "bank_marketing.csv")
	if _, err := os.Stat(data); err != nil {
		t.Skipf("SKIPPED: needs the bank-marketing file at %s (present in CI, absent in a fresh clone): %v", data, err)
	}
	dir := t.TempDir()
	model := filepath.Join(dir, "model-v1.json")
	out := mustCLI(t, "learn", "train", "--data", data, "--kind", "ridge", "--label", "age", "--split", "job", "--out", model)
	if !strings.Contains(out, "ridge test R²: federated") {
		t.Fatalf("train printed %q", out)
	}
	if _, err := runCLIStdout(t, "learn", "train", "--data", data, "--kind", "ridge", "--label", "age", "--out", model); err == nil {
		t.Fatal("train overwrote an existing model version")
	}
	out = mustCLI(t, "learn", "train", "--data", data, "--kind", "ridge", "--label", "age", "--models", dir, "--name", "age")
	if !strings.Contains(out, "stored as age version 1") {
		t.Fatalf("train --name printed %q", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "age", "v1.json")); err != nil {
		t.Fatal(err)
	}
	scores := filepath.Join(dir, "scores.csv")
	mustCLI(t, "learn", "score", "--model", model, "--csv", data, "--out", scores)
	b, err := os.ReadFile(scores)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 11436 || !strings.HasSuffix(lines[0], ";score") {
		t.Fatalf("scores: %d lines, header %q", len(lines), lines[0])
	}
	preds := filepath.Join(dir, "preds.csv")
	if err := os.WriteFile(preds, []byte("group,score,y\n"+strings.Repeat("a,0.9,yes\na,0.2,no\nb,0.3,yes\nb,0.1,no\n", 500)), 0o600); err != nil {
		t.Fatal(err)
	}
	report := mustCLI(t, "learn", "audit", "--csv", preds, "--groups", "a,b", "--attribute", "store")
	if !strings.Contains(report, "# Fairness audit by store") || !strings.Contains(report, "**b**") || !strings.Contains(report, "four-fifths") {
		t.Fatalf("audit report:\n%s", report)
	}
}
