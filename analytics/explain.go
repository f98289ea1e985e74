package analytics

import (
	"container/list"
	"fmt"
	"math"
	"sync"

	"github.com/google/differential-privacy/go/v3/noise"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

// Explanation is what a query would cost and how precise its cells would be,
// computed from the plan alone: no data is read and no budget is spent.
type Explanation struct {
	Cost        privalytics.Cost `json:"cost"`
	Confidence  float64          `json:"confidence"`
	Thresholded bool             `json:"thresholded"` // group keys come from the data and pass DP partition selection
	// AccuracyFirst: the query gave no epsilon but a target half-width ("within")
	// for some aggregates; Cost.Epsilon is the smallest ε that meets every target.
	AccuracyFirst bool                      `json:"accuracy_first,omitempty"`
	Aggregates    []AggregateExplanation    `json:"aggregates"`
	Budget        *privalytics.BudgetStatus `json:"budget,omitempty"`
}

// AggregateExplanation gives the expected error of one aggregate: the half-width
// of its interval at the query's confidence, for a typical cell.
type AggregateExplanation struct {
	privalytics.AggregateInfo
	HalfWidth float64 `json:"half_width"`
	// HiddenBelow predicts the hidden flag: a released cell whose value is
	// below it will be marked hidden (count, distinct_customers and sum with
	// fixed bounds; the interval does not depend on the data).
	HiddenBelow float64 `json:"hidden_below,omitempty"`
	// SubtotalHalfWidths, with rollup and bounds that do not depend on the
	// data, predict each subtotal level's half-width: [0] for the subtotals
	// over the last group key, the last for the grand total.
	SubtotalHalfWidths []float64 `json:"subtotal_half_widths,omitempty"`
	Note               string    `json:"note,omitempty"`
}

// meanRows is the group size the expected error of a mean is quoted for.
const meanRows = 1000

// Explain computes the cost and the expected error of each aggregate. Interval
// widths of the Laplace and Gaussian mechanisms do not depend on the data, so this
// is exact for counts and sums; for a mean it is quoted for a group of meanRows rows.
func (p *Plan) Explain(m dp.Mechanisms) (*Explanation, error) {
	ex := &Explanation{Cost: p.cost, Confidence: p.q.Confidence, Thresholded: p.selection, AccuracyFirst: p.accuracyFirst}
	n := m.Laplace
	if p.kind == dp.Gaussian {
		n = m.Gaussian
	}
	alpha := 1 - p.q.Confidence
	l0, rows := p.rowSens()
	for _, a := range p.aggs {
		e := AggregateExplanation{AggregateInfo: a.info}
		if a.info.Tuned {
			e.Note = fmt.Sprintf("tuned: L0, this aggregate's per-group clamp and the noise are chosen from DP histograms of the customers' contributions (%.0f%% of ε, %.4g); the choice, its expected error and the share removed by bounding are in the answer's tuning object", 100*p.tune.share, p.tune.share*p.tune.orig.Epsilon)
			if p.tune.maxL0 > 1 {
				e.Note += fmt.Sprintf("; L0 is not chosen below the default %d where the groups histogram shows nothing above its noise (too small a shop to see how many groups its customers touch)", min(DefaultMaxGroups, p.tune.maxL0))
			}
			if p.tune.adaptive {
				e.Note += fmt.Sprintf("; on a smaller shop tuning takes more, up to %.0f%% of ε (how much, from the customers the groups histogram shows), and where a value histogram still shows nothing above its threshold they are all drawn again with more; the answer gets the rest",
					100*MaxAdaptiveShare)
			}
			if p.tune.l2 {
				e.Note += "; an L2 norm across the groups (max_norm, Gaussian noise) competes with the per-group clamps"
			}
			if heavyTailed(a) { // counts and sums
				e.Note += "; the share removed counts the customers above what the histograms show as a tail going on at the rate of the last step they show (at most a quarter as many customers per doubling), as a shop's heaviest spenders do"
				if p.tune.orig.Tuning.Corrects() {
					e.Note += "; the cells are divided by 1 − that estimated share (the report's correction; tuning.correct_bias false keeps them bounded)"
				}
			}
			e.Note += fmt.Sprintf("; should that share come out above %.1f, the cells are mostly bias and are marked hidden", MaxCorrectedLoss)
			ex.Aggregates = append(ex.Aggregates, e)
			continue
		}
		if a.auto {
			e.Note = fmt.Sprintf("the clamping range is estimated from the data with ε = %.4g; the interval scales with it and is in the answer", a.autoEps)
			ex.Aggregates = append(ex.Aggregates, e)
			continue
		}
		if a.perGroup {
			hw, note, err := p.explainPerGroup(n, a, alpha)
			if err != nil {
				return nil, fmt.Errorf("analytics: explain: %w", err)
			}
			e.HalfWidth, e.Note = hw, note
			if a.op != "mean" {
				e.HiddenBelow = hw
			}
			ex.Aggregates = append(ex.Aggregates, e)
			continue
		}
		switch a.op {
		case "count", "distinct_customers":
			l0c, linf := l0, rows
			if a.op == "distinct_customers" {
				l0c, linf = p.distinctL0(), 1
			}
			ci, err := n.ComputeConfidenceIntervalInt64(0, l0c, linf, a.budget.Epsilon, a.budget.Delta, alpha)
			if err != nil {
				return nil, fmt.Errorf("analytics: explain: %w", err)
			}
			e.HalfWidth = ci.UpperBound
		case "sum":
			linf := math.Max(math.Abs(a.flo), math.Abs(a.fhi)) * float64(rows)
			ci, err := n.ComputeConfidenceIntervalFloat64(0, l0, linf, a.budget.Epsilon, a.budget.Delta, alpha)
			if err != nil {
				return nil, fmt.Errorf("analytics: explain: %w", err)
			}
			e.HalfWidth = ci.UpperBound
		case "mean":
			linf := (a.fhi - a.flo) / 2 * float64(rows)
			ci, err := n.ComputeConfidenceIntervalFloat64(0, l0, linf, a.budget.Epsilon/2, a.budget.Delta/2, alpha)
			if err != nil {
				return nil, fmt.Errorf("analytics: explain: %w", err)
			}
			e.HalfWidth = ci.UpperBound / meanRows
			e.Note = fmt.Sprintf("for a group of %d rows; smaller groups are less precise", meanRows)
		case "median", "quantile":
			share := dp.QuantileCountShare
			w := dp.QuantileRankError(p.kind, l0, rows, dp.Budget{Epsilon: a.budget.Epsilon * (1 - share), Delta: a.budget.Delta * (1 - share)}, alpha/3)
			e.Note = fmt.Sprintf("the interval spans the values ranked within ±%.0f rows of the quantile (±%.1f points of rank in a group of %d rows; all of [lower, upper] in groups too small to tell), plus the tree's resolution; its width in values depends on the data",
				w, 100*w/meanRows, meanRows)
		default: // variance, stddev: the error depends on the data's spread
			e.Note = "the interval depends on the group's size and spread; see it in the answer"
		}
		if a.op == "count" || a.op == "distinct_customers" || a.op == "sum" {
			e.HiddenBelow = e.HalfWidth
		}
		ex.Aggregates = append(ex.Aggregates, e)
	}
	if p.q.Rollup {
		sizes := p.subtotalSizes()
		for i := range ex.Aggregates {
			e := &ex.Aggregates[i]
			if e.HalfWidth > 0 {
				for _, k := range sizes {
					e.SubtotalHalfWidths = append(e.SubtotalHalfWidths, dp.SumHalfWidth(p.kind, e.HalfWidth, k, p.q.Confidence))
				}
			}
			if e.Note != "" {
				e.Note += "; "
			}
			e.Note += "rollup: a subtotal of k cells carries their noise summed, about √k × a cell's ± — at no extra ε"
		}
	}
	return ex, nil
}

// subtotalSizes is how many cells each rollup level sums: level L (1 to the
// number of group keys) sums the last L keys' groups. Rollup's keys are all
// public, so their counts are known before the query runs.
func (p *Plan) subtotalSizes() []int {
	out := make([]int, len(p.dims))
	k := 1
	for l := 1; l <= len(p.dims); l++ {
		d := p.dims[len(p.dims)-l]
		n := len(d.keys)
		if d.time != "" || d.hist {
			n = len(d.labels)
		}
		k *= max(n, 1)
		out[l-1] = k
	}
	return out
}

// explainPerGroup is the half-width of a cell of an aggregate with per-group
// bounds: each customer adds at most max(|lower|, |upper|) to at most L0 cells.
func (p *Plan) explainPerGroup(n noise.Noise, a aggregate, alpha float64) (float64, string, error) {
	l0 := p.distinctL0()
	note := fmt.Sprintf("each customer's total in a group is clamped to [%g, %g]: noise for L0 = %d × %g", a.glo, a.ghi, l0, math.Max(math.Abs(a.glo), math.Abs(a.ghi)))
	if p.kind == dp.Gaussian {
		note = fmt.Sprintf("each customer's total in a group is clamped to [%g, %g]: noise for L2 = √%d × %g", a.glo, a.ghi, l0, math.Max(math.Abs(a.glo), math.Abs(a.ghi)))
	}
	if nb := p.normBound(a); nb > 0 {
		ci, err := n.ComputeConfidenceIntervalFloat64(0, 1, nb, a.budget.Epsilon, a.budget.Delta, alpha)
		return ci.UpperBound, fmt.Sprintf("each customer's total in a group is clamped to [%g, %g] and its totals over the (at most %d) groups scaled down to an L2 norm of at most %g: noise for L2 = %g", a.glo, a.ghi, l0, nb, nb), err
	}
	switch a.op {
	case "count":
		ci, err := n.ComputeConfidenceIntervalInt64(0, l0, a.ghiI, a.budget.Epsilon, a.budget.Delta, alpha)
		return ci.UpperBound, note, err
	case "mean":
		ci, err := n.ComputeConfidenceIntervalFloat64(0, l0, (a.ghi-a.glo)/2, a.budget.Epsilon/2, a.budget.Delta/2, alpha)
		return ci.UpperBound / meanRows, fmt.Sprintf("the mean of the customers' averages, each clamped to [%g, %g]; for a group of %d customers, smaller groups are less precise", a.glo, a.ghi, meanRows), err
	}
	linf := math.Max(math.Abs(a.glo), math.Abs(a.ghi))
	if linf <= 0 {
		linf = 1
	}
	ci, err := n.ComputeConfidenceIntervalFloat64(0, l0, linf, a.budget.Epsilon, a.budget.Delta, alpha)
	return ci.UpperBound, note, err
}

// Cache keeps released answers by tenant, query fingerprint and snapshot version.
// Returning a released answer again is post-processing: it costs no privacy. New
// data, deletions or consent changes make a new snapshot version, so stale answers
// are never served. Least recently used answers are dropped past the capacity.
type Cache struct {
	mu  sync.Mutex
	max int
	ll  *list.List
	m   map[string]*list.Element
}

type cacheEntry struct {
	key string
	res privalytics.Result
}

// NewCache returns a cache of at most max answers.
func NewCache(max int) *Cache {
	return &Cache{max: max, ll: list.New(), m: map[string]*list.Element{}}
}

// CacheKey identifies an answer: the same query (its fingerprint) on the same
// snapshot under the same consent decisions (the tenant's consent version) is
// the same answer, and any consent change gives a new key, so a withdrawal is
// never served from the cache.
func CacheKey(tenantID, fingerprint string, snapshot uint64, consent int64) string {
	return fmt.Sprintf("%s|%s|%d|%d", tenantID, fingerprint, snapshot, consent)
}

// Get returns a copy of the cached answer marked Cached, with zero cost.
func (c *Cache) Get(key string) (*privalytics.Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[key]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(el)
	res := el.Value.(*cacheEntry).res
	res.Cached, res.Cost, res.Budget = true, privalytics.Cost{}, nil
	return &res, true
}

// Put stores an answer.
func (c *Cache) Put(key string, res *privalytics.Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		el.Value.(*cacheEntry).res = *res
		c.ll.MoveToFront(el)
		return
	}
	c.m[key] = c.ll.PushFront(&cacheEntry{key: key, res: *res})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(*cacheEntry).key)
	}
}
