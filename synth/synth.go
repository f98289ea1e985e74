// Package synth generates a realistic synthetic retail dataset, deterministic by
// seed, for the demo, tests and benchmarks. Its events follow
// privalytics.DefaultRetailSchema: customers with Zipf-like activity (a few very
// heavy ones, a long tail) and a home store; stores of different sizes and
// channel mixes; categories with their own price levels and seasons; sessions in
// which visits, product views and add-to-cart events precede multi-line orders;
// occasional refunds; weekly (weekend shop floors, evening web) and yearly
// (December peak, summer dip) seasonality.
//
// The randomness here is data generation, not differential-privacy noise:
// math/rand/v2 with a PCG source seeded from Config.Seed, so that a seed names
// one dataset, byte for byte. DP noise never comes from this package.
package synth

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/privalytics/privalytics"
)

// Config sizes the dataset. A zero field takes its default (see DefaultConfig).
type Config struct {
	Seed      uint64    // names the dataset: the same seed and sizes give the same events
	Customers int       // distinct customers that may appear; default 50,000
	Events    int       // events in total; default 1,000,000
	Start     time.Time // first day, a midnight UTC; default 2025-01-01
	Days      int       // days covered, from Start; default 365
	Stores    int       // stores / franchise locations; default 24
}

// Limits on Config, so that a typo cannot ask for terabytes of memory.
const (
	MaxCustomers = 20_000_000 // ≈ 80 bytes of generator state each
	MaxDays      = 3660       // ten years
	MaxStores    = 10_000
)

// DefaultConfig returns the demo's dataset: one year from 2025-01-01, 50,000
// customers, 24 stores, 1M events.
func DefaultConfig() Config {
	return Config{
		Seed:      1,
		Customers: 50_000,
		Events:    1_000_000,
		Start:     time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		Days:      365,
		Stores:    24,
	}
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Customers == 0 {
		c.Customers = d.Customers
	}
	if c.Events == 0 {
		c.Events = d.Events
	}
	if c.Start.IsZero() {
		c.Start = d.Start
	}
	if c.Days == 0 {
		c.Days = d.Days
	}
	if c.Stores == 0 {
		c.Stores = d.Stores
	}
	return c
}

// Validate reports every problem with c at once, as an EINVALID error. Zero
// fields are valid: they take their defaults.
func (c Config) Validate() error {
	var problems []string
	if c.Customers < 0 || c.Customers > MaxCustomers {
		problems = append(problems, "customers must be 1.."+strconv.Itoa(MaxCustomers)+" (0 for the default), got "+strconv.Itoa(c.Customers))
	}
	if c.Events < 0 {
		problems = append(problems, "events must be ≥ 1 (0 for the default), got "+strconv.Itoa(c.Events))
	}
	if c.Days < 0 || c.Days > MaxDays {
		problems = append(problems, "days must be 1.."+strconv.Itoa(MaxDays)+" (0 for the default), got "+strconv.Itoa(c.Days))
	}
	if c.Stores < 0 || c.Stores > MaxStores {
		problems = append(problems, "stores must be 1.."+strconv.Itoa(MaxStores)+" (0 for the default), got "+strconv.Itoa(c.Stores))
	}
	// Days are cut at UTC midnights so that hours of the day and weekdays mean
	// what they say; a start inside a day would shift every season.
	if !c.Start.IsZero() {
		if u := c.Start.UTC(); !u.Equal(u.Truncate(24 * time.Hour)) {
			problems = append(problems, "start must be a midnight UTC such as 2025-01-01T00:00:00Z, got "+c.Start.Format(time.RFC3339Nano))
		} else if u.Year() < 1 || u.Year() > 9000 {
			problems = append(problems, "start must be in the years 1..9000, got "+c.Start.Format(time.RFC3339))
		}
	}
	if len(problems) > 0 {
		return privalytics.Errorf(privalytics.EINVALID, "synth config: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Fields says which optional fields of an Event are set.
type Fields uint16

// The optional fields of the default retail schema. customer_id, ts and type
// are required and always set.
const (
	FieldStore Fields = 1 << iota
	FieldChannel
	FieldCategory
	FieldProduct
	FieldOrderID
	FieldQuantity
	FieldAmount
	FieldCountry
)

// Has reports whether every field of x is set in f.
func (f Fields) Has(x Fields) bool { return f&x == x }

// Event is one generated event; Set says which optional fields it carries.
//
// What each type carries: every event has store, channel and country; views and
// add-to-cart events add category and product; purchases and refunds add
// category, product, order_id, quantity and amount. A refund repeats the
// purchase line it returns, with a positive amount (the value refunded).
type Event struct {
	CustomerID  string
	TS          time.Time // UTC, whole milliseconds (web and app) or seconds (shop floor)
	Type        string    // one of privalytics.EventPurchase, EventRefund, EventView, EventAddToCart, EventVisit
	Store       string
	Channel     string // web, app or store
	Category    string
	Product     string
	OrderID     string
	Country     string // ISO 3166-1 alpha-2
	Quantity    int64
	AmountMilli int64 // amount × 1000 (the schema's decimal scale 3); set on purchases and refunds
	Set         Fields
}

// channel indexes the three channels of the schema.
type channel uint8

const (
	chStore channel = iota
	chWeb
	chApp
	numChannels
)

var channelNames = [numChannels]string{"store", "web", "app"}

// Generator produces the events of one Config. It is not safe for concurrent
// use; generate in parallel with one Generator per seed.
type Generator struct {
	cfg       Config
	rng       *rand.Rand
	startUS   int64 // Start in µs since the epoch
	stores    []store
	storePick alias
	customers []customer
	custPick  alias // Zipf-like activity
	days      [numChannels]alias
	hours     [numChannels]alias
	dayMonth  []uint8 // day → month index 0..11
	shut      []bool  // day → shops are closed
	monthCat  [12]alias
	cats      []categoryState

	emitted  int
	buf      []Event // the current session, in time order
	pos      int     // next event of buf to hand out
	orderSeq int
}

type store struct {
	name    string
	digital float64 // share of its customers' sessions that are online
}

// customer is one customer's fixed traits.
type customer struct {
	id      string
	country string
	home    int32
	second  int32   // a store visited now and then (work, holidays)
	pStore  float32 // chance that a session is on the shop floor
	pWeb    float32 // chance, given online, that it is on the web rather than the app
	favs    [3]uint8
}

// New validates cfg (zero fields take their defaults) and prepares a generator:
// stores, customers and catalogue are drawn here, once.
func New(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	g := &Generator{
		cfg: cfg,
		// Data generation, not DP noise: a seeded PCG makes the dataset reproducible.
		rng:     rand.New(rand.NewPCG(cfg.Seed, 0x5eed_da7a_5e7_c0de)),
		startUS: cfg.Start.UnixMicro(),
	}
	g.initStores()
	g.initCatalogue()
	g.initCustomers()
	g.initCalendar()
	return g, nil
}

const (
	secondUS = int64(time.Second / time.Microsecond)
	hourUS   = 3600 * secondUS
	dayUS    = 24 * hourUS
)

func (g *Generator) initStores() {
	names := StoreNames(g.cfg.Stores)
	g.stores = make([]store, len(names))
	sizes := make([]float64, len(names))
	for i, n := range names {
		// Big-city flagships first and largest; store size falls off like a
		// power law, as footfall does across a franchise.
		sizes[i] = 1 / math.Pow(float64(i+1), 0.7)
		g.stores[i] = store{name: n, digital: 0.45 + 0.4*g.rng.Float64()}
	}
	g.storePick = newAlias(sizes)
}

// foreignCountries are where the few customers abroad live; they buy online.
var foreignCountries = []string{"IE", "FR", "DE", "NL", "ES", "US", "BE"}

func (g *Generator) initCustomers() {
	n := g.cfg.Customers
	// One string holds every identifier, so a million customers cost one
	// allocation; each customer's id is a substring of it.
	var b strings.Builder
	b.Grow(n * 12)
	ends := make([]int, n)
	for i := range n {
		b.WriteString("cust-")
		var d [20]byte
		s := strconv.AppendInt(d[:0], int64(i+1), 10)
		for range 6 - len(s) {
			b.WriteByte('0')
		}
		b.Write(s)
		ends[i] = b.Len()
	}
	ids := b.String()

	catWeights := make([]float64, len(categories))
	for i, c := range categories {
		catWeights[i] = c.popularity
	}
	catPick := newAlias(catWeights)

	// Activity is Zipf-like over a random ranking, so that an identifier says
	// nothing about how active its customer is. With exponent 0.75 over 50,000
	// customers the top 1% hold about a quarter of all sessions and the heaviest
	// about 2% (the UCI Online Retail data's heaviest customer has 2% of rows).
	rank := g.rng.Perm(n)
	activity := make([]float64, n)
	g.customers = make([]customer, n)
	prev := 0
	for i := range g.customers {
		c := &g.customers[i]
		c.id = ids[prev:ends[i]]
		prev = ends[i]
		activity[i] = 1 / math.Pow(float64(rank[i]+1), 0.75)
		c.home = int32(g.storePick.draw(g.rng))
		c.second = int32(g.storePick.draw(g.rng))
		digital := g.stores[c.home].digital + 0.25*g.rng.NormFloat64()
		c.country = "GB"
		if g.rng.Float64() < 0.08 {
			c.country = foreignCountries[g.rng.IntN(len(foreignCountries))]
			digital = 0.97
		}
		c.pStore = float32(min(max(1-digital, 0.02), 0.95))
		c.pWeb = float32(0.25 + 0.6*g.rng.Float64())
		for j := range c.favs {
			c.favs[j] = uint8(catPick.draw(g.rng))
		}
	}
	g.custPick = newAlias(activity)
}

// Weekday factors per channel: shop floors fill at the weekend, the web is a
// weekday-evening habit, the app sits in between.
var weekday = [numChannels][7]float64{ // Sunday first, as time.Weekday
	chStore: {1.45, 0.85, 0.85, 0.9, 0.95, 1.15, 1.75},
	chWeb:   {0.95, 1.05, 1.05, 1.05, 1.0, 0.9, 0.85},
	chApp:   {1.15, 0.95, 0.95, 0.95, 1.0, 1.0, 1.1},
}

// Hour-of-day weights per channel (UTC, which is UK time in winter).
var hourly = [numChannels][24]float64{
	chStore: {0, 0, 0, 0, 0, 0, 0, 0, 0.4, 0.7, 0.9, 1.1, 1.4, 1.3, 1.0, 1.0, 1.2, 1.4, 1.1, 0.6, 0.2, 0, 0, 0},
	chWeb:   {0.3, 0.15, 0.1, 0.08, 0.08, 0.15, 0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 1.0, 0.95, 0.85, 0.85, 0.9, 1.0, 1.3, 1.6, 1.8, 1.7, 1.2, 0.6},
	chApp:   {0.25, 0.1, 0.05, 0.05, 0.1, 0.3, 0.8, 1.3, 1.2, 0.7, 0.7, 0.9, 1.4, 1.2, 0.7, 0.7, 0.9, 1.2, 1.1, 1.2, 1.5, 1.6, 1.2, 0.6},
}

// monthly is the yearly season: a summer dip, Black-Friday November and the
// December peak.
var monthly = [12]float64{0.85, 0.8, 0.9, 0.95, 1.0, 0.85, 0.75, 0.75, 0.95, 1.0, 1.25, 1.45}

func (g *Generator) initCalendar() {
	n := g.cfg.Days
	g.dayMonth = make([]uint8, n)
	g.shut = make([]bool, n)
	var w [numChannels][]float64
	for ch := range w {
		w[ch] = make([]float64, n)
	}
	for d := range n {
		day := g.cfg.Start.AddDate(0, 0, d)
		g.dayMonth[d] = uint8(day.Month() - 1)
		season := monthly[day.Month()-1]
		storeOnly := 1.0
		switch {
		case day.Month() == time.December && day.Day() <= 24:
			season *= 0.8 + 0.03*float64(day.Day()) // the run-up to Christmas
		case day.Month() == time.December && day.Day() == 25:
			storeOnly = 0 // shops are shut on Christmas Day
			g.shut[d] = true
		case day.Month() == time.November && day.Weekday() == time.Friday && day.Day() >= 22 && day.Day() <= 28:
			season *= 2.5 // Black Friday
		}
		for ch := range numChannels {
			f := season * weekday[ch][day.Weekday()]
			if ch == chStore {
				f *= storeOnly
			}
			w[ch][d] = f
		}
	}
	for ch := range numChannels {
		g.days[ch] = newAlias(w[ch][:])
		g.hours[ch] = newAlias(hourly[ch][:])
	}
}

// Next fills ev with the next event and reports whether there was one; it
// returns false once Config.Events events have been produced.
//
// Order: events come session by session. A session is one customer's visit on
// one day and one channel: the visit, then (online) product views and
// add-to-cart events, then the order's purchase lines, all in time order and on
// that day. A refund follows the purchase line it returns but carries its own,
// later timestamp (days later). Sessions come in random order of time, so the
// stream as a whole is not sorted by ts; every timestamp lies in
// [Start, Start+Days). The last session may be cut short by the event count.
func (g *Generator) Next(ev *Event) bool {
	if g.emitted >= g.cfg.Events {
		return false
	}
	for g.pos == len(g.buf) {
		g.session()
	}
	*ev = g.buf[g.pos]
	g.pos++
	g.emitted++
	return true
}

// session generates one visit of one customer into g.buf.
func (g *Generator) session() {
	g.buf, g.pos = g.buf[:0], 0
	rng := g.rng
	c := &g.customers[g.custPick.draw(rng)]
	ch := chStore
	if rng.Float32() >= c.pStore {
		ch = chApp
		if rng.Float32() < c.pWeb {
			ch = chWeb
		}
	}
	day := g.days[ch].draw(rng)
	month := int(g.dayMonth[day])
	dayStart := g.startUS + int64(day)*dayUS
	// Sessions stay on their day: a long one late at night is squeezed into
	// the day's last tick rather than spilling into a day the season did not
	// pick. A tick is a second on the shop floor, a millisecond online.
	tick := int64(1000)
	if ch == chStore {
		tick = secondUS
	}
	lastUS := dayStart + dayUS - tick
	ts := g.clock(ch, dayStart)

	st := c.home
	switch r := rng.Float64(); {
	case r < 0.10:
		st = c.second
	case r < 0.14:
		st = int32(g.storePick.draw(rng))
	}
	base := Event{
		CustomerID: c.id, Store: g.stores[st].name, Channel: channelNames[ch], Country: c.country,
		Set: FieldStore | FieldChannel | FieldCountry,
	}
	// step advances the session clock by a random pause, whole seconds on the
	// shop floor and milliseconds online.
	step := func(meanS, minS float64) {
		d := int64((minS + rng.ExpFloat64()*meanS) * float64(secondUS))
		ts = min(ts+d-d%tick, lastUS)
	}

	g.emit(&base, privalytics.EventVisit, ts)
	var cart [maxCart]int32 // category<<16 | product
	lines := 0
	if ch == chStore {
		// Shop floor: no views or carts to log; a basket at the till, or
		// nothing (people also come in just to look).
		if rng.Float64() < 0.5 {
			lines = 1 + min(int(rng.ExpFloat64()*1.3), maxCart-1)
			for i := range lines {
				cat := g.category(c, month)
				cart[i] = int32(cat<<16 | g.cats[cat].pick.draw(rng))
			}
		}
		step(600, 120)
	} else {
		views := 1 + min(int(rng.ExpFloat64()*6), 40)
		for range views {
			step(30, 4)
			cat := g.category(c, month)
			p := g.cats[cat].pick.draw(rng)
			e := g.emit(&base, privalytics.EventView, ts)
			e.Category, e.Product = categories[cat].name, g.cats[cat].codes[p]
			e.Set |= FieldCategory | FieldProduct
			if rng.Float64() < 0.22 && lines < maxCart {
				step(15, 2)
				e := g.emit(&base, privalytics.EventAddToCart, ts)
				e.Category, e.Product = categories[cat].name, g.cats[cat].codes[p]
				e.Set |= FieldCategory | FieldProduct
				cart[lines] = int32(cat<<16 | p)
				lines++
			}
		}
		// Half the carts are abandoned.
		if rng.Float64() >= 0.5 {
			lines = 0
		}
		step(90, 20)
	}
	if lines == 0 {
		return
	}
	g.orderSeq++
	order := orderID(ch, g.orderSeq)
	for _, cp := range cart[:lines] {
		cat, p := int(cp>>16), int(cp&0xffff)
		e := g.emit(&base, privalytics.EventPurchase, ts)
		e.Category, e.Product, e.OrderID = categories[cat].name, g.cats[cat].codes[p], order
		e.Quantity, e.AmountMilli = g.line(cat, p, month)
		e.Set |= FieldCategory | FieldProduct | FieldOrderID | FieldQuantity | FieldAmount
		// Returns are likelier online (no fitting room) and come days later,
		// through the same channel, at an hour it is used. One that would fall
		// after the period, or on a day the shops are shut, is not made.
		pReturn := 0.02
		if ch != chStore {
			pReturn = 0.05
		}
		if rng.Float64() < pReturn {
			rday := day + 1 + int(rng.ExpFloat64()*6)
			if rday < g.cfg.Days && !(ch == chStore && g.shut[rday]) {
				g.emit(e, privalytics.EventRefund, g.clock(ch, g.startUS+int64(rday)*dayUS))
			}
		}
	}
}

// clock draws the time of a session (or a return) on the day that starts at
// dayStart, from the channel's hours: whole seconds on the shop floor (tills),
// milliseconds online (servers).
func (g *Generator) clock(ch channel, dayStart int64) int64 {
	ts := dayStart + int64(g.hours[ch].draw(g.rng))*hourUS
	if ch == chStore {
		return ts + int64(g.rng.IntN(3600))*secondUS
	}
	return ts + int64(g.rng.IntN(3600_000))*1000
}

// maxCart bounds the lines of one order, so that a cart fits on the stack.
const maxCart = 24

// emit appends a copy of proto with the given type and time to the session.
// The returned pointer is valid until the next emit.
func (g *Generator) emit(proto *Event, typ string, tsUS int64) *Event {
	g.buf = append(g.buf, *proto)
	e := &g.buf[len(g.buf)-1]
	e.Type = typ
	e.TS = time.UnixMicro(tsUS).UTC()
	return e
}

// orderID numbers orders across channels; the prefix says where the order was
// placed, as invoice numbers often do.
func orderID(ch channel, seq int) string {
	var b [24]byte
	out := append(b[:0], "WSA"[ch:ch+1]...)
	out = append(out, '-')
	out = strconv.AppendInt(out, int64(seq), 10)
	return string(out)
}

// category picks the category of a viewed or bought product: mostly one of the
// customer's favourites, otherwise what the month sells.
func (g *Generator) category(c *customer, month int) int {
	if g.rng.Float64() < 0.65 {
		return int(c.favs[g.rng.IntN(len(c.favs))])
	}
	return g.monthCat[month].draw(g.rng)
}

// line prices one purchase line: quantity and amount in thousandths.
func (g *Generator) line(cat, p, month int) (quantity, amountMilli int64) {
	unit := g.cats[cat].priceMilli[p]
	if categories[cat].byWeight {
		// Sold by weight: one item whose amount is price per kg × grams, which
		// is where amounts with three decimals come from.
		grams := 100 + int64(g.rng.ExpFloat64()*600)
		return 1, max(unit*grams/1000, 1)
	}
	quantity = 1 + int64(g.rng.ExpFloat64()*0.45)
	if unit < 5000 && g.rng.Float64() < 0.01 {
		quantity = 6 + int64(g.rng.IntN(43)) // the odd bulk buy of cheap goods, for an office or a party
	}
	// Promotions: one line in ten is discounted, more of them in the sales.
	pPromo := 0.1
	if month == 0 || month == 6 || month == 10 {
		pPromo = 0.25
	}
	if g.rng.Float64() < pPromo {
		off := int64(1+g.rng.IntN(4)) * 10 // 10..40 % off
		unit = max(unit*(100-off)/100/10*10, 10)
	}
	return quantity, unit * quantity
}
