package ingest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
)

// TestNDJSONParallel: cut into chunks of a few hundred bytes and converted on
// four workers, an NDJSON file gives the rows, in order, and the line numbers
// of the one-core reader, with and without a mapping.
func TestNDJSONParallel(t *testing.T) {
	t.Parallel()
	conv := testConverter(t)
	var b strings.Builder
	for i := range 2000 {
		if i%97 == 0 {
			b.WriteString("\n  \n") // blank lines count as lines
		}
		fmt.Fprintf(&b, `{"customer_id":"c%d","ts":"2026-01-01T00:00:%02dZ","type":"view","quantity":%d}`+"\n", i%37, i%60, i)
	}
	text := b.String()
	mapped := &Mapping{Fields: map[string]FieldSource{"customer_id": {Column: "customer_id"}, "ts": {Column: "ts"}, "type": {Column: "type"}, "quantity": {Column: "quantity"}}}
	run := func(m *Mapping, workers, chunk int, text string) ([]string, ImportReport, error) {
		var rows []string
		rep, err := importNDJSON(context.Background(), strings.NewReader(text), conv, m, 64, func(r arrow.Record) error {
			rows = append(rows, values(r)...)
			return nil
		}, nil, importOptions{workers: workers, chunkBytes: chunk})
		return rows, rep, err
	}
	for _, m := range []*Mapping{nil, mapped} {
		want, wantRep, err := run(m, 1, 0, text)
		if err != nil || len(want) != 2000 {
			t.Fatalf("serial: %d rows, %v", len(want), err)
		}
		got, rep, err := run(m, 4, 300, text)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("mapped %v: parallel rows differ from serial (-serial +parallel):\n%s", m != nil, diff)
		}
		if diff := cmp.Diff(wantRep, rep); diff != "" {
			t.Errorf("mapped %v: report (-serial +parallel):\n%s", m != nil, diff)
		}
		// A bad line far into the file is named by its line, as serially.
		bad := strings.Replace(text, `"quantity":1500}`, `"quantity":"x"}`, 1)
		_, _, serr := run(m, 1, 0, bad)
		_, _, perr := run(m, 4, 300, bad)
		se, ok1 := serr.(*privalytics.Error)
		pe, ok2 := perr.(*privalytics.Error)
		if !ok1 || !ok2 || se.Details["line"] != pe.Details["line"] || se.Details["line"] == nil {
			t.Errorf("mapped %v: bad line: serial %v, parallel %v", m != nil, serr, perr)
		}
	}
	// A line longer than 1 MiB is refused with its number.
	long := `{"customer_id":"c1","ts":"2026-01-01T00:00:00Z","type":"view"}` + "\n" + `{"customer_id":"` + strings.Repeat("x", maxCSVLine+10) + `"}` + "\n"
	_, _, err := run(nil, 2, 1000, long)
	if e, ok := err.(*privalytics.Error); !ok || e.Details["line"] != 2 || !strings.Contains(e.Message, "longer than 1 MiB") {
		t.Errorf("long line: %v", err)
	}
}
