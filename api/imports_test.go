package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api"
	"github.com/privalytics/privalytics/ingest"
	"github.com/privalytics/privalytics/synth"
)

// TestImportPresetStoredRows imports the Shopify sample export through POST
// /v1/imports?mapping=shopify-orders and reads back what the event store holds
// (the test-only path: the store's snapshot, which no API exposes): every line
// of the file is a stored row or a counted skip, and the stored rows are the
// file's, with one pseudonym per customer.
func TestImportPresetStoredRows(t *testing.T) {
	var store privalytics.EventStore
	f := newFixtureDeps(t, api.Limits{}, func(d *api.Deps) { store = d.Events })
	body, err := os.ReadFile(filepath.Join("..", "ingest", "testdata", "presets", "shopify_orders.csv"))
	if err != nil {
		t.Fatal(err)
	}
	var rep api.ImportResponse
	f.mustDo(t, http.MethodPost, "/v1/imports?format=csv&mapping=shopify-orders", f.admin, "text/csv", nil, body, http.StatusOK, &rep)
	wantSkips := map[string]int{"no customer identifier": 2, "unpaid order (voided, pending or expired)": 1, "cancelled order": 2}
	if rep.Rows != 7 || rep.Skipped != 5 || !cmp.Equal(wantSkips, rep.SkippedReasons) {
		t.Errorf("report %+v, want 7 rows and skips %v", rep, wantSkips)
	}
	snap, err := store.Snapshot(context.Background(), "shop", privalytics.DefaultRetailSchema())
	if err != nil {
		t.Fatal(err)
	}
	// Customers are named A, B … in the order they first appear.
	names := map[uint64]string{}
	var got []string
	for _, ch := range snap.Chunks {
		rec := ch.Record
		for i := range int(rec.NumRows()) {
			subj := rec.Column(0).(*array.Uint64).Value(i)
			if _, ok := names[subj]; !ok {
				names[subj] = string(rune('A' + len(names)))
			}
			cells := []string{names[subj]}
			for _, col := range rec.Columns()[1:] {
				cells = append(cells, cell(col, i))
			}
			got = append(got, strings.Join(cells, "|"))
		}
	}
	want := []string{
		"A|2024-03-05 19:02:11Z|purchase|null|web|null|TSHIRT-M|#1001|2|39980|US",
		"A|2024-03-05 19:02:11Z|purchase|null|web|null|MUG-L|#1001|1|12500|US",
		"B|2024-03-06 09:15:00Z|refund|null|store|null|SOCKS-3|#1002|3|-12000|GB",
		"A|2024-03-31 00:30:00Z|purchase|null|app|null|STICKER|#1004|1|990|US",
		"A|2024-03-31 00:30:00Z|purchase|null|app|null|POSTER-SUN|#1004|2|19980|US",
		"A|2024-03-31 00:30:00Z|purchase|null|app|null|null|#1004|1|0|US",
		"B|2024-04-03 18:45:00Z|purchase|null|web|null|SOCKS-1|#1007|2|8000|GB",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored rows (-want +got):\n%s", diff)
	}
}

func cell(col arrow.Array, i int) string {
	switch {
	case col.IsNull(i):
		return "null"
	case col.DataType().ID() == arrow.DICTIONARY:
		d := col.(*array.Dictionary)
		return fmt.Sprint(d.Dictionary().(*array.String).Value(d.GetValueIndex(i)))
	}
	return col.ValueStr(i)
}

// TestImportMappingHeader: a preset changed by the CLI (--time-zone) travels as
// JSON in the Privalytics-Mapping header, non-ASCII characters included (the
// Square preset strips "£€").
func TestImportMappingHeader(t *testing.T) {
	f := newFixture(t, api.Limits{})
	body, err := os.ReadFile(filepath.Join("..", "ingest", "testdata", "presets", "square_transactions.csv"))
	if err != nil {
		t.Fatal(err)
	}
	m := ingest.SquareTransactionsMapping()
	m.TimeZone = "America/Los_Angeles"
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var rep api.ImportResponse
	f.mustDo(t, http.MethodPost, "/v1/imports?format=csv", f.admin, "text/csv", map[string]string{"Privalytics-Mapping": string(raw)}, body, http.StatusOK, &rep)
	if rep.Rows != 4 || rep.Skipped != 2 {
		t.Errorf("report %+v, want 4 rows kept and 2 skipped", rep)
	}
}

// TestImportRerunStoresWhatIsMissing follows the promise of POST /v1/imports
// with an Idempotency-Key: a file of several batches stops at a bad line near
// its end with some batches stored; the owner fixes the line and sends the file
// again with the same key; the store then holds every row of the file once,
// in file order (the test-only path: the store's snapshot). It holds only if
// batch k covers the same rows on both runs, whatever the timing.
func TestImportRerunStoresWhatIsMissing(t *testing.T) {
	var store privalytics.EventStore
	f := newFixtureDeps(t, api.Limits{}, func(d *api.Deps) { store = d.Events })
	cfg := synth.DefaultConfig()
	cfg.Events, cfg.Seed = 330_000, 37
	g, err := synth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	var ev synth.Event
	for g.Next(&ev) {
		lines = append(lines, synth.AppendCSV(nil, &ev))
	}
	file := func(bad int) []byte {
		out := []byte(strings.Join(synth.CSVHeader(), ",") + "\n")
		for i, ln := range lines {
			if i == bad {
				cells := strings.Split(string(ln), ",")
				cells[1] = "not a time"
				ln = []byte(strings.Join(cells, ","))
			}
			out = append(out, ln...)
		}
		return out
	}
	hdr := map[string]string{"Idempotency-Key": "march-export"}
	status, eb, _ := f.do(t, http.MethodPost, "/v1/imports?format=csv", f.admin, "text/csv", hdr, file(310_000))
	stored, _ := eb.Error.Details["batches_stored"].(float64)
	if status != http.StatusBadRequest || stored < 2 {
		t.Fatalf("the import with a bad line 310,002: status %d, %d batches stored (%s), want 400 after at least 2 batches", status, int(stored), eb.Error.Message)
	}
	var rep api.ImportResponse
	f.mustDo(t, http.MethodPost, "/v1/imports?format=csv", f.admin, "text/csv", hdr, file(-1), http.StatusOK, &rep)
	snap, err := store.Snapshot(context.Background(), "shop", privalytics.DefaultRetailSchema())
	if err != nil {
		t.Fatal(err)
	}
	// Rows, as time|type|product|order in any order: the store keeps chunks
	// in an order of its own.
	var got, want []string
	for _, ch := range snap.Chunks {
		rec := ch.Record
		col := func(name string) arrow.Array { return rec.Column(rec.Schema().FieldIndices(name)[0]) }
		ts, typ, product, order := col("ts").(*array.Timestamp), col("type"), col("product"), col("order_id")
		for i := range int(rec.NumRows()) {
			got = append(got, fmt.Sprintf("%d|%s|%s|%s", ts.Value(i), cell(typ, i), cell(product, i), cell(order, i)))
		}
	}
	orNull := func(s string) string {
		if s == "" {
			return "null"
		}
		return s
	}
	for _, ln := range lines {
		c := strings.Split(string(ln), ",")
		tm, err := time.Parse(time.RFC3339Nano, c[1])
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("%d|%s|%s|%s", tm.UnixMicro(), c[2], orNull(c[6]), orNull(c[7])))
	}
	slices.Sort(got)
	slices.Sort(want)
	if len(got) != len(want) {
		t.Fatalf("the store holds %d rows after the re-run; the file has %d (the first run stored %d batches)", len(got), len(want), int(stored))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("stored rows (time|type|product|order) differ from the file's (-file +store):\n%s", diff)
	}
}
