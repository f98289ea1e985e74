package wire

// Query is the body of POST /v1/queries and /v1/queries:explain: one DP
// question over the tenant's events for one purpose.
type Query struct {
	Purpose    string      `json:"purpose,omitempty"` // default "analytics"
	Where      []Filter    `json:"where,omitempty"`   // all must hold (AND)
	GroupBy    []GroupKey  `json:"group_by,omitempty"`
	Aggregates []Aggregate `json:"aggregates"`
	Bounds     Bounds      `json:"bounds"`
	Epsilon    float64     `json:"epsilon"`              // total ε the query may spend
	Delta      float64     `json:"delta,omitempty"`      // total δ; needed for data-derived group keys and Gaussian noise
	Noise      string      `json:"noise,omitempty"`      // "laplace" (default) or "gaussian"
	Confidence float64     `json:"confidence,omitempty"` // interval level, default 0.95
	TimeZone   string      `json:"time_zone,omitempty"`  // IANA zone for time buckets and date-only bounds
	Engine     string      `json:"engine,omitempty"`     // "beam": run on Privacy on Beam (docs/beam.md); default this server
}

// Filter is one condition on a column; set exactly the operators you need.
type Filter struct {
	Column string `json:"column"`
	Eq     any    `json:"eq,omitempty"`
	In     []any  `json:"in,omitempty"`
	NotIn  []any  `json:"not_in,omitempty"`
	Gt     any    `json:"gt,omitempty"`
	Gte    any    `json:"gte,omitempty"`
	Lt     any    `json:"lt,omitempty"`
	Lte    any    `json:"lte,omitempty"`
}

// GroupKey is one dimension of the answer: a column, a time bucket, or a
// histogram of a numeric column.
type GroupKey struct {
	Column  string    `json:"column,omitempty"`
	Time    string    `json:"time,omitempty"` // hour, day, week, month, quarter, year
	Keys    []string  `json:"keys,omitempty"`
	Buckets []float64 `json:"buckets,omitempty"`
}

// Aggregate is one measure per group.
type Aggregate struct {
	Name      string   `json:"name,omitempty"`
	Op        string   `json:"op"` // count, distinct_customers, sum, mean, variance, stddev, median, quantile
	Column    string   `json:"column,omitempty"`
	Lower     *float64 `json:"lower,omitempty"`
	Upper     *float64 `json:"upper,omitempty"`
	Bounds    string   `json:"bounds,omitempty"` // "auto": a DP estimate of the range
	AutoShare float64  `json:"auto_share,omitempty"`
	Within    float64  `json:"within,omitempty"` // accuracy first: the target half-width
	Weight    float64  `json:"weight,omitempty"`
	Rank      float64  `json:"rank,omitempty"` // quantile only
}

// Bounds limit each customer's contribution.
type Bounds struct {
	MaxGroups       int `json:"max_groups,omitempty"`
	MaxRowsPerGroup int `json:"max_rows_per_group,omitempty"`
	MaxRows         int `json:"max_rows,omitempty"`
}

// Result answers a query.
type Result struct {
	GroupBy     []string        `json:"group_by"`
	Aggregates  []AggregateInfo `json:"aggregates"`
	Rows        []Row           `json:"rows"`
	Confidence  float64         `json:"confidence"`
	Cost        Cost            `json:"cost"`        // what this answer charged (zero when Cached)
	Thresholded bool            `json:"thresholded"` // group keys passed DP partition selection
	Snapshot    string          `json:"snapshot"`    // an opaque id of this answer ("ans_…"); a cached repeat shows the same
	Cached      bool            `json:"cached"`
	Budget      *BudgetStatus   `json:"budget,omitempty"`
}

// AggregateInfo describes how one aggregate was computed. Lower and Upper are
// always sent: a clamping bound of 0 is a bound, not an absent one.
type AggregateInfo struct {
	Name          string  `json:"name"`
	Op            string  `json:"op"`
	Column        string  `json:"column,omitempty"`
	Mechanism     string  `json:"mechanism"`
	Epsilon       float64 `json:"epsilon"`
	Delta         float64 `json:"delta"`
	Lower         float64 `json:"lower"`
	Upper         float64 `json:"upper"`
	AutoBounds    bool    `json:"auto_bounds,omitempty"`
	BoundsEpsilon float64 `json:"bounds_epsilon,omitempty"`
}

// Row is one released group.
type Row struct {
	Key   []string `json:"key"`
	Cells []Cell   `json:"cells"`
}

// Cell is a noisy value with its confidence interval.
type Cell struct {
	Value float64 `json:"value"`
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
}

// Explanation answers POST /v1/queries:explain: what the query would cost and
// how precise it would be, without reading data or spending budget.
type Explanation struct {
	Cost          Cost                   `json:"cost"`
	Confidence    float64                `json:"confidence"`
	Thresholded   bool                   `json:"thresholded"`
	AccuracyFirst bool                   `json:"accuracy_first,omitempty"`
	Aggregates    []AggregateExplanation `json:"aggregates"`
	Budget        *BudgetStatus          `json:"budget,omitempty"`
}

// AggregateExplanation is one aggregate's expected error: the half-width of
// its interval at the query's confidence for a typical cell.
type AggregateExplanation struct {
	AggregateInfo
	HalfWidth float64 `json:"half_width"`
	Note      string  `json:"note,omitempty"`
}

// SQLRequest is the JSON form of POST /v1/sql (text/plain SQL also works).
type SQLRequest struct {
	SQL string `json:"sql"`
}
