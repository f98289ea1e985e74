// Package fairness audits a model's decisions for disparities between groups
// (age band, marital status, store…) with differential privacy: every figure
// is post-processing of one Gaussian histogram of the customers over (group,
// score bin, label), so the whole audit costs one (ε, δ) per customer however
// many groups and metrics it reports, and every rate carries an interval.
//
// Guarantee: each customer is one record in exactly one cell, so the
// histogram's L2 sensitivity is 1 and the audit is ρ-zCDP with ρ from the
// stated (ε, δ). Threat model: whoever reads the report is untrusted; the
// groups, the decision threshold and the bins are public (declared), never
// taken from the data. The audit works on any predictions: a federated model's
// scored locally, or a CSV of predictions made elsewhere.
package fairness

import (
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/learn"
)

// Record is one customer's prediction: the group, the model's score in [0, 1]
// and the true outcome.
type Record struct {
	Group string
	Score float64
	Label bool
}

// Config is the public side of an audit.
type Config struct {
	Attribute string   `json:"attribute"` // e.g. "age band"
	Groups    []string `json:"groups"`    // declared; records of other groups are not counted
	// Threshold: a score ≥ Threshold is a positive decision (selected).
	Threshold float64 `json:"threshold"`
	// Edges are the calibration bins' inner edges in (0, 1); the threshold is
	// always an edge. Default 0.1, 0.2, …, 0.9.
	Edges      []float64 `json:"edges,omitempty"`
	Epsilon    float64   `json:"epsilon"`
	Delta      float64   `json:"delta"`
	Confidence float64   `json:"confidence"` // of every interval, e.g. 0.95
	// Reference is the group others are compared with; empty means the group
	// with the highest released selection rate (post-processing).
	Reference string `json:"reference,omitempty"`
}

// Validate reports every problem of the config.
func (c *Config) Validate() error {
	var problems []string
	if len(c.Groups) < 2 || len(c.Groups) > 100 {
		problems = append(problems, "groups must list 2..100 declared values")
	}
	seen := map[string]bool{}
	for _, g := range c.Groups {
		if seen[g] {
			problems = append(problems, "group "+strconv.Quote(g)+" is listed twice")
		}
		seen[g] = true
	}
	if c.Reference != "" && !seen[c.Reference] {
		problems = append(problems, "reference "+strconv.Quote(c.Reference)+" is not one of the groups")
	}
	if !(c.Threshold > 0 && c.Threshold < 1) {
		problems = append(problems, "threshold must be in (0, 1)")
	}
	for _, e := range c.Edges {
		if !(e > 0 && e < 1) {
			problems = append(problems, "bin edges must be in (0, 1)")
			break
		}
	}
	if !(c.Confidence >= 0.5 && c.Confidence < 1) {
		problems = append(problems, "confidence must be in [0.5, 1)")
	}
	if len(problems) > 0 {
		return privalytics.Errorf(privalytics.EINVALID, "fairness: %s", strings.Join(problems, "; "))
	}
	return nil
}

// edges are the sorted inner bin edges, the threshold included.
func (c *Config) edges() []float64 {
	e := c.Edges
	if len(e) == 0 {
		e = []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}
	}
	e = append(slices.Clone(e), c.Threshold)
	sort.Float64s(e)
	return slices.Compact(e)
}

// Rate is a released proportion with its interval.
type Rate struct {
	Value float64 `json:"value"`
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
}

// Bin is a calibration bin: the share of positive outcomes among customers
// whose score fell in [Lower, Upper). A calibrated model's Observed lies in
// or near the bin.
type Bin struct {
	Lower    float64 `json:"lower"`
	Upper    float64 `json:"upper"`
	Count    float64 `json:"count"` // noisy, clamped at 0
	Observed Rate    `json:"observed"`
}

// Group holds one group's released metrics.
type Group struct {
	Name          string  `json:"name"`
	Count         float64 `json:"count"` // noisy
	SelectionRate Rate    `json:"selection_rate"`
	TPR           Rate    `json:"true_positive_rate"`
	FPR           Rate    `json:"false_positive_rate"`
	Calibration   []Bin   `json:"calibration"`
}

// Metric names of disparities.
const (
	Selection = "selection rate"
	TPR       = "true-positive rate"
	FPR       = "false-positive rate"
)

// FourFifths is the adverse-impact rule: a group selected at under 80% of the
// reference's rate is flagged.
const FourFifths = 0.8

// Disparity compares a group with the reference on one metric. The intervals
// hold at the audit's confidence jointly for both groups (each group's rate
// at 1 − α/2).
type Disparity struct {
	Metric     string `json:"metric"`
	Group      string `json:"group"`
	Reference  string `json:"reference"`
	Difference Rate   `json:"difference"` // group − reference
	Ratio      Rate   `json:"ratio"`      // group / reference; Upper capped at MaxRatio
	// Flag applies the four-fifths rule to the selection rate: "clearly
	// below" when the whole interval is under 0.8, "possibly below" when it
	// straddles 0.8 with the estimate under it, "unclear" when it straddles
	// with the estimate over it, "" otherwise.
	Flag string `json:"flag,omitempty"`
}

// MaxRatio caps a ratio's upper bound when the reference's lower bound is 0.
const MaxRatio = 1000

// Report is an audit's result.
type Report struct {
	Config      Config         `json:"config"`
	Reference   string         `json:"reference"`
	Groups      []Group        `json:"groups"`
	Disparities []Disparity    `json:"disparities"`
	Records     int            `json:"-"` // exact; never shown
	Rho         float64        `json:"rho"`
	Sigma       float64        `json:"sigma"`
	Charges     []learn.Charge `json:"charges"`
}

// cells of the histogram: group-major, then bin, then label (0, 1).
type layout struct {
	groups, bins int
	edges        []float64
	index        map[string]int
}

func (l layout) cell(g, b, y int) int { return (g*l.bins+b)*2 + y }

// Audit releases the histogram and derives every metric from it. The budget
// is charged before the data is read.
func Audit(records []Record, c Config, m dp.Mechanisms) (*Report, error) {
	acc, lay, err := plan(c)
	if err != nil {
		return nil, err
	}
	noisy, sigma, err := m.GaussianHistogram(lay.count(records), acc.Budget)
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "fairness: %v", err)
	}
	return report(c, acc, lay, noisy, sigma), nil
}

// AuditFederated runs the same audit across a federation's locations: each
// location counts its own customers' cells, adds its share of the Gaussian
// noise (σ/√t, dp.AddGaussianShares) and encrypts; the server sums; t
// locations decrypt towards the franchisor, who sees only the noisy total
// histogram. With N > t contributors the noise is σ√(N/t), and the intervals
// use that.
func AuditFederated(nw *learn.Network, locations [][]Record, c Config, m dp.Mechanisms) (*Report, error) {
	acc, lay, err := plan(c)
	if err != nil {
		return nil, err
	}
	if len(locations) != len(nw.Locations) {
		return nil, privalytics.Errorf(privalytics.EINVALID, "fairness: %d locations' records for a federation of %d", len(locations), len(nw.Locations))
	}
	cells := lay.groups * lay.bins * 2
	if cells > nw.P.Slots() {
		return nil, privalytics.Errorf(privalytics.EINVALID, "fairness: %d cells exceed the %d slots of a ciphertext; declare fewer groups or bins", cells, nw.P.Slots())
	}
	sigma, err := dp.SigmaForRho(1, acc.Budget)
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "fairness: %v", err)
	}
	t := nw.P.Threshold
	noisy, err := nw.Round(func(loc int) ([]float64, error) {
		exact := lay.count(locations[loc])
		v := make([]float64, len(exact))
		for i, x := range exact {
			v[i] = float64(x)
		}
		return v, m.AddGaussianShares(v, sigma, t)
	}, cells)
	if err != nil {
		return nil, err
	}
	return report(c, acc, lay, noisy, sigma*math.Sqrt(float64(len(nw.Locations))/float64(t))), nil
}

// plan validates the config and charges the audit's whole budget up front.
func plan(c Config) (*learn.Accountant, layout, error) {
	if err := c.Validate(); err != nil {
		return nil, layout{}, err
	}
	acc, err := learn.NewAccountant(c.Epsilon, c.Delta)
	if err != nil {
		return nil, layout{}, err
	}
	if err := acc.Charge("fairness audit histogram by "+c.Attribute, acc.Budget); err != nil {
		return nil, layout{}, err
	}
	edges := c.edges()
	lay := layout{groups: len(c.Groups), bins: len(edges) + 1, edges: edges, index: map[string]int{}}
	for i, g := range c.Groups {
		lay.index[g] = i
	}
	return acc, lay, nil
}

// count is the exact histogram of records over (group, bin, label).
func (l layout) count(records []Record) []int64 {
	exact := make([]int64, l.groups*l.bins*2)
	for _, r := range records {
		g, ok := l.index[r.Group]
		if !ok {
			continue
		}
		y := 0
		if r.Label {
			y = 1
		}
		exact[l.cell(g, binOf(l.edges, r.Score), y)]++
	}
	return exact
}

// report derives every figure from the noisy histogram (post-processing).
func report(c Config, acc *learn.Accountant, lay layout, noisy []float64, sigma float64) *Report {
	edges, index := lay.edges, lay.index
	rep := &Report{Config: c, Rho: acc.Spent(), Sigma: sigma, Charges: acc.Charges}
	sel := slices.Index(edges, c.Threshold) + 1 // first selected bin
	h := hist{noisy: noisy, sigma: sigma, lay: lay, sel: sel}
	for g, name := range c.Groups {
		grp := Group{Name: name, Count: math.Max(0, h.sum(g, 0, lay.bins, 0, 2))}
		grp.SelectionRate, grp.TPR, grp.FPR = h.rates(g, c.Confidence)
		for b := range lay.bins {
			lo, hi := 0.0, 1.0
			if b > 0 {
				lo = edges[b-1]
			}
			if b < len(edges) {
				hi = edges[b]
			}
			grp.Calibration = append(grp.Calibration, Bin{
				Lower: lo, Upper: hi, Count: math.Max(0, h.sum(g, b, b+1, 0, 2)),
				Observed: h.ratio(g, [2]int{b, b + 1}, [2]int{1, 2}, [2]int{b, b + 1}, [2]int{0, 1}, c.Confidence),
			})
		}
		rep.Groups = append(rep.Groups, grp)
	}
	rep.Reference = c.Reference
	if rep.Reference == "" {
		best := -1.0
		for _, g := range rep.Groups {
			if g.SelectionRate.Value > best {
				best, rep.Reference = g.SelectionRate.Value, g.Name
			}
		}
	}
	ref := index[rep.Reference]
	joint := 1 - (1-c.Confidence)/2
	rs, rt, rf := h.rates(ref, joint)
	for g, name := range c.Groups {
		if g == ref {
			continue
		}
		gs, gt, gf := h.rates(g, joint)
		for _, p := range []struct {
			metric   string
			grp, ref Rate
		}{{Selection, gs, rs}, {TPR, gt, rt}, {FPR, gf, rf}} {
			d := compare(p.grp, p.ref)
			d.Metric, d.Group, d.Reference = p.metric, name, rep.Reference
			if p.metric == Selection {
				d.Flag = fourFifths(d.Ratio)
			}
			rep.Disparities = append(rep.Disparities, d)
		}
	}
	return rep
}

func binOf(edges []float64, score float64) int {
	return sort.Search(len(edges), func(i int) bool { return edges[i] > score })
}

type hist struct {
	noisy []float64
	sigma float64
	lay   layout
	sel   int
}

// sum adds the cells of group g, bins [b0, b1), labels [y0, y1).
func (h hist) sum(g, b0, b1, y0, y1 int) float64 {
	s := 0.0
	for b := b0; b < b1; b++ {
		for y := y0; y < y1; y++ {
			s += h.noisy[h.lay.cell(g, b, y)]
		}
	}
	return s
}

// rates are the selection rate, TPR and FPR of group g.
func (h hist) rates(g int, conf float64) (sel, tpr, fpr Rate) {
	all, pos, neg := [2]int{0, 2}, [2]int{1, 2}, [2]int{0, 1}
	in, out := [2]int{h.sel, h.lay.bins}, [2]int{0, h.sel}
	return h.ratio(g, in, all, out, all, conf), h.ratio(g, in, pos, out, pos, conf), h.ratio(g, in, neg, out, neg, conf)
}

// ratio is A/(A+C) with A the cells of bins a and labels ay, C those of bins
// c and labels cy (disjoint from A). A and C are independent Gaussians of
// σ√k for k cells; each gets an interval at 1 − α/2, so both hold with
// probability ≥ 1 − α, and A/(A+C), increasing in A and decreasing in C,
// then lies between the box's corners.
func (h hist) ratio(g int, a, ay, c, cy [2]int, conf float64) Rate {
	A := h.sum(g, a[0], a[1], ay[0], ay[1])
	C := h.sum(g, c[0], c[1], cy[0], cy[1])
	z := dp.NormalQuantile(1 - (1-conf)/2)
	wa := z * h.sigma * math.Sqrt(float64((a[1]-a[0])*(ay[1]-ay[0])))
	wc := z * h.sigma * math.Sqrt(float64((c[1]-c[0])*(cy[1]-cy[0])))
	A, C = math.Max(0, A), math.Max(0, C)
	aLo, aHi, cLo, cHi := math.Max(0, A-wa), A+wa, math.Max(0, C-wc), C+wc
	r := Rate{Value: frac(A, C, 0.5), Lower: frac(aLo, cHi, 0), Upper: frac(aHi, cLo, 1)}
	return r
}

// frac is a/(a+c), or empty when both are 0.
func frac(a, c, empty float64) float64 {
	if a+c <= 0 {
		return empty
	}
	return a / (a + c)
}

func compare(g, ref Rate) Disparity {
	d := Disparity{
		Difference: Rate{Value: g.Value - ref.Value, Lower: g.Lower - ref.Upper, Upper: g.Upper - ref.Lower},
	}
	d.Ratio = Rate{Value: safeDiv(g.Value, ref.Value), Lower: safeDiv(g.Lower, ref.Upper), Upper: safeDiv(g.Upper, ref.Lower)}
	return d
}

func safeDiv(a, b float64) float64 {
	if b <= 0 {
		if a <= 0 {
			return 1
		}
		return MaxRatio
	}
	return math.Min(MaxRatio, a/b)
}

func fourFifths(r Rate) string {
	switch {
	case r.Upper < FourFifths:
		return "clearly below"
	case r.Lower < FourFifths && r.Value < FourFifths:
		return "possibly below"
	case r.Lower < FourFifths:
		return "unclear"
	}
	return ""
}

// AgeBand is the age band an audit by age uses.
func AgeBand(age float64) string {
	switch {
	case age < 30:
		return "18-29"
	case age < 40:
		return "30-39"
	case age < 50:
		return "40-49"
	case age < 60:
		return "50-59"
	}
	return "60+"
}

// AgeBands are the declared groups of AgeBand.
var AgeBands = []string{"18-29", "30-39", "40-49", "50-59", "60+"}
