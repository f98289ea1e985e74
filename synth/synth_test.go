package synth

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
)

func generate(t *testing.T, cfg Config) ([]Event, []byte) {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var evs []Event
	var buf []byte
	var ev Event
	for g.Next(&ev) {
		evs = append(evs, ev)
		buf = AppendNDJSON(buf, &ev)
	}
	return evs, buf
}

func TestDeterministicBySeed(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Events, cfg.Customers = 20_000, 2000
	_, a := generate(t, cfg)
	_, b := generate(t, cfg)
	cfg.Seed++
	_, c := generate(t, cfg)
	if !bytes.Equal(a, b) {
		t.Error("the same seed gave different data")
	}
	if bytes.Equal(a, c) {
		t.Error("different seeds gave the same data")
	}
}

func TestRealism(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Events, cfg.Customers = 200_000, 10_000
	evs, ndjson := generate(t, cfg)
	if len(evs) != cfg.Events {
		t.Fatalf("%d events, want %d", len(evs), cfg.Events)
	}
	perCustomer := map[string]int{}
	types := map[string]int{}
	stores, categories := map[string]bool{}, map[string]bool{}
	var dec, jun, weekend, weekday int
	for _, e := range evs {
		perCustomer[e.CustomerID]++
		types[e.Type]++
		stores[e.Store] = true
		if e.Category != "" {
			categories[e.Category] = true
		}
		if e.Type == privalytics.EventPurchase {
			if e.AmountMilli <= 0 || e.Quantity <= 0 {
				t.Fatalf("purchase without amount or quantity: %+v", e)
			}
			switch e.TS.Month() {
			case time.December:
				dec++
			case time.June:
				jun++
			}
			if wd := e.TS.Weekday(); wd == time.Saturday || wd == time.Sunday {
				weekend++
			} else {
				weekday++
			}
		}
	}
	counts := make([]int, 0, len(perCustomer))
	for _, n := range perCustomer {
		counts = append(counts, n)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(counts)))
	top := 0
	for _, n := range counts[:len(counts)/100] {
		top += n
	}
	if share := float64(top) / float64(len(evs)); share < 0.10 {
		t.Errorf("top 1%% of customers hold %.1f%% of events; want a skewed (> 10%%) share", share*100)
	}
	if !(types["view"] > types["add_to_cart"] && types["add_to_cart"] > types["purchase"] && types["purchase"] > types["refund"] && types["refund"] > 0 && types["visit"] > 0) {
		t.Errorf("implausible funnel: %v", types)
	}
	if len(stores) < 24 || len(categories) != 20 {
		t.Errorf("%d stores and %d categories, want ≥ 24 and 20", len(stores), len(categories))
	}
	if dec <= jun {
		t.Errorf("December purchases %d ≤ June %d: no yearly season", dec, jun)
	}
	if float64(weekend)/2 <= float64(weekday)/5 {
		t.Errorf("weekend days are not busier: %d weekend vs %d weekday purchases", weekend, weekday)
	}
	for i, line := range strings.Split(strings.TrimSpace(string(ndjson)), "\n")[:5000] {
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(line))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("line %d is not JSON: %v", i+1, err)
		}
		for k := range m {
			if _, ok := privalytics.DefaultRetailSchema().Column(k); !ok {
				t.Fatalf("line %d has field %q outside the default schema", i+1, k)
			}
		}
		if a, ok := m["amount"].(json.Number); ok {
			if _, frac, _ := strings.Cut(string(a), "."); len(frac) > 3 {
				t.Fatalf("line %d: amount %v has more than 3 decimals", i+1, a)
			}
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Events = b.N
	g, _ := New(cfg)
	var ev Event
	buf := make([]byte, 0, 1<<16)
	b.ResetTimer()
	for g.Next(&ev) {
		buf = AppendNDJSON(buf[:0], &ev)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
