package dp

import (
	"fmt"
	"math"

	"github.com/google/differential-privacy/go/v3/noise"
)

// NoisyHistogram releases a histogram in which adding or removing one customer
// changes the counts by at most 1 in L1 (one customer in one bin, or weights
// summing to at most 1): Laplace noise of scale 1/ε on every bin through the
// library's secure sampler, clamped at zero (post-processing). The automatic
// tuning of contribution bounds (analytics/tune.go) reads its choices off these.
func (m Mechanisms) NoisyHistogram(counts []float64, epsilon float64) ([]float64, error) {
	out := make([]float64, len(counts))
	for i, c := range counts {
		v, err := m.Laplace.AddNoiseFloat64(c, 1, 1, epsilon, 0)
		if err != nil {
			return nil, fmt.Errorf("dp: tuning histogram: %w", err)
		}
		out[i] = math.Max(0, v)
	}
	return out, nil
}

// CheckTuningHistogram reports whether NoisyHistogram accepts epsilon.
func CheckTuningHistogram(what string, epsilon float64) error {
	return checkNoise(what, Laplace, 1, 1, Budget{Epsilon: epsilon})
}

// NoiseStd is the standard deviation of the noise a cell with per-customer
// sensitivity linf in at most l0 cells gets: Laplace √2·l0·linf/ε, Gaussian the
// library's σ for L2 = √l0·linf.
func NoiseStd(kind NoiseKind, l0 int64, linf float64, b Budget) float64 {
	if kind == Gaussian {
		return noise.SigmaForGaussian(l0, linf, b.Epsilon, b.Delta)
	}
	return math.Sqrt2 * float64(l0) * linf / b.Epsilon
}

// MedianAbsError is the median of |bias + N| for noise N of kind with standard
// deviation sd: the error a typical released cell is off by, bounding's bias
// and the noise together. Laplace's peak makes it 0.49·sd without bias against
// the Gaussian's 0.67·sd — so for the same sd Laplace gives the smaller typical
// error, which an RMS comparison cannot see.
func MedianAbsError(kind NoiseKind, sd, bias float64) float64 {
	bias = math.Abs(bias)
	if sd <= 0 || math.IsNaN(sd) {
		return bias
	}
	if math.IsInf(sd, 1) {
		return sd
	}
	cdf := func(x float64) float64 { // of N
		if kind == Gaussian {
			return 0.5 * math.Erfc(-x/(sd*math.Sqrt2))
		}
		s := sd / math.Sqrt2
		if x < 0 {
			return 0.5 * math.Exp(x/s)
		}
		return 1 - 0.5*math.Exp(-x/s)
	}
	// P(|bias + N| ≤ m) rises from 0 at m = 0: bisect for a half.
	lo, hi := 0.0, bias+6*sd
	for range 60 {
		m := (lo + hi) / 2
		if cdf(m-bias)-cdf(-m-bias) < 0.5 {
			lo = m
		} else {
			hi = m
		}
	}
	return (lo + hi) / 2
}
