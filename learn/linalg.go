package learn

import (
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/privalytics/privalytics"
)

// triLen is the number of cells of the upper triangle of a d×d matrix.
func triLen(d int) int { return d * (d + 1) / 2 }

// addOuterTri adds w·xxᵀ's upper triangle to cells (row-major).
func addOuterTri(cells []float64, x []float64, w float64) {
	k := 0
	for i := range x {
		wi := w * x[i]
		for j := i; j < len(x); j++ {
			cells[k] += wi * x[j]
			k++
		}
	}
}

// symFromTri rebuilds the symmetric matrix from its upper triangle.
func symFromTri(cells []float64, d int) *mat.SymDense {
	s := mat.NewSymDense(d, nil)
	k := 0
	for i := range d {
		for j := i; j < d; j++ {
			s.SetSym(i, j, cells[k])
			k++
		}
	}
	return s
}

// noiseNormBound bounds the spectral norm of a symmetric d×d matrix of
// independent N(0, σ²) entries (upper triangle): 2σ√d is its typical size
// (semicircle law); the √(2 ln(1/β)) term makes it hold with probability 1−β
// (Gaussian concentration of the norm, a 1-Lipschitz function), β = 1e-3.
func noiseNormBound(sigma float64, d int) float64 {
	return sigma * (2*math.Sqrt(float64(d)) + math.Sqrt(2*math.Log(1e3)))
}

// solveSym solves (a + λI)β = b.
func solveSym(a *mat.SymDense, lambda float64, b []float64) ([]float64, error) {
	d := a.SymmetricDim()
	r := mat.NewSymDense(d, nil)
	r.CopySym(a)
	for i := range d {
		r.SetSym(i, i, r.At(i, i)+lambda)
	}
	var x mat.VecDense
	var ch mat.Cholesky
	if ch.Factorize(r) {
		if err := ch.SolveVecTo(&x, mat.NewVecDense(d, b)); err == nil {
			return x.RawVector().Data, nil
		}
	}
	if err := x.SolveVec(r, mat.NewVecDense(d, b)); err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "learn: solve: %v", err)
	}
	return x.RawVector().Data, nil
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// floorSolve solves Ãβ = b where Ã is a with every eigenvalue below floor
// raised to floor. Directions whose released curvature is below the noise's
// norm bound carry no trustworthy signal; flooring shrinks the coefficients
// along them only, where a ridge λI would shrink every direction alike.
func floorSolve(a *mat.SymDense, floor float64, b []float64) ([]float64, error) {
	var e mat.EigenSym
	if !e.Factorize(a, true) {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "learn: eigen-decomposition did not converge")
	}
	vals := e.Values(nil)
	var v mat.Dense
	e.VectorsTo(&v)
	d := len(b)
	out := make([]float64, d)
	for k := range d {
		lam := math.Max(vals[k], floor)
		c := 0.0
		for i := range d {
			c += v.At(i, k) * b[i]
		}
		for i := range d {
			out[i] += v.At(i, k) * c / lam
		}
	}
	return out, nil
}
