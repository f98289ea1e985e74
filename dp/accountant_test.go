package dp

import (
	"math"
	"testing"
)

// TestEpsilonOfRhoMatchesThePublishedFormula against values computed by hand:
// ρ = 0.5, δ = 1e-6: ln(1e6) = 13.815510557964274, √(0.5·13.8155…) = √6.9077552… =
// 2.6282608849…, ε = 0.5 + 2·2.6282608849… = 5.7565217698…
func TestEpsilonOfRhoMatchesThePublishedFormula(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ rho, delta, eps float64 }{
		{0.5, 1e-6, 5.7565217698},
		{0.01, 1e-5, 0.01 + 2*math.Sqrt(0.01*11.512925464970229)},
		{2, 1e-9, 2 + 2*math.Sqrt(2*20.72326583694641)},
	} {
		if got := EpsilonOfRho(tt.rho, tt.delta); math.Abs(got-tt.eps) > 1e-8 {
			t.Errorf("EpsilonOfRho(%v, %v) = %.10f, want %.10f", tt.rho, tt.delta, got, tt.eps)
		}
	}
	if got := RhoOfLaplace(0.4); math.Abs(got-0.08) > 1e-15 {
		t.Errorf("RhoOfLaplace(0.4) = %v, want 0.08", got)
	}
}

// TestAccountantProperties over random parameters (seeded, so reproducible).
func TestAccountantProperties(t *testing.T) {
	t.Parallel()
	rng := testRNG(12)
	for range 2000 {
		eps := math.Exp(rng.Float64()*8 - 5) // 0.0067 … 20
		delta := math.Pow(10, -3-rng.Float64()*9)
		// The inverse round-trips.
		if got := EpsilonOfRho(RhoForEpsilon(eps, delta), delta); math.Abs(got-eps) > 1e-9*math.Max(1, eps) {
			t.Fatalf("round trip ε=%v δ=%v gave %v", eps, delta, got)
		}
		// The Gaussian's zCDP conversion never claims more privacy than its (ε, δ).
		l0 := int64(1 + rng.IntN(10))
		linf := 0.5 + rng.Float64()*100
		if eps < 10 {
			if got := EpsilonOfRho(RhoOfGaussian(l0, linf, eps, delta), delta); got < eps*(1-1e-9) {
				t.Fatalf("Gaussian (ε=%v, δ=%v, L0=%d, L∞=%v) converts back to ε=%v < ε", eps, delta, l0, linf, got)
			}
		}
		// Monotone: more ρ costs more ε; smaller δ costs more ε.
		rho := RhoForEpsilon(eps, delta)
		if EpsilonOfRho(rho*1.1, delta) <= eps || EpsilonOfRho(rho, delta/10) <= eps {
			t.Fatalf("conversion not monotone at ρ=%v δ=%v", rho, delta)
		}
	}
}

// TestZCDPComposesTighterForManyGaussians: 100 Gaussian releases at ε=0.1, δ=1e-7
// each cost ε=10 (and δ=1e-5) under basic composition; under zCDP their summed ρ
// converts at δ=1e-5 to a much smaller ε. This is why the ledger will offer it.
func TestZCDPComposesTighterForManyGaussians(t *testing.T) {
	t.Parallel()
	rho := 0.0
	for range 100 {
		rho += RhoOfGaussian(1, 1, 0.1, 1e-7)
	}
	if eps := EpsilonOfRho(rho, 1e-5); eps >= 10 {
		t.Errorf("zCDP total ε = %v, not tighter than basic composition's 10", eps)
	} else {
		t.Logf("100 Gaussians at (0.1, 1e-7): basic composition ε = 10, zCDP ε = %.2f at δ = 1e-5", eps)
	}
}

// testRNG is a splitmix64 stream: reproducible test parameters from a
// generator of our own, as no file here may import the standard PRNG package.
type testRNG uint64

func (r *testRNG) next() uint64 {
	*r += 0x9e3779b97f4a7c15
	x := uint64(*r)
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (r *testRNG) Float64() float64 { return float64(r.next()>>11) / (1 << 53) }
func (r *testRNG) IntN(n int) int   { return int(r.next() % uint64(n)) }
