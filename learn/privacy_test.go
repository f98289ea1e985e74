package learn

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

// tiny is a synthetic federation input: 3 features, 40 customers per
// location, rows in the unit ball.
func tiny(locs int, classify bool) (*Schema, []*Rows) {
	s := &Schema{Numeric: []Numeric{{Name: "a", Lower: -1, Upper: 1}, {Name: "b", Lower: -1, Upper: 1}}, Label: "y"}
	if classify {
		s.Positive = "1"
	} else {
		s.LabelBounds = &Numeric{Name: "y", Lower: -1, Upper: 1}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	scale := s.rowScale()
	var out []*Rows
	for range locs {
		r := &Rows{}
		for range 40 {
			a, b := 2*rng.Float64()-1, 2*rng.Float64()-1
			y := 0.5*a - 0.3*b
			if classify {
				y = 0
				if rng.Float64() < sigmoid(3*a-2*b) {
					y = 1
				}
			}
			r.X = append(r.X, []float64{scale, scale * a, scale * b})
			r.Y = append(r.Y, y)
			r.Fields = append(r.Fields, map[string]string{})
		}
		out = append(out, r)
	}
	return s, out
}

// TestRoundsTimesCostIsCharged: a logistic training of R rounds charges the
// curvature release plus R equal gradient rounds, which add up to the budget
// and convert back to the stated ε; one more release is refused.
func TestRoundsTimesCostIsCharged(t *testing.T) {
	s, data := tiny(3, true)
	nw, err := NewNetwork(3, 2)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Epsilon: 0.5, Delta: 1e-6, Rounds: 4, HessianShare: 0.2, Mechanisms: dp.Secure()}
	m, err := TrainLogistic(nw, s, data, o)
	if err != nil {
		t.Fatal(err)
	}
	budget := dp.RhoForEpsilon(o.Epsilon, o.Delta)
	if len(m.Charges) != 1+o.Rounds || nw.Rounds != 1+o.Rounds {
		t.Fatalf("%d charges over %d network rounds, want %d", len(m.Charges), nw.Rounds, 1+o.Rounds)
	}
	perRound := budget * (1 - o.HessianShare) / float64(o.Rounds)
	for _, c := range m.Charges[1:] {
		if math.Abs(c.Rho-perRound) > 1e-15 {
			t.Errorf("%s charged ρ=%g, want %g", c.What, c.Rho, perRound)
		}
	}
	if got := m.Charges[0].Rho + float64(o.Rounds)*perRound; math.Abs(got-m.Rho) > 1e-15 || math.Abs(m.Rho-budget) > 1e-12*budget {
		t.Errorf("curvature + rounds × per-round = %g, charged %g, budget %g", got, m.Rho, budget)
	}
	if math.Abs(m.Epsilon-o.Epsilon) > 1e-9 {
		t.Errorf("model says ε=%g, budget ε=%g", m.Epsilon, o.Epsilon)
	}
	acc := &Accountant{Epsilon: o.Epsilon, Delta: o.Delta, Budget: budget, Charges: m.Charges}
	err = acc.Charge("one more round", perRound)
	var perr *privalytics.Error
	if !errors.As(err, &perr) || perr.Code != privalytics.EBUDGET {
		t.Fatalf("a round beyond the budget gave %v, want %s", err, privalytics.EBUDGET)
	}
}

// TestNeighbourMovesReleaseWithinEpsilon is a black-box DP check of the ridge
// release (what the franchisor decrypts: the sum of the locations' noised
// cells; the crypto adds nothing and the model is post-processing). D' drops
// one customer of D. For each threshold c on the release's projection on the
// direction the customer moves it (the worst direction for a Gaussian), the
// test estimates p = P[proj > c] under D and q under D' from 3000 runs each
// and fails when the lower confidence bound of p exceeds e^ε times the upper
// bound of q plus δ, i.e. when the data prove a violation. Bounds are
// Hoeffding at β = 1e-4 each, 2 per threshold, 7 thresholds: the false-failure
// probability is below 1.4e-3. A positive control with a tenth of the noise
// must be caught.
func TestNeighbourMovesReleaseWithinEpsilon(t *testing.T) {
	t.Parallel()
	const locs, thr, runs = 4, 3, 3000
	eps, delta := 1.0, 1e-5
	s, data := tiny(locs, false)
	d := s.Dim()
	// D' lacks D's first customer at location 0; make that customer extreme.
	data[0].X[0] = []float64{s.rowScale(), s.rowScale(), s.rowScale()}
	data[0].Y[0] = 1
	neighbour := append([]*Rows{{X: data[0].X[1:], Y: data[0].Y[1:], Fields: data[0].Fields[1:]}}, data[1:]...)
	rho := dp.RhoForEpsilon(eps, delta)
	sXX, _ := dp.SigmaForRho(1, rho/2)
	sXy, _ := dp.SigmaForRho(1, rho/2)
	exact := func(parts []*Rows) []float64 {
		out, err := ridgeCells(Concat(parts), d, 0, 0, 1, dp.Secure())
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	u := exact(data)
	v := exact(neighbour)
	norm := 0.0
	for i := range u {
		u[i] -= v[i]
		norm += u[i] * u[i]
	}
	for i := range u {
		u[i] /= math.Sqrt(norm)
	}
	sample := func(parts []*Rows, noiseScale float64) []float64 {
		out := make([]float64, runs)
		for k := range out {
			for _, p := range parts {
				c, err := ridgeCells(p, d, noiseScale*sXX, noiseScale*sXy, thr, dp.Secure())
				if err != nil {
					t.Fatal(err)
				}
				out[k] += dot(u, c)
			}
		}
		return out
	}
	const beta = 1e-4
	slack := math.Sqrt(math.Log(1/beta) / (2 * runs))
	violated := func(noiseScale float64) bool {
		a, b := sample(data, noiseScale), sample(neighbour, noiseScale)
		mid := dot(u, v) + math.Sqrt(norm)/2
		sd := noiseScale * sXX * math.Sqrt(float64(locs)/thr)
		for k := -3; k <= 3; k++ {
			c := mid + float64(k)*sd/2
			p, q := frac(a, c), frac(b, c)
			if p-slack > math.Exp(eps)*(q+slack)+delta {
				return true
			}
		}
		return false
	}
	if violated(1) {
		t.Fatal("removing one customer moved the ridge release by more than ε allows")
	}
	if !violated(0.1) {
		t.Fatal("positive control: a tenth of the noise was not caught; the check has no power")
	}
}

func frac(xs []float64, c float64) float64 {
	n := 0
	for _, x := range xs {
		if x > c {
			n++
		}
	}
	return float64(n) / float64(len(xs))
}

func TestModelJSONRoundTrip(t *testing.T) {
	t.Parallel()
	s := BankSchema("y")
	m := &Model{FormatVersion: FormatVersion, Version: 3, Kind: KindLogistic, Schema: *s, Features: s.Names(),
		Coefficients: make([]float64, s.Dim()), Epsilon: 1, Delta: 1e-5, Rho: 0.02, Charges: []Charge{{What: "x", Rho: 0.02}}}
	m.Coefficients[2] = -1.5
	var buf bytes.Buffer
	if err := m.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadModel(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if back.Version != 3 || back.Coefficients[2] != -1.5 || back.Schema.Dim() != s.Dim() || back.Schema.Positive != "yes" || back.Epsilon != 1 {
		t.Fatalf("round trip changed the model: %+v", back)
	}
	bad := strings.Replace(buf.String(), `"format_version": 1`, `"format_version": 2`, 1)
	if _, err := ReadModel(strings.NewReader(bad)); err == nil {
		t.Fatal("format_version 2 accepted")
	}
}

func TestModelStoreVersions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := BankSchema("y")
	for i := range 2 {
		m := &Model{FormatVersion: FormatVersion, Kind: KindLogistic, Schema: *s, Features: s.Names(), Coefficients: make([]float64, s.Dim())}
		m.Coefficients[0] = float64(i)
		if err := SaveModel(dir, "campaign", m); err != nil {
			t.Fatal(err)
		}
		if m.Version != i+1 {
			t.Fatalf("save %d got version %d", i+1, m.Version)
		}
	}
	latest, err := LoadModel(dir, "campaign", 0)
	if err != nil {
		t.Fatal(err)
	}
	first, err := LoadModel(dir, "campaign", 1)
	if err != nil {
		t.Fatal(err)
	}
	if latest.Version != 2 || latest.Coefficients[0] != 1 || first.Version != 1 || first.Coefficients[0] != 0 {
		t.Fatalf("latest v%d c=%v, first v%d c=%v", latest.Version, latest.Coefficients[0], first.Version, first.Coefficients[0])
	}
	if err := SaveModel(dir, "../escape", latest); err == nil {
		t.Fatal("a name with a path was accepted")
	}
}
