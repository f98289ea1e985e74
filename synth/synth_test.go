package synth

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
)

// generate runs a generator to the end and returns its events and their NDJSON.
func generate(t testing.TB, cfg Config) ([]Event, []byte) {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
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

// dataset is the one generated year the distribution tests share: the default
// 50,000 customers and 24 stores, 300,000 events (≈ 40,000 sessions).
var dataset = sync.OnceValues(func() (Config, []Event) {
	cfg := DefaultConfig()
	cfg.Seed, cfg.Events = 42, 300_000
	g, err := New(cfg)
	if err != nil {
		panic(err)
	}
	evs := make([]Event, 0, cfg.Events)
	var ev Event
	for g.Next(&ev) {
		evs = append(evs, ev)
	}
	return cfg, evs
})

func TestDeterministicBySeed(t *testing.T) {
	t.Parallel()
	small := DefaultConfig()
	small.Customers, small.Events = 2000, 20_000
	other := small
	other.Seed++
	tests := []struct {
		name      string
		a, b      Config
		wantEqual bool
	}{
		{"same seed", small, small, true},
		{"different seed", small, other, false},
		{"zero fields take the defaults", Config{Seed: 1, Events: 5000}, func() Config { c := DefaultConfig(); c.Events = 5000; return c }(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, a := generate(t, tt.a)
			_, b := generate(t, tt.b)
			if got := bytes.Equal(a, b); got != tt.wantEqual {
				t.Errorf("outputs equal = %v, want %v (%d and %d bytes)", got, tt.wantEqual, len(a), len(b))
			}
		})
	}
}

// TestPrefix checks that the event count only cuts the stream: a shorter run is
// a prefix of a longer one with the same seed.
func TestPrefix(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Customers, cfg.Events = 500, 3000
	short, _ := generate(t, cfg)
	cfg.Events = 6000
	long, _ := generate(t, cfg)
	if diff := cmp.Diff(long[:len(short)], short); diff != "" {
		t.Errorf("3,000 events are not the start of 6,000 (-want +got):\n%s", diff)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := DefaultConfig()
	tests := []struct {
		name  string
		cfg   Config
		wants []string // substrings of the message; none means valid
	}{
		{"default", ok, nil},
		{"zero value takes every default", Config{}, nil},
		{"negative customers", Config{Customers: -1}, []string{"customers must be 1..20000000 (0 for the default), got -1"}},
		{"too many customers", Config{Customers: MaxCustomers + 1}, []string{"customers must be 1..20000000"}},
		{"negative events", Config{Events: -5}, []string{"events must be ≥ 1 (0 for the default), got -5"}},
		{"too many days", Config{Days: MaxDays + 1}, []string{"days must be 1..3660 (0 for the default), got 3661"}},
		{"negative stores", Config{Stores: -2}, []string{"stores must be 1..10000 (0 for the default), got -2"}},
		{"start inside a day", Config{Start: time.Date(2025, 1, 1, 9, 30, 0, 0, time.UTC)}, []string{"start must be a midnight UTC such as 2025-01-01T00:00:00Z, got 2025-01-01T09:30:00Z"}},
		{"start at a local midnight", Config{Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.FixedZone("CET", 3600))}, []string{"start must be a midnight UTC"}},
		{"every problem at once", Config{Customers: -1, Events: -1, Days: -1, Stores: -1}, []string{"customers must", "events must", "days must", "stores must"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			_, newErr := New(tt.cfg)
			if tt.wants == nil {
				if err != nil || newErr != nil {
					t.Fatalf("Validate() = %v, New() error = %v; want both nil", err, newErr)
				}
				return
			}
			if err == nil || newErr == nil {
				t.Fatalf("Validate() = %v, New() error = %v; want both to fail", err, newErr)
			}
			var pe *privalytics.Error
			if !errors.As(newErr, &pe) || pe.Code != privalytics.EINVALID {
				t.Errorf("New() error = %#v, want a *privalytics.Error with code %q", newErr, privalytics.EINVALID)
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestShape checks the realism the demo and the benchmarks rely on, on one
// generated year. The generator is deterministic, so these are not flaky; the
// tolerances are wide margins around the measured values (in comments) so that
// a retuning of the model keeps passing while a broken one does not.
func TestShape(t *testing.T) {
	t.Parallel()
	cfg, evs := dataset()
	if len(evs) != cfg.Events {
		t.Fatalf("%d events, want %d", len(evs), cfg.Events)
	}
	count := func(keep func(*Event) bool) int {
		n := 0
		for i := range evs {
			if keep(&evs[i]) {
				n++
			}
		}
		return n
	}
	isType := func(typ string) func(*Event) bool { return func(e *Event) bool { return e.Type == typ } }

	t.Run("customer activity is skewed", func(t *testing.T) {
		t.Parallel()
		per := map[string]int{}
		for i := range evs {
			per[evs[i].CustomerID]++
		}
		counts := slices.Collect(func(yield func(int) bool) {
			for _, n := range per {
				if !yield(n) {
					return
				}
			}
		})
		sort.Sort(sort.Reverse(sort.IntSlice(counts)))
		top := 0
		for _, n := range counts[:len(counts)/100] {
			top += n
		}
		// Measured (seed 42): the top 1% of the 19,016 customers seen hold 21%
		// of events, the heaviest 2.3%, and 61% have at most 10 events.
		if share := float64(top) / float64(len(evs)); share < 0.10 {
			t.Errorf("top 1%% of customers hold %.1f%% of events, want > 10%%", share*100)
		}
		if share := float64(counts[0]) / float64(len(evs)); share > 0.05 {
			t.Errorf("the heaviest customer holds %.1f%% of events, want ≤ 5%% (heavy, not all)", share*100)
		}
		tail := 0
		for _, n := range counts {
			if n <= 10 {
				tail++
			}
		}
		if share := float64(tail) / float64(len(counts)); share < 0.4 {
			t.Errorf("%.0f%% of customers have ≤ 10 events, want a long tail (≥ 40%%)", share*100)
		}
	})

	t.Run("funnel", func(t *testing.T) {
		t.Parallel()
		visits, views, carts := count(isType(privalytics.EventVisit)), count(isType(privalytics.EventView)), count(isType(privalytics.EventAddToCart))
		purchases, refunds := count(isType(privalytics.EventPurchase)), count(isType(privalytics.EventRefund))
		if visits+views+carts+purchases+refunds != len(evs) {
			t.Errorf("types other than the schema's five: %d of %d events are of known types", visits+views+carts+purchases+refunds, len(evs))
		}
		// Measured: views 186k, carts 41k, purchase lines 32k, refunds 1.2k (3.9%).
		if !(views > carts && carts > purchases && purchases > refunds && refunds > 0 && visits > 0) {
			t.Errorf("implausible funnel: %d views, %d carts, %d purchase lines, %d refunds, %d visits", views, carts, purchases, refunds, visits)
		}
		if r := float64(views) / float64(purchases); r < 3 {
			t.Errorf("%.1f views per purchase line, want ≥ 3", r)
		}
		if r := float64(refunds) / float64(purchases); r < 0.01 || r > 0.08 {
			t.Errorf("%.1f%% of purchase lines refunded, want 1%%..8%%", r*100)
		}
	})

	t.Run("stores, categories, channels, countries", func(t *testing.T) {
		t.Parallel()
		stores, cats, channels, countries := map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
		for _, e := range evs {
			stores[e.Store]++
			channels[e.Channel]++
			countries[e.Country]++
			if e.Type == privalytics.EventPurchase {
				cats[e.Category]++
			}
		}
		if len(stores) != cfg.Stores {
			t.Errorf("%d stores in the data, want all %d", len(stores), cfg.Stores)
		}
		if len(cats) != len(Categories()) || len(cats) < 20 {
			t.Errorf("%d categories bought, want all %d (≥ 20)", len(cats), len(Categories()))
		}
		if len(channels) != 3 {
			t.Errorf("channels %v, want web, app and store", channels)
		}
		// Store sizes differ: the flagship has several times the footfall of
		// the smallest (measured 9.5×).
		names := StoreNames(cfg.Stores)
		if big, small := stores[names[0]], stores[names[len(names)-1]]; big < 3*small {
			t.Errorf("largest store %d events, smallest %d: want sizes that differ by ≥ 3×", big, small)
		}
		if gb := float64(countries["GB"]) / float64(len(evs)); gb < 0.7 || len(countries) < 5 {
			t.Errorf("countries %v: want mostly GB (measured 90%%) and a few abroad", countries)
		}
	})

	t.Run("customers keep to a home store", func(t *testing.T) {
		t.Parallel()
		visits := map[string]map[string]int{}
		for _, e := range evs {
			if e.Type != privalytics.EventVisit {
				continue
			}
			if visits[e.CustomerID] == nil {
				visits[e.CustomerID] = map[string]int{}
			}
			visits[e.CustomerID][e.Store]++
		}
		// Among customers with ≥ 20 visits, the most visited store takes
		// ≥ 60% of visits for most of them (86% by design), but many also use
		// others.
		loyal, regulars, roaming := 0, 0, 0
		for _, byStore := range visits {
			total, most := 0, 0
			for _, n := range byStore {
				total += n
				most = max(most, n)
			}
			if total < 20 {
				continue
			}
			regulars++
			if float64(most) >= 0.6*float64(total) {
				loyal++
			}
			if len(byStore) > 1 {
				roaming++
			}
		}
		if regulars == 0 || float64(loyal) < 0.9*float64(regulars) || float64(roaming) < 0.5*float64(regulars) {
			t.Errorf("of %d regular customers %d keep to one store, %d use others too; want ≥ 90%% and ≥ 50%%", regulars, loyal, roaming)
		}
	})

	t.Run("price levels differ by category", func(t *testing.T) {
		t.Parallel()
		amounts := map[string][]int64{}
		for _, e := range evs {
			if e.Type == privalytics.EventPurchase {
				amounts[e.Category] = append(amounts[e.Category], e.AmountMilli)
			}
		}
		median := func(c string) int64 {
			a := amounts[c]
			slices.Sort(a)
			return a[len(a)/2]
		}
		// Measured medians: electronics 55.89, dairy 1.69.
		if e, d := median("electronics"), median("dairy"); e < 10*d {
			t.Errorf("median line: electronics %d, dairy %d (thousandths); want electronics ≥ 10× dairy", e, d)
		}
	})

	t.Run("yearly season", func(t *testing.T) {
		t.Parallel()
		byMonth := map[time.Month]int{}
		for _, e := range evs {
			if e.Type == privalytics.EventPurchase {
				byMonth[e.TS.Month()]++
			}
		}
		// Measured: December 2.1× June; July and August are the year's low.
		if dec, jun := byMonth[time.December], byMonth[time.June]; float64(dec) < 1.3*float64(jun) {
			t.Errorf("December %d purchase lines, June %d: want December ≥ 1.3× June", dec, jun)
		}
		if jul, may := byMonth[time.July], byMonth[time.May]; jul >= may {
			t.Errorf("July %d purchase lines, May %d: want a summer dip", jul, may)
		}
	})

	t.Run("weekly and daily rhythm", func(t *testing.T) {
		t.Parallel()
		var storeDay [7]int
		var webHour [24]int
		var days [7]int // how many of each weekday the period has
		for d := range cfg.Days {
			days[cfg.Start.AddDate(0, 0, d).Weekday()]++
		}
		christmasStore := 0
		for _, e := range evs {
			if e.Type != privalytics.EventVisit {
				continue
			}
			switch e.Channel {
			case "store":
				storeDay[e.TS.Weekday()]++
				if e.TS.Month() == time.December && e.TS.Day() == 25 {
					christmasStore++
				}
			case "web":
				webHour[e.TS.Hour()]++
			}
		}
		perDay := func(wd ...time.Weekday) float64 {
			n, d := 0, 0
			for _, w := range wd {
				n, d = n+storeDay[w], d+days[w]
			}
			return float64(n) / float64(d)
		}
		// Measured: 1.85× on Saturdays and Sundays against Monday..Thursday.
		if we, wk := perDay(time.Saturday, time.Sunday), perDay(time.Monday, time.Tuesday, time.Wednesday, time.Thursday); we < 1.3*wk {
			t.Errorf("shop-floor visits per weekend day %.0f, per weekday %.0f: want weekends ≥ 1.3× busier", we, wk)
		}
		// Measured: 18–22 h has 2.8× the web visits of 6–10 h.
		evening, morning := webHour[18]+webHour[19]+webHour[20]+webHour[21], webHour[6]+webHour[7]+webHour[8]+webHour[9]
		if float64(evening) < 1.5*float64(morning) {
			t.Errorf("web visits 18–22 h %d, 6–10 h %d: want evenings ≥ 1.5× mornings", evening, morning)
		}
		if christmasStore != 0 {
			t.Errorf("%d shop-floor visits on Christmas Day, want 0 (shops are closed)", christmasStore)
		}
	})
}

// TestEventInvariants checks, on every event, what Event's documentation
// promises about fields, order and sessions.
func TestEventInvariants(t *testing.T) {
	t.Parallel()
	cfg, evs := dataset()
	end := cfg.Start.AddDate(0, 0, cfg.Days)
	lines := map[[2]string]Event{} // order, product → its purchase line
	orders := map[string][]Event{}
	var visit *Event // the current session's visit
	var last time.Time
	always := FieldStore | FieldChannel | FieldCountry
	product := always | FieldCategory | FieldProduct
	order := product | FieldOrderID | FieldQuantity | FieldAmount
	for i := range evs {
		e := &evs[i]
		if e.TS.Before(cfg.Start) || !e.TS.Before(end) || e.TS.Location() != time.UTC {
			t.Fatalf("event %d at %v, want UTC in [%v, %v)", i, e.TS, cfg.Start, end)
		}
		if e.TS.Nanosecond()%int(time.Millisecond) != 0 || (e.Channel == "store" && e.TS.Nanosecond() != 0) {
			t.Fatalf("event %d at %v: want whole milliseconds online and whole seconds on the shop floor", i, e.TS)
		}
		if e.Channel == "store" && (e.TS.Hour() < 8 || e.TS.Hour() >= 22 || (e.TS.Month() == time.December && e.TS.Day() == 25)) {
			t.Fatalf("event %d on the shop floor at %v, want opening hours (8–22 h, not Christmas Day)", i, e.TS)
		}
		want := map[string]Fields{
			privalytics.EventVisit: always, privalytics.EventView: product, privalytics.EventAddToCart: product,
			privalytics.EventPurchase: order, privalytics.EventRefund: order,
		}[e.Type]
		if e.Set != want {
			t.Fatalf("event %d (%s) has fields %b, want %b: %+v", i, e.Type, e.Set, want, e)
		}
		switch e.Type {
		case privalytics.EventVisit:
			visit, last = e, e.TS
			continue
		case privalytics.EventRefund:
			p, ok := lines[[2]string{e.OrderID, e.Product}]
			if !ok || !e.TS.After(p.TS) || e.AmountMilli != p.AmountMilli || e.Quantity != p.Quantity || e.CustomerID != p.CustomerID {
				t.Fatalf("event %d: refund %+v does not return an earlier purchase line (found %v: %+v)", i, e, ok, p)
			}
			continue
		case privalytics.EventPurchase:
			if e.AmountMilli <= 0 || e.Quantity <= 0 {
				t.Fatalf("event %d: purchase with amount %d‰ and quantity %d, want both > 0", i, e.AmountMilli, e.Quantity)
			}
			lines[[2]string{e.OrderID, e.Product}] = *e
			orders[e.OrderID] = append(orders[e.OrderID], *e)
		}
		if visit == nil || e.CustomerID != visit.CustomerID || e.Store != visit.Store || e.Channel != visit.Channel || e.TS.Before(last) || e.TS.YearDay() != visit.TS.YearDay() {
			t.Fatalf("event %d (%+v) does not continue the session of %+v in time order on its day", i, e, visit)
		}
		last = e.TS
	}
	multi := 0
	for id, ls := range orders {
		if len(ls) > 1 {
			multi++
		}
		for _, l := range ls[1:] {
			if l.TS != ls[0].TS || l.CustomerID != ls[0].CustomerID {
				t.Fatalf("order %s: lines at different times or for different customers: %+v and %+v", id, ls[0], l)
			}
		}
	}
	// Measured: half the orders have several lines.
	if share := float64(multi) / float64(len(orders)); share < 0.2 {
		t.Errorf("%.0f%% of %d orders have several lines, want ≥ 20%%", share*100, len(orders))
	}
}

// ndjsonLine is the default retail schema as Go types; decoding with
// DisallowUnknownFields proves a line has only the schema's fields, each of
// the right JSON type.
type ndjsonLine struct {
	CustomerID string       `json:"customer_id"`
	TS         string       `json:"ts"`
	Type       string       `json:"type"`
	Store      *string      `json:"store"`
	Channel    *string      `json:"channel"`
	Category   *string      `json:"category"`
	Product    *string      `json:"product"`
	OrderID    *string      `json:"order_id"`
	Quantity   *int64       `json:"quantity"`
	Amount     *json.Number `json:"amount"`
	Country    *string      `json:"country"`
}

func TestNDJSONFollowsTheSchema(t *testing.T) {
	t.Parallel()
	_, evs := dataset()
	evs = evs[:100_000]
	schema := privalytics.DefaultRetailSchema()
	var buf []byte
	for i := range evs {
		buf = AppendNDJSON(buf[:0], &evs[i])
		if !bytes.HasSuffix(buf, []byte("}\n")) || bytes.Count(buf, []byte("\n")) != 1 {
			t.Fatalf("event %d: %q is not one newline-terminated line", i, buf)
		}
		// Every field against the schema's declaration: type, allowed values,
		// length, scale.
		var fields map[string]any
		dec := json.NewDecoder(bytes.NewReader(buf))
		dec.UseNumber()
		if err := dec.Decode(&fields); err != nil {
			t.Fatalf("event %d: %q is not JSON: %v", i, buf, err)
		}
		for _, c := range schema.Columns {
			v, ok := fields[c.Name]
			if !ok {
				if c.Required {
					t.Fatalf("event %d: %q lacks required %s", i, buf, c.Name)
				}
				continue
			}
			if err := checkValue(c, v); err != nil {
				t.Fatalf("event %d: %q: %s: %v", i, buf, c.Name, err)
			}
		}
		// Round trip: the line says exactly what the event says.
		var l ndjsonLine
		dec = json.NewDecoder(bytes.NewReader(buf))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("event %d: %q does not decode into the schema's types: %v", i, buf, err)
		}
		got, err := l.event()
		if err != nil {
			t.Fatalf("event %d: %q: %v", i, buf, err)
		}
		if diff := cmp.Diff(evs[i], got); diff != "" {
			t.Fatalf("event %d: %q read back (-want +got):\n%s", i, buf, diff)
		}
	}
}

// checkValue checks one decoded JSON value against its column's declaration.
func checkValue(c privalytics.Column, v any) error {
	switch c.Type {
	case privalytics.TypeString:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("got %T, want a string", v)
		}
		if c.MaxLength > 0 && len(s) > c.MaxLength {
			return fmt.Errorf("%d bytes, want ≤ %d", len(s), c.MaxLength)
		}
		if len(c.Allowed) > 0 && !slices.Contains(c.Allowed, s) {
			return fmt.Errorf("%q not in %v", s, c.Allowed)
		}
	case privalytics.TypeTimestamp:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("got %T, want RFC 3339 text", v)
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil || !strings.HasSuffix(s, "Z") {
			return fmt.Errorf("%q is not RFC 3339 in UTC: %v", s, err)
		}
	case privalytics.TypeInt:
		n, ok := v.(json.Number)
		if _, err := n.Int64(); !ok || err != nil {
			return fmt.Errorf("%v is not an integer", v)
		}
	case privalytics.TypeDecimal:
		n, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("got %T, want a number", v)
		}
		if _, frac, _ := strings.Cut(n.String(), "."); len(frac) > c.Scale || strings.ContainsAny(n.String(), "eE") {
			return fmt.Errorf("%s has more than %d decimals", n, c.Scale)
		}
	default:
		return fmt.Errorf("the generator does not write %s columns", c.Type)
	}
	return nil
}

// event converts a decoded line back to an Event.
func (l ndjsonLine) event() (Event, error) {
	ts, err := time.Parse(time.RFC3339Nano, l.TS)
	if err != nil {
		return Event{}, err
	}
	e := Event{CustomerID: l.CustomerID, TS: ts.UTC(), Type: l.Type}
	str := func(p *string, dst *string, f Fields) {
		if p != nil {
			*dst = *p
			e.Set |= f
		}
	}
	str(l.Store, &e.Store, FieldStore)
	str(l.Channel, &e.Channel, FieldChannel)
	str(l.Category, &e.Category, FieldCategory)
	str(l.Product, &e.Product, FieldProduct)
	str(l.OrderID, &e.OrderID, FieldOrderID)
	str(l.Country, &e.Country, FieldCountry)
	if l.Quantity != nil {
		e.Quantity, e.Set = *l.Quantity, e.Set|FieldQuantity
	}
	if l.Amount != nil {
		m, err := parseMilli(l.Amount.String())
		if err != nil {
			return Event{}, err
		}
		e.AmountMilli, e.Set = m, e.Set|FieldAmount
	}
	return e, nil
}

// parseMilli reads a decimal with at most three places as thousandths.
func parseMilli(s string) (int64, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 3 {
		return 0, fmt.Errorf("%s has more than 3 decimals", s)
	}
	neg := strings.HasPrefix(whole, "-")
	w, err := strconv.ParseUint(strings.TrimPrefix(whole, "-"), 10, 64)
	if err != nil {
		return 0, err
	}
	f := uint64(0)
	if frac != "" {
		if f, err = strconv.ParseUint((frac + "00")[:3], 10, 64); err != nil {
			return 0, err
		}
	}
	u := w*1000 + f
	if neg {
		return int64(-u), nil
	}
	return int64(u), nil
}

func TestCSV(t *testing.T) {
	t.Parallel()
	_, evs := dataset()
	evs = evs[:50_000]
	var want []string
	for _, c := range privalytics.DefaultRetailSchema().Columns {
		want = append(want, c.Name)
	}
	if diff := cmp.Diff(want, CSVHeader()); diff != "" {
		t.Errorf("CSVHeader() is not the schema's columns in order (-want +got):\n%s", diff)
	}
	buf := []byte(strings.Join(CSVHeader(), ",") + "\n")
	for i := range evs {
		buf = AppendCSV(buf, &evs[i])
	}
	r := csv.NewReader(bytes.NewReader(buf))
	r.FieldsPerRecord = len(CSVHeader())
	r.ReuseRecord = true
	if _, err := r.Read(); err != nil {
		t.Fatalf("header: %v", err)
	}
	for i := 0; ; i++ {
		rec, err := r.Read()
		if err == io.EOF {
			if i != len(evs) {
				t.Fatalf("%d records, want %d", i, len(evs))
			}
			break
		}
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		got, err := csvEvent(rec)
		if err != nil {
			t.Fatalf("record %d %q: %v", i, rec, err)
		}
		if diff := cmp.Diff(evs[i], got); diff != "" {
			t.Fatalf("record %d %q read back (-want +got):\n%s", i, rec, diff)
		}
	}
}

// csvEvent converts a CSV record back to an Event; an empty optional field is absent.
func csvEvent(rec []string) (Event, error) {
	ts, err := time.Parse(time.RFC3339Nano, rec[1])
	if err != nil {
		return Event{}, err
	}
	e := Event{CustomerID: rec[0], TS: ts.UTC(), Type: rec[2]}
	for _, f := range []struct {
		i   int
		dst *string
		f   Fields
	}{{3, &e.Store, FieldStore}, {4, &e.Channel, FieldChannel}, {5, &e.Category, FieldCategory}, {6, &e.Product, FieldProduct}, {7, &e.OrderID, FieldOrderID}, {10, &e.Country, FieldCountry}} {
		if rec[f.i] != "" {
			*f.dst, e.Set = rec[f.i], e.Set|f.f
		}
	}
	if rec[8] != "" {
		if e.Quantity, err = strconv.ParseInt(rec[8], 10, 64); err != nil {
			return Event{}, err
		}
		e.Set |= FieldQuantity
	}
	if rec[9] != "" {
		if e.AmountMilli, err = parseMilli(rec[9]); err != nil {
			return Event{}, err
		}
		e.Set |= FieldAmount
	}
	return e, nil
}

func TestAppendMilli(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0"}, {1, "0.001"}, {10, "0.01"}, {100, "0.1"}, {999, "0.999"}, {1000, "1"}, {12500, "12.5"},
		{12340, "12.34"}, {12345, "12.345"}, {-1, "-0.001"}, {-1000, "-1"}, {-12050, "-12.05"},
		{math.MaxInt64, "9223372036854775.807"}, {math.MinInt64, "-9223372036854775.808"},
	}
	for _, tt := range tests {
		if got := string(appendMilli(nil, tt.in)); got != tt.want {
			t.Errorf("appendMilli(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAppendTimestamp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), "2025-01-01T00:00:00Z"},
		{time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC), "2024-02-29T23:59:59Z"},
		{time.Date(2025, 3, 1, 18, 4, 5, 250_000_000, time.UTC), "2025-03-01T18:04:05.250Z"},
		{time.Date(2025, 3, 1, 18, 4, 5, 125_000, time.UTC), "2025-03-01T18:04:05.000125Z"},
		{time.Date(2025, 3, 1, 18, 4, 5, 999_999_999, time.UTC), "2025-03-01T18:04:05.999999Z"}, // truncated to µs
		{time.Date(2025, 6, 1, 12, 0, 0, 0, time.FixedZone("CEST", 7200)), "2025-06-01T10:00:00Z"},
		{time.Date(1969, 12, 31, 23, 59, 59, 500_000_000, time.UTC), "1969-12-31T23:59:59.500Z"},
		{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), "0001-01-01T00:00:00Z"},
		{time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), "9999-12-31T23:59:59Z"},
		{time.Date(2100, 3, 1, 0, 0, 0, 0, time.UTC), "2100-03-01T00:00:00Z"},
	}
	for _, tt := range tests {
		if got := string(appendTimestamp(nil, tt.in)); got != tt.want {
			t.Errorf("appendTimestamp(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzAppendMilli(f *testing.F) {
	for _, v := range []int64{0, 1, -1, 999, 1000, 12345, -12050, math.MaxInt64, math.MinInt64} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v int64) {
		s := string(appendMilli(nil, v))
		got, err := parseMilli(s)
		if err != nil || got != v {
			t.Fatalf("appendMilli(%d) = %q, which reads back as %d, %v", v, s, got, err)
		}
		if _, frac, ok := strings.Cut(s, "."); ok && (frac == "" || strings.HasSuffix(frac, "0")) {
			t.Fatalf("appendMilli(%d) = %q: an empty fraction or trailing zeros", v, s)
		}
	})
}

func FuzzAppendTimestamp(f *testing.F) {
	for _, t := range []time.Time{
		time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 2, 29, 23, 59, 59, 250_000_000, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 1000, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999_999_000, time.UTC),
	} {
		f.Add(t.UnixMicro())
	}
	f.Add(int64(math.MinInt64))
	f.Add(int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, us int64) {
		tm := time.UnixMicro(us)
		s := string(appendTimestamp(nil, tm))
		if tm.UTC().Year() < 0 || tm.UTC().Year() > 9999 {
			return // outside RFC 3339; written by the standard library's formatter
		}
		got, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || !got.Equal(tm) {
			t.Fatalf("appendTimestamp(%d µs) = %q, which reads back as %v, %v; want %v", us, s, got, err, tm.UTC())
		}
		if _, frac, ok := strings.Cut(strings.TrimSuffix(s, "Z"), "."); ok && len(frac) != 3 && len(frac) != 6 {
			t.Fatalf("appendTimestamp(%d µs) = %q: want 0, 3 or 6 fraction digits", us, s)
		}
	})
}

func TestStoreNamesAndCategories(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n    int
		want []string // the first names, then the last if n > len(want)
	}{
		{0, []string{}},
		{1, []string{"london"}},
		{24, []string{"london", "birmingham"}},
		{26, []string{"london", "birmingham"}},
	}
	for _, tt := range tests {
		got := StoreNames(tt.n)
		if len(got) != tt.n {
			t.Errorf("StoreNames(%d) has %d names", tt.n, len(got))
			continue
		}
		if diff := cmp.Diff(tt.want, got[:min(len(tt.want), len(got))]); diff != "" {
			t.Errorf("StoreNames(%d) (-want +got):\n%s", tt.n, diff)
		}
		if len(slices.Compact(slices.Sorted(slices.Values(got)))) != len(got) {
			t.Errorf("StoreNames(%d) repeats a name: %v", tt.n, got)
		}
	}
	if got := StoreNames(26); got[24] != "london-2" || got[25] != "birmingham-2" {
		t.Errorf("StoreNames(26)[24:] = %v, want second branches london-2, birmingham-2", got[24:])
	}
	cats := Categories()
	if len(cats) != 20 || len(slices.Compact(slices.Sorted(slices.Values(cats)))) != 20 {
		t.Errorf("Categories() = %v, want 20 distinct names", cats)
	}
}

// TestAlias checks the sampler's frequencies. Each of the 4 non-zero cells is
// checked at 5 standard deviations of a binomial count, so a correct sampler
// fails with probability below 4 · 5.7e-7 ≈ 2.3e-6 per seed; the seed is fixed,
// so in practice never.
func TestAlias(t *testing.T) {
	t.Parallel()
	w := []float64{1, 2, 3, 0, 4}
	a := newAlias(w)
	g, _ := New(Config{Customers: 1, Events: 1})
	const n = 1_000_000
	var got [5]int
	for range n {
		got[a.draw(g.rng)]++
	}
	for i, wi := range w {
		p := wi / 10
		sd := math.Sqrt(n * p * (1 - p))
		if math.Abs(float64(got[i])-n*p) > 5*sd || (wi == 0 && got[i] != 0) {
			t.Errorf("cell %d (weight %v) drawn %d times in %d, want %.0f ± %.0f", i, wi, got[i], n, n*p, 5*sd)
		}
	}
	uniform := newAlias([]float64{0, 0})
	if i := uniform.draw(g.rng); i != 0 && i != 1 {
		t.Errorf("all-zero weights drew %d, want 0 or 1", i)
	}
}

// TestAllocations checks that generating and encoding does not allocate per
// event: the only allocation is an order's id (measured ≈ 0.05 per event).
// Not parallel: testing.AllocsPerRun refuses to run in a parallel test.
func TestAllocations(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Events = 1 << 30
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ev Event
	buf := make([]byte, 0, 4096)
	for range 1000 { // warm up the session buffer
		g.Next(&ev)
	}
	const per = 1000
	allocs := testing.AllocsPerRun(20, func() {
		for range per {
			g.Next(&ev)
			buf = AppendNDJSON(buf[:0], &ev)
			buf = AppendCSV(buf[:0], &ev)
		}
	})
	if got := allocs / per; got > 0.2 {
		t.Errorf("%.3f allocations per event, want ≤ 0.2 (one per order)", got)
	}
}

// BenchmarkGenerate measures Next plus encoding on the benchmark workload of
// BENCHMARKS.md (1M customers, 50 stores). Reproduce with
//
//	go test ./synth -run XXX -bench Generate -benchtime 10000000x -count 3
func BenchmarkGenerate(b *testing.B) {
	for _, bc := range []struct {
		name   string
		encode func([]byte, *Event) []byte
	}{
		{"Next", func(dst []byte, _ *Event) []byte { return dst }},
		{"NDJSON", AppendNDJSON},
		{"CSV", AppendCSV},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Customers, cfg.Stores, cfg.Events = 1_000_000, 50, b.N
			g, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			var ev Event
			buf := make([]byte, 0, 1<<20)
			written := 0
			b.ReportAllocs()
			b.ResetTimer()
			for g.Next(&ev) {
				buf = bc.encode(buf, &ev)
				if len(buf) > 1<<20-512 {
					written += len(buf)
					buf = buf[:0]
				}
			}
			written += len(buf)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(written)/float64(b.N), "bytes/event")
		})
	}
}

// sharedData returns ../shared/data next to the module root, or skips the test
// when a fresh clone does not have it.
func sharedData(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the package directory")
		}
		dir = parent
	}
	data := filepath.Join(dir, "..", "shared", "data")
	if _, err := os.Stat(data); err != nil {
		t.Skipf("real data not available (%v): the comparison with UCI Online Retail needs ../shared/data beside the module", err)
	}
	return data
}

// TestLikeUCIOnlineRetail compares two shapes with the real UCI Online Retail
// data (a UK retailer, one year): the heaviest customer's share of purchase
// lines (UCI 7,983 of 406,829 identified rows, 2.0%) within a factor of 3, and
// the home country's share of rows (UCI 91.4%) within 10 points.
func TestLikeUCIOnlineRetail(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(sharedData(t), "online_retail_uci.truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	var truth struct {
		UCI struct {
			Rows               int                 `json:"rows"`
			RowsMissingCust    int                 `json:"rows_missing_customer"`
			MaxRowsPerCustomer int                 `json:"max_rows_per_customer"`
			ByCountry          [][]json.RawMessage `json:"rows_by_country_top10"`
		} `json:"online_retail_uci"`
	}
	if err := json.Unmarshal(raw, &truth); err != nil {
		t.Fatal(err)
	}
	u := truth.UCI
	var home string
	var homeRows int
	if len(u.ByCountry) == 0 || json.Unmarshal(u.ByCountry[0][0], &home) != nil || json.Unmarshal(u.ByCountry[0][1], &homeRows) != nil || home != "United Kingdom" {
		t.Fatalf("truth file: want rows_by_country_top10 to start with the United Kingdom, got %s", raw)
	}
	realHeaviest := float64(u.MaxRowsPerCustomer) / float64(u.Rows-u.RowsMissingCust)
	realHome := float64(homeRows) / float64(u.Rows)

	_, evs := dataset()
	perCustomer := map[string]int{}
	lines, gb := 0, 0
	for _, e := range evs {
		if e.Type == privalytics.EventPurchase {
			perCustomer[e.CustomerID]++
			lines++
		}
		if e.Country == "GB" {
			gb++
		}
	}
	most := 0
	for _, n := range perCustomer {
		most = max(most, n)
	}
	heaviest := float64(most) / float64(lines)
	t.Logf("heaviest customer: %.2f%% of purchase lines (UCI %.2f%%); GB: %.1f%% of events (UCI UK %.1f%%)", heaviest*100, realHeaviest*100, float64(gb)/float64(len(evs))*100, realHome*100)
	if heaviest < realHeaviest/3 || heaviest > realHeaviest*3 {
		t.Errorf("heaviest customer has %.2f%% of purchase lines, UCI %.2f%%: want within a factor of 3", heaviest*100, realHeaviest*100)
	}
	if h := float64(gb) / float64(len(evs)); math.Abs(h-realHome) > 0.10 {
		t.Errorf("GB has %.1f%% of events, the UK %.1f%% of UCI rows: want within 10 points", h*100, realHome*100)
	}
}
