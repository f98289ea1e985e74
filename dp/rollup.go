package dp

import (
	"errors"
	"fmt"
	"math"
)

// Spread is the noise one released value carries: its distribution and its
// scale (Laplace b, Gaussian σ) in the value's natural units. The zero Spread
// marks a value that is not a noisy sum (a mean, a quantile): it does not add
// up with others.
type Spread struct {
	Kind  NoiseKind
	Scale float64
}

// SumCells is the sum of released cells and its interval: post-processing of
// the released noise, so it costs no privacy. The value is the sum of the
// cells' noisy values before they were clamped at zero (Raw), so that it is
// unbiased; a sum of cells that were all clamped at zero (counts, sums of
// non-negative values) is clamped again. The interval holds the sum of the
// true values with probability at least confidence:
//
//   - all Gaussian: exact, σ adding in quadrature;
//   - Laplace of one scale b (every cell of one aggregate): exact, from the
//     distribution of the sum of k Laplace variables (laplaceSumTail);
//   - any other mix: a Chernoff bound, wider than exact but never narrower.
//
// Cells measured on disjoint groups of one release have independent noise,
// which is what makes their sum's noise the sum of theirs.
func SumCells(cells []Cell, confidence float64) (Cell, error) {
	if len(cells) == 0 {
		return Cell{}, errors.New("dp: sum of cells: no cells")
	}
	if !(confidence > 0 && confidence < 1) {
		return Cell{}, fmt.Errorf("dp: sum of cells: confidence must be in (0, 1), got %g", confidence)
	}
	var sum, gauss2 float64
	var lap []float64
	clamped := true
	for _, c := range cells {
		if !(c.Spread.Scale > 0) || (c.Spread.Kind != Laplace && c.Spread.Kind != Gaussian) {
			return Cell{}, errors.New("dp: sum of cells: a cell without a noise spread (a mean or quantile) does not add up")
		}
		sum += c.Raw
		clamped = clamped && c.NonNegative
		if c.Spread.Kind == Gaussian {
			gauss2 += c.Spread.Scale * c.Spread.Scale
		} else {
			lap = append(lap, c.Spread.Scale)
		}
	}
	half := sumHalfWidth(lap, gauss2, 1-confidence)
	// No Spread: the sum's noise is no longer one Laplace or Gaussian
	// variable, so the result does not add up again through SumCells.
	out := Cell{Value: sum, Lower: sum - half, Upper: sum + half, Raw: sum}
	if clamped {
		out = atLeastZero(out)
	}
	return out, nil
}

// sumHalfWidth is the half-width of the interval of a sum of independent
// Laplace noises of scales lap and Gaussian noise of total variance gauss2.
func sumHalfWidth(lap []float64, gauss2, alpha float64) float64 {
	switch {
	case len(lap) == 0:
		return NormalQuantile(1-alpha) * math.Sqrt(gauss2)
	case gauss2 == 0 && sameScale(lap):
		return lap[0] * laplaceSumQuantile(len(lap), alpha)
	}
	return chernoffHalfWidth(lap, gauss2, alpha)
}

// SumHalfWidth predicts the half-width of a subtotal of k cells whose own
// half-width, at confidence, is cellHalf under noise of kind: what SumCells
// will give, before anything is released (explain). The cell's noise scale
// is read back from its interval — b·ln(1/α) for Laplace, z·σ for Gaussian
// — so a count's interval rounded to whole rows makes it approximate.
func SumHalfWidth(kind NoiseKind, cellHalf float64, k int, confidence float64) float64 {
	if k <= 1 || !(cellHalf > 0) {
		return cellHalf
	}
	alpha := 1 - confidence
	if kind == Gaussian {
		sigma := cellHalf / NormalQuantile(confidence)
		return sumHalfWidth(nil, float64(k)*sigma*sigma, alpha)
	}
	lap := make([]float64, k)
	for i := range lap {
		lap[i] = cellHalf / math.Log(1/alpha)
	}
	return sumHalfWidth(lap, 0, alpha)
}

func sameScale(s []float64) bool {
	for _, v := range s[1:] {
		if v != s[0] {
			return false
		}
	}
	return true
}

// laplaceSumQuantile is the x with P(|S| > x) = alpha for S the sum of k
// independent Laplace(1) variables.
func laplaceSumQuantile(k int, alpha float64) float64 {
	if k > 2000 {
		// The tails are the normal's to within 3/k of kurtosis: the exact sum
		// below would only lose precision.
		return NormalQuantile(1-alpha) * math.Sqrt(2*float64(k))
	}
	lo, hi := 0.0, 1.0
	for laplaceSumTail(k, hi) > alpha/2 {
		hi *= 2
	}
	for range 80 {
		mid := (lo + hi) / 2
		if laplaceSumTail(k, mid) > alpha/2 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

// laplaceSumTail is P(S > x), x ≥ 0, for S the sum of k independent
// Laplace(1) variables. The density of S is
//
//	f(x) = e^−|x| / (2^(2k−1) (k−1)!) · Σ_{j<k} (2k−2−j)! 2^j |x|^j / (j! (k−1−j)!)
//
// and ∫_x^∞ t^j e^−t dt = j! e^−x Σ_{i≤j} x^i/i!, so
//
//	P(S > x) = e^−x Σ_{j<k} a_j Σ_{i≤j} x^i/i!,  a_j = (2k−2−j)! 2^j / (2^(2k−1) (k−1)! (k−1−j)!).
//
// Every term is positive; they are summed in logarithms.
func laplaceSumTail(k int, x float64) float64 {
	lg := func(n int) float64 { v, _ := math.Lgamma(float64(n) + 1); return v } // ln n!
	lnx := math.Log(x)
	var total float64
	inner := math.Inf(-1) // ln Σ_{i≤j} x^i/i!
	for j := range k {
		term := float64(j)*lnx - lg(j)
		if x == 0 {
			term = math.Inf(-1)
			if j == 0 {
				term = 0
			}
		}
		inner = logAdd(inner, term)
		lnA := lg(2*k-2-j) + float64(j)*math.Ln2 - float64(2*k-1)*math.Ln2 - lg(k-1) - lg(k-1-j)
		total += math.Exp(lnA + inner - x)
	}
	return total
}

func logAdd(a, b float64) float64 {
	if math.IsInf(a, -1) {
		return b
	}
	if math.IsInf(b, -1) {
		return a
	}
	if a < b {
		a, b = b, a
	}
	return a + math.Log1p(math.Exp(b-a))
}

// chernoffHalfWidth bounds the two-sided alpha quantile of a sum of
// independent Laplace(b_i) and Gaussian (total variance gauss2) noises:
// P(S ≥ t) ≤ e^−λt E[e^λS] for every 0 < λ < 1/max b, with ln E[e^λL] =
// −ln(1 − λ²b²) for Laplace(b) and λ²σ²/2 for a Gaussian; t is minimised
// over λ by a grid and a golden-section search.
func chernoffHalfWidth(lap []float64, gauss2, alpha float64) float64 {
	bmax := 0.0
	for _, b := range lap {
		bmax = math.Max(bmax, b)
	}
	t := func(u float64) float64 { // u = λ·bmax in (0, 1)
		lambda := u / bmax
		s := math.Log(2/alpha) + lambda*lambda*gauss2/2
		for _, b := range lap {
			s -= math.Log1p(-lambda * lambda * b * b)
		}
		return s / lambda
	}
	best, bu := math.Inf(1), 0.5
	for i := 1; i < 200; i++ {
		if v := t(float64(i) / 200); v < best {
			best, bu = v, float64(i)/200
		}
	}
	lo, hi := math.Max(bu-0.005, 1e-9), math.Min(bu+0.005, 1-1e-9)
	for range 60 {
		a, b := lo+(hi-lo)*0.382, lo+(hi-lo)*0.618
		if t(a) < t(b) {
			hi = b
		} else {
			lo = a
		}
	}
	return math.Min(best, t((lo+hi)/2))
}
