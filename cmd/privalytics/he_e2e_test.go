package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
)

// ownerCLI runs `privalytics ARGS…` as a separate process (this test binary in
// its CLI role) and returns its stdout; it fails the test on a non-zero exit.
func ownerCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := ownerCLIErr(t, args...)
	if err != nil {
		t.Fatalf("privalytics %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func ownerCLIErr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	raw, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PRIVALYTICS_TEST_CHILD=cli", "PRIVALYTICS_TEST_ARGS="+string(raw))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// heTruth is the plaintext computation the encrypted jobs must reproduce.
type heTruth struct {
	rows                 int64
	sumQty, sumQtySq     int64
	sumPrice, sumQtyXPr  int64
	perCountry, qtyPerCo map[string]int64
}

func writeHEOrders(t *testing.T, path string, n int) heTruth {
	t.Helper()
	tr := heTruth{rows: int64(n), perCountry: map[string]int64{}, qtyPerCo: map[string]int64{}}
	countries := []string{"United Kingdom", "France", "Germany", "EIRE", "Spain", "Netherlands"}
	var b strings.Builder
	b.WriteString("invoice,quantity,unit_price_cents,country\n")
	for i := range n {
		q := int64((i*7919)%80 + 1)
		p := int64((i*104729)%5000 + 10)
		c := countries[(i*31+i/7)%len(countries)]
		tr.sumQty += q
		tr.sumQtySq += q * q
		tr.sumPrice += p
		tr.sumQtyXPr += q * p
		tr.perCountry[c]++
		tr.qtyPerCo[c] += q
		fmt.Fprintf(&b, "%d,%d,%d,%s\n", 500000+i, q, p, c)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestHEEndToEnd runs the whole outsourced-analyst flow across processes on
// loopback: the owner's CLI (keygen, encrypt, upload) in child processes, the
// processor (serve --role processor) in another, jobs run concurrently, and
// the owner's CLI downloads and decrypts. BGV results must equal the plaintext
// computation exactly. Then the processor's refusals: over the upload limit
// (413, declared and streamed), a secret key (400), keys for another preset
// (400), an operation the keys do not allow (403).
func TestHEEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	start := time.Now()
	phase := func(name string) { t.Logf("%-28s %6.2fs", name, time.Since(start).Seconds()) }
	const uploadLimit = 96 << 20
	proc := startChildEnv(t, filepath.Join(dir, "processor"), []string{"PRIVALYTICS_ROLE=processor", fmt.Sprintf("PRIVALYTICS_HE_MAX_UPLOAD_BYTES=%d", uploadLimit)})
	defer proc.kill()
	ctx := context.Background()
	op := client.New(proc.url, proc.operator)
	ten, err := op.CreateTenant(ctx, wire.CreateTenantRequest{Period: "lifetime", ID: "retailer", Budget: wire.Cost{Epsilon: 1, Delta: 1e-6}})
	if err != nil {
		t.Fatal(err)
	}
	admin := op.WithToken(ten.AdminKey.Token)
	pk, err := admin.CreateKey(ctx, "owner-uploads", wire.RoleProcessor)
	if err != nil {
		t.Fatal(err)
	}
	pc := admin.WithToken(pk.Token)
	srv := []string{"--server", proc.url, "--key", pk.Token}

	// Owner: keys, then the encrypted table.
	keys := filepath.Join(dir, "owner-keys")
	out := ownerCLI(t, "he", "keygen", "--scheme", "bgv", "--ops", "count,sum,mean,variance,category-count,category-sum,dot", "--out", keys)
	if !strings.Contains(out, "bgv-depth1") {
		t.Fatalf("keygen chose: %s", out)
	}
	csvPath := filepath.Join(dir, "orders.csv")
	tr := writeHEOrders(t, csvPath, 20_000)
	table := filepath.Join(dir, "orders.pvht")
	ownerCLI(t, "he", "encrypt", csvPath, "--public", filepath.Join(keys, "public.key"), "--subject", "invoice", "--rows-per-subject", "1", "--column", "quantity:0:80", "--column", "unit_price_cents:0:5010",
		"--category", "country:United Kingdom,France,Germany", "--out", table)
	out = ownerCLI(t, append([]string{"he", "upload", table, "--eval", filepath.Join(keys, "eval.keys")}, srv...)...)
	m := regexp.MustCompile(`Dataset (hds_[0-9a-f]+): 20,000 rows × 5 columns, preset bgv-depth1`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("upload output: %s", out)
	}
	dataset := m[1]
	phase("keygen, encrypt, upload")

	// Processor: jobs, concurrently, each started by its own owner process.
	type jobCase struct {
		name string
		args []string
		want map[string]float64
	}
	jobs := []jobCase{
		{"mean", []string{"--op", "mean", "--column", "quantity"}, map[string]float64{"sum(quantity)": float64(tr.sumQty)}},
		{"variance", []string{"--op", "variance", "--column", "quantity"}, map[string]float64{"sum(quantity)": float64(tr.sumQty), "sumsq(quantity)": float64(tr.sumQtySq)}},
		{"cats", []string{"--op", "category-count", "--group", "country"}, map[string]float64{
			"sum(country=United Kingdom)": float64(tr.perCountry["United Kingdom"]), "sum(country=France)": float64(tr.perCountry["France"]), "sum(country=Germany)": float64(tr.perCountry["Germany"])}},
		{"catsum", []string{"--op", "category-sum", "--group", "country", "--column", "quantity"}, map[string]float64{
			"sum(country=United Kingdom)": float64(tr.perCountry["United Kingdom"]), "sum(country=France)": float64(tr.perCountry["France"]), "sum(country=Germany)": float64(tr.perCountry["Germany"]),
			"sum(country=United Kingdom*quantity)": float64(tr.qtyPerCo["United Kingdom"]), "sum(country=France*quantity)": float64(tr.qtyPerCo["France"]), "sum(country=Germany*quantity)": float64(tr.qtyPerCo["Germany"])}},
		{"dot", []string{"--op", "dot", "--columns", "quantity,unit_price_cents"}, map[string]float64{"sum(quantity*unit_price_cents)": float64(tr.sumQtyXPr)}},
	}
	var wg sync.WaitGroup
	for _, jc := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := append([]string{"he", "job", "--dataset", dataset, "--out", filepath.Join(dir, jc.name+".pvhr")}, jc.args...)
			if out, err := ownerCLIErr(t, append(args, srv...)...); err != nil || !strings.Contains(out, "done in") {
				t.Errorf("job %s: %v %s", jc.name, err, out)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	phase("jobs")
	// Owner: decrypt (exact, owner-internal) and compare with the plaintext.
	for _, jc := range jobs {
		out := ownerCLI(t, "he", "decrypt", "--secret", filepath.Join(keys, "secret.key"), "--result", filepath.Join(dir, jc.name+".pvhr"), "--exact", "--json")
		var d decryptOutput
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("%s: %v in %s", jc.name, err, out)
		}
		if !d.Exact || !strings.Contains(d.Label, "EXACT") || len(d.Values) != len(jc.want) {
			t.Fatalf("%s: %+v", jc.name, d)
		}
		for _, v := range d.Values {
			if want, ok := jc.want[v.Name]; !ok || v.Value != want {
				t.Errorf("%s: %s = %v, plaintext %v", jc.name, v.Name, v.Value, want)
			}
		}
	}
	// The default release is DP-labelled and noisy.
	out = ownerCLI(t, "he", "decrypt", "--secret", filepath.Join(keys, "secret.key"), "--result", filepath.Join(dir, "mean.pvhr"))
	if !strings.Contains(out, "DP release, ε = 1") || !strings.Contains(out, "mean(quantity) = ") {
		t.Errorf("default decrypt output: %s", out)
	}

	phase("decrypt")

	// CKKS (reals): the mean of prices in euros, within the stated precision.
	ckeys := filepath.Join(dir, "ckks-keys")
	ownerCLI(t, "he", "keygen", "--scheme", "ckks", "--ops", "mean", "--out", ckeys)
	euros := filepath.Join(dir, "prices.csv")
	var eb strings.Builder
	eb.WriteString("customer,price\n")
	var priceSum float64
	for i := range 30_000 {
		p := float64((i*104729)%500000) / 1000 // 0 … 499.999 €
		priceSum += p
		fmt.Fprintf(&eb, "c%d,%.3f\n", i, p)
	}
	if err := os.WriteFile(euros, []byte(eb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ctable := filepath.Join(dir, "prices.pvht")
	ownerCLI(t, "he", "encrypt", euros, "--public", filepath.Join(ckeys, "public.key"), "--subject", "customer", "--rows-per-subject", "1", "--column", "price:0:500", "--out", ctable)
	out = ownerCLI(t, append([]string{"he", "upload", ctable, "--eval", filepath.Join(ckeys, "eval.keys")}, srv...)...)
	cm := regexp.MustCompile(`Dataset (hds_[0-9a-f]+): 30,000 rows × 1 columns, preset ckks-agg`).FindStringSubmatch(out)
	if cm == nil {
		t.Fatalf("upload output: %s", out)
	}
	ownerCLI(t, append([]string{"he", "job", "--dataset", cm[1], "--op", "mean", "--column", "price", "--out", filepath.Join(dir, "price.pvhr")}, srv...)...)
	out = ownerCLI(t, "he", "decrypt", "--secret", filepath.Join(ckeys, "secret.key"), "--result", filepath.Join(dir, "price.pvhr"), "--exact", "--json")
	var cd decryptOutput
	if err := json.Unmarshal([]byte(out), &cd); err != nil || len(cd.Values) != 1 {
		t.Fatalf("ckks decrypt: %v %s", err, out)
	}
	if got, std := cd.Values[0].Value, cd.Values[0].ErrorStd; !(std > 0) || math.Abs(got-priceSum) > 6*std || std > 1e-3*priceSum {
		t.Errorf("ckks sum(price) = %v ± %v, plaintext %v", got, std, priceSum)
	} else {
		t.Logf("ckks sum(price) = %.4f ± %.3g, plaintext %.4f", got, std, priceSum)
	}
	phase("ckks")

	// Refusals.
	tab, err := os.ReadFile(table)
	if err != nil {
		t.Fatal(err)
	}
	evk, _ := os.ReadFile(filepath.Join(keys, "eval.keys"))
	secret, _ := os.ReadFile(filepath.Join(keys, "secret.key"))
	wantErr := func(what string, err error, code, text string) {
		t.Helper()
		if privalytics.ErrorCode(err) != code || !strings.Contains(err.Error(), text) {
			t.Errorf("%s: %v, want %s mentioning %q", what, err, code, text)
		}
	}
	_, err = pc.UploadHEDataset(ctx, secret, bytes.NewReader(tab), int64(len(tab)))
	wantErr("secret key as keys", err, privalytics.EINVALID, "secret key")
	_, err = pc.UploadHEDataset(ctx, evk, bytes.NewReader(secret), int64(len(secret)))
	wantErr("secret key as table", err, privalytics.EINVALID, "secret key")

	big := make([]byte, uploadLimit)
	_, err = pc.UploadHEDataset(ctx, evk, bytes.NewReader(big), int64(len(big)))
	wantErr("declared over the limit", err, privalytics.ETOOLARGE, "limit")
	// Streamed (no Content-Length): the keys part runs past the limit.
	_, err = pc.UploadHEDataset(ctx, append(bytes.Clone(evk), big...), bytes.NewReader(tab), -1)
	wantErr("streamed over the limit", err, privalytics.ETOOLARGE, "limit")

	other := filepath.Join(dir, "other-keys")
	ownerCLI(t, "he", "keygen", "--scheme", "bgv", "--ops", "sum", "--out", other)
	otherEvk, _ := os.ReadFile(filepath.Join(other, "eval.keys"))
	_, err = pc.UploadHEDataset(ctx, otherEvk, bytes.NewReader(tab), int64(len(tab)))
	wantErr("keys for another preset", err, privalytics.EINVALID, "preset")

	_, err = pc.SubmitHEJob(ctx, dataset, client.HEJobSpec{Op: "covariance", Columns: []string{"quantity", "unit_price_cents"}})
	wantErr("operation the keys do not allow", err, privalytics.EFORBIDDEN, "covariance")
	_, err = admin.WithToken(mustQueryKey(t, admin)).SubmitHEJob(ctx, dataset, client.HEJobSpec{Op: "sum", Column: "quantity"})
	wantErr("query key", err, privalytics.EFORBIDDEN, "processor")

	phase("refusals")
	// The dataset is still there and intact after the refusals; deleting frees it.
	info, err := pc.HEDatasetInfo(ctx, dataset)
	if err != nil || info.Rows != tr.rows {
		t.Fatalf("dataset after refusals: %+v %v", info, err)
	}
	if err := pc.DeleteHEDataset(ctx, dataset); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.HEDatasetInfo(ctx, dataset); privalytics.ErrorCode(err) != privalytics.ENOTFOUND {
		t.Fatalf("deleted dataset: %v", err)
	}
}

func mustQueryKey(t *testing.T, admin *client.Client) string {
	t.Helper()
	k, err := admin.CreateKey(context.Background(), "dashboard", wire.RoleQuery)
	if err != nil {
		t.Fatal(err)
	}
	return k.Token
}

// TestHERoutesNeedProcessorRole: an analytics server does not take encrypted
// datasets.
func TestHERoutesNeedProcessorRole(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, "")
	admin, _, _ := ts.tenantKeys(t, "shop", wire.Cost{Epsilon: 1, Delta: 1e-6})
	_, err := admin.UploadHEDataset(context.Background(), []byte("x"), bytes.NewReader([]byte("y")), 1)
	if privalytics.ErrorCode(err) != privalytics.ENOTFOUND || !strings.Contains(err.Error(), "--role processor") {
		t.Fatalf("upload to an analytics server: %v", err)
	}
}
