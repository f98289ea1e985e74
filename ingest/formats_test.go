package ingest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
)

// TestImportFormatsAgree: the same events as NDJSON, CSV and Parquet import to the
// same rows, and a bad row stops an NDJSON import with its line number.
func TestImportFormatsAgree(t *testing.T) {
	t.Parallel()
	conv := testConverter(t)
	ctx := context.Background()
	collect := func(f func(emit func(arrow.Record) error) (ImportReport, error)) []string {
		t.Helper()
		var rows []string
		rep, err := f(func(r arrow.Record) error { rows = append(rows, values(r)...); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if rep.Rows != len(rows) {
			t.Fatalf("report says %d rows, %d emitted", rep.Rows, len(rows))
		}
		return rows
	}
	nd := `{"customer_id":"a","ts":"2025-01-02T03:04:05Z","type":"purchase","amount":"1.5","quantity":1,"store":"x"}
{"customer_id":"b","ts":"2025-01-03T00:00:00Z","type":"view","channel":"app"}
`
	csv := "customer_id,ts,type,amount,quantity,store,channel\na,2025-01-02T03:04:05Z,purchase,1.5,1,x,\nb,2025-01-03T00:00:00Z,view,,,,app\n"
	fromND := collect(func(e func(arrow.Record) error) (ImportReport, error) {
		return ImportNDJSON(ctx, strings.NewReader(nd), conv, nil, 1, e, nil)
	})
	fromCSV := collect(func(e func(arrow.Record) error) (ImportReport, error) {
		return ImportCSV(ctx, strings.NewReader(csv), conv, nil, 1, e, nil)
	})
	if diff := cmp.Diff(fromND, fromCSV); diff != "" {
		t.Errorf("NDJSON vs CSV (-ndjson +csv):\n%s", diff)
	}

	// A Parquet file with source names, mapped onto the schema.
	src := arrow.NewSchema([]arrow.Field{
		{Name: "cust", Type: arrow.BinaryTypes.String},
		{Name: "when", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
		{Name: "kind", Type: arrow.BinaryTypes.String},
		{Name: "value", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "shop", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "via", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, src)
	b.Field(0).(*array.StringBuilder).AppendValues([]string{"a", "b"}, nil)
	b.Field(1).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{1735787045000, 1735862400000}, nil)
	b.Field(2).(*array.StringBuilder).AppendValues([]string{"purchase", "view"}, nil)
	b.Field(3).(*array.Float64Builder).AppendValues([]float64{1.5, 0}, []bool{true, false})
	b.Field(4).(*array.Int64Builder).AppendValues([]int64{1, 0}, []bool{true, false})
	b.Field(5).(*array.StringBuilder).AppendValues([]string{"x", ""}, []bool{true, false})
	b.Field(6).(*array.StringBuilder).AppendValues([]string{"", "app"}, []bool{false, true})
	var pq bytes.Buffer
	w, err := pqarrow.NewFileWriter(src, &pq, nil, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(b.NewRecord()); err != nil {
		t.Fatal(err)
	}
	w.Close()
	m := &Mapping{Fields: map[string]FieldSource{
		"customer_id": {Column: "cust"}, "ts": {Column: "when"}, "type": {Column: "kind"}, "amount": {Column: "value"},
		"quantity": {Column: "n"}, "store": {Column: "shop"}, "channel": {Column: "via"},
	}}
	path := filepath.Join(t.TempDir(), "events.parquet")
	if err := os.WriteFile(path, pq.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	fromPQ := collect(func(e func(arrow.Record) error) (ImportReport, error) {
		return ImportParquetReader(ctx, &pq, conv, m, 10, e, nil)
	})
	if diff := cmp.Diff(fromND, fromPQ); diff != "" {
		t.Errorf("NDJSON vs Parquet (-ndjson +parquet):\n%s", diff)
	}
	var read int64
	fromPQFile := collect(func(e func(arrow.Record) error) (ImportReport, error) {
		return ImportParquet(ctx, path, conv, m, 10, e, func(n int64) { read = n })
	})
	if diff := cmp.Diff(fromND, fromPQFile); diff != "" {
		t.Errorf("NDJSON vs Parquet by path (-ndjson +parquet):\n%s", diff)
	}
	if read == 0 {
		t.Error("no progress reported while reading the Parquet file")
	}

	// NDJSON with source keys, through the same mapping; unmapped keys are dropped.
	srcND := `{"cust":"a","when":"2025-01-02T03:04:05Z","kind":"purchase","value":1.5,"n":1,"shop":"x","free_text":"dropped"}
{"cust":"b","when":1735862400,"kind":"view","value":null,"via":"app"}
`
	fromMappedND := collect(func(e func(arrow.Record) error) (ImportReport, error) {
		return ImportNDJSON(ctx, strings.NewReader(srcND), conv, m, 10, e, nil)
	})
	if diff := cmp.Diff(fromND, fromMappedND); diff != "" {
		t.Errorf("NDJSON vs mapped NDJSON (-ndjson +mapped):\n%s", diff)
	}

	_, err = ImportNDJSON(ctx, strings.NewReader(nd+`{"customer_id":"c","ts":"bad","type":"view"}`+"\n"), conv, nil, 10, func(arrow.Record) error { return nil }, nil)
	if d := privalytics.ErrorDetails(err); d["line"] != 3 || d["field"] != "ts" {
		t.Errorf("bad third line: %v (details %v)", err, d)
	}
}
