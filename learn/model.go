package learn

import (
	"encoding/json"
	"io"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/privalytics/privalytics"
)

// FormatVersion is the version of the model's JSON form; readers refuse others.
const FormatVersion = 1

// Model is a released model: post-processing of DP releases, safe to give to
// every location. Stored as JSON with its privacy cost and the schema it expects.
type Model struct {
	FormatVersion int       `json:"format_version"`
	Name          string    `json:"name,omitempty"`
	Version       int       `json:"version"` // the franchisor's model version, 1, 2, …
	Kind          string    `json:"kind"`
	Schema        Schema    `json:"schema"`
	Features      []string  `json:"features"`
	Coefficients  []float64 `json:"coefficients"`
	Epsilon       float64   `json:"epsilon"` // per customer, as charged
	Delta         float64   `json:"delta"`
	Rho           float64   `json:"rho"`
	Charges       []Charge  `json:"charges"`
	Locations     int       `json:"locations"`
	Threshold     int       `json:"threshold"`
	Rounds        int       `json:"rounds,omitempty"`
	Lambda        float64   `json:"lambda"`
	Trained       time.Time `json:"trained"`
	// TrainingSeconds is wall time of the whole training, crypto included.
	TrainingSeconds float64 `json:"training_seconds"`
}

func newModel(kind string, s *Schema, beta []float64, acc *Accountant, locations, threshold int) *Model {
	return &Model{
		FormatVersion: FormatVersion, Version: 1, Kind: kind, Schema: *s, Features: s.Names(), Coefficients: beta,
		Epsilon: acc.EpsilonSpent(), Delta: acc.Delta, Rho: acc.Spent(), Charges: acc.Charges,
		Locations: locations, Threshold: threshold, Trained: time.Now().UTC(),
	}
}

// Predict is the model's output for an encoded row: a probability for a
// logistic model, the label on its [-1, 1] scale for ridge.
func (m *Model) Predict(x []float64) float64 {
	z := dot(x, m.Coefficients)
	if m.Kind == KindLogistic {
		return sigmoid(z)
	}
	return z
}

// Label maps a ridge prediction back to the label's units.
func (m *Model) Label(p float64) float64 {
	b := m.Schema.LabelBounds
	if b == nil {
		return p
	}
	return b.Lower + (p+1)/2*(b.Upper-b.Lower)
}

// WriteJSON stores the model.
func (m *Model) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(m)
}

// ReadModel reads a stored model and checks it is one this version can score.
func ReadModel(r io.Reader) (*Model, error) {
	var m Model
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, privalytics.Errorf(privalytics.EINVALID, "learn: model: not a model file: %v", err)
	}
	if m.FormatVersion != FormatVersion {
		return nil, privalytics.Errorf(privalytics.EINVALID, "learn: model: format_version %d, this version reads %d", m.FormatVersion, FormatVersion)
	}
	if m.Kind != KindRidge && m.Kind != KindLogistic {
		return nil, privalytics.Errorf(privalytics.EINVALID, "learn: model: kind must be %q or %q, got %q", KindRidge, KindLogistic, m.Kind)
	}
	if err := m.Schema.Validate(); err != nil {
		return nil, err
	}
	if len(m.Coefficients) != m.Schema.Dim() {
		return nil, privalytics.Errorf(privalytics.EINVALID, "learn: model: %d coefficients for a schema of %d features", len(m.Coefficients), m.Schema.Dim())
	}
	for _, c := range m.Coefficients {
		if math.IsNaN(c) || math.IsInf(c, 0) {
			return nil, privalytics.Errorf(privalytics.EINVALID, "learn: model: coefficients must be finite")
		}
	}
	return &m, nil
}

// AUC is the area under the ROC curve of scores for 0/1 labels (ties count ½).
func AUC(scores, labels []float64) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
	var pos, neg, rankSum float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		mid := float64(i+j+1) / 2 // average 1-based rank of the tie
		for k := i; k < j; k++ {
			if labels[idx[k]] == 1 {
				rankSum += mid
				pos++
			} else {
				neg++
			}
		}
		i = j
	}
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

// R2 is the coefficient of determination of predictions.
func R2(pred, y []float64) float64 {
	mean := 0.0
	for _, v := range y {
		mean += v
	}
	mean /= float64(len(y))
	var ssr, sst float64
	for i := range y {
		ssr += (y[i] - pred[i]) * (y[i] - pred[i])
		sst += (y[i] - mean) * (y[i] - mean)
	}
	return 1 - ssr/sst
}

// Scores predicts every row.
func (m *Model) Scores(r *Rows) []float64 {
	out := make([]float64, len(r.X))
	for i, x := range r.X {
		out[i] = m.Predict(x)
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }
