package he

import (
	"fmt"
	"math"
	"strings"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

// ReleaseOptions says how much privacy a release spends.
type ReleaseOptions struct {
	// Epsilon is spent on the whole result, split evenly across its values and
	// the row count by the Laplace mechanism's l0 sensitivity (one customer can
	// move every value and the count).
	Epsilon float64
	// RowsPerSubject is the most rows one customer contributes to the table.
	// Tables encrypted with a subject column carry the cap that encryption
	// enforced (TableHeader.RowsPerSubject); that value is used and this one
	// must be 0 or equal to it. Only for older tables without it is this
	// declared value used, and trusted.
	RowsPerSubject int
	// Noise draws the DP noise. Nil means dp.Secure(), the only choice outside
	// tests; tests pass dptest.NoNoise() to check exact arithmetic.
	Noise *dp.Mechanisms
}

// rowsPerSubject is the cap the release sizes its noise for.
func (o ReleaseOptions) rowsPerSubject(h *TableHeader) (int, error) {
	switch {
	case h.RowsPerSubject > 0 && o.RowsPerSubject != 0 && o.RowsPerSubject != h.RowsPerSubject:
		return 0, privalytics.Errorf(privalytics.EINVALID, "he: the table was encrypted with at most %d row(s) per customer; drop --rows-per-subject %d (the enforced cap is used)", h.RowsPerSubject, o.RowsPerSubject)
	case h.RowsPerSubject > 0:
		return h.RowsPerSubject, nil
	case o.RowsPerSubject < 1:
		return 0, privalytics.Errorf(privalytics.EINVALID, "he: this table does not record rows per customer (encrypted without --subject); declare the most rows one customer has with --rows-per-subject N (≥ 1), or encrypt again with --subject COLUMN --rows-per-subject N")
	}
	return o.RowsPerSubject, nil
}

// Release adds Laplace noise (through dp/, the DP library's secure sampler) to
// every value of a decrypted result and to its row count. Sensitivities come
// from the declared bounds: one customer changes Σ a·b by at most
// RowsPerSubject·max|a|·max|b| and the row count by RowsPerSubject. The row
// count is released noisy too (it is the count of a count job without a
// column and the denominator of means): the owner publishes the release, and
// an exact count would tell whether one customer is in the table. Exact (BGV)
// values get integer noise. Charging the privacy budget (he.ReleaseLedger) is
// the caller's job, before release.
func Release(p *Plain, opts ReleaseOptions) (*Plain, error) {
	if !(opts.Epsilon > 0) || math.IsInf(opts.Epsilon, 0) {
		return nil, privalytics.Errorf(privalytics.EINVALID, "he: epsilon must be > 0 and finite, got %g", opts.Epsilon)
	}
	rps, err := opts.rowsPerSubject(&p.Header)
	if err != nil {
		return nil, err
	}
	m := dp.Secure()
	if opts.Noise != nil {
		m = *opts.Noise
	}
	terms, err := p.Job.terms(&p.Header)
	if err != nil {
		return nil, err
	}
	if len(terms) != len(p.Values) {
		return nil, privalytics.Errorf(privalytics.EINVALID, "he: the result has %d values, its job %d", len(p.Values), len(terms))
	}
	l0 := int64(len(terms)) + 1 // every value and the row count
	out := &Plain{Job: p.Job, Header: p.Header, Values: make([]Value, len(p.Values))}
	rows, scale, err := m.LaplaceCount(p.Header.Rows, l0, int64(rps), opts.Epsilon)
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINVALID, "he: release the row count: %v", err)
	}
	// At least one row: post-processing that keeps means defined.
	out.Header.Rows, out.RowsLaplaceScale = max(1, rows), scale
	for i, tm := range terms {
		sens := p.Header.Columns[tm.a].absBound()
		if tm.b >= 0 {
			sens *= p.Header.Columns[tm.b].absBound()
		}
		sens *= float64(rps)
		v := p.Values[i]
		if sens > 0 {
			if v.Value, v.LaplaceScale, err = releaseValue(m, v, l0, sens, opts.Epsilon); err != nil {
				return nil, privalytics.Errorf(privalytics.EINVALID, "he: release %s: %v", tm.name, err)
			}
		}
		v.Exact = false
		out.Values[i] = v
	}
	return out, nil
}

// releaseValue adds integer noise to an exact integer value with an integer
// sensitivity, and float noise otherwise.
func releaseValue(m dp.Mechanisms, v Value, l0 int64, sens, epsilon float64) (float64, float64, error) {
	if v.Exact && sens == math.Trunc(sens) && sens < 1<<53 && math.Abs(v.Value) < 1<<53 {
		n, scale, err := m.LaplaceCount(int64(v.Value), l0, int64(sens), epsilon)
		return float64(n), scale, err
	}
	return m.LaplaceValue(v.Value, l0, sens, epsilon)
}

// Get returns the value with the given output name, e.g. "sum(amount)".
func (p *Plain) Get(name string) (float64, bool) {
	for _, v := range p.Values {
		if v.Name == name {
			return v.Value, true
		}
	}
	return 0, false
}

func (p *Plain) must(name string) (float64, error) {
	v, ok := p.Get(name)
	if !ok {
		return 0, privalytics.Errorf(privalytics.EINVALID, "he: the result of %s has no %s", p.Job.Op, name)
	}
	return v, nil
}

// Count is the result of a count: Σ indicator, or the public row count when
// the job named no column.
func (p *Plain) Count() (float64, error) {
	if p.Job.Column == "" {
		return float64(p.Header.Rows), nil
	}
	return p.must("sum(" + p.Job.Column + ")")
}

// Mean is Σx / rows for mean and variance results.
func (p *Plain) Mean() (float64, error) {
	s, err := p.must("sum(" + p.Job.Column + ")")
	if err != nil {
		return 0, err
	}
	return s / float64(p.Header.Rows), nil
}

// Variance is the population variance Σx²/n − (Σx/n)² of a variance result.
func (p *Plain) Variance() (float64, error) {
	m, err := p.Mean()
	if err != nil {
		return 0, err
	}
	sq, err := p.must("sumsq(" + p.Job.Column + ")")
	if err != nil {
		return 0, err
	}
	return sq/float64(p.Header.Rows) - m*m, nil
}

// Covariance is the population covariance matrix of a covariance result, in
// the order of Job.Columns.
func (p *Plain) Covariance() ([][]float64, error) {
	if p.Job.Op != OpCovariance {
		return nil, privalytics.Errorf(privalytics.EINVALID, "he: covariance needs a covariance result, got %s", p.Job.Op)
	}
	return p.moments(p.Job.Columns, true)
}

// moments returns Σxᵢxⱼ/n, centred when centre is set.
func (p *Plain) moments(cols []string, centre bool) ([][]float64, error) {
	n := float64(p.Header.Rows)
	mean := make([]float64, len(cols))
	for i, c := range cols {
		s, err := p.must("sum(" + c + ")")
		if err != nil {
			return nil, err
		}
		mean[i] = s / n
	}
	out := make([][]float64, len(cols))
	for i := range out {
		out[i] = make([]float64, len(cols))
	}
	for i, a := range cols {
		for j := i; j < len(cols); j++ {
			name := "sum(" + a + "*" + cols[j] + ")"
			if i == j {
				name = "sumsq(" + a + ")"
			}
			s, err := p.must(name)
			if err != nil {
				return nil, err
			}
			v := s / n
			if centre {
				v -= mean[i] * mean[j]
			}
			out[i][j], out[j][i] = v, v
		}
	}
	return out, nil
}

// Regression solves the normal equations (XᵀX)β = Xᵀy of a regression result
// and returns β: the intercept first, then one coefficient per regressor.
func (p *Plain) Regression() ([]float64, error) {
	if p.Job.Op != OpRegression {
		return nil, privalytics.Errorf(privalytics.EINVALID, "he: regression needs a regression result, got %s", p.Job.Op)
	}
	k := len(p.Job.Columns)
	n := float64(p.Header.Rows)
	// Augmented matrix [XᵀX | Xᵀy] with the intercept column of ones first.
	cols := append(append([]string{}, p.Job.Columns...), p.Job.Target)
	m, err := p.moments(cols, false) // Σ/n of products
	if err != nil {
		return nil, err
	}
	a := make([][]float64, k+1)
	for i := range a {
		a[i] = make([]float64, k+2)
	}
	a[0][0] = 1
	for i, c := range cols {
		s, _ := p.Get("sum(" + c + ")")
		if i < k {
			a[0][i+1], a[i+1][0] = s/n, s/n
		} else {
			a[0][k+1] = s / n
		}
	}
	for i := 0; i < k; i++ {
		for j := 0; j < k; j++ {
			a[i+1][j+1] = m[i][j]
		}
		a[i+1][k+1] = m[i][k]
	}
	return solve(a)
}

// solve runs Gaussian elimination with partial pivoting on an augmented matrix.
func solve(a [][]float64) ([]float64, error) {
	n := len(a)
	for col := 0; col < n; col++ {
		piv := col
		for r := col + 1; r < n; r++ {
			if math.Abs(a[r][col]) > math.Abs(a[piv][col]) {
				piv = r
			}
		}
		if math.Abs(a[piv][col]) < 1e-12 {
			return nil, privalytics.Errorf(privalytics.EINVALID, "he: the regressors are collinear (XᵀX is singular); drop a regressor")
		}
		a[col], a[piv] = a[piv], a[col]
		for r := col + 1; r < n; r++ {
			f := a[r][col] / a[col][col]
			for c := col; c <= n; c++ {
				a[r][c] -= f * a[col][c]
			}
		}
	}
	x := make([]float64, n)
	for r := n - 1; r >= 0; r-- {
		s := a[r][n]
		for c := r + 1; c < n; c++ {
			s -= a[r][c] * x[c]
		}
		x[r] = s / a[r][r]
	}
	return x, nil
}

// Derived are the statistics computed from the aggregates, one line each.
func (p *Plain) Derived() []string {
	var out []string
	switch p.Job.Op {
	case OpCount:
		if v, err := p.Count(); err == nil {
			out = append(out, fmt.Sprintf("count = %.6g", v))
		}
	case OpMean:
		if v, err := p.Mean(); err == nil {
			out = append(out, fmt.Sprintf("mean(%s) = %.6g", p.Job.Column, v))
		}
	case OpVariance:
		m, err1 := p.Mean()
		v, err2 := p.Variance()
		if err1 == nil && err2 == nil {
			out = append(out, fmt.Sprintf("mean(%s) = %.6g", p.Job.Column, m), fmt.Sprintf("variance(%s) = %.6g", p.Job.Column, v))
		}
	case OpCovariance:
		if m, err := p.Covariance(); err == nil {
			out = append(out, fmt.Sprintf("covariance %v = %.6g", p.Job.Columns, m))
		}
	case OpRegression:
		if b, err := p.Regression(); err == nil {
			out = append(out, fmt.Sprintf("β (intercept, %s) = %.6g", strings.Join(p.Job.Columns, ", "), b))
		}
	}
	return out
}

// String prints the values, one per line.
func (p *Plain) String() string {
	var b strings.Builder
	for _, v := range p.Values {
		fmt.Fprintf(&b, "%s = %.6g", v.Name, v.Value)
		if !v.Exact {
			fmt.Fprintf(&b, " (±%.3g)", v.ErrorStd)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
