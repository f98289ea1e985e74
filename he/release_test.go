package he

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"

	"github.com/privalytics/privalytics"
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
	b := 500.0 * 2 / 1 // l0 = 1 value, l∞ = 2 rows × 500
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
