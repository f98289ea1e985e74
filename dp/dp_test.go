package dp

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/differential-privacy/go/v3/noise"
)

// TestSplitComposes: under basic composition the parts add up to the query's
// total, exactly as documented, in every mode.
func TestSplitComposes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		weights   []float64
		selection bool
		kind      NoiseKind
		sel       Budget
	}{
		{[]float64{1, 1}, false, Laplace, Budget{}},
		{[]float64{1, 3}, true, Laplace, Budget{Epsilon: 1.0 / 3, Delta: 1e-6}},
		{[]float64{2}, true, Gaussian, Budget{Epsilon: 0.5, Delta: 5e-7}},
		{[]float64{1, 1, 1}, false, Gaussian, Budget{}},
	} {
		total := Budget{Epsilon: 1, Delta: 1e-6}
		aggs, sel := Split(total, tt.weights, tt.selection, tt.kind)
		eps, delta := sel.Epsilon, sel.Delta
		for _, a := range aggs {
			eps += a.Epsilon
			delta += a.Delta
		}
		if math.Abs(eps-1) > 1e-12 {
			t.Errorf("%+v: ε parts add to %v, want 1", tt, eps)
		}
		wantDelta := 0.0
		if tt.selection || tt.kind == Gaussian {
			wantDelta = 1e-6
		}
		if math.Abs(delta-wantDelta) > 1e-18 {
			t.Errorf("%+v: δ parts add to %v, want %v", tt, delta, wantDelta)
		}
		if math.Abs(sel.Epsilon-tt.sel.Epsilon) > 1e-12 || sel.Delta != tt.sel.Delta {
			t.Errorf("%+v: selection got %+v, want %+v", tt, sel, tt.sel)
		}
		if len(tt.weights) == 2 && tt.weights[1] == 3 && math.Abs(aggs[1].Epsilon-3*aggs[0].Epsilon) > 1e-12 {
			t.Errorf("weights 1:3 gave %v and %v", aggs[0].Epsilon, aggs[1].Epsilon)
		}
	}
}

// recorder is a noise.Noise that records the sensitivities it is asked for.
type recorder struct {
	l0       int64
	linf     float64
	eps, del float64
}

func (r *recorder) AddNoiseInt64(x, l0, linf int64, eps, del float64) (int64, error) {
	r.l0, r.linf, r.eps, r.del = l0, float64(linf), eps, del
	return x, nil
}
func (r *recorder) AddNoiseFloat64(x float64, l0 int64, linf, eps, del float64) (float64, error) {
	r.l0, r.linf, r.eps, r.del = l0, linf, eps, del
	return x, nil
}
func (r *recorder) Threshold(int64, float64, float64, float64, float64) (float64, error) {
	return 0, nil
}
func (r *recorder) ComputeConfidenceIntervalInt64(x, _, _ int64, _, _, _ float64) (noise.ConfidenceInterval, error) {
	return noise.ConfidenceInterval{LowerBound: float64(x) - 1, UpperBound: float64(x) + 1}, nil
}
func (r *recorder) ComputeConfidenceIntervalFloat64(x float64, _ int64, _, _, _, _ float64) (noise.ConfidenceInterval, error) {
	return noise.ConfidenceInterval{LowerBound: x - 1, UpperBound: x + 1}, nil
}

// TestSensitivities: the L∞ passed to the noise is the documented one.
func TestSensitivities(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	m := Mechanisms{Laplace: r, Gaussian: r}
	b := Budget{Epsilon: 0.5}
	m.Count(10, CountParams{L0: 3, LInf: 7, Budget: b, Confidence: 0.95})
	if r.l0 != 3 || r.linf != 7 || r.eps != 0.5 {
		t.Errorf("count: l0 %d linf %v eps %v", r.l0, r.linf, r.eps)
	}
	// Sum of decimals with scale 3 in [−2, 5], 4 rows per group: L∞ = 4 × 5000 units.
	c, _ := m.SumInt(12345, SumParams{L0: 2, RowsPerGroup: 4, Lower: -2, Upper: 5, Scale: 3, Budget: b, Confidence: 0.95})
	if r.linf != 20000 || r.l0 != 2 || c.Value != 12.345 {
		t.Errorf("sum: linf %v l0 %d value %v", r.linf, r.l0, c.Value)
	}
	// A non-negative sum is clamped at zero after noise (post-processing).
	c, _ = m.SumInt(-5, SumParams{L0: 1, RowsPerGroup: 1, Lower: 0, Upper: 1, Scale: 0, Budget: b, Confidence: 0.95})
	if c.Value != 0 || c.Lower != 0 {
		t.Errorf("non-negative sum released as %+v", c)
	}
	// Mean: half the budget each for count and the sum around the midpoint.
	c, _ = m.Mean(10*2.5, 10, SumParams{L0: 1, RowsPerGroup: 2, Lower: 0, Upper: 10, Budget: Budget{Epsilon: 1}, Confidence: 0.95})
	if r.eps != 0.5 || r.linf != 10 || math.Abs(c.Value-7.5) > 1e-12 {
		t.Errorf("mean: eps %v linf %v value %v (want 0.5, 2×5, 7.5)", r.eps, r.linf, c.Value)
	}
	if c.Lower > c.Value || c.Upper < c.Value || c.Lower < 0 || c.Upper > 10 {
		t.Errorf("mean interval %+v must hold the value and stay in the bounds", c)
	}
}

// TestNoMathRandInPrivacyCode: noise must come from the DP library's secure
// samplers; a stray import of the standard PRNG package anywhere in dp/ or
// analytics/ (tests included) fails this test.
func TestNoMathRandInPrivacyCode(t *testing.T) {
	t.Parallel()
	// Test files too: the CI check greps whole folders.
	for _, dir := range []string{".", "dptest", "../analytics"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		if len(files) == 0 {
			t.Errorf("no Go files in %s: the check would pass vacuously", dir)
		}
		for _, f := range files {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if pkg := `"math/` + `rand`; strings.Contains(string(src), pkg) { // split, so this file passes its own check
				t.Errorf("%s imports %s\"", f, pkg)
			}
		}
	}
}

// A noisy count or non-negative sum is never released with the zero-width
// interval [0, 0]: it would read as an exact zero (issue 17).
func TestAtLeastZeroKeepsAnHonestInterval(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want Cell }{
		{Cell{Value: 5, Lower: 2, Upper: 8}, Cell{Value: 5, Lower: 2, Upper: 8, NonNegative: true}},
		{Cell{Value: -1, Lower: -4, Upper: 2}, Cell{Value: 0, Lower: 0, Upper: 2, NonNegative: true}},
		{Cell{Value: -20, Lower: -30, Upper: -10}, Cell{Value: 0, Lower: 0, Upper: 20, NonNegative: true}},
		{Cell{Value: 0, Lower: 0, Upper: 0}, Cell{Value: 0, Lower: 0, Upper: 0, NonNegative: true}}, // no noise: exact
	} {
		if got := atLeastZero(tt.in); got != tt.want {
			t.Errorf("atLeastZero(%+v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	// Through the mechanism: a count of 0 with little budget often lands far
	// below zero; none of 2,000 releases may be [0, 0].
	m := Secure()
	for i := range 2000 {
		c, err := m.Count(0, CountParams{Kind: Laplace, L0: 1, LInf: 1, Budget: Budget{Epsilon: 0.1}, Confidence: 0.95})
		if err != nil {
			t.Fatal(err)
		}
		if c.Upper <= c.Lower {
			t.Fatalf("release %d: %+v has a zero-width interval", i, c)
		}
	}
}
