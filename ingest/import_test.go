package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
)

// collectCSV imports text and returns the stored rows. It imports twice, in
// chunks of the usual size and in chunks of a few bytes (every record boundary
// a cut), and fails the test unless both give the same error and, without
// one, the same rows and report.
func collectCSV(t *testing.T, conv *Converter, m *Mapping, batchRows int, text string) ([]string, ImportReport, error) {
	t.Helper()
	run := func(opt importOptions) ([]string, ImportReport, error) {
		var rows []string
		rep, err := importCSV(context.Background(), strings.NewReader(text), conv, m, batchRows, func(r arrow.Record) error {
			if int(r.NumRows()) > batchRows {
				t.Errorf("record of %d rows, over the batch size %d", r.NumRows(), batchRows)
			}
			rows = append(rows, values(r)...)
			return nil
		}, nil, opt)
		return rows, rep, err
	}
	rows, rep, err := run(importOptions{})
	rows2, rep2, err2 := run(importOptions{chunkBytes: 5})
	a, b := fmt.Sprint(rows, rep, err), fmt.Sprint(rows2, rep2, err2)
	if err != nil { // rows of blocks before the bad one are emitted: they depend on the cuts
		a, b = fmt.Sprint(err), fmt.Sprint(err2)
	}
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("import in 5-byte chunks differs (-usual +small chunks):\n%s", diff)
	}
	return rows, rep, err
}

const uciHeader = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"

func TestImportCSVMapping(t *testing.T) {
	t.Parallel()
	conv := testConverter(t)
	text := "\ufeff" + uciHeader +
		"536365,85123A,\"WHITE, HEART\",6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n" +
		"C536379,D,Discount,-1,2010-07-01 09:41:00,27.5,14527,United Kingdom\n" +
		"536414,22139,,56,2010-12-01 11:52:00,0.001,,United Kingdom\n" +
		"536415,22140,\"multi\nline \"\"quoted\"\"\",3,2011-03-27 01:30:00,0.125,17850,EIRE\r\n"
	m := UCIOnlineRetailMapping()
	got, rep, err := collectCSV(t, conv, &m, 2, text)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ImportReport{Rows: 3, Skipped: 1, SkippedReasons: map[string]int{ReasonNoSubject: 1}}, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	want := []string{
		// 08:26 in London in December is 08:26 UTC; in July it is 08:41 UTC (BST).
		fmt.Sprintf("%d|2010-12-01 08:26:00Z|purchase|null|null|null|85123A|536365|6|15300|United Kingdom", subjectOf(t, "17850")),
		fmt.Sprintf("%d|2010-07-01 08:41:00Z|refund|null|null|null|D|C536379|-1|-27500|United Kingdom", subjectOf(t, "14527")),
		// 01:30 on the night clocks go forward does not exist in London; Go reads it as 01:30 GMT.
		fmt.Sprintf("%d|2011-03-27 01:30:00Z|purchase|null|null|null|22140|536415|3|375|EIRE", subjectOf(t, "17850")),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("imported rows (-want +got):\n%s", diff)
	}
}

// TestImportCSVErrors: every bad file names its line (1-based, counting the
// header and the lines inside quoted fields) and, where one field is to blame,
// the field.
func TestImportCSVErrors(t *testing.T) {
	t.Parallel()
	conv := testConverter(t)
	uci := UCIOnlineRetailMapping()
	strict := UCIOnlineRetailMapping()
	strict.SkipMissingSubject = false
	const hdr = "customer_id,ts,type,amount\n"
	tests := []struct {
		name   string
		m      *Mapping
		text   string
		line   int
		field  string
		reason string
	}{
		{"empty file", nil, "", 1, "", "empty"},
		{"unknown column", nil, "customer_id,ts,type,email\n", 1, "", `"email" is not a field of the schema`},
		{"mapped column missing", &uci, "InvoiceNo,Quantity\n", 1, "", `source column "CustomerID" is not in the file`},
		{"bare quote", nil, hdr + "c1,2025-01-01T00:00:00Z,view,1\nc\"2,2025-01-01T00:00:00Z,view,1\n", 3, "", `bare "`},
		{"text after a closing quote", nil, hdr + "\"c1\"x,2025-01-01T00:00:00Z,view,1\n", 2, "", `extraneous or missing "`},
		{"quote never closed", nil, hdr + "\"c1,2025-01-01T00:00:00Z,view,1\nc2,x,y,z\n", 3, "", "not closed"},
		{"too few fields", nil, hdr + "c1,2025-01-01T00:00:00Z,view\n", 2, "", "wrong number of fields"},
		{"line after a multi-line field", nil, hdr + "\"c\n1\",2025-01-01T00:00:00Z,view,1\nc2,2025-01-01T00:00:00Z,view,x\n", 4, "amount", "decimal number"},
		{"blank lines count", nil, hdr + "\n\nc1,2025-01-01T00:00:00Z,view,1.0001\n", 4, "amount", "more than 3 digits"},
		{"missing subject, not skipped", &strict, uciHeader + "536365,85123A,x,6,2010-12-01 08:26:00,2.55,,United Kingdom\n", 2, "customer_id", "required field is missing"},
		{"bad time format", &uci, uciHeader + "536365,85123A,x,6,01/12/2010 08:26,2.55,17850,United Kingdom\n", 2, "ts", `must be a time like "2006-01-02 15:04:05"`},
		{"product has too many decimals", &uci, uciHeader + "536365,85123A,x,6,2010-12-01 08:26:00,2.5551,17850,United Kingdom\n", 2, "amount", "more than 3 digits"},
		{"bad factor", &uci, uciHeader + "536365,85123A,x,6,2010-12-01 08:26:00,£2,17850,United Kingdom\n", 2, "amount", "UnitPrice"},
		{"invalid UTF-8", nil, hdr + "c\xff,2025-01-01T00:00:00Z,view,1\n", 2, "customer_id", "UTF-8"},
		{"not allowed", nil, hdr + "c1,2025-01-01T00:00:00Z,teleport,1\n", 2, "type", "allowed values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := collectCSV(t, conv, tt.m, 10, tt.text)
			e, ok := err.(*privalytics.Error)
			if !ok || e.Code != privalytics.EINVALID {
				t.Fatalf("error %v, want an invalid *privalytics.Error", err)
			}
			got := map[string]any{"line": e.Details["line"], "field": e.Details["field"]}
			want := map[string]any{"line": tt.line, "field": nil}
			if tt.field != "" {
				want["field"] = tt.field
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("details (-want +got):\n%s\nerror: %v", diff, err)
			}
			if !strings.Contains(e.Message, tt.reason) {
				t.Errorf("message %q, want it to contain %q", e.Message, tt.reason)
			}
		})
	}
}

// TestCSVSplitterAgreesWithEncodingCSV runs the block splitter and encoding/csv
// on the same texts.
func TestCSVSplitterAgreesWithEncodingCSV(t *testing.T) {
	t.Parallel()
	for _, text := range []string{
		"a,b\n1,2\n", "a,b\r\n1,2\r\n", "a,b\n\"x,y\",\"\"\"\"\n", "a,b\n\"multi\r\nline\",2\n\n\n3,4", "a\n\"\"\n",
		"a,b\n,\n", "a,b\n1,2,3\n", "a,b\nx\"y,2\n", "a,b\n\"x\"y,2\n", "a,b\n\"open,2\n", "a, b\n 1 ,\" 2\"\n",
	} {
		want, wantErr := csv.NewReader(strings.NewReader(text)).ReadAll()
		for _, split := range []struct {
			name string
			f    func(string) ([][]string, error)
		}{
			{"streamed", splitAll},
			{"in 3-byte chunks", func(s string) ([][]string, error) { return splitChunked(s, 3) }},
			{"in one chunk", func(s string) ([][]string, error) { return splitChunked(s, 1<<20) }},
		} {
			got, gotErr := split.f(text)
			if (wantErr != nil) != (gotErr != nil) {
				t.Errorf("%q %s: encoding/csv error %v, ours %v", text, split.name, wantErr, gotErr)
				continue
			}
			if wantErr == nil {
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%q %s: records (-encoding/csv +ours):\n%s", text, split.name, diff)
				}
			}
		}
	}
}

// splitChunked splits text as ImportCSV does without fill-down: the header by
// the streaming reader, the rest in chunks of about chunkBytes cut at record
// boundaries.
func splitChunked(text string, chunkBytes int) ([][]string, error) {
	br := bufioReader(strings.NewReader(text))
	cr, out, err := splitHeader(br)
	if out == nil {
		return nil, err
	}
	ch := &chunker{r: br, line: cr.line}
	for {
		data, line, err := ch.next(chunkBytes)
		if err == io.EOF {
			return out, nil
		} else if err != nil {
			return out, err
		}
		b, err := parseChunk(nil, data, line, len(out[0]), 1)
		out = appendRows(out, b)
		if err != nil {
			return out, err
		}
	}
}

func appendRows(out [][]string, b *csvBlock) [][]string {
	for i := range b.rows() {
		row := make([]string, b.nf)
		b.row(i, row)
		out = append(out, row)
	}
	return out
}

// splitHeader reads the header row: out holds it, or is nil with err nil for
// an empty text or the error.
func splitHeader(r lineSource) (cr *csvReader, out [][]string, err error) {
	cr = &csvReader{r: r}
	header, err := cr.header()
	if err == io.EOF {
		return cr, nil, nil
	} else if err != nil {
		return cr, nil, err
	}
	return cr, [][]string{header}, nil
}

func splitAll(text string) ([][]string, error) {
	cr, out, err := splitHeader(bufioReader(strings.NewReader(text)))
	if out == nil {
		return nil, err
	}
	for {
		b, err := cr.block(3, 16)
		if b != nil {
			out = appendRows(out, b)
		}
		if err == io.EOF {
			return out, nil
		} else if err != nil {
			return out, err
		}
	}
}

func TestMappingJSON(t *testing.T) {
	t.Parallel()
	uci := UCIOnlineRetailMapping()
	raw, err := json.Marshal(uci)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseMapping(raw)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(uci, back); diff != "" {
		t.Errorf("UCI mapping after a JSON round trip (-want +got):\n%s", diff)
	}
	path := filepath.Join(t.TempDir(), "uci.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if loaded, err := LoadMapping(path); err != nil || !cmp.Equal(uci, loaded) {
		t.Errorf("LoadMapping: %v, %v", loaded, err)
	}
	tests := []struct {
		name, json string
		want       []string // parts of the message; all problems are reported at once
	}{
		{"unknown key", `{"fields":{"ts":{"column":"t","fromat":"x"}}}`, []string{`unknown field "fromat"`}},
		{"every problem", `{"fields":{"a":{},"b":{"column":"x","const":"y"},"c":{"const":"y","times":"z"},"d":{"column":"x","default":"p"},"e":{"column":"x","time_zone":"Mars/Olympus"}}}`,
			[]string{`field "a": set column or const`, `field "b": set column or const, not both`, `field "c": times, prefix, map, format, with and negate_if apply to a column`, `field "d": default applies with prefix or map only`, `field "e": unknown time zone "Mars/Olympus"`}},
		{"row rules", `{"fill_down":{"columns":["Email"]},"skip":[{"column":"Status"},{"in":["x"],"reason":"r"}],"rename":{"A":"x","B":"x"},"fields":{"ts":{"column":"t","formats":["Jan"],"year":-1}}}`,
			[]string{`fill_down: set group`, `skip[0]: set exactly one of in, not_in and empty`, `skip[0]: set reason`, `skip[1]: set column`, `rename: "A" and "B" are both renamed to "x"`, `field "ts": formats are tried after format`, `field "ts": year must be 1..9999, got -1`}},
	}
	for _, tt := range tests {
		_, err := ParseMapping([]byte(tt.json))
		if privalytics.ErrorCode(err) != privalytics.EINVALID {
			t.Errorf("%s: %v, want invalid", tt.name, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want it to say %q", tt.name, err, w)
			}
		}
	}
}

// TestImportUCIOnlineRetail imports the real file through UCIOnlineRetailMapping
// and checks it against the truth file: kept rows plus skipped rows (recomputed
// here from the raw CSV with encoding/csv and math/big, not with our parser) give
// the data set's totals exactly.
func TestImportUCIOnlineRetail(t *testing.T) {
	dir := sharedData(t)
	t.Parallel()
	var truth struct {
		UCI struct {
			Rows                 int         `json:"rows"`
			DistinctCustomers    int         `json:"distinct_customers"`
			RowsMissingCustomer  int         `json:"rows_missing_customer"`
			SumQuantity          json.Number `json:"sum_quantity"`
			SumQuantityUnitPrice json.Number `json:"sum_quantity_x_unitprice"`
		} `json:"online_retail_uci"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "online_retail_uci.truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&truth); err != nil {
		t.Fatal(err)
	}
	if truth.UCI.Rows != 541909 || truth.UCI.RowsMissingCustomer != 135080 || truth.UCI.DistinctCustomers != 4372 {
		t.Fatalf("the truth file changed: %+v", truth.UCI)
	}

	conv := testConverter(t)
	m := UCIOnlineRetailMapping()
	f, err := os.Open(filepath.Join(dir, "online_retail_uci.csv.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	subjects := map[uint64]bool{}
	var amountMilli, quantity int64
	rows := 0
	var lastProgress int64
	var firstSubject uint64
	start := time.Now()
	rep, err := ImportCSV(context.Background(), f, conv, &m, 100_000, func(rec arrow.Record) error {
		sch := rec.Schema()
		amount := rec.Column(sch.FieldIndices("amount")[0]).(*array.Int64)
		qty := rec.Column(sch.FieldIndices("quantity")[0]).(*array.Int64)
		subj := rec.Column(0).(*array.Uint64)
		if rows == 0 {
			firstSubject = subj.Value(0)
		}
		for i := range int(rec.NumRows()) {
			subjects[subj.Value(i)] = true
			amountMilli += amount.Value(i)
			quantity += qty.Value(i)
		}
		rows += int(rec.NumRows())
		return nil
	}, func(n int64) { lastProgress = n })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("imported %d rows in %v (%.2f M rows/s, parallel to other tests)", rep.Rows+rep.Skipped, time.Since(start), float64(rep.Rows+rep.Skipped)/time.Since(start).Seconds()/1e6)
	kept := truth.UCI.Rows - truth.UCI.RowsMissingCustomer
	wantRep := ImportReport{Rows: kept, Skipped: truth.UCI.RowsMissingCustomer, SkippedReasons: map[string]int{ReasonNoSubject: truth.UCI.RowsMissingCustomer}}
	if diff := cmp.Diff(wantRep, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if rows != kept {
		t.Errorf("%d rows emitted, want %d", rows, kept)
	}
	if len(subjects) != truth.UCI.DistinctCustomers {
		t.Errorf("%d distinct subjects, want %d", len(subjects), truth.UCI.DistinctCustomers)
	}
	if firstSubject != subjectOf(t, "17850") {
		t.Errorf("the first row's subject is not the file's first customer: records out of order?")
	}
	if lastProgress != st.Size() {
		t.Errorf("progress ended at %d bytes, the file has %d", lastProgress, st.Size())
	}

	// The skipped rows, independently.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	cr := csv.NewReader(zr)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	skippedAmount, skippedQty := new(big.Rat), int64(0)
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if rec[col["CustomerID"]] != "" {
			continue
		}
		q, ok1 := new(big.Rat).SetString(rec[col["Quantity"]])
		p, ok2 := new(big.Rat).SetString(rec[col["UnitPrice"]])
		if !ok1 || !ok2 {
			t.Fatalf("unreadable row %q", rec)
		}
		skippedAmount.Add(skippedAmount, new(big.Rat).Mul(q, p))
		skippedQty += q.Num().Int64()
	}
	total := new(big.Rat).Add(new(big.Rat).SetFrac64(amountMilli, 1000), skippedAmount)
	wantTotal, ok := new(big.Rat).SetString(truth.UCI.SumQuantityUnitPrice.String())
	if !ok {
		t.Fatalf("truth sum %q", truth.UCI.SumQuantityUnitPrice)
	}
	if got, want := cents(total), cents(wantTotal); got != want {
		t.Errorf("Σ quantity × unit price = %s (kept %s + skipped %s), truth %s", got, new(big.Rat).SetFrac64(amountMilli, 1000).FloatString(3), skippedAmount.FloatString(3), want)
	}
	if got := fmt.Sprint(quantity + skippedQty); got != truth.UCI.SumQuantity.String() {
		t.Errorf("Σ quantity = %s (kept %d + skipped %d), truth %s", got, quantity, skippedQty, truth.UCI.SumQuantity)
	}
}

// cents rounds to cents, half away from zero, as text.
func cents(r *big.Rat) string {
	return r.FloatString(2)
}
