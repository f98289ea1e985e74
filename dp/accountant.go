package dp

import (
	"math"

	"github.com/google/differential-privacy/go/v3/noise"
)

// zCDP accounting (Bun and Steinke, "Concentrated Differential Privacy:
// Simplifications, Extensions, and Lower Bounds", TCC 2016). ρ-zCDP composes by
// adding ρ, which for many Gaussian releases is much tighter than adding ε's.
// The ledger does not use it yet; these are the conversions it will use.

// RhoOfLaplace is the ρ of an ε-DP mechanism: pure ε-DP implies (ε²/2)-zCDP
// (Proposition 1.4).
func RhoOfLaplace(epsilon float64) float64 { return epsilon * epsilon / 2 }

// RhoOfGaussian is the ρ of the library's Gaussian mechanism calibrated for
// (ε, δ) with the given sensitivities: σ is the library's, the L2 sensitivity is
// √L0·L∞, and a Gaussian with L2 sensitivity Δ and scale σ is (Δ²/2σ²)-zCDP
// (Proposition 1.6).
func RhoOfGaussian(l0 int64, lInf, epsilon, delta float64) float64 {
	sigma := noise.SigmaForGaussian(l0, lInf, epsilon, delta)
	l2 := math.Sqrt(float64(l0)) * lInf
	return l2 * l2 / (2 * sigma * sigma)
}

// EpsilonOfRho converts ρ-zCDP to (ε, δ)-DP: ε = ρ + 2√(ρ·ln(1/δ)) (Proposition 1.3).
func EpsilonOfRho(rho, delta float64) float64 {
	return rho + 2*math.Sqrt(rho*math.Log(1/delta))
}

// RhoForEpsilon is the largest ρ whose conversion at δ is at most ε: the inverse
// of EpsilonOfRho, ρ = (√(ln(1/δ) + ε) − √ln(1/δ))².
func RhoForEpsilon(epsilon, delta float64) float64 {
	l := math.Log(1 / delta)
	r := math.Sqrt(l+epsilon) - math.Sqrt(l)
	return r * r
}
