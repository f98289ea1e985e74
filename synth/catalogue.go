package synth

import (
	"math"
	"math/rand/v2"
	"strconv"
)

// category is one product category of the catalogue.
type category struct {
	name       string
	code       string  // prefix of its product codes
	median     float64 // median unit price (per kg when byWeight), in the shop's currency
	products   int
	popularity float64     // relative share of views and lines
	byWeight   bool        // sold by weight: amounts have three decimals
	season     [12]float64 // month factors; zero means 1
}

// categories is the catalogue of a mid-sized UK general retailer: groceries
// (cheap, frequent) next to electronics and gifts (dear, seasonal).
var categories = []category{
	{name: "bakery", code: "BAK", median: 2.2, products: 40, popularity: 9},
	{name: "dairy", code: "DAI", median: 1.8, products: 35, popularity: 9},
	{name: "produce", code: "PRO", median: 2.5, products: 60, popularity: 10, byWeight: true,
		season: [12]float64{5: 1.2, 6: 1.3, 7: 1.3}},
	{name: "meat", code: "MEA", median: 11, products: 40, popularity: 6, byWeight: true,
		season: [12]float64{5: 1.3, 6: 1.4, 7: 1.3, 11: 1.3}},
	{name: "fish", code: "FIS", median: 16, products: 25, popularity: 3, byWeight: true},
	{name: "frozen", code: "FRZ", median: 3.5, products: 45, popularity: 6},
	{name: "snacks", code: "SNK", median: 1.6, products: 50, popularity: 8},
	{name: "beverages", code: "BEV", median: 2.0, products: 50, popularity: 8,
		season: [12]float64{5: 1.4, 6: 1.6, 7: 1.6}},
	{name: "coffee_tea", code: "COF", median: 5.5, products: 30, popularity: 4},
	{name: "wine_spirits", code: "WIN", median: 11, products: 60, popularity: 4,
		season: [12]float64{10: 1.3, 11: 2.2}},
	{name: "household", code: "HOU", median: 4.5, products: 50, popularity: 5},
	{name: "beauty", code: "BEA", median: 9, products: 45, popularity: 4,
		season: [12]float64{1: 1.3, 11: 1.5}},
	{name: "baby", code: "BAB", median: 8, products: 30, popularity: 2},
	{name: "pet", code: "PET", median: 6, products: 30, popularity: 3},
	{name: "toys", code: "TOY", median: 16, products: 40, popularity: 2,
		season: [12]float64{10: 1.8, 11: 3.5}},
	{name: "books", code: "BOO", median: 10, products: 60, popularity: 2,
		season: [12]float64{6: 1.3, 11: 1.8}},
	{name: "electronics", code: "ELE", median: 45, products: 25, popularity: 1.5,
		season: [12]float64{10: 2.0, 11: 2.0}},
	{name: "garden", code: "GAR", median: 14, products: 35, popularity: 1.5,
		season: [12]float64{0: 0.3, 1: 0.4, 2: 1.2, 3: 2.0, 4: 2.2, 5: 2.0, 6: 1.6, 7: 1.2, 9: 0.6, 10: 0.3, 11: 0.3}},
	{name: "home", code: "HOM", median: 20, products: 40, popularity: 2,
		season: [12]float64{0: 1.4, 8: 1.2}},
	{name: "gifts", code: "GIF", median: 18, products: 40, popularity: 1.5,
		season: [12]float64{1: 1.5, 2: 1.2, 10: 1.6, 11: 3.5}},
}

// Categories returns the names of the catalogue's categories.
func Categories() []string {
	out := make([]string, len(categories))
	for i, c := range categories {
		out[i] = c.name
	}
	return out
}

// categoryState is a category's generated products.
type categoryState struct {
	codes      []string
	priceMilli []int64 // unit price (per kg when sold by weight) × 1000
	pick       alias   // which product a view or line is about
}

func (g *Generator) initCatalogue() {
	g.cats = make([]categoryState, len(categories))
	for i, c := range categories {
		s := &g.cats[i]
		s.codes = make([]string, c.products)
		s.priceMilli = make([]int64, c.products)
		popular := make([]float64, c.products)
		for p := range c.products {
			var b [16]byte
			code := append(b[:0], c.code...)
			code = append(code, '-')
			for k := 1000; k > p+1 && k > 1; k /= 10 {
				code = append(code, '0')
			}
			s.codes[p] = string(strconv.AppendInt(code, int64(p+1), 10))
			// Log-normal prices around the category's median, in whole cents;
			// above a pound they end in 9 as shelf prices do.
			cents := int64(math.Round(c.median * math.Exp(0.55*g.rng.NormFloat64()) * 100))
			if cents >= 100 {
				cents = cents - cents%10 + 9
			}
			s.priceMilli[p] = max(cents, 5) * 10
			// A few best-sellers per category, then a tail.
			popular[p] = 1 / float64(p+1)
		}
		s.pick = newAlias(popular)
	}
	weights := make([]float64, len(categories))
	for m := range g.monthCat {
		for i, c := range categories {
			f := c.season[m]
			if f == 0 {
				f = 1
			}
			weights[i] = c.popularity * f
		}
		g.monthCat[m] = newAlias(weights)
	}
}

// storeCities are UK towns by size: a store list's first entries are its
// flagships.
var storeCities = []string{"london", "birmingham", "manchester", "glasgow", "leeds", "liverpool",
	"newcastle", "sheffield", "bristol", "edinburgh", "cardiff", "leicester", "nottingham", "belfast",
	"coventry", "brighton", "southampton", "plymouth", "reading", "aberdeen", "norwich", "york",
	"oxford", "cambridge"}

// StoreNames returns the names of n stores, largest first: the 24 towns of
// storeCities, then second and further branches ("london-2", …).
func StoreNames(n int) []string {
	out := make([]string, max(n, 0))
	for i := range out {
		out[i] = storeCities[i%len(storeCities)]
		if k := i / len(storeCities); k > 0 {
			out[i] += "-" + strconv.Itoa(k+1)
		}
	}
	return out
}

// alias draws an index with probability proportional to fixed weights in
// constant time (Vose's alias method): the customer table of a benchmark has a
// million entries, and a binary search over it would miss the cache on every
// session.
type alias struct {
	prob  []float64
	alias []int32
}

// newAlias builds the table; all-zero weights draw uniformly.
func newAlias(w []float64) alias {
	n := len(w)
	a := alias{prob: make([]float64, n), alias: make([]int32, n)}
	sum := 0.0
	for _, x := range w {
		sum += x
	}
	if sum <= 0 {
		for i := range a.prob {
			a.prob[i] = 1
		}
		return a
	}
	scaled := make([]float64, n)
	var small, large []int32
	for i, x := range w {
		scaled[i] = x * float64(n) / sum
		if scaled[i] < 1 {
			small = append(small, int32(i))
		} else {
			large = append(large, int32(i))
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		a.prob[s], a.alias[s] = scaled[s], l
		scaled[l] -= 1 - scaled[s]
		if scaled[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	// What is left is 1 up to rounding, except that a zero weight (a shop
	// closed on Christmas Day) must stay impossible.
	positive := int32(0)
	for i, x := range w {
		if x > 0 {
			positive = int32(i)
			break
		}
	}
	for _, i := range large {
		a.prob[i] = 1
	}
	for _, i := range small {
		if w[i] > 0 {
			a.prob[i] = 1
		} else {
			a.prob[i], a.alias[i] = 0, positive
		}
	}
	return a
}

// draw takes the column from the high 32 bits of one random word and the coin
// from the low 32: one generator call per draw.
func (a *alias) draw(r *rand.Rand) int {
	x := r.Uint64()
	i := int((x >> 32) * uint64(len(a.prob)) >> 32)
	if float64(uint32(x))*(1.0/(1<<32)) < a.prob[i] {
		return i
	}
	return int(a.alias[i])
}
