package analytics

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

// Automatic tuning of contribution bounds (issue 15), done inside the query in
// the spirit of PipelineDP's offline parameter tuning (dataset_histograms and
// parameter_tuning): a stated share of the query's ε buys DP histograms of the
// customers' contributions — how many groups each customer touches, and per
// tuned aggregate the value (sum), rows (count) or average (mean) of each
// customer in each group — and from them the engine picks L0, each aggregate's
// per-group clamp and the noise (Laplace, or Gaussian when δ > 0) that minimise
// the typical relative error of a typical cell — the median of |bias + noise|
// (dp.MedianAbsError): noise AND the bias of bounding together. With public
// groups and δ > 0 the customers' L2 norms are a histogram too, and an L2
// bound across the groups (max_norm, every group kept) competes with L0 and
// the clamps. The rest of ε runs the query with the chosen bounds (bound.go).
// The charge is decided at plan time: ε in full, δ when Gaussian noise or
// partition selection may be used, and ρ the largest of the candidates'
// (Gaussian ρ does not depend on the sensitivity).

// When the query names no tuning share, each tuning histogram gets
// HistogramShare of ε and the whole tuning at most DefaultTuningShare: a
// query of one tuned sum draws three histograms (groups, values, norms) and
// spends 15%, one of distinct customers draws only the groups histogram and
// spends 5%, leaving 95% of ε to its answer instead of 85% — the same
// histograms, less noise. More histograms than three share the 15%.
const (
	DefaultTuningShare = 0.15
	HistogramShare     = 0.05
)

// defaultShare is the tuning share of a query that names none and draws n
// histograms.
func defaultShare(n int) float64 {
	return min(DefaultTuningShare, HistogramShare*float64(n))
}

// The tuning share follows the shop's size. The histograms spread a shop's
// customers over the bins of the sizes that matter, and what a noisy
// histogram shows depends on customers × its ε: at the default share a shop
// of 10,000 customers at ε 0.5 sees only the top of its norm histogram's
// hump, and the bounds it chose for monthly revenue removed 17.7–28.2% of
// it where tuning estimated 3.0–8.1% (stop 32, bench utility's loss table). So when a query names no share (adaptive),
// the groups histogram's total (post-processing) picks the first of the
// steps — the default, then shopShares — whose value histograms would hold
// shopLevel customers per unit of noise scale (customers × ε ≥ shopLevel),
// else the largest, MaxAdaptiveShare of ε in all; the value and norm
// histograms are drawn at that step's ε and the answer gets the rest.
// Measured with bench utility (--runs 8, two runs each), cells within 10%:
// a fixed share for every shop of 0.15 (the default), 0.20, 0.25 and 0.30
// gave 40.1–40.3%, 40.1–40.6%, 38.9–40.3% and 37.2–37.6% on the demo shop
// (50,000 customers), and 15.8–16.7%, 17.4–19.7%, 19.1–19.3% and
// 19.7–20.5% on a shop of 10,000 — more ε for tuning pays on the mid-size
// shop and costs the large one. With shopLevel 200, at ε 0.5 a shop keeps
// the default from about 8,000 customers (the demo's questions see about
// 23,000, the 10,000-customer shop's about 4,700, which step to 0.25):
// 18.9–19.6% on 10,000 customers (16.2–16.3% before, same session), 8.8–9.5%
// on 3,000 (8.0–8.6%), the demo shop 39.6–40.7% (39.7–41.1%); shopLevel 400
// gave 18.7–19.3% and 8.5–8.6%.
//
// Where a value histogram drawn at the chosen step still shows nothing
// (valueView) and a larger step is left, every value histogram is drawn
// again with the largest step's extra ε and averaged with the first draw
// (topUp), as small shops were from stop 28: a run recoverRun keeps from a
// histogram with nothing above its threshold may be a spike of noise.
//
// The charge does not change: ε is the query's, and ρ is charged for the
// largest of the steps' (planTuned) — adaptive sequential composition with
// a total fixed in advance.
const (
	MaxAdaptiveShare = 0.45
	shopLevel        = 200.0
	// smallShopLevel: below this many customers per unit of the default
	// share's noise scale (8 scales per bin over 8 bins) a shop is small,
	// and tuning does not lean on the correction when it chooses (corrects).
	smallShopLevel = 64.0
)

// shopShares are the tuning shares an adaptive tuning may step up to, in
// order; the default share comes before them.
var shopShares = []float64{0.25, 0.35, MaxAdaptiveShare}

// valueEpsilon is the ε of each value and norm histogram at tuning share s,
// the groups histogram keeping epsHist.
func (ts *tuneSpec) valueEpsilon(s float64) float64 {
	n := ts.histograms() - 1
	if n == 0 {
		return ts.epsHist
	}
	return (s*ts.orig.Epsilon - ts.epsHist) / float64(n)
}

// shares are the tuning shares ts may end up with: its own, and for an
// adaptive tuning (the query names no share and draws value histograms) the
// steps above it.
func (ts *tuneSpec) shares() []float64 {
	out := []float64{ts.share}
	if ts.adaptive {
		for _, s := range shopShares {
			if s > ts.share {
				out = append(out, s)
			}
		}
	}
	return out
}

// valueView is a noisy value histogram as tuning reads it: thresholded,
// each sign's tail extended (thresholdWithTail), for a count or sum (heavy)
// the tail above what cleared the threshold assumed (assumeTail), and on a
// small shop the run around the fullest positive bin kept (recoverRun).
// cleared reports whether any bin cleared the threshold itself, before that
// run was looked for.
func valueView(raw []float64, eps float64, heavy bool) (view []float64, cleared bool) {
	h := slices.Clone(raw)
	seen := thresholdWithTail(h, eps, 2)
	cleared = !empty(h)
	if heavy {
		assumeTail(h[:tuneBins], seen[:tuneBins])
	}
	recoverRun(h[:tuneBins], raw[:tuneBins], eps)
	return h, cleared
}

// valueUnit is the smallest magnitude other than zero that a tuned
// aggregate's value for one customer in one group — and so the L2 norm of a
// customer's values — can have, known from the schema alone: a count's rows
// are whole, and a sum of an int or decimal column is a whole number of its
// stored units (10^-scale). 0 where nothing is known: a float column, or a
// mean (an average of k values can be a k-th of a unit).
func valueUnit(a aggregate) float64 {
	switch {
	case a.op == "count":
		return 1
	case a.op == "sum" && !a.isFloat:
		return math.Pow10(-a.scale)
	}
	return 0
}

// dropBelowUnit zeroes the bins of a noisy tuning histogram (parts
// consecutive ranges of tuneBins bins) that hold only magnitudes below unit:
// no customer can be there, so any count they show is noise (on a small
// shop, where no bin clears the threshold, recoverRun keeps the run around
// the fullest noisy bin, which can be one of these). For a count that is the
// nine bins between zero and one row, in each half; for a sum of cents the
// three below 2^-6. Bin 0 (zero and the smallest magnitudes) stays.
// Post-processing with public information: no privacy cost.
func dropBelowUnit(h []float64, parts int, unit float64) {
	if unit <= 0 {
		return
	}
	for j := 1; j < tuneBins && math.Ldexp(1, j+tuneMinExp) < unit; j++ {
		for k := range parts {
			h[k*tuneBins+j] = 0
		}
	}
}

// empty reports whether a histogram as tuning reads it shows nothing.
func empty(h []float64) bool {
	return !slices.ContainsFunc(h, func(c float64) bool { return c > 0 })
}

// topUp averages two noisy draws of one histogram, at ε a and b, weighing
// each by its inverse variance (ε²): the result's variance is that of one
// Laplace draw at √(a² + b²), and its tails are lighter, so the thresholds
// for that ε hold. Post-processing of the two draws.
func topUp(first []float64, a float64, second []float64, b float64) []float64 {
	out := make([]float64, len(first))
	wa, wb := a*a/(a*a+b*b), b*b/(a*a+b*b)
	for j := range out {
		out[j] = wa*first[j] + wb*second[j]
	}
	return out
}

// sized picks the tuning share for a shop of about customers (the noisy
// groups histogram's total): the first of shares whose value histograms
// hold shopLevel customers per unit of noise scale, else the largest.
func (ts *tuneSpec) sized(customers float64) (share, epsValues float64) {
	shares := ts.shares()
	for _, s := range shares {
		if e := ts.valueEpsilon(s); customers*e >= shopLevel {
			return s, e
		}
	}
	s := shares[len(shares)-1]
	return s, ts.valueEpsilon(s)
}

// Value bins of the tuning histograms: |v| in (2^(j−1+minExp), 2^(j+minExp)],
// bin 0 holding everything up to 2^minExp; positive values (and zero) in the
// first tuneBins bins, negative ones in the next tuneBins.
const (
	tuneMinExp = -10
	tuneBins   = 61
)

func tuneBin(v float64) int {
	v = math.Abs(v)
	if v <= math.Ldexp(1, tuneMinExp) {
		return 0
	}
	_, e := math.Frexp(v) // v = f·2^e, f in [0.5, 1): v in (2^(e−1), 2^e] but for exact powers
	if math.Ldexp(1, e-1) == v {
		e--
	}
	return min(tuneBins-1, e-tuneMinExp)
}

// tuneRep is the value a bin stands for.
func tuneRep(j int) float64 {
	if j == 0 {
		return math.Ldexp(1, tuneMinExp-1)
	}
	return 0.75 * math.Ldexp(1, j+tuneMinExp)
}

func bitsLen(x int) int {
	n := 0
	for ; x > 0; x >>= 1 {
		n++
	}
	return n
}

// tuneSpec is a plan's pending tuning.
type tuneSpec struct {
	orig    privalytics.Query // the query as asked
	share   float64
	epsHist float64 // ε of each histogram (the groups histogram's when adaptive)
	// adaptive: the query names no share and draws value histograms, which
	// get more ε on a smaller shop (sized).
	adaptive  bool
	kinds     []dp.NoiseKind
	tuned     []int // aggregate indexes tuned (count, sum, mean)
	maxL0     int64
	cells     float64 // the typical number of cells the error is quoted for
	selection bool
	// l2: the norm candidates are weighed too (public groups, Gaussian noise
	// possible, counts and sums only): L0 every group and each customer's
	// per-group totals scaled to an L2 norm (max_norm), read off one more
	// histogram per tuned aggregate — of the customers' norms.
	l2 bool
	// minL0 is the smallest L0 choose weighs: 1, or the default when the
	// groups histogram showed nothing above its threshold (resolveTuning).
	minL0 int64
	// small: the shop is small for the default share (smallShopLevel),
	// read off the groups histogram at execution (resolveTuning).
	small bool
}

// wantsTuning reports whether q is tuned: it asks to be, or it gives no bounds
// at all — no L0, no clamp, no per-group bounds — and all its aggregates can be
// tuned (count, distinct_customers, sum, mean). A query of counts only is tuned
// too when ε buys the tuning histograms (tuningAffordable, public), else it runs
// on the defaults as before; a sum or mean without bounds must be tuned.
// Queries for a remote engine are tuned only on request (and then refused).
func wantsTuning(q *privalytics.Query) bool {
	if q.Tuning != nil {
		return true
	}
	if q.Bounds != (privalytics.Bounds{}) {
		return false
	}
	unbounded, tunable := false, 0
	for _, a := range q.Aggregates {
		switch {
		case a.Within != 0:
			return false
		case a.Op == "count" || a.Op == "distinct_customers":
			if a.ContributionBoundsPerGroup != nil {
				return false
			}
			tunable++
		case a.Op == "sum" || a.Op == "mean":
			if a.Lower != nil || a.Upper != nil || a.Bounds != "" || a.ContributionBoundsPerGroup != nil {
				return false
			}
			unbounded = true
		default:
			return false
		}
	}
	if unbounded {
		return true
	}
	return tunable > 0 && q.Engine == "" && tuningAffordable(q)
}

// tuningAffordable reports whether q's ε pays for the tuning histograms at the
// default share, as planTuned will check them. Public information only.
func tuningAffordable(q *privalytics.Query) bool {
	tuned := 0
	for _, a := range q.Aggregates {
		if a.Op == "count" || a.Op == "sum" || a.Op == "mean" {
			tuned++
		}
	}
	return dp.CheckTuningHistogram("tuning histogram", histogramEpsilon(q.Epsilon, defaultShare(1+tuned), 1+tuned)) == nil
}

// histogramEpsilon is the ε of each of n tuning histograms: share of the
// query's ε split evenly between the groups histogram, one value histogram per
// tuned aggregate and, when the norm candidates are weighed, one norm
// histogram per tuned aggregate.
func histogramEpsilon(eps, share float64, n int) float64 {
	return share * eps / float64(n)
}

// histograms is how many tuning histograms ts draws.
func (ts *tuneSpec) histograms() int {
	if ts.l2 {
		return 1 + 2*len(ts.tuned)
	}
	return 1 + len(ts.tuned)
}

// planTuned plans a tuned query: a placeholder plan (the cost, the checks, the
// explanation) carrying the tuning to do at execution.
func planTuned(q *privalytics.Query, schema privalytics.Schema, lim Limits) (*Plan, error) {
	// share is the query's, or 0 until the histograms are counted.
	share := 0.0
	if q.Tuning != nil && q.Tuning.Share != 0 {
		share = q.Tuning.Share
		if !(share > 0 && share < 1) {
			return nil, invalid("query: tuning.share must be between 0 and 1 (default %v of ε per tuning histogram, at most %v), got %v", HistogramShare, DefaultTuningShare, share)
		}
	}
	shareOf := func(n int) float64 {
		if share > 0 {
			return share
		}
		return defaultShare(n)
	}
	if q.Bounds != (privalytics.Bounds{}) {
		return nil, invalid("query: tuning chooses the bounds: leave bounds out, or drop tuning and give them")
	}
	ts := &tuneSpec{orig: *q}
	for i, a := range q.Aggregates {
		switch {
		case a.Within != 0:
			return nil, invalid("query: aggregates[%d]: within needs fixed bounds; give epsilon with tuning", i)
		case a.Op == "distinct_customers":
		case a.Op == "count" || a.Op == "sum" || a.Op == "mean":
			if a.Lower != nil || a.Upper != nil || a.Bounds != "" || a.ContributionBoundsPerGroup != nil {
				return nil, invalid("query: aggregates[%d]: tuning chooses the bounds of %s: leave lower, upper, bounds and contribution_bounds_per_group out", i, a.Op)
			}
			ts.tuned = append(ts.tuned, i)
		default:
			return nil, invalid("query: aggregates[%d]: tuning supports count, distinct_customers, sum and mean; give %s its bounds and drop tuning", i, a.Op)
		}
	}
	if !(q.Epsilon > 0) || math.IsInf(q.Epsilon, 0) {
		return nil, invalid("query: epsilon must be > 0 and finite, got %v", q.Epsilon)
	}
	switch {
	case q.Noise != "":
		ts.kinds = []dp.NoiseKind{dp.NoiseKind(q.Noise)}
	case q.Delta > 0:
		ts.kinds = []dp.NoiseKind{dp.Laplace, dp.Gaussian}
	default:
		ts.kinds = []dp.NoiseKind{dp.Laplace}
	}
	ts.share = shareOf(ts.histograms())
	ts.epsHist = histogramEpsilon(q.Epsilon, ts.share, ts.histograms())
	if err := dp.CheckTuningHistogram("tuning histogram", ts.epsHist); err != nil {
		return nil, invalid("query: %v; raise epsilon or tuning.share", err)
	}
	// L0's range: every public group at most; 1 without group_by.
	probe, err := newPlan(ts.query(ts.kinds[0], 1, nil, nil, nil), schema, lim)
	if err != nil {
		return nil, err
	}
	ts.selection = probe.selection
	ts.maxL0, ts.cells = 256, 1
	if len(probe.dims) == 0 {
		ts.maxL0 = 1
	}
	public := 1.0
	for _, d := range probe.dims {
		switch {
		case d.public && (d.time != "" || d.hist):
			public *= float64(len(d.labels))
		case d.public:
			public *= float64(len(d.keys))
		default:
			public *= 10 // a data-derived dimension: assumed ten keys
		}
	}
	ts.cells = public
	if !probe.selection && len(probe.dims) > 0 {
		ts.maxL0 = min(ts.maxL0, int64(public))
	}
	// The norm candidates: public groups (L0 is then every group), Gaussian
	// noise allowed, counts and sums only, and ε enough for their histograms
	// too — all public, decided before any data is read.
	ts.l2 = !probe.selection && ts.maxL0 > 1 && slices.Contains(ts.kinds, dp.Gaussian) && len(ts.tuned) > 0
	for _, i := range ts.tuned {
		ts.l2 = ts.l2 && q.Aggregates[i].Op != "mean"
	}
	if ts.l2 {
		ts.l2 = dp.CheckTuningHistogram("tuning histogram", histogramEpsilon(q.Epsilon, shareOf(1+2*len(ts.tuned)), 1+2*len(ts.tuned))) == nil
	}
	ts.share = shareOf(ts.histograms())
	ts.epsHist = histogramEpsilon(q.Epsilon, ts.share, ts.histograms())
	ts.adaptive = share == 0 && ts.histograms() > 1
	// Every candidate must pass the library's limits now: the extremes of L0
	// and of each clamp, for each noise — at every share the tuning may take,
	// whose ρ (the answer's at ε less that share, plus the histograms') is
	// charged at its largest.
	var rho float64
	var placeholder *Plan
	planned := ts.share
	for _, s := range ts.shares() {
		ts.share = s
		var rhoAnswer float64
		for _, kind := range ts.kinds {
			for _, l0 := range []int64{1, ts.maxL0} {
				for _, c := range []float64{1, 1 << 40} {
					los, his := ts.clamps(probe, c, true)
					cp, err := newPlan(ts.query(kind, l0, los, his, nil), schema, lim)
					if err != nil {
						return nil, err
					}
					rhoAnswer = math.Max(rhoAnswer, cp.cost.Rho)
				}
			}
			if ts.l2 && kind == dp.Gaussian {
				for _, c := range []float64{math.Ldexp(1, tuneMinExp), normMax} {
					los, his := ts.clamps(probe, c, true)
					cp, err := newPlan(ts.query(kind, ts.maxL0, los, his, ts.norms(c)), schema, lim)
					if err != nil {
						return nil, err
					}
					rhoAnswer = math.Max(rhoAnswer, cp.cost.Rho)
				}
			}
			if placeholder == nil {
				los, his := ts.clamps(probe, 1, false)
				if placeholder, err = newPlan(ts.query(kind, min(ts.maxL0, DefaultMaxGroups), los, his, nil), schema, lim); err != nil {
					return nil, err
				}
			}
		}
		hist := dp.RhoOfLaplace(ts.epsHist) + float64(ts.histograms()-1)*dp.RhoOfLaplace(ts.valueEpsilon(s))
		rho = math.Max(rho, rhoAnswer+hist)
	}
	ts.share = planned
	p := placeholder
	p.tune = ts
	p.cost = privalytics.Cost{Epsilon: q.Epsilon, Rho: rho}
	if p.selection || slices.Contains(ts.kinds, dp.Gaussian) {
		p.cost.Delta = q.Delta
	}
	if err := dp.CheckCost(p.cost); err != nil {
		return nil, invalid("query: %s", privalytics.ErrorMessage(err))
	}
	// The fingerprint hashes the query as asked — its ε, no bounds, its tuning —
	// normalised as any plan's (filters sorted, defaults filled), so that
	// equivalent tuned queries share a cached answer.
	canon := p.canonical()
	canon.Epsilon, canon.Bounds, canon.Noise, canon.Tuning = q.Epsilon, q.Bounds, q.Noise, q.Tuning
	canon.Aggregates = slices.Clone(canon.Aggregates)
	for _, i := range ts.tuned {
		canon.Aggregates[i].ContributionBoundsPerGroup = nil
		p.aggs[i].info.ContributionBoundsPerGroup = nil
		p.aggs[i].info.Tuned = true
	}
	p.canon, _ = json.Marshal(canon)
	return p, nil
}

// clamps are the per-group bounds of the tuned aggregates for clamp c (whole
// rows for counts), symmetric when signed is set.
func (ts *tuneSpec) clamps(p *Plan, c float64, signed bool) (los, his []float64) {
	for _, i := range ts.tuned {
		a := p.aggs[i]
		hi := c
		unit := math.Pow10(a.scale)
		if a.op == "count" {
			hi = math.Min(math.Max(1, math.Round(c)), 100_000)
		} else {
			hi = math.Min(c, 1e15/unit/2)
		}
		lo := 0.0
		if signed && a.op != "count" {
			lo = -hi
		}
		los, his = append(los, lo), append(his, hi)
	}
	return los, his
}

// normMax is the largest norm candidate: within compileNorm's limit for every
// column's scale.
const normMax = 1e9

// norms is the max_norm of every tuned aggregate for norm candidate c.
func (ts *tuneSpec) norms(c float64) []float64 {
	out := make([]float64, len(ts.tuned))
	for k := range out {
		out[k] = c
	}
	return out
}

// query is the query run with the chosen parameters: ε less the tuning's;
// norms, when not nil, the tuned aggregates' max_norm.
func (ts *tuneSpec) query(kind dp.NoiseKind, l0 int64, los, his, norms []float64) *privalytics.Query {
	q := ts.orig
	q.Tuning = nil
	q.Epsilon = ts.orig.Epsilon * (1 - ts.share)
	q.Noise = string(kind)
	q.Bounds = privalytics.Bounds{MaxGroups: int(l0)}
	q.Aggregates = slices.Clone(q.Aggregates)
	for k, i := range ts.tuned {
		lo, hi := 0.0, 1.0
		if los != nil {
			lo, hi = los[k], his[k]
		}
		q.Aggregates[i].ContributionBoundsPerGroup = &privalytics.GroupBounds{Lower: lo, Upper: hi}
		if norms != nil {
			q.Aggregates[i].ContributionBoundsPerGroup.MaxNorm = norms[k]
		}
	}
	return &q
}

// tuneHist are the exact tuning histograms of one execution (never released).
type tuneHist struct {
	groups []float64   // customers by the number of groups they touch
	values [][]float64 // per tuned aggregate: customer-groups by sign and |value|, weighted 1/groups
	norms  [][]float64 // per tuned aggregate: customers by the L2 norm of their per-group totals
}

// resolveTuning runs the histogram pass, draws the noisy histograms, chooses
// the parameters and returns the plan to execute.
func (p *Plan) resolveTuning(ctx context.Context, snap *privalytics.Snapshot, hidden []bool, m dp.Mechanisms) (*Plan, error) {
	spec := *p.tune // a copy: the share may change for this execution
	ts := &spec
	exact, err := p.tuningHistograms(ctx, snap, hidden)
	if err != nil {
		return nil, err
	}
	groups, err := m.NoisyHistogram(exact.groups, ts.epsHist)
	if err != nil {
		return nil, err
	}
	rawGroups := slices.Clone(groups)
	// The customers in the most groups are as hard to see as the heaviest
	// spenders, and L0 drops exactly their groups: the groups histogram gets
	// the same assumed tail (TestTuningAssumesTheGroupsItCannotSee: L0 3,
	// read as keeping every group, became 4). On the demo shop it changes
	// nothing: its customers per store (19,673, 2,750, 286, 67, 28 and 5
	// customers in 1, 2, 3, 4, 5–8 and more stores) fall off more slowly
	// than the one step seen (×0.14), so the assumed tail is too light and
	// tuning still picks L0 3, which by those exact counts drops 0.8% of the
	// groups.
	// Only the size bins a customer can reach (at most every group) get a
	// tail.
	seenGroups := thresholdWithTail(groups, ts.epsHist, 1)
	reach := 0
	for reach < sizeBins && sizeLow(reach) <= ts.maxL0 {
		reach++
	}
	assumeTail(groups[:reach], seenGroups[:reach])
	if empty(groups) {
		// Too small a shop for the groups histogram to show its shape: the
		// run recoverRun finds holds the customers in one or two groups, and
		// those in more stay below the noise, so tuning does not choose L0
		// below the fixed default — it does no worse than the defaults where
		// it cannot see. Measured on a shop of 1,000 customers (bench
		// utility, three runs): customers per month 30–41% off with L0 1–2,
		// 12–17% with the floor (the defaults' 11–16%); floored only when the
		// run showed repeat customers, 27–38%, as it often shows only the
		// one-group ones. The price: a shop of one-time buyers gets L0 4,
		// the defaults' noise, where 1 would do.
		ts.minL0 = min(DefaultMaxGroups, ts.maxL0)
	}
	recoverRun(groups, rawGroups, ts.epsHist)
	// The value histograms at the ε of the shop's size (sized); where one of
	// them has no bin above its threshold and a larger step is left, drawn
	// again with the largest step's extra ε and averaged with the first draw
	// (topUp). A run that recoverRun keeps from a histogram with nothing
	// above its threshold does not count as seen: on a shop of 1,000
	// customers it could be a spike of noise rather than the values (a clamp
	// of 2^-8 released a country's revenue of 18,922 as 1.4 ± 0.03; clamps of
	// 5,000 and more in 4–10 of 240 tuned answers). Drawn again in that case
	// too (stop 30), the tuned cells drawn as numbers that were more than 2×
	// off fell from 484–559 to 319–388 in three pairs of 240 answers, and on
	// 3,000 customers from 828–879 to 526–582 in two pairs of 240, with the
	// share of cells within 10% unchanged (4.5–4.6% → 4.7%; 7.4–7.5% →
	// 7.3–7.8%).
	customers := 0.0
	for _, c := range groups {
		customers += c
	}
	epsValues := ts.valueEpsilon(ts.share)
	ts.small = customers*epsValues < smallShopLevel
	if ts.adaptive {
		ts.share, epsValues = ts.sized(customers)
	}
	sizedShare, toppedUp := ts.share, false
	raws, values := make([][]float64, len(ts.tuned)), make([][]float64, len(ts.tuned))
	blind := false
	for k, i := range ts.tuned {
		if raws[k], err = m.NoisyHistogram(exact.values[k], epsValues); err != nil {
			return nil, err
		}
		dropBelowUnit(raws[k], 2, valueUnit(p.aggs[i]))
		var cleared bool
		values[k], cleared = valueView(raws[k], epsValues, heavyTailed(p.aggs[i]))
		blind = blind || !cleared
	}
	epsNorms := epsValues
	shares := ts.shares()
	if s := shares[len(shares)-1]; ts.adaptive && s > ts.share && blind {
		e := ts.valueEpsilon(s)
		extra := e - epsValues
		for k, i := range ts.tuned {
			again, err := m.NoisyHistogram(exact.values[k], extra)
			if err != nil {
				return nil, err
			}
			dropBelowUnit(again, 2, valueUnit(p.aggs[i]))
			values[k], _ = valueView(topUp(raws[k], epsValues, again, extra), math.Hypot(epsValues, extra), heavyTailed(p.aggs[i]))
		}
		epsNorms = e
		ts.share, toppedUp = s, true
	}
	var norms [][]float64
	if ts.l2 {
		norms = make([][]float64, len(ts.tuned))
		for k, i := range ts.tuned {
			if norms[k], err = m.NoisyHistogram(exact.norms[k], epsNorms); err != nil {
				return nil, err
			}
			dropBelowUnit(norms[k], 1, valueUnit(p.aggs[i]))
			assumeTail(norms[k], thresholdWithTail(norms[k], epsNorms, 1))
		}
	}
	ch := ts.choose(p, groups, values, norms)
	if ts.minL0 > 1 {
		ch.report.Reason += fmt.Sprintf("; the groups histogram showed nothing above its threshold (too few customers for its ε), so L0 was not chosen below the default %d", ts.minL0)
	}
	if sizedShare != p.tune.share {
		ch.report.Reason += fmt.Sprintf("; the groups histogram showed about %.0f customers, too few for its histograms to see the heaviest at %.0f%% of ε: tuning took %.0f%%",
			customers, 100*p.tune.share, 100*sizedShare)
	}
	if toppedUp {
		ch.report.Reason += fmt.Sprintf("; a value histogram showed nothing above its threshold at %.0f%% of ε: they were drawn again with more, tuning spent %.0f%% of ε in all",
			100*sizedShare, 100*ts.share)
	}
	q := ts.query(ch.kind, ch.l0, ch.los, ch.his, ch.norms)
	rp, err := newPlan(q, p.schema, p.limits)
	if err != nil {
		// Every clamp tuning can choose is plannable (bestClamp) and the
		// extremes were checked at plan time; should a choice still fail, run
		// the plan-time-checked candidate (L0 1, clamp 1) rather than let the
		// data turn a charged query into an error.
		ch.report.Reason += fmt.Sprintf("; the choice could not be planned (%v), so L0 1 and clamp 1 were used", err)
		ch.kind, ch.l0, ch.norms = ts.kinds[0], 1, nil
		ch.los, ch.his = ts.clamps(p, 1, false)
		if rp, err = newPlan(ts.query(ch.kind, ch.l0, ch.los, ch.his, nil), p.schema, p.limits); err != nil {
			return nil, privalytics.Errorf(privalytics.EINTERNAL, "analytics: tuned plan: %v", err)
		}
	}
	rp.cost, rp.canon = p.cost, p.canon
	rp.report = ch.report
	for k, i := range ts.tuned {
		rp.aggs[i].info.Tuned = true
		if ts.orig.Tuning.Corrects() && ch.seen[k] {
			if f := biasCorrection(rp.aggs[i].op, ch.los[k], ch.loss[k]); f != 1 {
				ch.report.Aggregates[k].Correction = f
			}
		}
	}
	return rp, nil
}

// MaxCorrectedLoss is the largest estimated bounding loss a correction
// undoes: a larger estimate is corrected as if it were this (at most ×2),
// as the estimate's own error grows with it.
const MaxCorrectedLoss = 0.5

// biasCorrection is the factor that undoes a tuned aggregate's estimated
// bounding loss: 1 / (1 − loss) for counts and sums clamped at zero from
// below, whose kept total is the true one less about loss of it; 1 for
// means (the loss of an average is not a share of it), for clamps below
// zero (a share of a signed total says nothing of its sign), and when no
// loss is estimated. resolveTuning applies it only to a loss read off
// histograms that showed something (choice.seen): on a shop too small for
// its ε the histograms are empty and the "loss" a guess.
//
// Tuning weighs the corrected answer when it chooses (cellError, since
// stop 31). The correction itself, measured when it came (stop 27) on the
// demo shop's twelve questions (bench utility asks each tuned count and sum
// both ways; three runs of --runs 8): cells
// within 10% 25.0–25.7% → 32.8–34.0%, questions within 1.25× of the
// hindsight ceiling 6–7 → 9 of 12.
func biasCorrection(op string, lower, loss float64) float64 {
	if (op != "count" && op != "sum") || lower < 0 || !(loss > 0) {
		return 1
	}
	return 1 / (1 - math.Min(loss, MaxCorrectedLoss))
}

// tailBins is how many bins above the largest one that clears the threshold
// keep their noisy counts less tailShrink noise scales (the tail extension):
// a value bin doubles the value, so this reaches 4× the largest value seen
// above the noise and no further. Measured on the demo shop's twelve questions
// (bench utility, 8 runs each; value histograms only): the share of cells
// within 10% went from 16.3–16.4% to 17.9–20.0% over six runs of five
// settings (2, 3 or 4 bins, shrunk by 0, 1 or 2 scales), and to 17.2–19.2% at
// the 2 bins shrunk by 2 scales kept here — the cautious choice: an empty bin
// passes with probability 7%, and moves a choice only when it exceeds several
// scales; on a small shop with little noise (TestTuningOnTheSecurePath) 4 runs
// in 300 picked a clamp 2–4× the largest value instead of just above it.
const (
	tailBins   = 2
	tailShrink = 2.0
)

// thresholdWithTail post-processes a noisy tuning histogram made of parts
// consecutive ranges of bins (the value histograms: positive and negative
// magnitudes; the groups histogram: one): threshold over the whole, then each
// part's tail extended. The threshold alone dropped exactly the sparse bins
// that decide the parameters — the largest customer-cells (so the bias of a
// small clamp was under-estimated and clamps chosen too small) and the
// customers in the most groups (on the demo shop a few hundred in 17–32 of 36
// month × channel cells: tuning chose L0 6 where 16–32 is best).
//
// seen is h as it stood before the extension: the bins that cleared the
// threshold themselves (assumeTail reads its edge there).
func thresholdWithTail(h []float64, eps float64, parts int) (seen []float64) {
	raw := slices.Clone(h)
	threshold(h, eps)
	n := len(h) / parts
	dropIsolated(h, parts, thresholdLevel(len(h), eps)+isolatedScales/eps)
	seen = slices.Clone(h)
	for k := range parts {
		extendTail(h[k*n:(k+1)*n], raw[k*n:(k+1)*n], eps)
	}
	return seen
}

// maxTailRatio is the slowest fall-off assumeTail assumes from one bin to
// the next (a value bin doubles the value): customers ×¼, so the mass in
// each value bin halves and the whole assumed tail holds at most as much as
// the last bin seen — a Pareto tail of index 2. A histogram that falls
// faster keeps its own rate.
const maxTailRatio = 0.25

// maxEdgeRatio: a histogram whose last step seen keeps more than this share
// of the bin before it ends at an edge, not in a tail (assumeTail).
const maxEdgeRatio = 0.5

// assumeTail gives the bins above the last one of seen (the bins that
// cleared the threshold) at least the counts a tail falling at the rate of
// seen's last step would hold, that rate at most maxTailRatio, down to one
// customer. Nothing is assumed unless that step at least halves: values
// spread evenly up to a hard edge end in a step near 1, and a tail assumed
// there overshot (TestNoTailAtAnEdge: the corrected total 1.9% high where
// the bounded one was exact).
//
// Why: on a shop's purchases the heaviest customers are too few for any DP
// histogram at the query's ε to show — on the demo shop at ε 0.5 a noise
// scale of a tuning histogram is 40 customers — and yet they hold much of
// the value: revenue per month lost 11.5% to the norm tuning chose (215),
// 82% of that from the heaviest 40 customers, while tuning estimated 1.4%,
// and its cells came back 10% low, 1.6–1.75× the error of bounds chosen
// with hindsight. Customers' spend falls off like a power law (the demo's
// activity is Zipf-like, UCI Online Retail's customers too), so tuning
// assumes the tail goes on past what it sees rather than stopping where its
// histograms' noise hides it. Measured on the demo shop's twelve questions
// (bench utility --runs 8, three runs against one before): revenue per
// month 10.3% → 3.9–4.8% median error (the hindsight ceiling's 6.5–7.9%),
// purchases per month 11.4% → 4.7–6.0%, cells within 10% 34.5% →
// 36.3–37.1%; on UCI Online Retail, automatic tuning went from 0.86–0.98×
// Privacy on Beam's error with hindsight bounds to 0.70–0.80×. The price:
// the estimate is a model, not a measurement — a shop whose spend stops
// short of the assumed tail gets a clamp larger than it needs and a
// correction that overshoots a little. Post-processing of the noisy
// histogram: no privacy cost.
func assumeTail(h, seen []float64) {
	top := -1
	for j, c := range seen {
		if c > 0 {
			top = j
		}
	}
	if top < 1 || !(seen[top] <= seen[top-1]*maxEdgeRatio) {
		return
	}
	r := min(maxTailRatio, seen[top]/seen[top-1])
	c := seen[top]
	for j := top + 1; j < len(h); j++ {
		if c *= r; c < 1 {
			break
		}
		h[j] = max(h[j], c)
	}
}

// heavyTailed reports whether a tuned aggregate's values are read with an
// assumed tail (assumeTail): counts and sums, whose customers' totals
// follow the customers' activity. A mean's values are averages per customer
// and group, which do not.
func heavyTailed(a aggregate) bool {
	return a.op == "count" || a.op == "sum"
}

// maxGap is how many empty bins may separate a kept bin from the run below
// it (dropIsolated): 2, values up to 8× apart. isolatedScales is how far above
// the threshold an isolated bin must be to stay: a spurious count's excess
// over the threshold is exponential, so 5 scales leave e^-5 of the 0.001.
const (
	maxGap         = 2
	isolatedScales = 5.0
)

// dropIsolated zeroes the kept bins below bar that stand apart above the run
// that holds the fullest bin, separated from it by more than maxGap empty
// bins. h is parts consecutive ranges of the same bins (the value
// histograms: positive and negative magnitudes), judged together by
// magnitude: a spurious count in the half without data would otherwise be
// that half's own fullest bin. An empty bin clears the threshold with
// probability 0.001 per histogram; such a spurious count far out stands for
// customers of enormous values, and tuning then chose a clamp to match: in a
// test of 2,000 tuned sums over purchases of 10.00, two chose clamps of
// 27,600 and 2.7·10⁸ (a thousand times the noise), and once more 6.7·10⁷ from
// the negative half before the halves were judged together. Real bins above
// the threshold come in runs, or stand well above it (a few whales at a
// large ε).
func dropIsolated(h []float64, parts int, bar float64) {
	n := len(h) / parts
	at := func(j int) (sum, most float64) {
		for k := range parts {
			sum += h[k*n+j]
			most = max(most, h[k*n+j])
		}
		return sum, most
	}
	top, topSum := 0, 0.0
	for j := range n {
		if s, _ := at(j); s > topSum {
			top, topSum = j, s
		}
	}
	if topSum <= 0 {
		return
	}
	last := top
	for j := top + 1; j < n; j++ {
		s, most := at(j)
		switch {
		case s > 0 && (j-last <= maxGap+1 || most >= bar):
			last = j
		case s > 0:
			for k := range parts {
				h[k*n+j] = 0
			}
		}
	}
}

// extendTail gives the tailBins bins above the largest one of h that cleared
// the threshold their noisy count from raw less tailShrink noise scales.
func extendTail(h, raw []float64, eps float64) {
	top := -1
	for j, c := range h {
		if c > 0 {
			top = j
		}
	}
	if top < 0 {
		return
	}
	for j := top + 1; j <= min(top+tailBins, len(h)-1); j++ {
		h[j] = max(0, raw[j]-tailShrink/eps)
	}
}

// runScales is how many noise scales the bins around the fullest one must
// clear to be kept when nothing cleared the threshold (recoverRun), and
// runFalseRate the chance that histogram noise alone passes recoverRun's bar
// for the run's total: ln(bins/runFalseRate) scales, 6.4 for the 61 value
// bins, 4.4 for the 8 size bins — where the fullest of 61 empty bins reaches
// about 4.
const (
	runScales    = 2.0
	runFalseRate = 0.1
)

// recoverRun: when no bin of h cleared the threshold — a small shop, or a
// small ε: a few hundred customers spread over the value bins, each bin below
// ln(bins/0.002) noise scales — it keeps the run of neighbouring bins around
// the fullest one of raw (the noisy counts) that clear runScales scales, if
// their total clears ln(bins/runFalseRate) scales. Without it tuning saw no
// value at all, chose the smallest clamp (2^-10) and released revenue as
// 0.006 ± 0.006 where it was thousands: an interval that hides the whole of
// its bias. It serves the groups histogram too: a shop of 300 customers at
// ε 0.5 (each histogram 0.025, threshold 332 customers on 8 bins) showed no
// customer in any number of groups, so tuning saw cells of 0 customers, chose
// the smallest clamp, and 77–87% of its monthly revenue cells came back hidden,
// the year's total 100% low; with the run kept, 11% hidden and 5% off (60
// runs). The total's bar is what keeps noise out: the fullest of 61 empty
// bins is near ln 61 ≈ 4 scales, and a run of one such bin picked a clamp
// of 10⁹ or more — hidden cells, but one in twenty of them past its
// interval and drawn — in 9 to 28 of 60 runs on the smallest shops (100
// customers); with the bar, 0 to 3, as before the groups histogram was
// recovered. Post-processing of the noisy histogram: no privacy cost.
func recoverRun(h, raw []float64, eps float64) {
	top := 0
	for j, c := range h {
		if c > 0 {
			return
		}
		if raw[j] > raw[top] {
			top = j
		}
	}
	bar := runScales / eps
	if raw[top] < bar {
		return
	}
	lo, hi := top, top
	for lo > 0 && raw[lo-1] >= bar {
		lo--
	}
	for hi < len(h)-1 && raw[hi+1] >= bar {
		hi++
	}
	sum := 0.0
	for _, c := range raw[lo : hi+1] {
		sum += c
	}
	if sum < math.Log(float64(len(h))/runFalseRate)/eps {
		return
	}
	copy(h[lo:hi+1], raw[lo:hi+1])
}

// threshold zeroes the bins of a noisy histogram that do not clear the noise:
// with Laplace scale 1/ε, an empty bin passes (1/ε)·ln(bins/0.002) with
// probability 0.001/bins, so empty bins far out (where one spurious count would
// stand for a huge value) are all dropped but for a 0.1% chance. Post-processing;
// thresholdWithTail then extends the tail.
func threshold(h []float64, eps float64) {
	t := thresholdLevel(len(h), eps)
	for i, c := range h {
		if c < t {
			h[i] = 0
		}
	}
}

// thresholdLevel is threshold's bar for a histogram of bins bins.
func thresholdLevel(bins int, eps float64) float64 {
	return math.Log(float64(bins)/0.002) / eps
}

// tuningHistograms is the exact histogram pass (never released): every row
// kept, no group dropped.
func (p *Plan) tuningHistograms(ctx context.Context, snap *privalytics.Snapshot, hidden []bool) (*tuneHist, error) {
	hp := p.clone()
	hp.l0, hp.linf, hp.ltotal, hp.tunePass = noRowCap, noRowCap, 0, true
	part, err := execute(ctx, hp, snap, hidden)
	if err != nil {
		return nil, err
	}
	return part.tune, nil
}

// choice is what tuning picked.
type choice struct {
	kind     dp.NoiseKind
	l0       int64
	los, his []float64
	norms    []float64 // the tuned aggregates' max_norm; nil but for a norm candidate
	loss     []float64
	// seen: per tuned aggregate, whether its loss is read off histograms
	// that showed anything above their noise (else it is a guess from an
	// empty histogram, and is not corrected for).
	seen   []bool
	report *privalytics.TuningReport
}

var l0Candidates = []int64{1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128, 192, 256}

// choose minimises the summed expected relative error of a typical cell over
// the aggregates: for each noise and L0, each tuned aggregate's clamp on its
// own; then, with norms (ts.l2), the norm candidates — L0 every group, Gaussian
// noise, each tuned aggregate's norm on its own.
func (ts *tuneSpec) choose(p *Plan, groups []float64, values, norms [][]float64) choice {
	// Customers and customer-groups, and the share of customer-groups L0 keeps.
	var n, cellsAll float64
	for j, c := range groups {
		n += c
		cellsAll += c * sizeRep[j]
	}
	n, cellsAll = math.Max(n, 1), math.Max(cellsAll, 1)
	kept := func(l0 int64) float64 {
		s := 0.0
		for j, c := range groups {
			s += c * math.Min(sizeRep[j], float64(l0))
		}
		return s / cellsAll
	}
	weights := make([]float64, len(p.aggs))
	for i, a := range ts.orig.Aggregates {
		weights[i] = a.Weight
		if weights[i] == 0 {
			weights[i] = 1
		}
	}
	stats := make([]valueStats, len(ts.tuned))
	for k, i := range ts.tuned {
		stats[k] = valueStatsOf(p.aggs[i], values[k])
	}
	best := choice{}
	bestErr := math.Inf(1)
	for _, kind := range ts.kinds {
		budgets, _ := dp.Split(dp.Budget{Epsilon: ts.orig.Epsilon * (1 - ts.share), Delta: ts.orig.Delta}, weights, ts.selection, kind)
		for _, l0 := range l0Candidates {
			if l0 > ts.maxL0 {
				break
			}
			if l0 < ts.minL0 {
				continue
			}
			f := kept(l0)
			perCell := cellsAll * f / ts.cells // customers in a typical cell
			c := choice{kind: kind, l0: l0}
			total := 0.0
			var tuned []privalytics.TunedAggregate
			for k, i := range ts.tuned {
				a := p.aggs[i]
				lo, hi, loss, e := bestClamp(a, stats[k], kind, l0, budgets[i], f, cellsAll, ts.cells, perCell, ts.corrects(a, stats[k].signed, stats[k].seen))
				c.los, c.his, c.loss, c.seen = append(c.los, lo), append(c.his, hi), append(c.loss, loss), append(c.seen, stats[k].seen)
				tuned = append(tuned, privalytics.TunedAggregate{Name: a.info.Name, Lower: lo, Upper: hi, BoundingLoss: loss, ExpectedError: e})
				total += e
			}
			for i, a := range p.aggs {
				if a.op == "distinct_customers" {
					// Noise and the customers L0 drops from a typical cell
					// (1 − kept(l0) of its customer-groups), against the
					// cell's true count of customers.
					total += distinctError(kind, dp.NoiseStd(kind, l0, 1, budgets[i]), f, cellsAll/ts.cells)
				}
			}
			if total < bestErr {
				bestErr = total
				c.report = &privalytics.TuningReport{Share: ts.share, Epsilon: ts.share * ts.orig.Epsilon, MaxGroups: int(l0), Noise: string(kind), Aggregates: tuned,
					Reason: fmt.Sprintf("L0 %d keeps an estimated %.0f%% of the customers' groups; each clamp minimises noise plus bounding bias for a typical cell of about %.0f customers (%.4g cells); %s noise gave the smaller expected error",
						l0, 100*f, perCell, ts.cells, kind)}
				best = c
			}
		}
	}
	if norms != nil {
		budgets, _ := dp.Split(dp.Budget{Epsilon: ts.orig.Epsilon * (1 - ts.share), Delta: ts.orig.Delta}, weights, ts.selection, dp.Gaussian)
		f := kept(ts.maxL0)
		c := choice{kind: dp.Gaussian, l0: ts.maxL0}
		total := 0.0
		var tuned []privalytics.TunedAggregate
		for k, i := range ts.tuned {
			a := p.aggs[i]
			seen := stats[k].seen && !empty(norms[k])
			lo, hi, norm, loss, e := bestNorm(a, stats[k], norms[k], budgets[i], cellsAll, ts.cells, ts.corrects(a, stats[k].signed, seen))
			c.los, c.his, c.norms, c.loss = append(c.los, lo), append(c.his, hi), append(c.norms, norm), append(c.loss, loss)
			c.seen = append(c.seen, seen)
			tuned = append(tuned, privalytics.TunedAggregate{Name: a.info.Name, Lower: lo, Upper: hi, BoundingLoss: loss, ExpectedError: e, MaxNorm: norm})
			total += e
		}
		for i, a := range p.aggs {
			if a.op == "distinct_customers" {
				total += distinctError(dp.Gaussian, dp.NoiseStd(dp.Gaussian, ts.maxL0, 1, budgets[i]), f, cellsAll/ts.cells)
			}
		}
		if total < bestErr {
			c.report = &privalytics.TuningReport{Share: ts.share, Epsilon: ts.share * ts.orig.Epsilon, MaxGroups: int(ts.maxL0), Noise: string(dp.Gaussian), Aggregates: tuned,
				Reason: fmt.Sprintf("every one of the %d groups kept (L0 %d) and each customer's per-group totals scaled together to the L2 norm chosen (max_norm), Gaussian noise for L2 = that norm: the smaller expected error for a typical cell of about %.0f customers (%.4g cells) than any L0 and per-group clamp",
					ts.maxL0, ts.maxL0, cellsAll/ts.cells, ts.cells)}
			best = c
		}
	}
	return best
}

// bestNorm picks a count's or sum's max_norm: the grid point minimising the
// typical relative error of a typical cell — Gaussian noise for L2 = the norm,
// and the bias of scaling, read off the histogram of the customers' norms
// taking each customer's total as proportional to its norm (so the share kept
// is Σ min(norm, c) ÷ Σ norm). Each customer's total in a group is clamped to
// the norm too (no cell of a vector can exceed its norm, so this costs nothing).
//
// The model weighs customers alike, as bestClamp's does, and so under-states
// the bias when the heavy customers spread over many groups (their totals
// are several times their norms): on the demo shop's revenue per month it
// reads 4.9% removed at a norm of 256 where 10.3% is (exact data). Weighing
// each customer by ‖v‖₁/‖v‖₂ ÷ √L0 in the norm histogram (sensitivity still 1)
// makes it exact on exact data, and was measured (stop 25, bench utility,
// 8 runs, twice): with bestClamp's model left customer-weighted, tuning then
// preferred per-group clamps whose bias it still under-states, and the
// workload's cells within 10% fell from 25.1–25.9% to 23.2–25.5%. The two
// models have to move together (bestClamp's needs a cell-weighted value
// histogram, whose signal is 1/L0 per cell): left as the next step.
func bestNorm(a aggregate, v valueStats, norms []float64, b dp.Budget, cellsAll, cells float64, corrected bool) (lo, hi, norm, loss, relErr float64) {
	nmass := 0.0
	for j, n := range norms {
		nmass += n * tuneRep(j)
	}
	if nmass <= 0 {
		nmass = 1
	}
	cell := cellsAll * v.mu / cells
	unit, least := math.Pow10(a.scale), valueUnit(a)
	relErr = math.Inf(1)
	for _, c := range clampGrid {
		clamp := c
		if a.op == "count" {
			clamp = math.Ceil(c) // whole rows, at least the norm
		}
		if a.op == "count" && clamp > 100_000 || clamp*unit > 1e15/2 || c > normMax || c < least {
			continue
		}
		k, guess := keptSplit(norms, nmass, c)
		l := 1 - k
		e := cellError(dp.Gaussian, dp.NoiseStd(dp.Gaussian, 1, c, b), l, guess, cell, corrected)
		if e < relErr {
			relErr, hi, norm, loss = e, clamp, c, l
			lo = 0
			if v.signed {
				lo = -clamp
			}
		}
	}
	return lo, hi, norm, loss, relErr
}

// valueStats summarises a tuned aggregate's noisy value histogram for the
// clamp and norm choices: computed once per choice, not per candidate.
type valueStats struct {
	hist   []float64 // customer-groups by magnitude, both signs
	mass   float64   // Σ count × value; 1 when nothing cleared the noise
	mu     float64   // the typical customer-group value
	signed bool      // enough negative values to clamp symmetrically
	seen   bool      // anything cleared the noise (else mass and mu are 1)
}

func valueStatsOf(a aggregate, signedHist []float64) valueStats {
	v := valueStats{hist: make([]float64, tuneBins)}
	var w, neg float64
	for j := range tuneBins {
		v.hist[j] = signedHist[j] + signedHist[tuneBins+j]
		neg += signedHist[tuneBins+j]
		w += v.hist[j]
		v.mass += v.hist[j] * tuneRep(j)
	}
	v.signed = a.op != "count" && neg > 0.1*math.Max(w, 1)
	v.seen = w > 0 && v.mass > 0
	if !v.seen {
		w, v.mass = 1, 1 // nothing seen above the noise: quote against one unit
	}
	v.mu = v.mass / w
	return v
}

// keptSplit is the share of a histogram's mass a clamp (or norm) c keeps —
// Σ count × mean of min(value, c) over each bin ÷ mass — and, of the share
// c removes, the part taken from inside the bin c falls in: that part rests
// on keptInBin's guess that a bin's values spread evenly over it (on 300
// customers all at 80, a clamp of 90.5 read as removing 11% where it
// removes nothing).
func keptSplit(hist []float64, mass, c float64) (kept, inBin float64) {
	for j, h := range hist {
		k := keptInBin(j, c)
		kept += h * k
		if lo, hi := binBounds(j); lo < c && c < hi {
			inBin += h * (tuneRep(j) - k)
		}
	}
	return kept / mass, inBin / mass
}

// clampGrid is the clamps and norms tuning weighs: four steps to each power
// of two from 2^tuneMinExp, three significant digits.
var clampGrid = func() []float64 {
	out := make([]float64, tuneBins*clampSteps)
	for step := range out {
		out[step] = roundSig3(math.Exp2(float64(step)/clampSteps + tuneMinExp))
	}
	return out
}()

// Customer-size bins of the groups histogram: the customer's number of groups
// k in 1, 2, 3, 4, 5–8, 9–16, 17–32, 33+ — coarse, so that the few heavy
// customers, who carry much of the value, stand above the noise.
const sizeBins = 8

var sizeRep = [sizeBins]float64{1, 2, 3, 4, 6.5, 12.5, 24.5, 48}

// sizeLow is the fewest groups a customer in size bin j touches.
func sizeLow(j int) int64 {
	if j < 4 {
		return int64(j + 1)
	}
	return int64(1)<<(j-2) + 1
}

func sizeBin(k int) int {
	if k <= 4 {
		return max(k, 1) - 1
	}
	return min(sizeBins-1, 1+bitsLen(k-1))
}

// valueIndex is the bin of a customer-group with value v: magnitudes of
// negative values in the second half.
func valueIndex(v float64) int {
	j := tuneBin(v)
	if v < 0 {
		j += tuneBins
	}
	return j
}

// clampSteps is the clamp grid's resolution: 2^(j/clampSteps), four steps to
// each power of two (a clamp of 3000 is 2^11.55: the powers of two alone offer
// 2048 or 4096).
const clampSteps = 4

// roundSig3 rounds a clamp to three significant digits (108, not
// 107.63474115247547): readable in the report, and no worse a choice.
func roundSig3(c float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(c, 'g', 3, 64), 64) // 26.9, not 26.900000000000002
	return r
}

// binBounds is value bin j's range (lo, hi]: bin 0 from zero.
func binBounds(j int) (lo, hi float64) {
	hi = math.Ldexp(1, j+tuneMinExp)
	if j == 0 {
		return 0, hi
	}
	return hi / 2, hi
}

// keptInBin is the mean of min(v, c) over value bin j, the values taken as
// spread uniformly over the bin — (2^(j−1+minExp), 2^(j+minExp)], bin 0 from
// zero — which for c above the bin is tuneRep(j), its midpoint.
func keptInBin(j int, c float64) float64 {
	lo, hi := binBounds(j)
	switch {
	case c >= hi:
		return tuneRep(j)
	case c <= lo:
		return c
	}
	return ((c*c-lo*lo)/2 + (hi-c)*c) / (hi - lo)
}

// bestClamp picks an aggregate's per-group clamp: the grid point minimising the
// typical relative error — the median of |bias + noise|, dp.MedianAbsError —
// (noise and bounding bias, L0's included through
// keptGroups, the share of customer-groups L0 keeps) of a typical cell.
func bestClamp(a aggregate, v valueStats, kind dp.NoiseKind, l0 int64, b dp.Budget, keptGroups, cellsAll, cells, perCell float64, corrected bool) (lo, hi, loss, relErr float64) {
	unit, least := math.Pow10(a.scale), valueUnit(a)
	relErr = math.Inf(1)
	for _, c := range clampGrid {
		if a.op == "count" {
			c = math.Round(c) // whole rows
		}
		// Only clamps the planner accepts (checked at plan time at the extremes),
		// and none below the smallest value a customer-group can have.
		if a.op == "count" && (c < 1 || c > 100_000) || c*unit > 1e15/2 || c < least {
			continue
		}
		g, guess := keptSplit(v.hist, v.mass, c)
		l := 0.0
		if v.signed {
			l = -c
		}
		var e, lossC float64
		if a.op == "mean" {
			half := dp.Budget{Epsilon: b.Epsilon / 2, Delta: b.Delta / 2}
			std := dp.NoiseStd(kind, l0, (c-l)/2, half) / math.Max(perCell, 1)
			lossC = 1 - g
			e = dp.MedianAbsError(kind, std, lossC*v.mu) / v.mu
		} else {
			cell := cellsAll * v.mu / cells
			std := dp.NoiseStd(kind, l0, c, b)
			lossC = 1 - keptGroups*g
			e = cellError(kind, std, lossC, keptGroups*guess, cell, corrected)
		}
		if e < relErr {
			relErr, lo, hi, loss = e, l, c, lossC
		}
	}
	return lo, hi, loss, relErr
}

// residualShare is how much of its estimated bounding loss tuning expects a
// corrected cell to keep: the estimate misses customers too few to show in
// its histograms even with the assumed tail (assumeTail), so the true loss
// is taken as the estimate and half again. On the demo shop the exact loss
// of the bounds chosen read 0.97–1.10× the estimate on month × category and
// × store and 1.7–2.9× on the monthly totals (bench utility). Tried on the
// demo shop (two runs each, before the in-bin guess was kept apart): 0.25
// put 43.2–44.3% of cells within 10% but only 83% of the drawn tuned cells'
// intervals held the truth; 0.5, 40.1–40.9% and 88%; 1, 36.3–36.7%, no
// better than weighing the answer as uncorrected; 0 chose clamps that
// removed everything, counted as corrected.
const residualShare = 0.5

// cellError is the typical relative error of a cell of true value cell
// whose bounds remove loss of it, with noise of kind and std: the median of
// |bias + noise| (dp.MedianAbsError). A corrected cell (biasCorrection) is
// divided by 1 − loss, noise and all, and keeps the bias the estimate
// misses: residualShare of it, and all of guess, the part of the loss taken
// from inside the bin the clamp falls in (keptSplit), which rests on a guess
// of how values spread within a bin and may be no loss at all. An
// uncorrected cell keeps the whole bias.
//
// Until stop 31 tuning chose every bound as if uncorrected, because the
// estimate read a fifth of the true loss on the demo's monthly questions,
// and counting its bias as gone chose bounds whose true loss was further
// above it. With the assumed tail the estimate reads half or more of it,
// and weighing the answer as it will be — the noise scaled up by the
// correction, some bias left — chooses smaller bounds where a cell's noise
// outweighs its bias: on month × store, norms of 64 to 90.5 where 90.5
// alone was chosen before, and 24.0–27.4% median error where 30.6–33.4%.
// Measured on the demo shop (bench utility --runs 8, three runs each):
// cells within 10% 36.3–37.1% → 40.1–42.0%, questions within 1.25× of the
// hindsight ceiling 10–11 → 12 of 12 (not robust: stop 32 read 10–12 of 12
// from the same build); on UCI Online Retail against Privacy on Beam with
// hindsight bounds, 0.70–0.80× → 0.65–0.76×.
func cellError(kind dp.NoiseKind, std, loss, guess, cell float64, corrected bool) float64 {
	if !corrected {
		return dp.MedianAbsError(kind, std, loss*cell) / cell
	}
	f := 1 / (1 - math.Min(loss, MaxCorrectedLoss))
	left := residualShare*(loss-guess) + guess // the loss the correction may not undo
	bias := f*(1-loss-left) - 1
	return dp.MedianAbsError(kind, std*f, bias*cell) / cell
}

// corrects reports whether tuning weighs a tuned aggregate's cells as
// corrected (cellError) for a candidate whose histograms showed something
// above their noise (seen, as choice.seen): they will be (resolveTuning,
// biasCorrection) — the query keeps correct_bias and the aggregate is a
// count or sum clamped at zero from below (not signed) — and the shop is
// not a small one (small: customers × the default share's histogram ε
// below smallShopLevel). There the estimate is too rough to lean on: on the
// shop of 1,000 customers weighing the correction put 3.4–4.1% of cells
// within 10% against 4.4–5.3% without it (bench utility, four alternating
// runs each, stop 31).
func (ts *tuneSpec) corrects(a aggregate, signed, seen bool) bool {
	return ts.orig.Tuning.Corrects() && heavyTailed(a) && !signed && seen && !ts.small
}

// distinctError is the typical relative error of a distinct_customers cell
// of trueCell customers with noise of kind and std and a share kept of its
// customer-groups left by L0: noise and bounding bias together.
func distinctError(kind dp.NoiseKind, std, kept, trueCell float64) float64 {
	trueCell = math.Max(trueCell, 1)
	return dp.MedianAbsError(kind, std, (1-kept)*trueCell) / trueCell
}
