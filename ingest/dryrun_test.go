package ingest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDryRunPreset(t *testing.T) {
	t.Parallel()
	f, err := os.Open(filepath.Join("testdata", "presets", "shopify_orders.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := ShopifyOrdersMapping()
	rep, err := DryRun(context.Background(), f, "csv", testConverter(t), &m, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := &DryRunReport{
		ImportReport: ImportReport{Rows: 7, Skipped: 5, SkippedReasons: map[string]int{ReasonNoSubject: 2, "unpaid order (voided, pending or expired)": 1, "cancelled order": 2}},
		Columns:      []string{"subject", "ts", "type", "store", "channel", "category", "product", "order_id", "quantity", "amount", "country"},
		First: [][]string{
			{fmt.Sprintf("%016x", subjectOf(t, "alice@example.com")), "2024-03-05T19:02:11Z", "purchase", "", "web", "", "TSHIRT-M", "#1001", "2", "39.980", "US"},
			{fmt.Sprintf("%016x", subjectOf(t, "alice@example.com")), "2024-03-05T19:02:11Z", "purchase", "", "web", "", "MUG-L", "#1001", "1", "12.500", "US"},
			{fmt.Sprintf("%016x", subjectOf(t, "bob@example.org")), "2024-03-06T09:15:00Z", "refund", "", "store", "", "SOCKS-3", "#1002", "3", "-12.000", "GB"},
		},
		Customers: 2,
		From:      time.Date(2024, 3, 5, 19, 2, 11, 0, time.UTC),
		To:        time.Date(2024, 4, 3, 18, 45, 0, 0, time.UTC),
	}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("dry run (-want +got):\n%s", diff)
	}
}

// TestDryRunPrivacyUnit: the dry run warns when the customer column is not one
// person per customer, and only then.
func TestDryRunPrivacyUnit(t *testing.T) {
	t.Parallel()
	conv := testConverter(t)
	// 1,000 sessions of 200 shoppers (5 each) in 9 regions, one line id each.
	var b strings.Builder
	b.WriteString("LineID,Email,Region,When\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "L%d,shopper%d@example.com,R%d,2024-01-01T00:00:00Z\n", i, i%200, i%9)
	}
	text := b.String()
	mapTo := func(col string) *Mapping {
		return &Mapping{Fields: map[string]FieldSource{"customer_id": {Column: col}, "ts": {Column: "When"}, "type": {Const: "visit"}}}
	}
	tests := []struct {
		column string
		want   []string // parts of the warnings, in order; none for no warning
	}{
		{"Email", nil},
		{"Region", []string{`9 customers for 1000 rows (111 rows per customer): is "Region" really the customer?`}},
		{"LineID", []string{`every row is a different customer (1000 customers for 1000 rows), yet column "Email" repeats (200 distinct values in 1000 rows)`}},
	}
	for _, tt := range tests {
		rep, err := DryRun(context.Background(), strings.NewReader(text), "csv", conv, mapTo(tt.column), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Warnings) != len(tt.want) {
			t.Errorf("customer = %s: warnings %q, want %d", tt.column, rep.Warnings, len(tt.want))
			continue
		}
		for i, w := range tt.want {
			if !strings.Contains(rep.Warnings[i], w) {
				t.Errorf("customer = %s: warning %q, want it to say %q", tt.column, rep.Warnings[i], w)
			}
		}
	}
}

func TestFormatScaled(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		n     int64
		scale int
		want  string
	}{{39980, 3, "39.980"}, {-5, 3, "-0.005"}, {0, 2, "0.00"}, {12, 0, "12"}, {-9223372036854775808, 3, "-9223372036854775.808"}} {
		if got := formatScaled(tt.n, tt.scale); got != tt.want {
			t.Errorf("formatScaled(%d, %d) = %q, want %q", tt.n, tt.scale, got, tt.want)
		}
	}
}

func TestPrivacyUnitWarnings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		rows, customers int
		repeats         []columnRepeat
		warnings        int
	}{
		{"UCI Online Retail: 93 rows per customer is a busy shop", 406829, 4372, nil, 0},
		{"UCI Online Shoppers with an unrelated column", 12330, 9, nil, 1},
		{"few rows say nothing", 40, 2, nil, 0},
		{"unique customers, no repeating identifier", 1000, 1000, []columnRepeat{{"Order", 1000, 1000}}, 0},
		{"unique customers, repeating order groups", 1000, 1000, []columnRepeat{{"Name", 400, 1000}}, 1},
		{"a column too varied to count is no evidence", 1000, 1000, []columnRepeat{{"Email", -1, 1000}}, 0},
		{"the customer column itself", 1000, 990, []columnRepeat{{"cust", 990, 1000}}, 0},
	}
	for _, tt := range tests {
		if got := privacyUnitWarnings(tt.rows, tt.customers, "cust", tt.repeats); len(got) != tt.warnings {
			t.Errorf("%s: warnings %q, want %d", tt.name, got, tt.warnings)
		}
	}
}
