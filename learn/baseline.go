package learn

import (
	"gonum.org/v1/gonum/mat"
)

// The centralised, non-private baselines the federated models are measured
// against: all rows in one place, no noise.

// CentralRidge solves the normal equations with a negligible ridge (1e-6) that
// only resolves the one-hot columns' collinearity.
func CentralRidge(r *Rows) ([]float64, error) {
	d := len(r.X[0])
	cells := make([]float64, triLen(d))
	xy := make([]float64, d)
	for i, x := range r.X {
		addOuterTri(cells, x, 1)
		for j := range d {
			xy[j] += x[j] * r.Y[i]
		}
	}
	return solveSym(symFromTri(cells, d), 1e-6, xy)
}

// CentralLogistic fits by iteratively reweighted least squares (Newton's
// method), 25 iterations, with the same negligible ridge.
func CentralLogistic(r *Rows) ([]float64, error) {
	d := len(r.X[0])
	beta := make([]float64, d)
	for range 25 {
		h := mat.NewSymDense(d, nil)
		cells := make([]float64, triLen(d))
		g := make([]float64, d)
		for i, x := range r.X {
			p := sigmoid(dot(x, beta))
			addOuterTri(cells, x, p*(1-p))
			for j := range d {
				g[j] += (p - r.Y[i]) * x[j]
			}
		}
		h = symFromTri(cells, d)
		step, err := solveSym(h, 1e-6, g)
		if err != nil {
			return nil, err
		}
		for j := range beta {
			beta[j] -= step[j]
		}
	}
	return beta, nil
}
