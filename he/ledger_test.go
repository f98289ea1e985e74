package he

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp/dptest"
)

// TestLedgerRefusesOverBudget: releases spend the key's budget, each is on
// disk before it is returned, and the release that would pass the budget is
// refused with EBUDGET and not recorded.
func TestLedgerRefusesOverBudget(t *testing.T) {
	t.Parallel()
	secret := filepath.Join(t.TempDir(), "secret.key")
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	if err := CreateLedger(secret, 2.5, now); err != nil {
		t.Fatal(err)
	}
	if err := CreateLedger(secret, 100, now); err == nil {
		t.Fatal("a second CreateLedger replaced the ledger")
	}
	none := dptest.NoNoise()
	pl := &Plain{Job: Job{Op: OpCount}, Header: TableHeader{Rows: 10, RowsPerSubject: 1, Columns: []ColumnSpec{{Name: "x", Kind: KindValue, Max: 1}}}}
	opts := ReleaseOptions{Epsilon: 1, Noise: &none}
	for i := range 2 {
		if _, st, err := ReleaseResult(secret, pl, []byte("result"), opts, 0, now); err != nil || st.Spent != float64(i+1) {
			t.Fatalf("release %d: spent %g, %v", i+1, st.Spent, err)
		}
	}
	_, _, err := ReleaseResult(secret, pl, []byte("result"), opts, 0, now)
	if privalytics.ErrorCode(err) != privalytics.EBUDGET || !strings.Contains(err.Error(), "0.5 of 2.5 left") {
		t.Fatalf("third release of ε = 1 on a budget of 2.5: %v, want %s saying 0.5 of 2.5 left", err, privalytics.EBUDGET)
	}
	st, err := ReadLedger(secret)
	if err != nil || st.Spent != 2 || st.Releases != 2 || st.Budget != 2.5 {
		t.Fatalf("ledger after the refusal = %+v, %v; want 2 releases, ε 2 of 2.5", st, err)
	}
	// What fits still goes, and a budget given later can only lower it.
	if _, _, err := ReleaseResult(secret, pl, []byte("r"), ReleaseOptions{Epsilon: 0.25, Noise: &none}, 5, now); err != nil {
		t.Fatalf("ε = 0.25 with 0.5 left and a --budget of 5: %v", err)
	}
	if _, _, err := ReleaseResult(secret, pl, []byte("r"), ReleaseOptions{Epsilon: 0.25, Noise: &none}, 2.25, now); privalytics.ErrorCode(err) != privalytics.EBUDGET {
		t.Fatalf("ε = 0.25 with 2.25 spent of a lowered budget 2.25: %v, want %s", err, privalytics.EBUDGET)
	}
	if st, _ := ReadLedger(secret); st.Budget != 2.5 {
		t.Errorf("budget after a refused release with a lower --budget: %g, want 2.5 (a budget is recorded with a release)", st.Budget)
	}
	if fi, err := os.Stat(LedgerPath(secret)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("ledger file: %v, %v; want mode 0600", fi, err)
	}
}

// TestLedgerNeedsABudget: a key without a ledger releases only once a budget
// is given; a corrupt line refuses, a torn last line (a crash inside the
// append, before anything was shown) does not.
func TestLedgerNeedsABudget(t *testing.T) {
	t.Parallel()
	secret := filepath.Join(t.TempDir(), "secret.key")
	none := dptest.NoNoise()
	pl := &Plain{Job: Job{Op: OpCount}, Header: TableHeader{Rows: 10, RowsPerSubject: 1, Columns: []ColumnSpec{{Name: "x", Kind: KindValue, Max: 1}}}}
	opts := ReleaseOptions{Epsilon: 1, Noise: &none}
	if _, _, err := ReleaseResult(secret, pl, nil, opts, 0, time.Now()); privalytics.ErrorCode(err) != privalytics.EINVALID || !strings.Contains(err.Error(), "--budget") {
		t.Fatalf("no ledger, no budget: %v, want %s asking for --budget", err, privalytics.EINVALID)
	}
	if _, st, err := ReleaseResult(secret, pl, nil, opts, 3, time.Now()); err != nil || st.Budget != 3 || st.Spent != 1 {
		t.Fatalf("with --budget 3: %+v, %v", st, err)
	}
	f, err := os.OpenFile(LedgerPath(secret), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"time":"2026-12-06T00:00:00Z","epsi`)
	f.Close()
	if _, st, err := ReleaseResult(secret, pl, nil, opts, 0, time.Now()); err != nil || st.Spent != 2 {
		t.Fatalf("after a torn last line: %+v, %v; want ε 2 spent", st, err)
	}
	if st, err := ReadLedger(secret); err != nil || st.Spent != 2 || st.Releases != 2 {
		t.Fatalf("re-read after the torn line: %+v, %v", st, err)
	}
	b, _ := os.ReadFile(LedgerPath(secret))
	os.WriteFile(LedgerPath(secret), append([]byte("not json\n"), b...), 0o600)
	if _, err := ReadLedger(secret); privalytics.ErrorCode(err) != privalytics.EINVALID || !strings.Contains(err.Error(), "backup") {
		t.Errorf("a corrupt line: %v, want %s pointing to a backup", err, privalytics.EINVALID)
	}
}

// FuzzReadLedger: any ledger file either reads or is refused with EINVALID,
// never panics, and never sums to a negative or NaN spend.
func FuzzReadLedger(f *testing.F) {
	f.Add([]byte("{\"time\":\"2026-12-06T00:00:00Z\",\"budget\":10}\n{\"time\":\"2026-12-06T00:00:00Z\",\"result\":\"ab\",\"op\":\"sum\",\"epsilon\":1}\n"))
	f.Add([]byte("{\"time\":\"2026-12-06T00:00:00Z\",\"budget\":1}\n{\"time\":\"2026-12-06T00:0"))
	f.Add([]byte("not json\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		secret := filepath.Join(t.TempDir(), "secret.key")
		if err := os.WriteFile(LedgerPath(secret), b, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := ReadLedger(secret)
		if err != nil {
			if privalytics.ErrorCode(err) != privalytics.EINVALID {
				t.Fatalf("ReadLedger: %v, want %s", err, privalytics.EINVALID)
			}
			return
		}
		if !(st.Spent >= 0) || st.Budget < 0 || st.Releases < 0 {
			t.Fatalf("ReadLedger = %+v", st)
		}
	})
}
