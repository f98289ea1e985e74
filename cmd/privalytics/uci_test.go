package main

import (
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
)

// sharedData returns ../shared/data beside the repository, or skips the test with
// a message saying why (a user's fresh clone has no shared folder; CI always does).
func sharedData(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../../../shared/data")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "online_retail_uci.csv.gz")); err != nil {
		t.Skipf("SKIPPED: needs the UCI Online Retail file at %s (present in CI, absent in a fresh clone): %v", dir, err)
	}
	return dir
}

type uciTruth struct {
	Rows                 int     `json:"rows"`
	DistinctCustomers    int     `json:"distinct_customers"`
	RowsMissingCustomer  int     `json:"rows_missing_customer"`
	SumQuantity          int64   `json:"sum_quantity"`
	SumQuantityUnitPrice float64 `json:"sum_quantity_x_unitprice"`
}

// milli parses a decimal string with at most 3 places into thousandths, exactly.
// Written separately from ingest's parser on purpose: the test must not trust it.
func milli(t *testing.T, s string) int64 {
	t.Helper()
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 3 {
		t.Fatalf("unit price %q has more than 3 decimals", s)
	}
	frac += strings.Repeat("0", 3-len(frac))
	w, err1 := strconv.ParseInt(whole, 10, 64)
	f, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("bad decimal %q", s)
	}
	v := w*1000 + f
	if neg {
		v = -v
	}
	return v
}

// TestImportUCIOnlineRetail imports the real file through the CLI's upload path
// and reads the stored events back through a test-only, non-private path (the
// store itself, never reachable over HTTP). Rows without a customer have no
// privacy unit and are skipped; the test recomputes them from the raw file so that
// stored + skipped adds up to the truth file.
func TestImportUCIOnlineRetail(t *testing.T) {
	data := sharedData(t)
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(data, "online_retail_uci.truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	var truthFile struct {
		UCI uciTruth `json:"online_retail_uci"`
	}
	if err := json.Unmarshal(raw, &truthFile); err != nil {
		t.Fatal(err)
	}
	truth := truthFile.UCI

	// The skipped rows, recomputed from the raw file.
	f, err := os.Open(filepath.Join(data, "online_retail_uci.csv.gz"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	cr := csv.NewReader(zr)
	if _, err := cr.Read(); err != nil {
		t.Fatal(err)
	}
	var skippedRows int
	var skippedQty, skippedMilli int64
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if rec[6] != "" {
			continue
		}
		q, err := strconv.ParseInt(rec[3], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		skippedRows++
		skippedQty += q
		skippedMilli += q * milli(t, rec[5])
	}
	f.Close()
	if skippedRows != truth.RowsMissingCustomer {
		t.Fatalf("raw file has %d rows without a customer, truth says %d", skippedRows, truth.RowsMissingCustomer)
	}

	ts := startServer(t, nil, "")
	_, ingest, _ := ts.tenantKeys(t, "uci", wire.Cost{Epsilon: 1})
	rep, err := importFile(context.Background(), ingest, filepath.Join(data, "online_retail_uci.csv.gz"), client.ImportOptions{Format: "csv", Preset: "uci-online-retail"}, io.Discard, true)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if rep.Skipped != truth.RowsMissingCustomer {
		t.Errorf("import skipped %d rows, want the %d without a customer", rep.Skipped, truth.RowsMissingCustomer)
	}

	tenant, err := ts.app.meta.Tenant(context.Background(), "uci")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := ts.app.events.Snapshot(context.Background(), "uci", tenant.Schema)
	if err != nil {
		t.Fatal(err)
	}
	subjects := map[uint64]bool{}
	var rows int
	var qty, amountMilli int64
	for _, ch := range snap.Chunks {
		r := ch.Record
		// In memory the columns may be dictionary-encoded; Uint64s decodes.
		subj := privalytics.Uint64s(r.Column(0))
		q := privalytics.Uint64s(r.Column(r.Schema().FieldIndices("quantity")[0]))
		a := privalytics.Uint64s(r.Column(r.Schema().FieldIndices("amount")[0]))
		for i := range int(r.NumRows()) {
			subjects[subj[i]] = true
			qty += int64(q[i])
			amountMilli += int64(a[i])
		}
		rows += int(r.NumRows())
	}
	if want := truth.Rows - truth.RowsMissingCustomer; rows != want || rep.Rows != want {
		t.Errorf("stored %d rows (import reported %d), want %d", rows, rep.Rows, want)
	}
	if len(subjects) != truth.DistinctCustomers {
		t.Errorf("stored %d distinct customers, want %d", len(subjects), truth.DistinctCustomers)
	}
	if qty+skippedQty != truth.SumQuantity {
		t.Errorf("stored quantity %d + skipped %d = %d, want %d", qty, skippedQty, qty+skippedQty, truth.SumQuantity)
	}
	gotRevenue := float64(amountMilli+skippedMilli) / 1000
	if math.Abs(gotRevenue-truth.SumQuantityUnitPrice) > 0.005 {
		t.Errorf("stored revenue %.3f + skipped %.3f = %.3f, want %.2f", float64(amountMilli)/1000, float64(skippedMilli)/1000, gotRevenue, truth.SumQuantityUnitPrice)
	}
	t.Logf("stored %d rows, %d customers, revenue %.2f; skipped %d guest rows (revenue %.2f)", rows, len(subjects), float64(amountMilli)/1000, skippedRows, float64(skippedMilli)/1000)
}
