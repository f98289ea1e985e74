package dp_test

import (
	"math"
	"testing"

	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/dp/dptest"
)

// TestHEMechanismsNoNoise: through dptest.NoNoise the encrypted paths' draws
// are exact, and the scales are the library's.
func TestHEMechanismsNoNoise(t *testing.T) {
	t.Parallel()
	m := dptest.NoNoise()
	if v, b, err := m.LaplaceValue(12.5, 3, 4, 2); err != nil || v != 12.5 || b != 6 {
		t.Errorf("LaplaceValue = %g, %g, %v; want 12.5, 6, nil", v, b, err)
	}
	if v, b, err := m.LaplaceCount(7, 1, 5, 0.5); err != nil || v != 7 || b != 10 {
		t.Errorf("LaplaceCount = %d, %g, %v; want 7, 10, nil", v, b, err)
	}
	if v, err := m.GaussianShare(10, 4, 1, 1e-6); err != nil || v != 0 {
		t.Errorf("GaussianShare = %d, %v; want 0, nil", v, err)
	}
}

// TestHEMechanismsRefuseBadParameters: parameters the library would refuse,
// or that would silently release without noise, are errors.
func TestHEMechanismsRefuseBadParameters(t *testing.T) {
	t.Parallel()
	m := dp.Secure()
	for _, tt := range []struct {
		name      string
		l0        int64
		lInf, eps float64
	}{{"ε = 0", 1, 1, 0}, {"ε = +Inf", 1, 1, math.Inf(1)}, {"ε NaN", 1, 1, math.NaN()}, {"l0 = 0", 0, 1, 1}, {"l∞ = 0", 1, 0, 1}} {
		if _, _, err := m.LaplaceValue(1, tt.l0, tt.lInf, tt.eps); err == nil {
			t.Errorf("LaplaceValue with %s: no error", tt.name)
		}
	}
	if _, err := m.GaussianShare(1, 0, 1, 1e-6); err == nil {
		t.Error("GaussianShare with 0 parties: no error")
	}
	if _, err := m.GaussianShare(0, 3, 1, 1e-6); err == nil {
		t.Error("GaussianShare with sensitivity 0: no error")
	}
}

// TestGaussianSharesSumToSigma: t shares sum to the library's Gaussian σ.
// Over 2000 sums of 4 shares the sample standard deviation is within ±10% of
// √(σ² + 4/12) (the rounding of each share) with probability > 1 − 10⁻⁵
// (the sample std of n normals has relative std ≈ 1/√(2n) = 1.6%; 10% is 6.3
// of those).
func TestGaussianSharesSumToSigma(t *testing.T) {
	t.Parallel()
	m := dp.Secure()
	const n, parties = 2000, 4
	sigma := dp.GaussianSigma(20, 1, 1e-6)
	var sum, sq float64
	for range n {
		var s int64
		for range parties {
			v, err := m.GaussianShare(20, parties, 1, 1e-6)
			if err != nil {
				t.Fatal(err)
			}
			s += v
		}
		sum += float64(s)
		sq += float64(s) * float64(s)
	}
	std := math.Sqrt(sq/n - (sum/n)*(sum/n))
	if want := math.Sqrt(sigma*sigma + parties/12.0); math.Abs(std-want) > 0.1*want {
		t.Errorf("std of the summed shares = %.2f, want %.2f ± 10%%", std, want)
	}
}
