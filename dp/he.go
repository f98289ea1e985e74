package dp

import (
	"fmt"
	"math"

	"github.com/google/differential-privacy/go/v3/noise"
)

// The encrypted paths (he/ and he/federation) release values that are not
// cells of a query: the owner's decrypted statistics, and each franchise
// location's share of the distributed noise. Their draws go through these
// methods, like every other draw in the product, so that the mechanisms in use
// are audited in one package and tests can swap in dptest.NoNoise.

// LaplaceValue releases one of l0 values that one customer can each move by at most
// lInf, on epsilon for all l0 together (the library splits ε evenly over them).
// It returns the noisy value and the Laplace scale b = l0·lInf/ε.
func (m Mechanisms) LaplaceValue(exact float64, l0 int64, lInf, epsilon float64) (value, scale float64, err error) {
	if err := checkLaplace(l0, lInf, epsilon); err != nil {
		return 0, 0, err
	}
	v, err := m.Laplace.AddNoiseFloat64(exact, l0, lInf, epsilon, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("dp: laplace: %w", err)
	}
	return v, LaplaceScale(l0, lInf, epsilon), nil
}

// LaplaceCount is LaplaceValue for an exact integer (a row count, a BGV sum):
// integer noise, so no floating-point rounding attack on the released value.
func (m Mechanisms) LaplaceCount(exact, l0, lInf int64, epsilon float64) (value int64, scale float64, err error) {
	if err := checkLaplace(l0, float64(lInf), epsilon); err != nil {
		return 0, 0, err
	}
	v, err := m.Laplace.AddNoiseInt64(exact, l0, lInf, epsilon, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("dp: laplace count: %w", err)
	}
	return v, LaplaceScale(l0, float64(lInf), epsilon), nil
}

// LaplaceScale is the scale b of the library's Laplace mechanism for l0
// values of l∞ sensitivity lInf on ε.
func LaplaceScale(l0 int64, lInf, epsilon float64) float64 {
	return float64(l0) * lInf / epsilon
}

func checkLaplace(l0 int64, lInf, epsilon float64) error {
	switch {
	case !(epsilon > 0) || math.IsInf(epsilon, 0):
		return fmt.Errorf("dp: laplace: epsilon must be > 0 and finite, got %g", epsilon)
	case l0 < 1:
		return fmt.Errorf("dp: laplace: l0 must be ≥ 1, got %d", l0)
	case !(lInf > 0) || math.IsInf(lInf, 0):
		return fmt.Errorf("dp: laplace: the sensitivity must be > 0 and finite, got %g", lInf)
	}
	return nil
}

// GaussianShare draws one party's share of a distributed Gaussian mechanism:
// `parties` independent shares, each of variance σ²/parties, sum to the
// Gaussian of σ that the library calibrates for L2 sensitivity `sensitivity`
// on (ε, δ). σ is proportional to the sensitivity, so a share is the
// library's Gaussian for sensitivity/√parties. The share is rounded to an
// integer: shares are added to exact integers under encryption.
func (m Mechanisms) GaussianShare(sensitivity float64, parties int, epsilon, delta float64) (int64, error) {
	if parties < 1 {
		return 0, fmt.Errorf("dp: gaussian share: parties must be ≥ 1, got %d", parties)
	}
	if !(sensitivity > 0) || math.IsInf(sensitivity, 0) {
		return 0, fmt.Errorf("dp: gaussian share: the sensitivity must be > 0 and finite, got %g", sensitivity)
	}
	v, err := m.Gaussian.AddNoiseFloat64(0, 1, sensitivity/math.Sqrt(float64(parties)), epsilon, delta)
	if err != nil {
		return 0, fmt.Errorf("dp: gaussian share: %w", err)
	}
	return int64(math.Round(v)), nil
}

// GaussianSigma is the standard deviation the library's Gaussian mechanism
// uses for one value of L2 sensitivity `sensitivity` on (ε, δ).
func GaussianSigma(sensitivity, epsilon, delta float64) float64 {
	return noise.SigmaForGaussian(1, sensitivity, epsilon, delta)
}
