package dp

import (
	"fmt"
	"math"
	"testing"
)

// TestLimitsMatchTheLibrary calls the library's mechanisms (through Secure)
// on both sides of every limit the plan-time checks enforce: whatever a check
// accepts, the mechanism must accept (a planned query cannot fail at release),
// and for noise what the check refuses the library refuses too (the check is
// not stricter than it needs to be). Partition selection with L0 ≤ 3 accepts
// any ε > 0 while the check asks ε ≥ 2^-50, so only the first direction is
// asserted for it.
func TestLimitsMatchTheLibrary(t *testing.T) {
	t.Parallel()
	m := Secure()
	below := func(x float64) float64 { return math.Nextafter(x, 0) }
	epsilons := []float64{1, MinEpsilon, below(MinEpsilon), 1e-16, 1e-300, 0, 500, 5000}
	deltas := []float64{1e-6, 1e-300, 0x1p-1022, 1e-323, 5e-324, 0}
	for _, kind := range []NoiseKind{Laplace, Gaussian} {
		for _, eps := range epsilons {
			ds := []float64{0}
			if kind == Gaussian {
				ds = deltas
			}
			for _, delta := range ds {
				b := Budget{Epsilon: eps, Delta: delta}
				cp := CountParams{Kind: kind, L0: 4, LInf: 3, Budget: b, Confidence: 0.95}
				sp := SumParams{Kind: kind, L0: 4, RowsPerGroup: 3, Lower: 0, Upper: 50, Scale: 2, Budget: b, Confidence: 0.95}
				cases := []struct {
					name  string
					check error
					run   func() error
				}{
					{"count", cp.Check("count"), func() error { _, err := m.Count(7, cp); return err }},
					{"sum int", sp.CheckSum("sum", true), func() error { _, err := m.SumInt(700, sp); return err }},
					{"sum float", sp.CheckSum("sum", false), func() error { _, err := m.SumFloat(7, sp); return err }},
					{"mean", sp.CheckMean("mean"), func() error { _, err := m.Mean(3, 7, sp); return err }},
					{"variance", sp.CheckVariance("variance"), func() error { _, err := m.Variance(3, 9, 7, sp); return err }},
					{"quantile", sp.CheckQuantile("quantile"), func() error { _, err := m.Quantile([]float64{1, 2, 3}, 0.5, sp); return err }},
				}
				for _, c := range cases {
					if kind == Gaussian && eps >= 5000 {
						// The library's σ is 0 there and its sampler never
						// returns: the check must refuse, the library cannot be asked.
						if c.check == nil {
							t.Errorf("%s %s ε=%g δ=%g: the check accepts a ε the library hangs on", kind, c.name, eps, delta)
						}
						continue
					}
					err := c.run()
					if (c.check == nil) != (err == nil) {
						t.Errorf("%s %s ε=%g δ=%g: check says %v, the library says %v", kind, c.name, eps, delta, c.check, err)
					}
				}
			}
		}
	}
	for _, l0 := range []int64{1, 3, 4, 100} {
		for _, eps := range epsilons {
			for _, delta := range deltas {
				b := Budget{Epsilon: eps, Delta: delta}
				check := CheckSelection(l0, b)
				if l0 > 3 && eps >= 5000 { // the Gaussian threshold hangs, as above
					if check == nil {
						t.Errorf("partition selection L0=%d ε=%g δ=%g: the check accepts a ε the library hangs on", l0, eps, delta)
					}
					continue
				}
				_, err := m.KeepPartition(5, l0, eps, delta)
				if check == nil && err != nil {
					t.Errorf("partition selection L0=%d ε=%g δ=%g: the check accepts, the library refuses: %v", l0, eps, delta, err)
				}
				if l0 > 3 && check != nil && err == nil {
					t.Errorf("partition selection L0=%d ε=%g δ=%g: the check refuses (%v), the library accepts", l0, eps, delta, check)
				}
			}
		}
	}
}

func TestLimitErrorSaysTheSmallestValue(t *testing.T) {
	t.Parallel()
	err := CountParams{Kind: Laplace, L0: 1, LInf: 1, Budget: Budget{Epsilon: 1e-16}}.Check("laplace count")
	want := fmt.Sprintf("laplace count: its share of epsilon is 1e-16, below the %g the noise library accepts", MinEpsilon)
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}
