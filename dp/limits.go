package dp

import (
	"fmt"
	"math"

	"github.com/google/differential-privacy/go/v3/noise"
)

// The limits the google/differential-privacy library (go/v3 v3.0.0) puts on the
// privacy parameters of its mechanisms, checked here BEFORE any data is read.
// Were they checked only when the library is called — at release, after the
// data was touched — a parameter the library refuses would fail a query only
// when some row reached that mechanism, and the failure itself would tell
// whether any row matched (issue 13's refund oracle). So the planner validates
// every mechanism a query will call with exactly the (ε, δ) shares and
// sensitivities Release passes, and a planned query cannot fail later on them.
//
// The library's checks (noise/laplace_noise.go checkArgsLaplace,
// noise/gaussian_noise.go checkArgsGaussian, dpagg/select_partition.go
// NewPreAggSelectPartition, checks/checks.go):
//   - noise: ε ≥ 2^-50 and finite (CheckEpsilonVeryStrict); L0 > 0; L∞ > 0 and finite;
//   - Laplace: δ = 0; Gaussian: 0 < δ < 1 (CheckDeltaStrict);
//   - partition selection: 0 < δ < 1, ε > 0; with L0 > 3 it thresholds a
//     Gaussian count at ε and δ/2 each, so ε ≥ 2^-50 and δ/2 > 0.
// TestLimitsMatchTheLibrary calls the library on both sides of every limit.

// MinEpsilon is the smallest ε any of the library's noise mechanisms accepts.
const MinEpsilon = 0x1p-50

// MinDelta is the smallest δ share a Gaussian mechanism accepts: any δ > 0. The
// checks below compute the shares with the same splits (δ/2, δ/3, 0.9·δ) as the
// mechanisms, so a share that underflows to 0 is caught here too.
const MinDelta = math.SmallestNonzeroFloat64

// LimitError describes one mechanism whose share of the budget is out of the
// library's range: which part, which parameter, what it got and the smallest
// value the library accepts.
type LimitError struct {
	Mechanism string  // e.g. "laplace count", "partition selection"
	Param     string  // "epsilon", "delta" or "sensitivity"
	Got, Min  float64 // the share and the smallest allowed share
}

func (e *LimitError) Error() string {
	if e.Param == "sensitivity" {
		return fmt.Sprintf("%s: the contribution bound %g is not a positive finite number", e.Mechanism, e.Got)
	}
	return fmt.Sprintf("%s: its share of %s is %g, below the %g the noise library accepts", e.Mechanism, e.Param, e.Got, e.Min)
}

// checkNoise is checkArgsLaplace / checkArgsGaussian of the library.
func checkNoise(what string, kind NoiseKind, l0 int64, linf float64, b Budget) error {
	if !(b.Epsilon >= MinEpsilon) || math.IsInf(b.Epsilon, 0) {
		return &LimitError{Mechanism: what, Param: "epsilon", Got: b.Epsilon, Min: MinEpsilon}
	}
	if kind == Gaussian {
		if !(b.Delta >= MinDelta && b.Delta < 1) { // NaN fails too
			return &LimitError{Mechanism: what, Param: "delta", Got: b.Delta, Min: MinDelta}
		}
	} else if b.Delta != 0 {
		return fmt.Errorf("%s: laplace noise takes no delta, got %g", what, b.Delta)
	}
	if l0 <= 0 || !(linf > 0) || math.IsInf(linf, 0) {
		return &LimitError{Mechanism: what, Param: "sensitivity", Got: float64(l0) * linf}
	}
	if kind == Gaussian {
		// Past ε ≈ 1000 the library's σ comes out 0 and its binomial sampler
		// then never returns (a hang, not an error): refuse it here.
		if sigma := noise.SigmaForGaussian(l0, linf, b.Epsilon, b.Delta); !(sigma > 0) || math.IsInf(sigma, 0) {
			return fmt.Errorf("%s: its share of epsilon, %g, is too large for gaussian noise (the library's σ is %g); use a smaller epsilon or laplace noise", what, b.Epsilon, sigma)
		}
	}
	return nil
}

// Check reports whether Count would accept p.
func (p CountParams) Check(what string) error {
	return checkNoise(what, p.Kind, p.L0, float64(p.LInf), p.Budget)
}

// CheckSum reports whether SumInt (scaled) or SumFloat would accept p.
func (p SumParams) CheckSum(what string, scaled bool) error {
	linf := p.maxAbs() * float64(p.RowsPerGroup)
	if scaled {
		linf = math.Ceil(p.maxAbs()*math.Pow10(p.Scale)) * float64(p.RowsPerGroup)
	}
	if linf <= 0 {
		linf = 1 // as SumInt and SumFloat
	}
	return checkNoise(what, p.Kind, p.L0, linf, p.Budget)
}

// CheckMean reports whether Mean would accept p: half the budget each on the
// count and on the normalised sum.
func (p SumParams) CheckMean(what string) error {
	half := Budget{p.Budget.Epsilon / 2, p.Budget.Delta / 2}
	if err := checkNoise(what+" (count)", p.Kind, p.L0, float64(p.RowsPerGroup), half); err != nil {
		return err
	}
	linf := (p.Upper - p.Lower) / 2 * float64(p.RowsPerGroup)
	if linf <= 0 {
		linf = 1
	}
	return checkNoise(what+" (sum)", p.Kind, p.L0, linf, half)
}

// CheckVariance reports whether Variance would accept p: a third of the budget
// each on the count, the sum and the sum of squares.
func (p SumParams) CheckVariance(what string) error {
	third := Budget{p.Budget.Epsilon / 3, p.Budget.Delta / 3}
	half := (p.Upper - p.Lower) / 2
	linfS, linfQ := half*float64(p.RowsPerGroup), half*half*float64(p.RowsPerGroup)
	if linfS <= 0 {
		linfS, linfQ = 1, 1
	}
	for _, c := range []struct {
		part string
		linf float64
	}{{"count", float64(p.RowsPerGroup)}, {"sum", linfS}, {"sum of squares", linfQ}} {
		if err := checkNoise(what+" ("+c.part+")", p.Kind, p.L0, c.linf, third); err != nil {
			return err
		}
	}
	return nil
}

// CheckQuantile reports whether Quantile would accept p: the library's
// quantile tree on 1 − QuantileCountShare of the budget (L0 × tree height), the
// row count on the rest.
func (p SumParams) CheckQuantile(what string) error {
	tree := Budget{p.Budget.Epsilon * (1 - QuantileCountShare), p.Budget.Delta * (1 - QuantileCountShare)}
	cnt := Budget{p.Budget.Epsilon * QuantileCountShare, p.Budget.Delta * QuantileCountShare}
	if err := checkNoise(what+" (tree)", p.Kind, quantileTreeHeight*p.L0, float64(p.RowsPerGroup), tree); err != nil {
		return err
	}
	return checkNoise(what+" (count)", p.Kind, p.L0, float64(p.RowsPerGroup), cnt)
}

// CheckSelection reports whether KeepPartition would accept (l0, b).
func CheckSelection(l0 int64, b Budget) error {
	const what = "partition selection"
	if !(b.Epsilon >= MinEpsilon) || math.IsInf(b.Epsilon, 0) {
		return &LimitError{Mechanism: what, Param: "epsilon", Got: b.Epsilon, Min: MinEpsilon}
	}
	if !(b.Delta/2 >= MinDelta && b.Delta < 1) { // the Gaussian threshold's δ/2 (L0 > 3)
		return &LimitError{Mechanism: what, Param: "delta", Got: b.Delta, Min: 2 * MinDelta}
	}
	if l0 <= 0 {
		return &LimitError{Mechanism: what, Param: "sensitivity", Got: float64(l0)}
	}
	if l0 > 3 {
		// A Gaussian count at (ε, δ/2), thresholded.
		if err := checkNoise(what, Gaussian, l0, 1, Budget{b.Epsilon, b.Delta / 2}); err != nil {
			return err
		}
	} else {
		// With L0 ≤ 3 the library computes a crossover count n_cr
		// (keepPartitionProbability) from ε/L0 and δ/L0; when δ/L0 is so small
		// that the expression overflows, n_cr becomes MinInt64 and the library
		// fails — but only for partitions with customers. The same formula here.
		pe, pd := b.Epsilon/float64(l0), b.Delta/float64(l0)
		x := (1 / pe) * math.Log((1+math.Exp(-pe)*(2*pd-1))/(pd*(1+math.Exp(-pe))))
		if !(x >= 0) || x >= math.MaxInt64/2 {
			return &LimitError{Mechanism: what, Param: "delta", Got: b.Delta, Min: float64(l0) * minNormal}
		}
	}
	return nil
}

// minNormal is the smallest normal float64.
const minNormal = 0x1p-1022

// CheckHistogram reports whether the Laplace histogram of automatic bounds
// (L0 = 1, L∞ = rows) accepts epsilon.
func CheckHistogram(what string, rows int64, epsilon float64) error {
	return checkNoise(what, Laplace, 1, float64(rows), Budget{Epsilon: epsilon})
}
