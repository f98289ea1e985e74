package ingest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
)

func TestPseudonymiser(t *testing.T) {
	t.Parallel()
	p, _ := NewPseudonymiser(testKey)
	mac := hmac.New(sha256.New, testKey)
	mac.Write([]byte("loyalty-1042"))
	want := binary.BigEndian.Uint64(mac.Sum(nil))
	if got := p.Subject([]byte("loyalty-1042")); got != want {
		t.Errorf("subject %x, want HMAC-SHA256 prefix %x", got, want)
	}
	other, _ := NewPseudonymiser(bytes.Repeat([]byte{8}, 32))
	if other.Subject([]byte("loyalty-1042")) == want {
		t.Error("two tenant keys give the same pseudonym")
	}
	if _, err := NewPseudonymiser([]byte("short")); err == nil {
		t.Error("short key accepted")
	}
}

const good = `{"customer_id":"c1","ts":"2025-03-01T10:00:00Z","type":"purchase","amount":"12.5","quantity":2,"category":"bread"}`

func TestValidation(t *testing.T) {
	t.Parallel()
	conv := testConverter(t)
	tests := []struct {
		name, body string
		line       int
		field      string
		reason     string
	}{
		{"malformed", good + "\n{\"customer_id\":", 2, "", "malformed JSON"},
		{"missing customer", `{"ts":"2025-03-01T10:00:00Z","type":"view"}`, 1, "customer_id", "required"},
		{"empty customer", `{"customer_id":"","ts":"2025-03-01T10:00:00Z","type":"view"}`, 1, "customer_id", "empty"},
		{"unknown field", `{"customer_id":"c","ts":"2025-03-01T10:00:00Z","type":"view","email":"x@y.z"}`, 1, "email", "unknown field"},
		{"not allowed", `{"customer_id":"c","ts":"2025-03-01T10:00:00Z","type":"teleport"}`, 1, "type", "allowed values"},
		{"wrong type", `{"customer_id":"c","ts":"2025-03-01T10:00:00Z","type":"view","quantity":"two"}`, 1, "quantity", "whole number"},
		{"fraction in int", `{"customer_id":"c","ts":"2025-03-01T10:00:00Z","type":"view","quantity":1.5}`, 1, "quantity", "whole number"},
		{"too many decimals", `{"customer_id":"c","ts":"2025-03-01T10:00:00Z","type":"view","amount":1.2345}`, 1, "amount", "more than 3 digits"},
		{"exponent money", `{"customer_id":"c","ts":"2025-03-01T10:00:00Z","type":"view","amount":1e3}`, 1, "amount", "decimal number"},
		{"bad time", `{"customer_id":"c","ts":"yesterday","type":"view"}`, 1, "ts", "RFC 3339"},
		{"too long", `{"customer_id":"c","ts":"2025-03-01T10:00:00Z","type":"view","store":"` + strings.Repeat("x", 65) + `"}`, 1, "store", "longer than 64"},
		{"duplicate field", `{"customer_id":"c","customer_id":"d","ts":"2025-03-01T10:00:00Z","type":"view"}`, 1, "customer_id", "twice"},
		{"nested", `{"customer_id":"c","ts":"2025-03-01T10:00:00Z","type":"view","store":{"a":1}}`, 1, "", "nested"},
		{"array element", `[` + good + `,{"customer_id":"c","type":"view"}]`, 2, "ts", "required"},
		{"trailing text", good + ` x`, 1, "", "after the object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := conv.DecodeJSON([]byte(tt.body))
			d := privalytics.ErrorDetails(err)
			if privalytics.ErrorCode(err) != privalytics.EINVALID || fmt.Sprint(d["line"]) != fmt.Sprint(tt.line) || (tt.field != "" && d["field"] != tt.field) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("got %v (details %v), want line %d field %q reason containing %q", err, d, tt.line, tt.field, tt.reason)
			}
		})
	}
	lim := DefaultLimits()
	lim.MaxRows = 2
	p, _ := NewPseudonymiser(testKey)
	small, _ := NewConverter(privalytics.DefaultRetailSchema(), p, lim)
	if _, err := small.DecodeJSON([]byte(good + "\n" + good + "\n" + good)); privalytics.ErrorCode(err) != privalytics.ETOOLARGE {
		t.Errorf("3 rows over a limit of 2: %v, want too_large", err)
	}
}

// values renders a record's rows as strings, column by column, for comparison.
func values(rec arrow.Record) []string {
	var out []string
	for i := range int(rec.NumRows()) {
		var row []string
		for _, c := range rec.Columns() {
			if d, ok := c.(*array.Dictionary); ok {
				if d.IsNull(i) {
					row = append(row, "null")
				} else {
					row = append(row, d.Dictionary().(*array.String).Value(d.GetValueIndex(i)))
				}
				continue
			}
			row = append(row, c.ValueStr(i))
		}
		out = append(out, strings.Join(row, "|"))
	}
	return out
}

func TestDecodeRoundTrip(t *testing.T) {
	t.Parallel()
	conv := testConverter(t)
	nd := good + "\n\n" + `{"customer_id":"c\u00e9","ts":1740823200.5,"type":"view","channel":"web","amount":-3,"quantity":0}` + "\n"
	arr := "[" + good + "," + `{"customer_id":"c\u00e9","ts":1740823200.5,"type":"view","channel":"web","amount":-3,"quantity":0}` + "]"
	a, err := conv.DecodeJSON([]byte(nd))
	if err != nil {
		t.Fatal(err)
	}
	b, err := conv.DecodeJSON([]byte(arr))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(values(a), values(b)); diff != "" {
		t.Errorf("NDJSON and array forms differ (-ndjson +array):\n%s", diff)
	}
	p, _ := NewPseudonymiser(testKey)
	got := values(a)
	wantFirst := fmt.Sprintf("%d|2025-03-01 10:00:00Z|purchase|null|null|bread|null|null|2|12500|null", p.Subject([]byte("c1")))
	wantSecond := fmt.Sprintf("%d|2025-03-01 10:00:00.5Z|view|null|web|null|null|null|0|-3000|null", p.Subject([]byte("cé")))
	if diff := cmp.Diff([]string{wantFirst, wantSecond}, got); diff != "" {
		t.Errorf("decoded rows (-want +got):\n%s", diff)
	}
}

func TestImportCSVMapping(t *testing.T) {
	t.Parallel()
	conv := testConverter(t)
	csv := "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n" +
		"536365,85123A,\"WHITE, HEART\",6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n" +
		"C536379,D,Discount,-1,2010-07-01 09:41:00,27.5,14527,United Kingdom\n" +
		"536414,22139,,56,2010-12-01 11:52:00,0.001,,United Kingdom\n"
	m := UCIOnlineRetailMapping()
	var recs []arrow.Record
	rep, err := ImportCSV(context.Background(), strings.NewReader(csv), conv, &m, 10, func(r arrow.Record) error { recs = append(recs, r); return nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows != 2 || rep.Skipped != 1 || len(recs) != 1 {
		t.Fatalf("report %+v with %d records, want 2 rows and 1 skipped guest", rep, len(recs))
	}
	p, _ := NewPseudonymiser(testKey)
	want := []string{
		// 08:26 in London in December is 08:26 UTC; in July it is 08:41 UTC (BST).
		fmt.Sprintf("%d|2010-12-01 08:26:00Z|purchase|null|null|null|85123A|536365|6|15300|United Kingdom", p.Subject([]byte("17850"))),
		fmt.Sprintf("%d|2010-07-01 08:41:00Z|refund|null|null|null|D|C536379|-1|-27500|United Kingdom", p.Subject([]byte("14527"))),
	}
	if diff := cmp.Diff(want, values(recs[0])); diff != "" {
		t.Errorf("imported rows (-want +got):\n%s", diff)
	}
}

func BenchmarkDecodeJSON(b *testing.B) {
	conv := testConverter(b)
	var buf bytes.Buffer
	for i := range 10_000 {
		fmt.Fprintf(&buf, `{"customer_id":"cust-%d","ts":"2025-03-01T10:00:00Z","type":"purchase","store":"london-1","channel":"web","category":"bread","product":"p%d","order_id":"o%d","quantity":2,"amount":12.5,"country":"GB"}`+"\n", i%5000, i%300, i)
	}
	b.SetBytes(int64(buf.Len()))
	b.ResetTimer()
	for range b.N {
		if _, err := conv.DecodeJSON(buf.Bytes()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*10_000)/b.Elapsed().Seconds(), "rows/s")
}
