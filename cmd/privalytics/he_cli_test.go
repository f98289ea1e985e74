package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/he"
	"github.com/privalytics/privalytics/internal/bench"
)

// runCLIStdout runs the privalytics command in this process and returns its stdout.
func runCLIStdout(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := rootCommand()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runCLIStdout(t, args...)
	if err != nil {
		t.Fatalf("privalytics %s: %v", strings.Join(args, " "), describe(err))
	}
	return out
}

// heOrders writes a CSV of n orders with known sums and returns its path and
// the plaintext truth.
type ordersTruth struct {
	rows        int
	quantitySum int64
	// firstHalfSum is Σ quantity over each customer's first order.
	firstHalfSum int64
	perCountry   map[string]int64
}

func heOrders(t *testing.T, dir string, n int) (string, ordersTruth) {
	t.Helper()
	tr := ordersTruth{rows: n, perCountry: map[string]int64{}}
	countries := []string{"France", "Germany", "United Kingdom", "Spain", "EIRE"}
	var b strings.Builder
	b.WriteString("order_id,customer,quantity,country\n")
	for i := range n {
		q := int64((i*7919)%50 + 1)
		c := countries[(i*31)%len(countries)]
		tr.quantitySum += q
		if i%2 == 0 {
			tr.firstHalfSum += q
		}
		tr.perCountry[c]++
		fmt.Fprintf(&b, "%d,c%d,%d,%s\n", i, i/2, q, c) // two orders per customer
	}
	path := filepath.Join(dir, "orders.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, tr
}

// TestHECLIOwnerSide: keygen writes the secret key 0600 and only the keys the
// ops need; encrypt refuses a secret key and out-of-bounds values; decrypt is
// exact with --exact, DP-labelled by default, and the per-result decryption
// limit survives across runs through the counter file.
func TestHECLIOwnerSide(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	out := mustCLI(t, "he", "keygen", "--scheme", "bgv", "--ops", "sum,mean,category-count", "--out", keys)
	if !strings.Contains(out, "bgv-agg") || !strings.Contains(out, "relinearisation key false") {
		t.Fatalf("keygen output: %s", out)
	}
	fi, err := os.Stat(filepath.Join(keys, he.SecretKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret key mode: %v %v", fi, err)
	}
	if _, err := runCLIStdout(t, "he", "keygen", "--scheme", "bgv", "--ops", "sum", "--out", keys); privalytics.ErrorCode(err) != privalytics.ECONFLICT {
		t.Fatalf("keygen over an existing secret key: %v", err)
	}
	evb, _ := os.ReadFile(filepath.Join(keys, he.EvalKeysFile))
	var evk he.EvaluationKeys
	if err := evk.UnmarshalBinary(evb); err != nil || evk.Relin != nil {
		t.Fatalf("eval keys: %v (relin %v)", err, evk.Relin != nil)
	}

	csvPath, tr := heOrders(t, dir, 3000)
	table := filepath.Join(dir, "orders.pvht")
	if _, err := runCLIStdout(t, "he", "encrypt", csvPath, "--public", filepath.Join(keys, he.SecretKeyFile), "--subject", "customer", "--rows-per-subject", "2", "--column", "quantity:0:50", "--out", table); err == nil || !strings.Contains(err.Error(), "secret key") {
		t.Fatalf("encrypt with the secret key: %v", err)
	}
	if _, err := runCLIStdout(t, "he", "encrypt", csvPath, "--public", filepath.Join(keys, he.PublicKeyFile), "--subject", "customer", "--rows-per-subject", "2", "--column", "quantity:0:10", "--out", table); privalytics.ErrorCode(err) != privalytics.EINVALID {
		t.Fatalf("encrypt out of bounds: %v", err)
	}
	if _, err := runCLIStdout(t, "he", "encrypt", csvPath, "--public", filepath.Join(keys, he.PublicKeyFile), "--column", "quantity:0:50", "--out", table); err == nil || !strings.Contains(err.Error(), "subject") {
		t.Fatalf("encrypt without a customer column: %v", err)
	}
	out = mustCLI(t, "he", "encrypt", csvPath, "--public", filepath.Join(keys, he.PublicKeyFile), "--subject", "customer", "--rows-per-subject", "2", "--column", "quantity:0:50",
		"--category", "country:France,Germany,United Kingdom", "--out", table, "--quiet")
	if !strings.Contains(out, "Encrypted 3000 rows × 4 columns") || strings.Contains(out, "dropped") {
		t.Fatalf("encrypt output: %s", out)
	}

	// The processor's part, in process here; the two-process test is TestHEEndToEnd.
	f, _ := os.Open(table)
	tab, err := he.ReadTable(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	proc, _ := he.NewProcessor(&evk)
	resultFile := func(name string, job he.Job) string {
		res, err := proc.Run(context.Background(), tab, job)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := res.MarshalBinary()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sum := resultFile("sum.pvhr", he.Job{Op: he.OpSum, Column: "quantity"})
	secret := filepath.Join(keys, he.SecretKeyFile)
	exact := decryptJSON(t, "--secret", secret, "--result", sum, "--exact")
	if !exact.Exact || !strings.Contains(exact.Label, "EXACT") || exact.Values[0].Value != float64(tr.quantitySum) {
		t.Fatalf("exact sum: %+v, want %d", exact, tr.quantitySum)
	}
	dpOut := decryptJSON(t, "--secret", secret, "--result", sum, "--epsilon", "1")
	if dpOut.Exact || !strings.Contains(dpOut.Label, "ε = 1") {
		t.Fatalf("DP release label: %+v", dpOut)
	}
	// Laplace scale 2·2·50/ε (l0 = the sum and the row count, 2 rows per
	// customer, |quantity| ≤ 50): a release outside 200·40 of the truth has
	// probability e^-40.
	if d := dpOut.Values[0].Value - float64(tr.quantitySum); d > 8000 || d < -8000 || d == 0 {
		t.Fatalf("DP sum %v vs truth %d", dpOut.Values[0].Value, tr.quantitySum)
	}
	cats := resultFile("cats.pvhr", he.Job{Op: he.OpCategoryCount, Group: "country"})
	cc := decryptJSON(t, "--secret", secret, "--result", cats, "--exact")
	for i, c := range []string{"France", "Germany", "United Kingdom"} {
		if cc.Values[i].Value != float64(tr.perCountry[c]) {
			t.Errorf("count %s = %v, want %d", c, cc.Values[i].Value, tr.perCountry[c])
		}
	}
	// 2 decryptions of sum so far; the preset allows 16, each in a new process.
	for range 14 {
		decryptJSON(t, "--secret", secret, "--result", sum, "--exact")
	}
	if _, err := runCLIStdout(t, "he", "decrypt", "--secret", secret, "--result", sum, "--exact"); privalytics.ErrorCode(err) != privalytics.EFORBIDDEN {
		t.Fatalf("17th decryption across runs: %v, want %s", err, privalytics.EFORBIDDEN)
	}
	if fi, err := os.Stat(secret + ".decryptions.json"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("counter file: %v %v", fi, err)
	}
	if _, err := runCLIStdout(t, "he", "decrypt", "--secret", secret, "--result", sum, "--epsilon", "0"); privalytics.ErrorCode(err) != privalytics.EINVALID {
		t.Fatalf("ε = 0: %v", err)
	}
}

// TestHECLIReleaseLedger: keygen records the release budget beside the
// secret key, every DP release appends its ε, and the release that would
// pass the budget is refused before anything is shown; --exact is not a
// release and is not charged. The cap --rows-per-subject enforces at encrypt
// drops a customer's extra rows and is what the release's noise is sized for.
func TestHECLIReleaseLedger(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	mustCLI(t, "he", "keygen", "--scheme", "bgv", "--ops", "count,sum", "--budget", "1.5", "--out", keys)
	csvPath, tr := heOrders(t, dir, 600)
	table := filepath.Join(dir, "orders.pvht")
	out := mustCLI(t, "he", "encrypt", csvPath, "--public", filepath.Join(keys, he.PublicKeyFile), "--subject", "customer", "--rows-per-subject", "1",
		"--column", "quantity:0:50", "--out", table, "--quiet")
	if !strings.Contains(out, "dropped 300 rows") || !strings.Contains(out, "Encrypted 300 rows") {
		t.Fatalf("encrypt with 2 orders per customer capped at 1: %s", out)
	}
	f, _ := os.Open(table)
	tab, err := he.ReadTable(f)
	f.Close()
	if err != nil || tab.Header.RowsPerSubject != 1 || tab.Header.Rows != 300 {
		t.Fatalf("table header: %+v, %v; want 300 rows, 1 per customer", tab.Header, err)
	}
	evb, _ := os.ReadFile(filepath.Join(keys, he.EvalKeysFile))
	var evk he.EvaluationKeys
	if err := evk.UnmarshalBinary(evb); err != nil {
		t.Fatal(err)
	}
	proc, _ := he.NewProcessor(&evk)
	res, err := proc.Run(context.Background(), tab, he.Job{Op: he.OpSum, Column: "quantity"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := res.MarshalBinary()
	sum := filepath.Join(dir, "sum.pvhr")
	if err := os.WriteFile(sum, b, 0o644); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(keys, he.SecretKeyFile)
	exact := decryptJSON(t, "--secret", secret, "--result", sum, "--exact")
	if want := float64(tr.firstHalfSum); exact.Values[0].Value != want {
		t.Errorf("exact sum over the kept rows = %v, want %v", exact.Values[0].Value, want)
	}
	if d := decryptJSON(t, "--secret", secret, "--result", sum, "--epsilon", "1"); !strings.Contains(d.Label, "1 row(s) per customer") || !strings.Contains(d.Label, "0.5 of 1.5 left") {
		t.Errorf("first release label: %q", d.Label)
	}
	if _, err := runCLIStdout(t, "he", "decrypt", "--secret", secret, "--result", sum, "--epsilon", "1"); privalytics.ErrorCode(err) != privalytics.EBUDGET {
		t.Fatalf("a release of ε = 1 with 0.5 left: %v, want %s", err, privalytics.EBUDGET)
	}
	// The refused release was refused before decrypting: 2 decryptions so far.
	var counts map[string]int
	if b, err := os.ReadFile(he.CounterPath(secret)); err != nil || json.Unmarshal(b, &counts) != nil || len(counts) != 1 {
		t.Fatalf("decryption counter: %s, %v", b, err)
	}
	for _, n := range counts {
		if n != 2 {
			t.Errorf("decryptions after an exact, a release and a refused release = %d, want 2", n)
		}
	}
	if _, err := runCLIStdout(t, "he", "decrypt", "--secret", secret, "--result", sum, "--epsilon", "1", "--rows-per-subject", "5"); privalytics.ErrorCode(err) != privalytics.EINVALID {
		t.Fatalf("--rows-per-subject other than the enforced cap: %v, want %s", err, privalytics.EINVALID)
	}
	lb, err := os.ReadFile(he.LedgerPath(secret))
	if err != nil || strings.Count(string(lb), "\n") != 2 || !strings.Contains(string(lb), `"budget":1.5`) || !strings.Contains(string(lb), `"epsilon":1`) {
		t.Fatalf("ledger file: %q, %v; want the budget line and one release", lb, err)
	}
}

type decryptOutput struct {
	Exact  bool   `json:"exact"`
	Label  string `json:"label"`
	Values []struct {
		Name     string  `json:"name"`
		Value    float64 `json:"value"`
		ErrorStd float64 `json:"error_std"`
		FloodStd float64 `json:"flood_std"`
	} `json:"values"`
	Derived []string `json:"derived"`
}

func decryptJSON(t *testing.T, args ...string) decryptOutput {
	t.Helper()
	out := mustCLI(t, append([]string{"he", "decrypt", "--json"}, args...)...)
	var d decryptOutput
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("decrypt output %q: %v", out, err)
	}
	return d
}

// TestBenchHESmall keeps `privalytics bench he` working: a small run must
// reproduce the plaintext mean exactly under BGV.
func TestBenchHESmall(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := bench.RunHE(context.Background(), &out, startBenchServer, bench.HEOptions{Rows: 20_000, Repeat: 1, Presets: []string{he.PresetBGVAgg}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "END TO END") || !strings.Contains(out.String(), "(|Δ| 0)") {
		t.Fatalf("bench he output:\n%s", out.String())
	}
}

// TestHEEncryptParquetAndClip: a Parquet file encrypts to the same table
// contents as its CSV twin; --clip clamps out-of-bounds values (and says how
// many) where the default refuses them; a null is refused with its row.
func TestHEEncryptParquetAndClip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	mustCLI(t, "he", "keygen", "--scheme", "bgv", "--ops", "sum,category-count", "--out", keys)
	q := []int64{3, 250, -7, 40, 12, 0, 99}
	c := []string{"France", "Spain", "France", "Germany", "France", "", "Germany"}
	customers := []string{"a", "b", "a", "c", "a", "d", "e"}
	sch := arrow.NewSchema([]arrow.Field{
		{Name: "quantity", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "country", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "customer", Type: arrow.BinaryTypes.String},
	}, nil)
	write := func(name string, valid []bool) string {
		b := array.NewRecordBuilder(memory.DefaultAllocator, sch)
		b.Field(0).(*array.Int64Builder).AppendValues(q, valid)
		b.Field(1).(*array.StringBuilder).AppendValues(c, nil)
		b.Field(2).(*array.StringBuilder).AppendValues(customers, nil)
		var buf bytes.Buffer
		w, err := pqarrow.NewFileWriter(sch, &buf, nil, pqarrow.DefaultWriterProps())
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(b.NewRecord()); err != nil {
			t.Fatal(err)
		}
		w.Close()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pq := write("orders.parquet", nil)
	table := filepath.Join(dir, "t.pvht")
	args := []string{"he", "encrypt", pq, "--public", filepath.Join(keys, he.PublicKeyFile), "--subject", "customer", "--rows-per-subject", "3", "--column", "quantity:0:100", "--category", "country:France,Germany", "--out", table, "--quiet"}
	if _, err := runCLIStdout(t, args...); privalytics.ErrorCode(err) != privalytics.EINVALID || !strings.Contains(err.Error(), "row 2") {
		t.Fatalf("out of bounds without --clip: %v", err)
	}
	out := mustCLI(t, append(args, "--clip")...)
	if !strings.Contains(out, "Clipped 2 values") || !strings.Contains(out, "Encrypted 7 rows × 3 columns") {
		t.Fatalf("encrypt output: %s", out)
	}
	f, _ := os.Open(table)
	tab, err := he.ReadTable(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	evb, _ := os.ReadFile(filepath.Join(keys, he.EvalKeysFile))
	var evk he.EvaluationKeys
	if err := evk.UnmarshalBinary(evb); err != nil {
		t.Fatal(err)
	}
	proc, _ := he.NewProcessor(&evk)
	kb, _ := os.ReadFile(filepath.Join(keys, he.SecretKeyFile))
	var owner he.OwnerKeys
	if err := owner.UnmarshalBinary(kb); err != nil {
		t.Fatal(err)
	}
	dec, _ := he.NewDecryptor(&owner)
	for _, tc := range []struct {
		job  he.Job
		name string
		want float64
	}{
		{he.Job{Op: he.OpSum, Column: "quantity"}, "sum(quantity)", 3 + 100 + 0 + 40 + 12 + 0 + 99},
		{he.Job{Op: he.OpCategoryCount, Group: "country"}, "sum(country=France)", 3},
		{he.Job{Op: he.OpCategoryCount, Group: "country"}, "sum(country=Germany)", 2},
	} {
		res, err := proc.Run(context.Background(), tab, tc.job)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := dec.Decrypt(res)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := plain.Get(tc.name); v != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, v, tc.want)
		}
	}
	// Capped at one row per customer, a's second and third rows (rows 3 and 5,
	// both France) are dropped before anything is checked or encrypted.
	one := append([]string{}, args...)
	one[8] = "1" // --rows-per-subject
	capped := mustCLI(t, append(one, "--clip")...)
	if !strings.Contains(capped, "dropped 2 rows") || !strings.Contains(capped, "Encrypted 5 rows") {
		t.Fatalf("encrypt capped at 1 row per customer: %s", capped)
	}
	withNull := write("nulls.parquet", []bool{true, true, true, false, true, true, true})
	args[2] = withNull
	if _, err := runCLIStdout(t, append(args, "--clip")...); privalytics.ErrorCode(err) != privalytics.EINVALID || !strings.Contains(err.Error(), "row 4") {
		t.Fatalf("null value: %v", err)
	}
}
