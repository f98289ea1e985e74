package dp

import (
	"fmt"
	"math"

	"github.com/google/differential-privacy/go/v3/noise"
)

// Noise for federated model training and for audits released as histograms.
// Both are calibrated in zCDP (see accountant.go): a Gaussian of scale σ on a
// vector whose L2 sensitivity is Δ is (Δ²/2σ²)-zCDP, and ρ's add up over rounds,
// which is what lets a multi-round training be charged round by round.

// The library calibrates its Gaussian from (ε, δ) and an L∞ sensitivity, and
// its σ is proportional to that sensitivity; a draw of a chosen σ therefore
// passes lInf = σ/σ₁ with σ₁ the library's σ for sensitivity 1 at a fixed
// reference (ε, δ). The reference changes nothing but the scale factor.
const (
	refEpsilon = 1.0
	refDelta   = 1e-5
)

var sigmaPerUnit = noise.SigmaForGaussian(1, 1, refEpsilon, refDelta)

// SigmaForRho is the Gaussian scale that makes a release of L2 sensitivity
// l2 cost rho in zCDP: σ = Δ/√(2ρ).
func SigmaForRho(l2, rho float64) (float64, error) {
	if !(l2 > 0) || math.IsInf(l2, 0) || !(rho > 0) || math.IsInf(rho, 0) {
		return 0, fmt.Errorf("dp: SigmaForRho: sensitivity and rho must be > 0 and finite, got %g and %g", l2, rho)
	}
	return l2 / math.Sqrt(2*rho), nil
}

// RhoOfSigma is the zCDP cost of a Gaussian of scale sigma on a release of L2
// sensitivity l2: Δ²/(2σ²).
func RhoOfSigma(l2, sigma float64) float64 { return l2 * l2 / (2 * sigma * sigma) }

// gaussianDraw returns one draw of N(0, sigma²) from the mechanism's Gaussian.
func (m Mechanisms) gaussianDraw(sigma float64) (float64, error) {
	if sigma == 0 {
		return 0, nil
	}
	if !(sigma > 0) || math.IsInf(sigma, 0) {
		return 0, fmt.Errorf("dp: gaussian: sigma must be > 0 and finite, got %g", sigma)
	}
	v, err := m.Gaussian.AddNoiseFloat64(0, 1, sigma/sigmaPerUnit, refEpsilon, refDelta)
	if err != nil {
		return 0, fmt.Errorf("dp: gaussian: %w", err)
	}
	return v, nil
}

// AddGaussianShares adds one party's share of distributed Gaussian noise to
// every value: N(0, σ²/t), so that the sum over any t honest parties carries
// the full σ (more contributors only add noise). The federation's parties call
// this before encrypting; nobody ever sees a value with less than σ of noise.
func (m Mechanisms) AddGaussianShares(values []float64, sigma float64, threshold int) error {
	if threshold < 1 {
		return fmt.Errorf("dp: AddGaussianShares: threshold must be ≥ 1, got %d", threshold)
	}
	share := sigma / math.Sqrt(float64(threshold))
	for i := range values {
		n, err := m.gaussianDraw(share)
		if err != nil {
			return fmt.Errorf("dp: AddGaussianShares: %w", err)
		}
		values[i] += n
	}
	return nil
}

// GaussianHistogram releases counts of disjoint cells (each customer in at
// most one cell, so the L2 sensitivity is 1) at cost rho in zCDP, and returns
// the noisy counts with the σ of each, from which callers derive intervals of
// any sum of cells (σ√k for k cells).
func (m Mechanisms) GaussianHistogram(exact []int64, rho float64) ([]float64, float64, error) {
	sigma, err := SigmaForRho(1, rho)
	if err != nil {
		return nil, 0, fmt.Errorf("dp: GaussianHistogram: %w", err)
	}
	out := make([]float64, len(exact))
	for i, c := range exact {
		n, err := m.gaussianDraw(sigma)
		if err != nil {
			return nil, 0, fmt.Errorf("dp: GaussianHistogram: %w", err)
		}
		out[i] = float64(c) + n
	}
	return out, sigma, nil
}

// NormalQuantile is z with P(|N(0,1)| ≤ z) = confidence: the half-width of a
// two-sided interval in units of σ.
func NormalQuantile(confidence float64) float64 { return math.Sqrt2 * math.Erfinv(confidence) }
