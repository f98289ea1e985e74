// Package synth generates a realistic synthetic retail dataset, deterministic by
// seed, for the demo, tests and benchmarks. It follows the default retail schema:
// customers with skewed (Zipf-like) activity and a home store, 24+ stores of
// different sizes, 20 categories with their own price levels, visits, views and
// add-to-cart events that precede purchases, multi-line orders, occasional refunds,
// weekly and yearly seasonality.
//
// The randomness here is data generation, not DP noise: math/rand/v2 with a PCG
// source seeded from Config.Seed makes every dataset reproducible.
package synth

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/privalytics/privalytics"
)

// Config sizes the dataset.
type Config struct {
	Seed      uint64
	Customers int       // distinct customers; default 50,000
	Events    int       // events in total; default 1,000,000
	Start     time.Time // first day; default 2025-01-01 UTC
	Days      int       // days covered; default 365
	Stores    int       // stores / franchise locations; default 24
}

// DefaultConfig returns the demo's dataset: one year, 50,000 customers, 1M events.
func DefaultConfig() Config {
	return Config{Seed: 1, Customers: 50_000, Events: 1_000_000, Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Days: 365, Stores: 24}
}

// Validate reports every problem.
func (c Config) Validate() error {
	var errs []error
	if c.Customers < 1 {
		errs = append(errs, fmt.Errorf("customers must be ≥ 1, got %d", c.Customers))
	}
	if c.Events < 0 {
		errs = append(errs, fmt.Errorf("events must be ≥ 0, got %d", c.Events))
	}
	if c.Days < 1 {
		errs = append(errs, fmt.Errorf("days must be ≥ 1, got %d", c.Days))
	}
	if c.Stores < 1 || c.Stores > 10_000 {
		errs = append(errs, fmt.Errorf("stores must be 1..10000, got %d", c.Stores))
	}
	if c.Start.IsZero() {
		errs = append(errs, errors.New("start must be set"))
	}
	return errors.Join(errs...)
}

// Event is one generated event. Optional fields are empty (or zero) when absent.
type Event struct {
	CustomerID  string
	TS          time.Time
	Type        string
	Store       string
	Channel     string
	Category    string
	Product     string
	OrderID     string
	Quantity    int64 // 0 when absent
	AmountMilli int64 // amount × 1000; set on purchases and refunds
	Country     string
}

type category struct {
	name     string
	logPrice float64 // log of the median unit price
	products int
}

var categories = []category{
	{"bread", 1.1, 30}, {"pastry", 1.3, 40}, {"cake", 2.8, 25}, {"coffee", 1.2, 15}, {"tea", 1.5, 20},
	{"dairy", 1.0, 30}, {"produce", 0.9, 60}, {"meat", 2.3, 40}, {"fish", 2.5, 25}, {"frozen", 1.6, 45},
	{"snacks", 0.8, 50}, {"beverages", 1.0, 50}, {"wine", 2.6, 60}, {"household", 1.7, 40}, {"beauty", 2.4, 35},
	{"toys", 2.9, 30}, {"books", 2.6, 50}, {"electronics", 4.0, 20}, {"garden", 2.7, 25}, {"gifts", 3.0, 30},
}

// Categories returns the category names.
func Categories() []string {
	out := make([]string, len(categories))
	for i, c := range categories {
		out[i] = c.name
	}
	return out
}

var storeCities = []string{"london", "manchester", "leeds", "bristol", "glasgow", "edinburgh", "cardiff", "belfast",
	"york", "bath", "oxford", "cambridge", "brighton", "norwich", "exeter", "leicester", "derby", "hull",
	"dundee", "aberdeen", "swansea", "plymouth", "reading", "kent"}

// StoreNames returns n store names: "london-1", "manchester-1", …
func StoreNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = storeCities[i%len(storeCities)] + "-" + strconv.Itoa(i/len(storeCities)+1)
	}
	return out
}

var countries = []string{"GB", "GB", "GB", "GB", "GB", "GB", "GB", "IE", "FR", "DE", "NL", "ES"}

// customer is a generated customer's fixed traits.
type customer struct {
	id      string
	home    int     // home store
	channel string  // preferred channel
	country string  //
	spend   float64 // multiplier on prices
	favs    [3]int  // favourite categories
}

// Generator produces events. It is not safe for concurrent use.
type Generator struct {
	cfg       Config
	rng       *rand.Rand
	customers []customer
	cum       []float64 // cumulative activity weights (Zipf-like)
	storeCum  []float64 // cumulative store sizes
	stores    []string
	dayCum    []float64 // cumulative day weights (seasonality)
	emitted   int
	pending   []Event // the rest of the current session
	orderSeq  int
}

// New returns a generator for cfg.
func New(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	g := &Generator{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), stores: StoreNames(cfg.Stores)}
	// Stores of different sizes: weight 1/(rank^0.7).
	g.storeCum = make([]float64, cfg.Stores)
	acc := 0.0
	for i := range g.storeCum {
		acc += 1 / math.Pow(float64(i+1), 0.7)
		g.storeCum[i] = acc
	}
	// Customers with Zipf-like activity: weight 1/(rank^0.9) over a shuffled order.
	g.customers = make([]customer, cfg.Customers)
	g.cum = make([]float64, cfg.Customers)
	acc = 0
	for i := range g.customers {
		c := &g.customers[i]
		c.id = "cust-" + strconv.Itoa(100000+i)
		c.home = pick(g.rng, g.storeCum)
		switch r := g.rng.Float64(); {
		case r < 0.45:
			c.channel = "store"
		case r < 0.80:
			c.channel = "web"
		default:
			c.channel = "app"
		}
		c.country = countries[g.rng.IntN(len(countries))]
		c.spend = math.Exp(g.rng.NormFloat64() * 0.3)
		for j := range c.favs {
			c.favs[j] = g.rng.IntN(len(categories))
		}
		acc += 1 / math.Pow(float64(i+1), 0.9)
		g.cum[i] = acc
	}
	// Days: yearly (December peak, summer dip) and weekly (weekend peak) seasonality.
	g.dayCum = make([]float64, cfg.Days)
	acc = 0
	for d := range g.dayCum {
		day := cfg.Start.AddDate(0, 0, d)
		w := 1.0
		switch day.Month() {
		case time.December:
			w *= 1.8
		case time.November:
			w *= 1.3
		case time.July, time.August:
			w *= 0.75
		}
		if wd := day.Weekday(); wd == time.Saturday || wd == time.Sunday {
			w *= 1.35
		}
		acc += w
		g.dayCum[d] = acc
	}
	return g, nil
}

// pick draws an index with probability proportional to the cumulative weights.
func pick(rng *rand.Rand, cum []float64) int {
	x := rng.Float64() * cum[len(cum)-1]
	lo, hi := 0, len(cum)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if cum[mid] < x {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// Next fills ev with the next event and reports whether there was one. Events come
// session by session (a customer's visit with its views, carts and purchases, in
// time order within the session); sessions are in random order of time.
func (g *Generator) Next(ev *Event) bool {
	if g.emitted >= g.cfg.Events {
		return false
	}
	if len(g.pending) == 0 {
		g.session()
	}
	*ev = g.pending[0]
	g.pending = g.pending[1:]
	g.emitted++
	return true
}

// session generates one visit of one customer.
func (g *Generator) session() {
	c := &g.customers[pick(g.rng, g.cum)]
	day := pick(g.rng, g.dayCum)
	channel := c.channel
	if g.rng.Float64() < 0.2 {
		channel = []string{"web", "app", "store"}[g.rng.IntN(3)]
	}
	store := c.home
	if g.rng.Float64() < 0.15 {
		store = pick(g.rng, g.storeCum)
	}
	// Stores are busy at midday; the web in the evening.
	hour := 9 + g.rng.IntN(10)
	if channel != "store" {
		hour = int(math.Mod(20+g.rng.NormFloat64()*3+24, 24))
	}
	ts := g.cfg.Start.AddDate(0, 0, day).Add(time.Duration(hour)*time.Hour + time.Duration(g.rng.IntN(3600))*time.Second)
	base := Event{CustomerID: c.id, Store: g.stores[store], Channel: channel, Country: c.country}
	g.pending = g.pending[:0]
	add := func(typ string, step time.Duration) *Event {
		ts = ts.Add(step)
		e := base
		e.Type, e.TS = typ, ts
		g.pending = append(g.pending, e)
		return &g.pending[len(g.pending)-1]
	}
	add(privalytics.EventVisit, 0)
	views := 1 + g.rng.IntN(6)
	var carted []int
	for range views {
		cat := c.favs[g.rng.IntN(3)]
		if g.rng.Float64() < 0.3 {
			cat = g.rng.IntN(len(categories))
		}
		e := add(privalytics.EventView, time.Duration(10+g.rng.IntN(120))*time.Second)
		e.Category = categories[cat].name
		e.Product = productCode(cat, g.rng.IntN(categories[cat].products))
		if g.rng.Float64() < 0.35 {
			a := add(privalytics.EventAddToCart, time.Duration(5+g.rng.IntN(60))*time.Second)
			a.Category, a.Product = e.Category, e.Product
			carted = append(carted, cat)
		}
	}
	if len(carted) == 0 || g.rng.Float64() > 0.7 {
		return
	}
	g.orderSeq++
	order := "ord-" + strconv.Itoa(g.orderSeq)
	for _, cat := range carted {
		e := add(privalytics.EventPurchase, time.Duration(1+g.rng.IntN(30))*time.Second)
		e.Category = categories[cat].name
		e.Product = productCode(cat, g.rng.IntN(categories[cat].products))
		e.OrderID = order
		e.Quantity = 1 + int64(g.rng.ExpFloat64()*0.8)
		price := math.Exp(categories[cat].logPrice+g.rng.NormFloat64()*0.5) * c.spend
		unitMilli := max(int64(math.Round(price*100))*10, 10) // whole cents
		e.AmountMilli = unitMilli * e.Quantity
		if g.rng.Float64() < 0.02 {
			r := add(privalytics.EventRefund, time.Duration(24+g.rng.IntN(240))*time.Hour)
			r.Category, r.Product, r.OrderID = e.Category, e.Product, order
			r.Quantity, r.AmountMilli = e.Quantity, e.AmountMilli
		}
	}
}

func productCode(cat, n int) string {
	return "p" + strconv.Itoa(cat*1000+n)
}

// AppendNDJSON appends ev as one line of NDJSON in the default retail schema.
func AppendNDJSON(dst []byte, ev *Event) []byte {
	dst = append(dst, `{"customer_id":"`...)
	dst = append(dst, ev.CustomerID...)
	dst = append(dst, `","ts":"`...)
	dst = ev.TS.UTC().AppendFormat(dst, time.RFC3339)
	dst = append(dst, `","type":"`...)
	dst = append(dst, ev.Type...)
	dst = append(dst, '"')
	str := func(k, v string) {
		if v != "" {
			dst = append(dst, `,"`...)
			dst = append(dst, k...)
			dst = append(dst, `":"`...)
			dst = append(dst, v...)
			dst = append(dst, '"')
		}
	}
	str("store", ev.Store)
	str("channel", ev.Channel)
	str("category", ev.Category)
	str("product", ev.Product)
	str("order_id", ev.OrderID)
	if ev.Quantity != 0 {
		dst = append(dst, `,"quantity":`...)
		dst = strconv.AppendInt(dst, ev.Quantity, 10)
	}
	if ev.AmountMilli != 0 {
		dst = append(dst, `,"amount":`...)
		dst = appendMilli(dst, ev.AmountMilli)
	}
	str("country", ev.Country)
	return append(dst, '}', '\n')
}

// appendMilli writes thousandths as a decimal number with up to 3 places.
func appendMilli(dst []byte, v int64) []byte {
	if v < 0 {
		dst = append(dst, '-')
		v = -v
	}
	dst = strconv.AppendInt(dst, v/1000, 10)
	if f := v % 1000; f != 0 {
		dst = append(dst, '.')
		d := []byte{byte('0' + f/100), byte('0' + f/10%10), byte('0' + f%10)}
		for d[len(d)-1] == '0' {
			d = d[:len(d)-1]
		}
		dst = append(dst, d...)
	}
	return dst
}

// CSVHeader is the header row matching AppendCSV.
func CSVHeader() []string {
	return []string{"customer_id", "ts", "type", "store", "channel", "category", "product", "order_id", "quantity", "amount", "country"}
}

// AppendCSV appends ev as one CSV line (no field needs quoting: generated values
// contain no commas or quotes).
func AppendCSV(dst []byte, ev *Event) []byte {
	dst = append(dst, ev.CustomerID...)
	dst = append(dst, ',')
	dst = ev.TS.UTC().AppendFormat(dst, time.RFC3339)
	for _, v := range []string{ev.Type, ev.Store, ev.Channel, ev.Category, ev.Product, ev.OrderID} {
		dst = append(dst, ',')
		dst = append(dst, v...)
	}
	dst = append(dst, ',')
	if ev.Quantity != 0 {
		dst = strconv.AppendInt(dst, ev.Quantity, 10)
	}
	dst = append(dst, ',')
	if ev.AmountMilli != 0 {
		dst = appendMilli(dst, ev.AmountMilli)
	}
	dst = append(dst, ',')
	dst = append(dst, ev.Country...)
	return append(dst, '\n')
}
