package ingest

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPresets imports each preset's sample export (testdata/presets, written
// for this test) and compares the rows that would be stored, field by field,
// with the rows worked out by hand from the file, and the skipped lines with
// their reasons: every line of the file is accounted for. Each sample is read
// in blocks of 1, 2 and 1,000 rows, so fill-down is tested across the blocks
// the parallel reader splits a file into.
func TestPresets(t *testing.T) {
	t.Parallel()
	// Rows: customer|ts|type|store|channel|category|product|order_id|quantity|amount (scale 3)|country.
	tests := []struct {
		preset, file, zone string
		want               []string
		skipped            map[string]int
	}{
		{"shopify-orders", "shopify_orders.csv", "", []string{
			"alice@example.com|2024-03-05 19:02:11Z|purchase|null|web|null|TSHIRT-M|#1001|2|39980|US",
			"alice@example.com|2024-03-05 19:02:11Z|purchase|null|web|null|MUG-L|#1001|1|12500|US",
			"bob@example.org|2024-03-06 09:15:00Z|refund|null|store|null|SOCKS-3|#1002|3|-12000|GB",
			"alice@example.com|2024-03-31 00:30:00Z|purchase|null|app|null|STICKER|#1004|1|990|US",
			"alice@example.com|2024-03-31 00:30:00Z|purchase|null|app|null|POSTER-SUN|#1004|2|19980|US",
			"alice@example.com|2024-03-31 00:30:00Z|purchase|null|app|null|null|#1004|1|0|US",
			"bob@example.org|2024-04-03 18:45:00Z|purchase|null|web|null|SOCKS-1|#1007|2|8000|GB",
		}, map[string]int{ReasonNoSubject: 2, "unpaid order (voided, pending or expired)": 1, "cancelled order": 2}},
		{"stripe-payments", "stripe_payments.csv", "Europe/Paris", []string{ // the zone is ignored: Stripe's times are UTC
			"cus_PA001|2024-03-05 14:02:00Z|purchase|null|web|null|null|ch_3OqA1001|null|25000|US",
			"cus_PB002|2024-03-05 15:10:45Z|purchase|null|web|null|null|ch_3OqA1002|null|1250000|DE",
			"cus_PB002|2024-03-07 19:30:00Z|refund|null|web|null|null|ch_3OqA1004|null|-10000|DE",
			"cus_PC003|2024-03-09 23:59:59Z|purchase|null|web|null|null|ch_3OqA1007|null|40000|GB",
		}, map[string]int{ReasonNoSubject: 1, "failed payment": 1, "payment not captured": 1}},
		{"woocommerce-orders", "woocommerce_orders.csv", "Europe/Berlin", []string{
			"anna@example.com|2024-03-05 13:02:11Z|purchase|null|web|null|CANDLE-LAV|812|2|24000|DE",
			"anna@example.com|2024-03-05 13:02:11Z|purchase|null|web|null|MATCH|812|1|10980|DE",
			"ben@example.com|2024-03-06 08:00:00Z|purchase|null|web|null|LAMP-XL|813|1|1234500|AT",
			"anna@example.com|2024-03-08 15:20:00Z|refund|null|web|null|CANDLE-VAN|815|1|-12000|DE",
		}, map[string]int{ReasonNoSubject: 1, "unpaid order (pending, on-hold, cancelled, failed or draft)": 2}},
		{"square-transactions", "square_transactions.csv", "America/Los_Angeles", []string{
			"CUST7QX1|2024-03-05 16:15:02Z|purchase|Mission St|store|null|null|tx5Aa001|null|8500|null",
			"CUST7QX2|2024-03-06 20:00:00Z|purchase|Mission St|web|null|null|tx5Aa003|null|1200000|null",
			"CUST7QX1|2024-03-07 17:30:00Z|refund|Valencia St|store|null|null|tx5Aa004|null|-8500|null",
			// 10 March 2024 07:59 is after the switch to daylight saving time (UTC-7).
			"CUST7QX3|2024-03-10 14:59:59Z|purchase|Valencia St|store|null|null|tx5Aa005|null|3250|null",
		}, map[string]int{ReasonNoSubject: 1, "transaction not complete": 1}},
	}
	customers := []string{"alice@example.com", "bob@example.org", "carol@example.net", "dave@example.com", "cus_PA001", "cus_PB002", "cus_PC003",
		"anna@example.com", "ben@example.com", "cleo@example.com", "CUST7QX1", "CUST7QX2", "CUST7QX3"}
	raw := map[string]string{}
	for _, c := range customers {
		raw[fmt.Sprint(subjectOf(t, c))] = c
	}
	for _, tt := range tests {
		t.Run(tt.preset, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join("testdata", "presets", tt.file)
			text, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// The lines of the file, counted by encoding/csv, not by our reader.
			recs, err := csv.NewReader(strings.NewReader(string(text))).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			lines := len(recs) - 1
			if got := len(tt.want) + sum(tt.skipped); got != lines {
				t.Fatalf("the test accounts for %d lines, the file has %d", got, lines)
			}
			for _, batchRows := range []int{1, 2, 1000} {
				m, err := PresetMapping(tt.preset)
				if err != nil {
					t.Fatal(err)
				}
				m.TimeZone = tt.zone
				rows, rep, err := collectCSV(t, testConverter(t), &m, batchRows, string(text))
				if err != nil {
					t.Fatalf("batch %d: %v", batchRows, err)
				}
				for i, r := range rows {
					subj, rest, _ := strings.Cut(r, "|")
					if id, ok := raw[subj]; ok {
						rows[i] = id + "|" + rest
					}
				}
				if diff := cmp.Diff(tt.want, rows); diff != "" {
					t.Errorf("batch %d: stored rows (-want +got):\n%s", batchRows, diff)
				}
				if diff := cmp.Diff(ImportReport{Rows: len(tt.want), Skipped: sum(tt.skipped), SkippedReasons: tt.skipped}, rep); diff != "" {
					t.Errorf("batch %d: report (-want +got):\n%s", batchRows, diff)
				}
			}
		})
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func TestPresetMapping(t *testing.T) {
	t.Parallel()
	for _, p := range Presets() {
		m, err := PresetMapping(p.Name)
		if err != nil {
			t.Errorf("%s: %v", p.Name, err)
			continue
		}
		if err := m.Validate(); err != nil {
			t.Errorf("%s: %v", p.Name, err)
		}
		if p.Expects == "" {
			t.Errorf("%s: no description of the export it expects", p.Name)
		}
	}
	if _, err := PresetMapping("shopfy-orders"); err == nil || !strings.Contains(err.Error(), "shopify-orders") {
		t.Errorf("unknown preset: %v, want an error listing the presets", err)
	}
}
