package he

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp/dptest"
)

// TestStatistics: the owner-side finishing of mean, variance, covariance and
// regression from decrypted CKKS aggregates matches the plaintext statistics.
func TestStatistics(t *testing.T) {
	t.Parallel()
	p := testInsecureCKKS
	fx := keysFor(t, p)
	const n = 3000
	x := uniformInts(t, n, 0, 100)
	e := uniformInts(t, n, -5, 5)
	y := make([]float64, n)
	for i := range y {
		y[i] = 3 + 2*x[i] + e[i]
	}
	var buf bytes.Buffer
	spec := TableSpec{Preset: p, Columns: []ColumnSpec{{Name: "x", Kind: KindValue, Min: 0, Max: 100}, {Name: "y", Kind: KindValue, Min: -2, Max: 208}}}
	if err := EncryptTable(context.Background(), &buf, fx.keys.Public, spec, [][]float64{x, y}); err != nil {
		t.Fatal(err)
	}
	tab, err := ReadTable(&buf)
	if err != nil {
		t.Fatal(err)
	}
	proc, _ := NewProcessor(fx.evk)
	dec, _ := NewDecryptor(fx.keys)
	run := func(job Job) *Plain {
		res, err := proc.Run(context.Background(), tab, job)
		if err != nil {
			t.Fatal(err)
		}
		pl, err := dec.Decrypt(res)
		if err != nil {
			t.Fatal(err)
		}
		return pl
	}
	mx, vx := meanVar(x)
	my, _ := meanVar(y)
	cov := 0.0
	for i := range x {
		cov += (x[i] - mx) * (y[i] - my)
	}
	cov /= n

	m, err := run(Job{Op: OpMean, Column: "x"}).Mean()
	if err != nil || math.Abs(m-mx) > 1e-3 {
		t.Errorf("Mean = %g, %v; want %g", m, err, mx)
	}
	v, err := run(Job{Op: OpVariance, Column: "x"}).Variance()
	if err != nil || math.Abs(v-vx) > 1e-2 {
		t.Errorf("Variance = %g, %v; want %g", v, err, vx)
	}
	c, err := run(Job{Op: OpCovariance, Columns: []string{"x", "y"}}).Covariance()
	if err != nil || math.Abs(c[0][1]-cov) > 1e-2 || math.Abs(c[1][0]-cov) > 1e-2 {
		t.Errorf("Covariance = %v, %v; want off-diagonal %g", c, err, cov)
	}
	beta, err := run(Job{Op: OpRegression, Columns: []string{"x"}, Target: "y"}).Regression()
	if err != nil || len(beta) != 2 || math.Abs(beta[0]-3) > 0.5 || math.Abs(beta[1]-2) > 0.01 {
		t.Errorf("Regression = %v, %v; want ≈ [3 2]", beta, err)
	}
}

func meanVar(x []float64) (float64, float64) {
	m, v := 0.0, 0.0
	for _, a := range x {
		m += a
	}
	m /= float64(len(x))
	for _, a := range x {
		v += (a - m) * (a - m)
	}
	return m, v / float64(len(x))
}

// TestRelease: the DP noise has the Laplace scale the declared bounds imply.
// Over 400 releases the sample standard deviation of a Laplace is within
// ±25% of √2·b with probability > 1 − 10⁻⁴.
func TestRelease(t *testing.T) {
	t.Parallel()
	h := TableHeader{Rows: 1000, Columns: []ColumnSpec{{Name: "amount", Kind: KindValue, Min: -50, Max: 500}}}
	pl := &Plain{Job: Job{Op: OpSum, Column: "amount"}, Header: h, Values: []Value{{Name: "sum(amount)", Value: 12345, Exact: true}}}
	opts := ReleaseOptions{Epsilon: 1, RowsPerSubject: 2}
	b := 2 * 500.0 * 2 / 1 // l0 = 1 value + the row count, l∞ = 2 rows × 500
	var sum, sq float64
	const trials = 400
	for range trials {
		out, err := Release(pl, opts)
		if err != nil {
			t.Fatal(err)
		}
		d := out.Values[0].Value - 12345
		sum += d
		sq += d * d
	}
	std := math.Sqrt(sq/trials - (sum/trials)*(sum/trials))
	if want := math.Sqrt2 * b; math.Abs(std-want) > 0.25*want {
		t.Errorf("noise std = %.1f, want %.1f ± 25%%", std, want)
	}
	for _, bad := range []ReleaseOptions{{Epsilon: 0, RowsPerSubject: 1}, {Epsilon: math.Inf(1), RowsPerSubject: 1}, {Epsilon: 1}} {
		if _, err := Release(pl, bad); privalytics.ErrorCode(err) != privalytics.EINVALID {
			t.Errorf("Release(%+v): %v, want %s", bad, err, privalytics.EINVALID)
		}
	}
	if s := pl.String(); !strings.Contains(s, "sum(amount) = 12345") {
		t.Errorf("String() = %q", s)
	}
}

// TestReleaseNoNoise: under dptest.NoNoise the release is the exact result,
// the scales are those the bounds and the enforced cap imply, and the cap in
// the table header wins over a declared one that differs.
func TestReleaseNoNoise(t *testing.T) {
	t.Parallel()
	none := dptest.NoNoise()
	h := TableHeader{Rows: 1000, RowsPerSubject: 3, Columns: []ColumnSpec{{Name: "amount", Kind: KindValue, Min: 0, Max: 40}}}
	pl := &Plain{Job: Job{Op: OpMean, Column: "amount"}, Header: h, Values: []Value{{Name: "sum(amount)", Value: 20000, Exact: true}}}
	out, err := Release(pl, ReleaseOptions{Epsilon: 2, Noise: &none})
	if err != nil {
		t.Fatal(err)
	}
	if out.Header.Rows != 1000 || out.Values[0].Value != 20000 {
		t.Fatalf("rows %d, sum %g; want the exact 1000 and 20000", out.Header.Rows, out.Values[0].Value)
	}
	if m, _ := out.Mean(); m != 20 {
		t.Errorf("mean = %g, want 20", m)
	}
	// l0 = 2 (the sum and the row count), l∞ = 3 rows × 40 for the sum, 3 for the count.
	if got, want := out.Values[0].LaplaceScale, 2*3*40/2.0; got != want {
		t.Errorf("sum scale = %g, want %g", got, want)
	}
	if got, want := out.RowsLaplaceScale, 2*3/2.0; got != want {
		t.Errorf("row count scale = %g, want %g", got, want)
	}
	if _, err := Release(pl, ReleaseOptions{Epsilon: 2, RowsPerSubject: 1, Noise: &none}); privalytics.ErrorCode(err) != privalytics.EINVALID || !strings.Contains(err.Error(), "at most 3 row(s)") {
		t.Errorf("a declared cap below the enforced one: %v, want %s naming the enforced cap", err, privalytics.EINVALID)
	}
	if _, err := Release(pl, ReleaseOptions{Epsilon: 2, RowsPerSubject: 3, Noise: &none}); err != nil {
		t.Errorf("the declared cap equal to the enforced one: %v", err)
	}
	old := &Plain{Job: Job{Op: OpCount}, Header: TableHeader{Rows: 10, Columns: h.Columns}}
	if _, err := Release(old, ReleaseOptions{Epsilon: 1, Noise: &none}); privalytics.ErrorCode(err) != privalytics.EINVALID || !strings.Contains(err.Error(), "--rows-per-subject") {
		t.Errorf("a table without a cap and no declared one: %v, want %s asking for --rows-per-subject", err, privalytics.EINVALID)
	}
}

// TestReleaseCountIsNoisy: the row count of a count job is released with the
// library's secure Laplace noise, never exactly. One customer has at most 5
// rows and ε = 1, so the count's noise has scale b = 5 (l0 = 1: no other
// value). Over 400 releases the sample standard deviation is within ±25% of
// √2·b with probability > 1 − 10⁻⁴ (as in TestRelease), and all 400 equal to
// the exact count has probability < 0.1^400.
func TestReleaseCountIsNoisy(t *testing.T) {
	t.Parallel()
	h := TableHeader{Rows: 5000, RowsPerSubject: 5, Columns: []ColumnSpec{{Name: "amount", Kind: KindValue, Min: 0, Max: 40}}}
	pl := &Plain{Job: Job{Op: OpCount}, Header: h}
	const trials = 400
	var sum, sq float64
	exact := 0
	for range trials {
		out, err := Release(pl, ReleaseOptions{Epsilon: 1})
		if err != nil {
			t.Fatal(err)
		}
		c, err := out.Count()
		if err != nil {
			t.Fatal(err)
		}
		d := c - 5000
		if d == 0 {
			exact++
		}
		sum += d
		sq += d * d
	}
	if exact == trials {
		t.Fatal("every released count was exact")
	}
	std := math.Sqrt(sq/trials - (sum/trials)*(sum/trials))
	if want := math.Sqrt2 * 5; math.Abs(std-want) > 0.25*want {
		t.Errorf("count noise std = %.2f, want %.2f ± 25%%", std, want)
	}
}
