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
	Tuning     *Tuning     `json:"tuning,omitempty"`     // automatic contribution bounds; on by default for a sum or mean without any bounds
	Rollup     bool        `json:"rollup,omitempty"`     // add subtotals (GROUP BY ROLLUP): sums of the released cells, at no extra ε
	Engine     string      `json:"engine,omitempty"`     // "beam": run on Privacy on Beam (docs/beam.md); default this server
}

// Tuning asks for automatic contribution bounds, spending Share of ε on them
// (default 0.05 per tuning histogram the query draws, at most 0.15; up to 0.45
// on a small shop whose value histograms show nothing at the default).
// CorrectBias false leaves tuned counts and sums as bounded; by default each
// cell is divided by 1 − its estimated bounding loss (TunedAggregate.Correction).
type Tuning struct {
	Share       float64 `json:"share,omitempty"`
	CorrectBias *bool   `json:"correct_bias,omitempty"`
}

// TuningReport says what automatic tuning chose and why.
type TuningReport struct {
	Share      float64          `json:"share"`
	Epsilon    float64          `json:"epsilon"`
	MaxGroups  int              `json:"max_groups"`
	Noise      string           `json:"noise"`
	Aggregates []TunedAggregate `json:"aggregates"`
	Reason     string           `json:"reason"`
}

// TunedAggregate is one aggregate's tuned per-group clamp, the estimated share
// of its value removed by bounding, and the expected relative error of a typical cell.
type TunedAggregate struct {
	Name          string  `json:"name"`
	Lower         float64 `json:"lower"`
	Upper         float64 `json:"upper"`
	BoundingLoss  float64 `json:"bounding_loss"`
	ExpectedError float64 `json:"expected_error"`
	MaxNorm       float64 `json:"max_norm,omitempty"`
	// Correction: every cell of the aggregate was multiplied by it,
	// 1 / (1 − min(bounding_loss, 0.5)); absent when none was applied.
	Correction float64 `json:"correction,omitempty"`
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
	// ContributionBoundsPerGroup clamps a customer's total in one group (count: rows; sum: values; mean: its average).
	ContributionBoundsPerGroup *GroupBounds `json:"contribution_bounds_per_group,omitempty"`
}

// GroupBounds is the range a customer's total contribution to one group is clamped to.
type GroupBounds struct {
	Lower   float64 `json:"lower"`
	Upper   float64 `json:"upper"`
	MaxNorm float64 `json:"max_norm,omitempty"` // L2 bound of the customer's vector of per-group totals
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
	Tuning      *TuningReport   `json:"tuning,omitempty"` // what automatic tuning chose, when the query was tuned
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
	// ContributionBoundsPerGroup is the per-group clamp, when the aggregate has one.
	ContributionBoundsPerGroup *GroupBounds `json:"contribution_bounds_per_group,omitempty"`
	Tuned                      bool         `json:"tuned,omitempty"` // the clamp was chosen by automatic tuning
}

// Row is one released group.
type Row struct {
	Key      []string `json:"key"`
	Cells    []Cell   `json:"cells"`
	Subtotal int      `json:"subtotal,omitempty"` // with rollup: how many of the last keys the row sums over (their keys are "")
}

// Cell is a noisy value with its confidence interval.
type Cell struct {
	Value        float64 `json:"value"`
	Lower        float64 `json:"lower"`
	Upper        float64 `json:"upper"`
	BoundingLoss float64 `json:"bounding_loss,omitempty"` // estimated share of the true value removed by bounding (tuned aggregates); a tuned count's or sum's cell is already divided by 1 − it (TunedAggregate.Correction)
	Hidden       bool    `json:"hidden,omitempty"`        // signal below the noise, a mean at its clamp, or a tuned bounding_loss above 0.5: draw as hidden
	Reason       string  `json:"reason,omitempty"`
}

// WorkloadExplanation answers POST /v1/workloads:explain: each query's
// explanation and the total cost of running them all.
type WorkloadExplanation struct {
	Queries []Explanation `json:"queries"`
	Cost    Cost          `json:"cost"`
	Budget  *BudgetStatus `json:"budget,omitempty"`
	Fits    bool          `json:"fits"` // the total fits in what the tenant has left now
}

// Workload is the body of POST /v1/workloads:explain.
type Workload struct {
	Queries []Query `json:"queries"`
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
	HalfWidth   float64 `json:"half_width"`
	HiddenBelow float64 `json:"hidden_below,omitempty"` // cells with a value below this will be flagged hidden
	// SubtotalHalfWidths: with rollup, each subtotal level's predicted half-width
	// ([0]: over the last group key; the last: the grand total).
	SubtotalHalfWidths []float64 `json:"subtotal_half_widths,omitempty"`
	Note               string    `json:"note,omitempty"`
}

// SQLRequest is the JSON form of POST /v1/sql (text/plain SQL also works).
type SQLRequest struct {
	SQL string `json:"sql"`
}
