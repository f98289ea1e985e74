package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api"
	"github.com/privalytics/privalytics/ingest"
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
