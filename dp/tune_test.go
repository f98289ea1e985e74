package dp

import (
	"math"
	"testing"
)

// The typical error against closed forms: without bias the median of |N| is
// Φ⁻¹(¾)·σ = 0.6745σ for Gaussian noise and ln 2 · sd/√2 = 0.4901·sd for
// Laplace noise; a bias far above the noise is the typical error itself; and
// more bias never makes the typical error smaller.
func TestMedianAbsError(t *testing.T) {
	for _, tc := range []struct {
		kind     NoiseKind
		sd, bias float64
		want     float64
	}{
		{Gaussian, 1, 0, 0.6744897501960817},
		{Gaussian, 3, 0, 3 * 0.6744897501960817},
		{Laplace, 1, 0, math.Ln2 / math.Sqrt2},
		{Laplace, 10, 0, 10 * math.Ln2 / math.Sqrt2},
		{Gaussian, 1, 1000, 1000},
		{Laplace, 1, -1000, 1000},
		{Laplace, 0, 5, 5},
	} {
		if got := MedianAbsError(tc.kind, tc.sd, tc.bias); math.Abs(got-tc.want) > 1e-6*math.Max(1, tc.want) {
			t.Errorf("MedianAbsError(%s, sd %g, bias %g) = %.9g, want %.9g", tc.kind, tc.sd, tc.bias, got, tc.want)
		}
	}
	for _, kind := range []NoiseKind{Laplace, Gaussian} {
		prev := 0.0
		for b := 0.0; b <= 5; b += 0.25 {
			got := MedianAbsError(kind, 1, b)
			if got < prev-1e-12 || got < b*0.99 && b > 3 {
				t.Errorf("%s: bias %g gives %g after %g", kind, b, got, prev)
			}
			prev = got
		}
	}
}
