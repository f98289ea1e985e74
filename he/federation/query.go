package federation

import (
	"encoding/csv"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/dp"
)

// Aggregate names.
const (
	AggCount = "count" // rows per category
	AggSum   = "sum"   // Σ value per category, values clamped to [lower, upper]
)

// Query is a round's federated query, published by the franchisor. It is
// public: every location and the server see it.
type Query struct {
	// Columns of the locations' local data (CSV with a header row).
	SubjectColumn  string `json:"subject_column"`  // the customer; the unit of privacy
	CategoryColumn string `json:"category_column"` // category, or a time bucket such as a week
	ValueColumn    string `json:"value_column,omitempty"`
	// Categories are declared in advance and public; rows of other categories
	// are dropped. Each aggregate has one cell per category.
	Categories []string `json:"categories"`
	Aggregates []string `json:"aggregates"`
	// Lower and Upper clamp each value of a sum (integers: use cents).
	Lower int64 `json:"lower,omitempty"`
	Upper int64 `json:"upper,omitempty"`
	// MaxRowsPerSubject is the most rows one customer contributes at one location;
	// each location keeps at most this many of a customer's rows.
	MaxRowsPerSubject int `json:"max_rows_per_subject"`
	// MaxLocationsPerSubject is how many locations one customer may shop at.
	// It cannot be enforced (locations do not link customers) and multiplies
	// the sensitivity; it is the franchisor's declared assumption. Default 1.
	MaxLocationsPerSubject int     `json:"max_locations_per_subject,omitempty"`
	Epsilon                float64 `json:"epsilon"`
	Delta                  float64 `json:"delta"`
}

// MaxCategories bounds the declared categories.
const MaxCategories = 4096

// Validate reports every problem with the query for a federation's parameters.
func (q *Query) Validate(p *Params) error {
	var problems []string
	if q.SubjectColumn == "" || q.CategoryColumn == "" {
		problems = append(problems, "subject_column and category_column are required")
	}
	if len(q.Categories) == 0 || len(q.Categories) > MaxCategories {
		problems = append(problems, "categories must list 1.."+itoa(MaxCategories)+" declared values")
	}
	seen := map[string]bool{}
	for _, c := range q.Categories {
		if seen[c] {
			problems = append(problems, "category "+strconv.Quote(c)+" is listed twice")
		}
		seen[c] = true
	}
	if len(q.Aggregates) == 0 {
		problems = append(problems, `aggregates must list "count" and/or "sum"`)
	}
	aggs := map[string]bool{}
	for _, a := range q.Aggregates {
		if (a != AggCount && a != AggSum) || aggs[a] {
			problems = append(problems, `aggregates must be distinct values of "count", "sum"; got `+strconv.Quote(a))
		}
		aggs[a] = true
	}
	if aggs[AggSum] {
		if q.ValueColumn == "" {
			problems = append(problems, "value_column is required for sum")
		}
		if q.Lower > q.Upper || q.Upper == q.Lower && q.Upper == 0 {
			problems = append(problems, "sum needs lower ≤ upper, not both 0")
		}
		if q.Lower < -1<<30 || q.Upper > 1<<30 {
			problems = append(problems, "lower and upper must be within ±2^30")
		}
	}
	if p != nil && len(q.Categories)*len(q.Aggregates) > p.Slots() {
		problems = append(problems, "categories × aggregates must fit "+itoa(p.Slots())+" slots")
	}
	if q.MaxRowsPerSubject < 1 || q.MaxRowsPerSubject > 1<<16 {
		problems = append(problems, "max_rows_per_subject must be 1..65536")
	}
	if q.MaxLocationsPerSubject < 0 || (p != nil && q.MaxLocationsPerSubject > p.Locations) {
		problems = append(problems, "max_locations_per_subject must be 1..locations (0 means 1)")
	}
	if !(q.Epsilon > 0) || math.IsInf(q.Epsilon, 0) || q.Epsilon > 100 {
		problems = append(problems, "epsilon must be > 0 and ≤ 100")
	}
	if !(q.Delta > 0) || q.Delta >= 1e-2 {
		problems = append(problems, "delta must be > 0 and < 0.01 (the Gaussian mechanism needs it)")
	}
	if len(problems) > 0 {
		return privalytics.Errorf(privalytics.EINVALID, "federation: query: %s", joinProblems(problems))
	}
	return nil
}

// Cells is the number of values a contribution carries: one per aggregate
// and category, aggregate-major.
func (q *Query) Cells() int { return len(q.Aggregates) * len(q.Categories) }

// Cell returns the index of an aggregate's category cell.
func (q *Query) Cell(agg int, category int) int { return agg*len(q.Categories) + category }

func (q *Query) locations() int { return max(1, q.MaxLocationsPerSubject) }

// sensitivity is the L2 sensitivity of one aggregate's vector of cells: one
// customer adds at most MaxRowsPerSubject rows at each of at most
// MaxLocationsPerSubject locations; in the worst case all in one category.
func (q *Query) sensitivity(agg string) float64 {
	rows := float64(q.MaxRowsPerSubject * q.locations())
	if agg == AggCount {
		return rows
	}
	return rows * math.Max(math.Abs(float64(q.Lower)), math.Abs(float64(q.Upper)))
}

// Sigma is the standard deviation of the Gaussian mechanism for one
// aggregate's cells: ε and δ are split equally over the aggregates (basic
// composition), σ from the DP library's calibration.
func (q *Query) Sigma(agg string) float64 {
	k := float64(len(q.Aggregates))
	return dp.GaussianSigma(q.sensitivity(agg), q.Epsilon/k, q.Delta/k)
}

// AddNoiseShares adds this location's share of the distributed DP noise to
// each cell with the DP library's secure sampler; see AddNoiseSharesWith.
func (q *Query) AddNoiseShares(cells []int64, threshold int) error {
	return q.AddNoiseSharesWith(dp.Secure(), cells, threshold)
}

// AddNoiseSharesWith adds this location's share of the distributed DP noise to
// each cell, drawn by m (dp.Secure() in the product): a Gaussian of σ/√t,
// rounded to an integer. The t shares of the locations assumed to take part
// sum to variance σ²; more contributors only add noise.
func (q *Query) AddNoiseSharesWith(m dp.Mechanisms, cells []int64, threshold int) error {
	if len(cells) != q.Cells() {
		return privalytics.Errorf(privalytics.EINVALID, "federation: %d cells, the query has %d", len(cells), q.Cells())
	}
	k := float64(len(q.Aggregates))
	for a, agg := range q.Aggregates {
		for c := range q.Categories {
			share, err := m.GaussianShare(q.sensitivity(agg), threshold, q.Epsilon/k, q.Delta/k)
			if err != nil {
				return privalytics.Errorf(privalytics.EINVALID, "federation: noise: %v; check the query's epsilon, delta and bounds", err)
			}
			cells[q.Cell(a, c)] += share
		}
	}
	return nil
}

// NoiseStd is the standard deviation of the noise on one released cell of
// an aggregate when contributors locations contributed: √contributors·σ/√t,
// plus the rounding of each share (variance 1/12).
func (q *Query) NoiseStd(agg string, threshold, contributors int) float64 {
	share := q.Sigma(agg) / math.Sqrt(float64(threshold))
	return math.Sqrt(float64(contributors) * (share*share + 1.0/12))
}

// Interval is the half-width of the interval that holds the noise of one cell
// with the given confidence (e.g. 0.95).
func (q *Query) Interval(agg string, threshold, contributors int, confidence float64) float64 {
	return q.NoiseStd(agg, threshold, contributors) * math.Sqrt2 * math.Erfinv(confidence)
}

// MaxCSVBytes bounds a location's local file.
const MaxCSVBytes = 1 << 30

// LocalAggregates reads a location's CSV (header row first) and returns its
// bounded aggregates: per customer at most MaxRowsPerSubject rows (the first
// ones in file order; which ones does not matter for privacy, only how many),
// values clamped to [Lower, Upper], rows of undeclared categories dropped.
// Values must be integers (e.g. cents). Errors name the line and the field.
func (q *Query) LocalAggregates(r io.Reader) ([]int64, error) {
	cr := csv.NewReader(io.LimitReader(r, MaxCSVBytes))
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, privalytics.Errorf(privalytics.EINVALID, "federation: csv: the header row is missing or malformed: %v", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimSpace(h)] = i
	}
	need := []string{q.SubjectColumn, q.CategoryColumn}
	hasSum := false
	for _, a := range q.Aggregates {
		hasSum = hasSum || a == AggSum
	}
	if hasSum {
		need = append(need, q.ValueColumn)
	}
	idx := make([]int, len(need))
	for i, n := range need {
		j, ok := col[n]
		if !ok {
			return nil, privalytics.Errorf(privalytics.EINVALID, "federation: csv: column %q is missing; the header has %v", n, header)
		}
		idx[i] = j
	}
	cat := map[string]int{}
	for i, c := range q.Categories {
		cat[c] = i
	}
	cells := make([]int64, q.Cells())
	rows := map[string]int{}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, privalytics.Errorf(privalytics.EINVALID, "federation: csv line %d: %v", line, err)
		}
		c, ok := cat[rec[idx[1]]]
		if !ok {
			continue
		}
		subject := rec[idx[0]]
		if subject == "" {
			return nil, privalytics.Errorf(privalytics.EINVALID, "federation: csv line %d: %s is empty", line, q.SubjectColumn)
		}
		var v int64
		if hasSum {
			v, err = strconv.ParseInt(strings.TrimSpace(rec[idx[2]]), 10, 64)
			if err != nil {
				return nil, privalytics.Errorf(privalytics.EINVALID, "federation: csv line %d: %s must be an integer (e.g. cents), got %q", line, q.ValueColumn, rec[idx[2]])
			}
			v = min(max(v, q.Lower), q.Upper)
		}
		if rows[subject] >= q.MaxRowsPerSubject {
			continue
		}
		rows[subject]++
		for a, agg := range q.Aggregates {
			if agg == AggCount {
				cells[q.Cell(a, c)]++
			} else {
				cells[q.Cell(a, c)] += v
			}
		}
	}
	return cells, nil
}

// Wire is the query as it travels (api/wire); federation.Query(w) converts back.
func (q Query) Wire() wire.FederationQuery { return wire.FederationQuery(q) }
