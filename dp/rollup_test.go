package dp

import (
	"math"
	"testing"
)

func TestLaplaceSumTail(t *testing.T) {
	for _, x := range []float64{0, 0.3, 1, 2.5, 7, 20} {
		// Closed forms: one Laplace(1), and two (density (1+|x|)e^−|x|/4).
		if got, want := laplaceSumTail(1, x), math.Exp(-x)/2; math.Abs(got-want) > 1e-12 {
			t.Errorf("k=1, x=%g: P(S>x) = %g, want %g", x, got, want)
		}
		if got, want := laplaceSumTail(2, x), math.Exp(-x)*(x+2)/4; math.Abs(got-want) > 1e-12 {
			t.Errorf("k=2, x=%g: P(S>x) = %g, want %g", x, got, want)
		}
	}
	// One Laplace: P(|S| > x) = e^−x, so the 5% quantile is ln 20.
	if got, want := laplaceSumQuantile(1, 0.05), math.Log(20); math.Abs(got-want) > 1e-9 {
		t.Errorf("k=1 quantile %g, want ln 20 = %g", got, want)
	}
	// Many: the normal's quantile of variance 2k, approached from above
	// (Laplace sums have heavier tails), within 1% at k = 1,000.
	for _, k := range []int{10, 100, 1000} {
		got, normal := laplaceSumQuantile(k, 0.05), 1.959964*math.Sqrt(2*float64(k))
		if got < normal || (k == 1000 && got > 1.01*normal) {
			t.Errorf("k=%d: quantile %g against the normal's %g", k, got, normal)
		}
	}
	// The bound is never below the exact quantile.
	for _, k := range []int{1, 3, 12, 40} {
		b := make([]float64, k)
		for i := range b {
			b[i] = 1
		}
		if exact, bound := laplaceSumQuantile(k, 0.05), chernoffHalfWidth(b, 0, 0.05); bound < exact || bound > 2.2*exact {
			t.Errorf("k=%d: Chernoff bound %g against the exact %g", k, bound, exact)
		}
	}
}

func TestSumCells(t *testing.T) {
	g := func(raw, sd float64) Cell {
		return Cell{Value: raw, Raw: raw, Spread: Spread{Kind: Gaussian, Scale: sd}}
	}
	got, err := SumCells([]Cell{g(10, 2), g(-3, 2), g(5, 2)}, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	if half := 1.959964 * 2 * math.Sqrt(3); got.Value != 12 || math.Abs(got.Upper-12-half) > 1e-4 || math.Abs(12-got.Lower-half) > 1e-4 {
		t.Errorf("Gaussian sum %+v, want 12 ± %g", got, half)
	}
	// Clamped cells: the sum uses their raw values and is clamped in turn.
	c1, c2 := atLeastZero(g(-4, 1)), atLeastZero(g(1, 1))
	got, _ = SumCells([]Cell{c1, c2}, 0.95)
	if got.Value != 0 || got.Lower != 0 || !got.NonNegative || got.Raw != -3 {
		t.Errorf("sum of clamped cells %+v, want value 0 from raw −3", got)
	}
	// A mean does not add up.
	if _, err := SumCells([]Cell{g(1, 1), {Value: 3}}, 0.95); err == nil {
		t.Error("a cell without a spread was summed")
	}
}

// TestSumCellsCover draws sums of the library's secure Laplace and Gaussian
// noise and counts how often SumCells' 90% interval misses the true sum: 10%
// (exact for one kind), at most that for a mix (the Chernoff bound).
func TestSumCellsCover(t *testing.T) {
	const runs = 4000
	cases := []struct {
		name  string
		kinds []NoiseKind
		exact bool
	}{
		{"5 Laplace", []NoiseKind{Laplace, Laplace, Laplace, Laplace, Laplace}, true},
		{"3 Gaussian", []NoiseKind{Gaussian, Gaussian, Gaussian}, true},
		{"Laplace and Gaussian", []NoiseKind{Laplace, Gaussian}, false},
	}
	m := Secure()
	for _, tc := range cases {
		miss := 0
		for range runs {
			cells := make([]Cell, len(tc.kinds))
			truth := 0.0
			for i, k := range tc.kinds {
				v := float64(10 * i)
				truth += v
				b := Budget{Epsilon: 1, Delta: 1e-5}
				var noisy float64
				var err error
				if k == Gaussian {
					noisy, err = m.Gaussian.AddNoiseFloat64(v, 1, 3, b.Epsilon, b.Delta)
				} else {
					noisy, err = m.Laplace.AddNoiseFloat64(v, 1, 3, b.Epsilon, 0)
				}
				if err != nil {
					t.Fatal(err)
				}
				cells[i] = Cell{Value: noisy, Raw: noisy, Spread: spreadOf(k, 1, 3, b)}
			}
			s, err := SumCells(cells, 0.9)
			if err != nil {
				t.Fatal(err)
			}
			if truth < s.Lower || truth > s.Upper {
				miss++
			}
		}
		rate := float64(miss) / runs
		// 10% ± 4.5 standard errors (0.47%) of 4,000 draws.
		if rate > 0.121 || (tc.exact && rate < 0.079) {
			t.Errorf("%s: the 90%% interval missed %.1f%% of %d sums", tc.name, 100*rate, runs)
		}
	}
}

// TestSumHalfWidth: explain's prediction of a subtotal's half-width is what
// SumCells gives the same cells, reading the noise scale back from a cell's
// half-width.
func TestSumHalfWidth(t *testing.T) {
	for _, kind := range []NoiseKind{Laplace, Gaussian} {
		sp := spreadOf(kind, 2, 30, Budget{Epsilon: 0.5, Delta: 1e-6})
		cell := Cell{Raw: 100, Value: 100, Spread: sp}
		one, err := SumCells([]Cell{cell}, 0.95)
		if err != nil {
			t.Fatal(err)
		}
		cellHalf := one.Upper - one.Value
		for _, k := range []int{1, 3, 12, 36} {
			cells := make([]Cell, k)
			for i := range cells {
				cells[i] = cell
			}
			got, err := SumCells(cells, 0.95)
			if err != nil {
				t.Fatal(err)
			}
			want := got.Upper - got.Value
			if pred := SumHalfWidth(kind, cellHalf, k, 0.95); math.Abs(pred-want) > 1e-9*want {
				t.Errorf("%s, %d cells: predicted ± %g, SumCells gives ± %g", kind, k, pred, want)
			}
		}
	}
}
