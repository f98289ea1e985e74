// Package dp holds the differential-privacy mechanisms of Privalytics as pure
// functions over exact, already-bounded aggregates: calibrated noise (the
// google/differential-privacy library's secure samplers only), partition
// selection for group keys that come from the data, confidence intervals, and the
// split of a query's budget across its parts.
//
// Guarantee: given the sensitivities the caller passes — which the executor in
// analytics/ enforces by bounding each customer's contribution — every released
// value is (ε, δ)-differentially private with respect to adding or removing one
// customer. Threat model: the caller of the query API is untrusted and may repeat
// or combine queries; that is what the ledger's budget is for. This package never
// does I/O and draws no randomness of its own.
package dp

import (
	"fmt"
	"math"

	"github.com/google/differential-privacy/go/v3/dpagg"
	"github.com/google/differential-privacy/go/v3/noise"
)

// Mechanisms are the sources of noise and of partition-selection decisions. The
// product always uses Secure(); exactness tests use dptest.NoNoise().
type Mechanisms struct {
	Laplace  noise.Noise
	Gaussian noise.Noise
	// KeepPartition decides whether a data-derived group with the given number of
	// distinct (bounded) customers may be released.
	KeepPartition func(subjects, l0 int64, epsilon, delta float64) (bool, error)
}

// Secure returns the library's secure mechanisms.
func Secure() Mechanisms {
	return Mechanisms{Laplace: noise.Laplace(), Gaussian: noise.Gaussian(), KeepPartition: keepPartition}
}

func keepPartition(subjects, l0 int64, epsilon, delta float64) (bool, error) {
	s, err := dpagg.NewPreAggSelectPartition(&dpagg.PreAggSelectPartitionOptions{Epsilon: epsilon, Delta: delta, MaxPartitionsContributed: l0})
	if err != nil {
		return false, err
	}
	if err := s.IncrementBy(subjects); err != nil {
		return false, err
	}
	return s.ShouldKeepPartition()
}

// NoiseKind names a noise distribution.
type NoiseKind string

const (
	Laplace  NoiseKind = "laplace"
	Gaussian NoiseKind = "gaussian"
)

func (m Mechanisms) noise(k NoiseKind) noise.Noise {
	if k == Gaussian {
		return m.Gaussian
	}
	return m.Laplace
}

// Cell is a released value with its confidence interval and, for noisy sums
// and counts, what SumCells needs to add cells up: the noisy value before any
// clamping at zero, its noise, and whether it was clamped.
type Cell struct {
	Value, Lower, Upper float64
	Raw                 float64
	Spread              Spread
	NonNegative         bool // Value, Lower and Upper were clamped at zero
}

// Budget is the (ε, δ) one mechanism may spend.
type Budget struct {
	Epsilon, Delta float64
}

// CountParams describe a count over bounded contributions: each customer touches
// at most L0 groups and adds at most LInf to a group.
type CountParams struct {
	Kind       NoiseKind
	L0, LInf   int64
	Budget     Budget
	Confidence float64
}

// Count releases an exact count (integer noise), never below zero.
func (m Mechanisms) Count(exact int64, p CountParams) (Cell, error) {
	n := m.noise(p.Kind)
	v, err := n.AddNoiseInt64(exact, p.L0, p.LInf, p.Budget.Epsilon, p.Budget.Delta)
	if err != nil {
		return Cell{}, fmt.Errorf("dp: count: %w", err)
	}
	ci, err := n.ComputeConfidenceIntervalInt64(v, p.L0, p.LInf, p.Budget.Epsilon, p.Budget.Delta, 1-p.Confidence)
	if err != nil {
		return Cell{}, fmt.Errorf("dp: count interval: %w", err)
	}
	return atLeastZero(Cell{Value: float64(v), Lower: ci.LowerBound, Upper: ci.UpperBound, Raw: float64(v),
		Spread: spreadOf(p.Kind, p.L0, float64(p.LInf), p.Budget)}), nil
}

// spreadOf is the noise the library adds for L0 groups of L∞ each on b.
func spreadOf(kind NoiseKind, l0 int64, linf float64, b Budget) Spread {
	if kind == Gaussian {
		return Spread{Kind: Gaussian, Scale: noise.SigmaForGaussian(l0, linf, b.Epsilon, b.Delta)}
	}
	return Spread{Kind: Laplace, Scale: LaplaceScale(l0, linf, b.Epsilon)}
}

// atLeastZero clamps a non-negative quantity's noisy value and interval at zero:
// post-processing, so it costs no privacy. The interval becomes its part at or
// above zero, which holds the true value whenever the noisy interval did. When
// the whole noisy interval lies below zero it missed the truth anyway (a rare,
// α/2 event); it is then shown as [0, its width] rather than the zero-width
// [0, 0], which would read as an exact zero.
func atLeastZero(c Cell) Cell {
	c.NonNegative = true
	width := c.Upper - c.Lower
	c.Value, c.Lower, c.Upper = math.Max(0, c.Value), math.Max(0, c.Lower), math.Max(0, c.Upper)
	if c.Upper <= 0 && width > 0 {
		c.Upper = width
	}
	return c
}

// SumParams describe a sum of values clamped to [Lower, Upper], in units of
// 10^-Scale when the column is exact (Scaled), with at most RowsPerGroup rows per
// customer and group and at most L0 groups per customer.
type SumParams struct {
	Kind         NoiseKind
	L0           int64
	RowsPerGroup int64
	Lower, Upper float64 // in the column's natural units
	Scale        int     // digits after the point of the stored integers; -1 for a float column
	Budget       Budget
	Confidence   float64
}

// maxAbs is the largest contribution of one row.
func (p SumParams) maxAbs() float64 { return math.Max(math.Abs(p.Lower), math.Abs(p.Upper)) }

// SumInt releases a sum of scaled integers (integer noise: no floating-point
// rounding attack on the sum). exact is in units of 10^-Scale.
func (m Mechanisms) SumInt(exact int64, p SumParams) (Cell, error) {
	n := m.noise(p.Kind)
	unit := math.Pow10(p.Scale)
	linf := int64(math.Ceil(p.maxAbs()*unit)) * p.RowsPerGroup
	if linf <= 0 {
		linf = 1
	}
	v, err := n.AddNoiseInt64(exact, p.L0, linf, p.Budget.Epsilon, p.Budget.Delta)
	if err != nil {
		return Cell{}, fmt.Errorf("dp: sum: %w", err)
	}
	ci, err := n.ComputeConfidenceIntervalInt64(v, p.L0, linf, p.Budget.Epsilon, p.Budget.Delta, 1-p.Confidence)
	if err != nil {
		return Cell{}, fmt.Errorf("dp: sum interval: %w", err)
	}
	sp := spreadOf(p.Kind, p.L0, float64(linf), p.Budget)
	sp.Scale /= unit
	return p.nonNegative(Cell{Value: float64(v) / unit, Lower: ci.LowerBound / unit, Upper: ci.UpperBound / unit, Raw: float64(v) / unit, Spread: sp}), nil
}

// nonNegative clamps a sum of non-negative values at zero: post-processing, so it
// costs no privacy, and a negative revenue would only confuse.
func (p SumParams) nonNegative(c Cell) Cell {
	if p.Lower >= 0 {
		return atLeastZero(c)
	}
	return c
}

// SumFloat releases a sum of clamped floats.
func (m Mechanisms) SumFloat(exact float64, p SumParams) (Cell, error) {
	n := m.noise(p.Kind)
	linf := p.maxAbs() * float64(p.RowsPerGroup)
	if linf <= 0 {
		linf = 1
	}
	v, err := n.AddNoiseFloat64(exact, p.L0, linf, p.Budget.Epsilon, p.Budget.Delta)
	if err != nil {
		return Cell{}, fmt.Errorf("dp: sum: %w", err)
	}
	ci, err := n.ComputeConfidenceIntervalFloat64(v, p.L0, linf, p.Budget.Epsilon, p.Budget.Delta, 1-p.Confidence)
	if err != nil {
		return Cell{}, fmt.Errorf("dp: sum interval: %w", err)
	}
	return p.nonNegative(Cell{Value: v, Lower: ci.LowerBound, Upper: ci.UpperBound, Raw: v, Spread: spreadOf(p.Kind, p.L0, linf, p.Budget)}), nil
}

// Mean releases a bounded mean the way dpagg.BoundedMean does: half the budget on
// the count, half on the sum of distances from the midpoint of [Lower, Upper]; the
// result is clamped to the bounds. normSum is Σ(clamp(x) − midpoint) in natural
// units; count is the number of rows.
func (m Mechanisms) Mean(normSum float64, count int64, p SumParams) (Cell, error) {
	n := m.noise(p.Kind)
	half := Budget{p.Budget.Epsilon / 2, p.Budget.Delta / 2}
	mid := p.Lower + (p.Upper-p.Lower)/2
	linfSum := (p.Upper - mid) * float64(p.RowsPerGroup)
	if linfSum <= 0 {
		linfSum = 1
	}
	nc, err := n.AddNoiseInt64(count, p.L0, p.RowsPerGroup, half.Epsilon, half.Delta)
	if err != nil {
		return Cell{}, fmt.Errorf("dp: mean count: %w", err)
	}
	ns, err := n.AddNoiseFloat64(normSum, p.L0, linfSum, half.Epsilon, half.Delta)
	if err != nil {
		return Cell{}, fmt.Errorf("dp: mean sum: %w", err)
	}
	den := math.Max(1, float64(nc))
	value := clamp(ns/den+mid, p.Lower, p.Upper)
	// Interval: split alpha between numerator and denominator so that
	// (1−αn)(1−αd) = 1−α, and keep the tightest over a grid (as dpagg does).
	alpha := 1 - p.Confidence
	best := Cell{Value: value, Lower: p.Lower, Upper: p.Upper}
	for i := 1; i < 100; i++ {
		an := float64(i) / 100 * alpha
		ad := (alpha - an) / (1 - an)
		num, err := n.ComputeConfidenceIntervalFloat64(ns, p.L0, linfSum, half.Epsilon, half.Delta, an)
		if err != nil {
			return Cell{}, fmt.Errorf("dp: mean interval: %w", err)
		}
		d, err := n.ComputeConfidenceIntervalInt64(nc, p.L0, p.RowsPerGroup, half.Epsilon, half.Delta, ad)
		if err != nil {
			return Cell{}, fmt.Errorf("dp: mean interval: %w", err)
		}
		dl, du := math.Max(d.LowerBound, 1), math.Max(d.UpperBound, 1)
		lo, hi := num.LowerBound/du, num.UpperBound/dl
		if num.LowerBound < 0 {
			lo = num.LowerBound / dl
		}
		if num.UpperBound < 0 {
			hi = num.UpperBound / du
		}
		lo, hi = clamp(lo+mid, p.Lower, p.Upper), clamp(hi+mid, p.Lower, p.Upper)
		if hi-lo < best.Upper-best.Lower {
			best.Lower, best.Upper = lo, hi
		}
	}
	return best, nil
}

func clamp(x, lo, hi float64) float64 { return math.Min(hi, math.Max(lo, x)) }

// QuantileCountShare is the share of a quantile's budget spent on a noisy
// count of the group's rows, which sizes the quantile's interval; the rest goes
// to the library's quantile tree.
const QuantileCountShare = 0.1

// The library's quantile tree (dpagg defaults): 4 levels of 16 children.
const (
	quantileTreeHeight = dpagg.DefaultTreeHeight
	quantileBranching  = dpagg.DefaultBranchingFactor
)

// Quantile releases a quantile of one group's kept values with the library's
// BoundedQuantiles (a noisy quantile tree over [Lower, Upper]) using these
// mechanisms' noise, on 1 − QuantileCountShare of the budget.
//
// The library gives no interval; ours is post-processing of the same noisy
// tree plus a noisy row count n̂ (QuantileCountShare of the budget). Walking
// down the tree, the rank the answer lands on is off by the noise of the nodes
// the walk sums: at most H·B counts (H levels of B children), so about
// σ_node·√(H·B) rows. With W = z·σ_node·√(H·B) and n_lo a lower confidence
// bound of the row count, the interval runs from the tree's answer at rank
// r − W/n_lo to its answer at r + W/n_lo, each widened by one leaf
// ((Upper − Lower)/B^H) for the resolution of the tree, and clamped to the
// bounds. The confidence is split in three (n_lo, each end). The rank error
// is a normal approximation of a sum of up to 64 noise terms, not an exact
// bound: TestQuantileIntervalsCover measures the coverage.
func (m Mechanisms) Quantile(values []float64, rank float64, p SumParams) (Cell, error) {
	n := m.noise(p.Kind)
	tree := Budget{p.Budget.Epsilon * (1 - QuantileCountShare), p.Budget.Delta * (1 - QuantileCountShare)}
	cnt := Budget{p.Budget.Epsilon * QuantileCountShare, p.Budget.Delta * QuantileCountShare}
	opt := &dpagg.BoundedQuantilesOptions{
		Epsilon: tree.Epsilon, Delta: tree.Delta,
		MaxPartitionsContributed: p.L0, MaxContributionsPerPartition: p.RowsPerGroup,
		Lower: p.Lower, Upper: p.Upper, Noise: n,
	}
	bq, err := dpagg.NewBoundedQuantiles(opt)
	if err != nil {
		return Cell{}, fmt.Errorf("dp: quantile: %w", err)
	}
	for _, v := range values {
		if err := bq.Add(v); err != nil {
			return Cell{}, fmt.Errorf("dp: quantile: %w", err)
		}
	}
	v, err := bq.Result(rank)
	if err != nil {
		return Cell{}, fmt.Errorf("dp: quantile: %w", err)
	}
	nc, err := n.AddNoiseInt64(int64(len(values)), p.L0, p.RowsPerGroup, cnt.Epsilon, cnt.Delta)
	if err != nil {
		return Cell{}, fmt.Errorf("dp: quantile count: %w", err)
	}
	third := (1 - p.Confidence) / 3
	ci, err := n.ComputeConfidenceIntervalInt64(nc, p.L0, p.RowsPerGroup, cnt.Epsilon, cnt.Delta, third)
	if err != nil {
		return Cell{}, fmt.Errorf("dp: quantile interval: %w", err)
	}
	w := QuantileRankError(p.Kind, p.L0, p.RowsPerGroup, tree, third)
	cell := Cell{Value: v, Lower: p.Lower, Upper: p.Upper}
	if nLo := ci.LowerBound; nLo > w {
		lo, err := bq.Result(math.Max(0, rank-w/nLo))
		if err != nil {
			return Cell{}, fmt.Errorf("dp: quantile interval: %w", err)
		}
		hi, err := bq.Result(math.Min(1, rank+w/nLo))
		if err != nil {
			return Cell{}, fmt.Errorf("dp: quantile interval: %w", err)
		}
		leaf := (p.Upper - p.Lower) / math.Pow(quantileBranching, quantileTreeHeight)
		cell.Lower = clamp(math.Min(lo, v)-leaf, p.Lower, p.Upper)
		cell.Upper = clamp(math.Max(hi, v)+leaf, p.Lower, p.Upper)
	}
	return cell, nil
}

// QuantileRankError is W of Quantile: the half-width, in rows, of the rank a
// quantile tree's answer lands on, at confidence 1 − alpha, for the tree's
// share of the budget.
func QuantileRankError(kind NoiseKind, l0, rowsPerGroup int64, tree Budget, alpha float64) float64 {
	l0Tree := int64(quantileTreeHeight) * l0 // each row is in one node per level
	var sigma float64
	if kind == Gaussian {
		sigma = noise.SigmaForGaussian(l0Tree, float64(rowsPerGroup), tree.Epsilon, tree.Delta)
	} else {
		sigma = math.Sqrt2 * float64(l0Tree) * float64(rowsPerGroup) / tree.Epsilon
	}
	z := math.Sqrt2 * math.Erfinv(1-alpha)
	return z * sigma * math.Sqrt(quantileTreeHeight*quantileBranching)
}

// Variance releases a bounded (population) variance the way
// dpagg.BoundedVariance does: a third of the budget each for the count, the sum
// of distances from the midpoint m of [Lower, Upper], and the sum of their
// squares; variance = Q/N − (S/N)², clamped to [0, ((Upper−Lower)/2)²]. normSum
// is Σ(x−m) and normSq Σ(x−m)², in natural units, over count rows.
//
// Its interval holds the three parts' intervals at confidence 1 − α/3 each
// together (union bound) and takes the extremes of the formula over them, so it
// covers the bounded variance with probability at least the confidence.
func (m Mechanisms) Variance(normSum, normSq float64, count int64, p SumParams) (Cell, error) {
	n := m.noise(p.Kind)
	third := Budget{p.Budget.Epsilon / 3, p.Budget.Delta / 3}
	half := (p.Upper - p.Lower) / 2
	maxVar := half * half
	linfS, linfQ := half*float64(p.RowsPerGroup), maxVar*float64(p.RowsPerGroup)
	if linfS <= 0 {
		linfS, linfQ = 1, 1
	}
	nc, err := n.AddNoiseInt64(count, p.L0, p.RowsPerGroup, third.Epsilon, third.Delta)
	if err != nil {
		return Cell{}, fmt.Errorf("dp: variance count: %w", err)
	}
	ns, err := n.AddNoiseFloat64(normSum, p.L0, linfS, third.Epsilon, third.Delta)
	if err != nil {
		return Cell{}, fmt.Errorf("dp: variance sum: %w", err)
	}
	nq, err := n.AddNoiseFloat64(normSq, p.L0, linfQ, third.Epsilon, third.Delta)
	if err != nil {
		return Cell{}, fmt.Errorf("dp: variance sum of squares: %w", err)
	}
	den := math.Max(1, float64(nc))
	value := clamp(nq/den-(ns/den)*(ns/den), 0, maxVar)

	a := (1 - p.Confidence) / 3
	ci, err := n.ComputeConfidenceIntervalInt64(nc, p.L0, p.RowsPerGroup, third.Epsilon, third.Delta, a)
	if err != nil {
		return Cell{}, fmt.Errorf("dp: variance interval: %w", err)
	}
	si, err := n.ComputeConfidenceIntervalFloat64(ns, p.L0, linfS, third.Epsilon, third.Delta, a)
	if err != nil {
		return Cell{}, fmt.Errorf("dp: variance interval: %w", err)
	}
	qi, err := n.ComputeConfidenceIntervalFloat64(nq, p.L0, linfQ, third.Epsilon, third.Delta, a)
	if err != nil {
		return Cell{}, fmt.Errorf("dp: variance interval: %w", err)
	}
	nLo, nHi := math.Max(1, ci.LowerBound), math.Max(1, ci.UpperBound)
	qLo, qHi := math.Max(0, qi.LowerBound), math.Max(0, qi.UpperBound)
	sqMax := math.Max(si.LowerBound*si.LowerBound, si.UpperBound*si.UpperBound) / (nLo * nLo)
	sqMin := 0.0
	if si.LowerBound > 0 || si.UpperBound < 0 {
		sqMin = math.Min(si.LowerBound*si.LowerBound, si.UpperBound*si.UpperBound) / (nHi * nHi)
	}
	lo := clamp(qLo/nHi-sqMax, 0, maxVar)
	hi := clamp(qHi/nLo-sqMin, 0, maxVar)
	return Cell{Value: value, Lower: math.Min(lo, value), Upper: math.Max(hi, value)}, nil
}

// Split divides a query's (ε, δ) among its aggregates by weight, plus one equal
// share of ε for partition selection when the groups come from the data; δ goes
// to partition selection then (Laplace needs none), and is shared by the
// aggregates under Gaussian noise. Basic composition: the parts add up to the total.
func Split(total Budget, weights []float64, selection bool, kind NoiseKind) (aggs []Budget, sel Budget) {
	sum := 0.0
	for _, w := range weights {
		sum += w
	}
	epsAggs := total.Epsilon
	if selection {
		share := total.Epsilon / float64(len(weights)+1)
		sel.Epsilon = share
		epsAggs -= share
	}
	deltaAggs := 0.0
	switch {
	case selection && kind == Gaussian:
		sel.Delta, deltaAggs = total.Delta/2, total.Delta/2
	case selection:
		sel.Delta = total.Delta
	case kind == Gaussian:
		deltaAggs = total.Delta
	}
	aggs = make([]Budget, len(weights))
	for i, w := range weights {
		aggs[i] = Budget{Epsilon: epsAggs * w / sum, Delta: deltaAggs * w / sum}
	}
	return aggs, sel
}
