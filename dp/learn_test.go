package dp_test

import (
	"math"
	"testing"

	"github.com/privalytics/privalytics/dp"
)

// TestAddGaussianSharesSumToSigma checks that t shares add up to a Gaussian of
// the full σ. With n = 4000 sums the sample standard deviation has a relative
// standard error of 1/√(2n) ≈ 1.1%; the 6% tolerance is over 5 standard errors
// (false-failure probability below 1e-6).
func TestAddGaussianSharesSumToSigma(t *testing.T) {
	t.Parallel()
	const n, threshold, sigma = 4000, 4, 3.0
	m := dp.Secure()
	var ss float64
	for range n {
		vals := make([]float64, threshold)
		if err := m.AddGaussianShares(vals, sigma, threshold); err != nil {
			t.Fatal(err)
		}
		s := 0.0
		for _, v := range vals {
			s += v
		}
		ss += s * s
	}
	got := math.Sqrt(ss / n)
	if math.Abs(got/sigma-1) > 0.06 {
		t.Fatalf("sum of %d shares has std %.3f, want %.3f ± 6%%", threshold, got, sigma)
	}
}

func TestSigmaForRhoRoundTrips(t *testing.T) {
	t.Parallel()
	s, err := dp.SigmaForRho(2, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	if got := dp.RhoOfSigma(2, s); math.Abs(got-0.05) > 1e-12 {
		t.Fatalf("RhoOfSigma(SigmaForRho(ρ=0.05)) = %g", got)
	}
	if _, err := dp.SigmaForRho(1, 0); err == nil {
		t.Fatal("rho 0 accepted")
	}
}
