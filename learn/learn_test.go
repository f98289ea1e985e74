package learn

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/privalytics/privalytics/dp"
)

// bankFile returns ../shared/data/bank_marketing.csv beside the module root,
// or skips saying why: a fresh clone has no shared folder; CI always has it.
func bankFile(t testing.TB) string {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(here), "..", "..", "shared", "data", "bank_marketing.csv")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("SKIPPED: needs the bank-marketing file at %s (present in CI, absent in a fresh clone): %v", p, err)
	}
	return p
}

func loadBank(t testing.TB, label string) *Rows {
	t.Helper()
	f, err := os.Open(bankFile(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := BankSchema(label).ReadCSV(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows.X) != 11435 {
		t.Fatalf("read %d rows, the README says 11,435", len(rows.X))
	}
	return rows
}

func secure() Options {
	return Options{Epsilon: 1, Delta: 1e-5, Rounds: DefaultRounds, HessianShare: DefaultHessianShare, Mechanisms: dp.Secure()}
}
