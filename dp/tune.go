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
