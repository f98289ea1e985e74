package learn

import (
	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

// Task kinds: what a round asks every location to compute on its own
// customers.
const (
	TaskGram     = "gram"     // upper triangle of XᵀX (logistic curvature)
	TaskRidge    = "ridge"    // upper triangle of XᵀX, then Xᵀy
	TaskGradient = "gradient" // Σ (σ(xᵀβ) − y) x at Beta
)

// Task is one round's public instructions: everything in it is chosen by
// the franchisor from public information and earlier (noisy) releases, so a
// location can receive it over any channel. Sigma is the full noise scale of
// the round's first block, SigmaXy of ridge's Xᵀy block; each location adds
// its share N(0, σ²/Threshold).
type Task struct {
	Kind      string    `json:"kind"`
	Beta      []float64 `json:"beta,omitempty"`
	Sigma     float64   `json:"sigma"`
	SigmaXy   float64   `json:"sigma_xy,omitempty"`
	Threshold int       `json:"threshold"`
}

// Len is the number of cells the task's answer has for d features.
func (t *Task) Len(d int) int {
	switch t.Kind {
	case TaskGram:
		return triLen(d)
	case TaskRidge:
		return triLen(d) + d
	}
	return d
}

// Cells is one location's answer to the task over its rows, with its share
// of the noise added: what it encrypts.
func (t *Task) Cells(r *Rows, d int, m dp.Mechanisms) ([]float64, error) {
	if t.Threshold < 1 || !(t.Sigma > 0) {
		return nil, privalytics.Errorf(privalytics.EINVALID, "learn: task needs threshold ≥ 1 and sigma > 0, got %d and %g", t.Threshold, t.Sigma)
	}
	switch t.Kind {
	case TaskGram:
		cells := make([]float64, triLen(d))
		for _, x := range r.X {
			addOuterTri(cells, x, 1)
		}
		return cells, m.AddGaussianShares(cells, t.Sigma, t.Threshold)
	case TaskRidge:
		if !(t.SigmaXy > 0) {
			return nil, privalytics.Errorf(privalytics.EINVALID, "learn: ridge task needs sigma_xy > 0")
		}
		return ridgeCells(r, d, t.Sigma, t.SigmaXy, t.Threshold, m)
	case TaskGradient:
		if len(t.Beta) != d {
			return nil, privalytics.Errorf(privalytics.EINVALID, "learn: gradient task has %d coefficients for %d features", len(t.Beta), d)
		}
		cells := make([]float64, d)
		for i, x := range r.X {
			e := sigmoid(dot(x, t.Beta)) - r.Y[i]
			for j := range d {
				cells[j] += e * x[j]
			}
		}
		return cells, m.AddGaussianShares(cells, t.Sigma, t.Threshold)
	}
	return nil, privalytics.Errorf(privalytics.EINVALID, "learn: task kind must be %q, %q or %q, got %q", TaskGram, TaskRidge, TaskGradient, t.Kind)
}

// Federation is how training reaches the locations: Round publishes a task,
// has every online location answer it on its own customers (noise share
// added, encrypted under the collective key), has the server add the
// answers and t locations switch the sum to the franchisor's key, and
// returns what the franchisor decrypts. Network does this in one process;
// Coordinator with locations in their own processes (RunLocation).
type Federation interface {
	Round(s *Schema, t Task) ([]float64, error)
	// Size is N, t and the cells one ciphertext holds.
	Size() (locations, threshold, slots int)
}

// inProcess binds a Network to the locations' rows it stands in for.
type inProcess struct {
	nw   *Network
	data []*Rows
	m    dp.Mechanisms
}

func (f inProcess) Round(s *Schema, t Task) ([]float64, error) {
	d := s.Dim()
	return f.nw.Round(func(loc int) ([]float64, error) { return t.Cells(f.data[loc], d, f.m) }, t.Len(d))
}

func (f inProcess) Size() (int, int, int) {
	return len(f.nw.Locations), f.nw.P.Threshold, f.nw.P.Slots()
}
