package privalytics

// Query is the JSON query model a marketer sends to POST /v1/queries. analytics
// parses, validates and plans it; the README and the OpenAPI spec document it.
//
//	{
//	  "where":      [{"column": "type", "in": ["purchase"]},
//	                 {"column": "ts", "gte": "2024-01-01", "lt": "2024-04-01"}],
//	  "group_by":   [{"column": "category"}, {"time": "month"}],
//	  "aggregates": [{"op": "count"}, {"op": "sum", "column": "amount", "lower": 0, "upper": 200}],
//	  "bounds":     {"max_groups": 4, "max_rows_per_group": 8},
//	  "epsilon": 1, "delta": 1e-6
//	}
type Query struct {
	Purpose    string      `json:"purpose,omitempty"` // the declared purpose the query serves; default "analytics"
	Where      []Filter    `json:"where,omitempty"`   // all must hold (AND); applied before contribution bounding
	GroupBy    []GroupKey  `json:"group_by,omitempty"`
	Aggregates []Aggregate `json:"aggregates"`
	Bounds     Bounds      `json:"bounds"`
	Epsilon    float64     `json:"epsilon"`              // total ε the query may spend
	Delta      float64     `json:"delta,omitempty"`      // total δ; needed for data-derived group keys and Gaussian noise
	Noise      string      `json:"noise,omitempty"`      // "laplace" (default) or "gaussian"
	Confidence float64     `json:"confidence,omitempty"` // interval level, default 0.95
	TimeZone   string      `json:"time_zone,omitempty"`  // IANA zone for time buckets and date-only bounds; default UTC
	// Tuning chooses the contribution bounds from the data (see analytics/tune.go).
	// It is on by default for a query that gives no bounds at all and has a sum
	// or mean without bounds; give it to tune any query without bounds.
	Tuning *Tuning `json:"tuning,omitempty"`
	// Rollup adds subtotals, as SQL's GROUP BY ROLLUP does: for group_by
	// [a, b], a row per a (b summed over) and a grand total, each marked by
	// Row.Subtotal. They are sums of the released cells — post-processing,
	// at no extra ε — so a coarser total needs no query of its own. A cell
	// whose noise took it below zero is shown as 0 but summed at its noisy
	// value, which keeps the subtotal unbiased: then, and only then, the
	// subtotal is below the sum of the cells shown. Counts and sums only;
	// every group key public (listed keys or time buckets), so that no group
	// is missing.
	Rollup bool `json:"rollup,omitempty"`
	// Engine runs the query elsewhere: "beam" (Privacy on Beam, for snapshots
	// that outgrow one machine; see docs/beam.md). Default: this server.
	Engine string `json:"engine,omitempty"`
}

// Tuning asks for automatic contribution bounds: Share of the query's ε goes to
// DP histograms of the customers' contributions, from which L0, the per-group
// clamp of each count, sum and mean, and the noise are chosen.
type Tuning struct {
	Share float64 `json:"share,omitempty"` // default 0.05 per histogram drawn, at most 0.15 (up to 0.45 on a smaller shop: analytics.MaxAdaptiveShare)
	// CorrectBias, when false, leaves the cells of tuned counts and sums as
	// bounded: by default each is divided by 1 − its estimated bounding loss
	// (see TunedAggregate.Correction). Unset means true.
	CorrectBias *bool `json:"correct_bias,omitempty"`
}

// Corrects reports whether tuned counts and sums are corrected for the
// estimated bias of bounding: unless CorrectBias is false.
func (t *Tuning) Corrects() bool { return t == nil || t.CorrectBias == nil || *t.CorrectBias }

// TuningReport says what automatic tuning chose and why.
type TuningReport struct {
	Share     float64 `json:"share"`   // of the query's ε
	Epsilon   float64 `json:"epsilon"` // spent on the tuning histograms
	MaxGroups int     `json:"max_groups"`
	Noise     string  `json:"noise"`
	// Aggregates: the clamp chosen for each tuned aggregate, the estimated
	// share of its true value that bounding removes (from the tuning
	// histograms, blind to the few customers below their noise: on heavy-tailed
	// data an under-statement), and the typical relative
	// error of a typical cell: the median of |bounding bias + noise| over its
	// value (dp.MedianAbsError), as tuning chose by it, before the correction
	// (TunedAggregate.Correction) divides out the bias it estimates.
	Aggregates []TunedAggregate `json:"aggregates"`
	Reason     string           `json:"reason"`
}

// TunedAggregate is one aggregate's tuned bounds.
type TunedAggregate struct {
	Name          string  `json:"name"`
	Lower         float64 `json:"lower"`
	Upper         float64 `json:"upper"`
	BoundingLoss  float64 `json:"bounding_loss"`
	ExpectedError float64 `json:"expected_error"`
	// MaxNorm is the chosen L2 bound of each customer's vector of per-group
	// totals (GroupBounds.MaxNorm) when tuning found one gives the smaller error.
	MaxNorm float64 `json:"max_norm,omitempty"`
	// Correction is the factor every cell of the aggregate (value and
	// interval, subtotals included) was multiplied by to undo the estimated
	// bounding loss: 1 / (1 − min(BoundingLoss, 0.5)). Absent (1) for
	// means, for clamps below zero, when no loss is estimated or the
	// histograms showed nothing above their noise, and when the query sets
	// tuning.correct_bias false.
	Correction float64 `json:"correction,omitempty"`
}

// Filter is one condition on a column. Exactly one family is set: eq, in, not_in,
// or a range (gt/gte and/or lt/lte). Values are JSON strings, numbers or booleans;
// timestamps are RFC 3339 or YYYY-MM-DD (midnight in the query's time zone).
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

// GroupKey is one dimension of the answer: a column, or a time bucket of the
// event time. Keys listed in Keys (or declared as the column's allowed values, or
// time buckets inside a bounded time filter) are public and always released;
// any other key comes from the data and is released only through DP partition selection.
type GroupKey struct {
	Column string   `json:"column,omitempty"`
	Time   string   `json:"time,omitempty"` // hour, day, week (ISO), month, quarter, year
	Keys   []string `json:"keys,omitempty"`
	// Buckets make a histogram of a numeric column: ascending edges e0 < e1 < … ,
	// one group per [e_i, e_i+1), labelled "[e_i, e_i+1)"; values outside
	// [e0, last) fall in no group. The buckets are declared, so they are public.
	Buckets []float64 `json:"buckets,omitempty"`
}

// Aggregate is one measure per group.
type Aggregate struct {
	Name   string   `json:"name,omitempty"` // defaults to op or op_column
	Op     string   `json:"op"`             // count, distinct_customers, sum, mean, variance, stddev, median, quantile
	Column string   `json:"column,omitempty"`
	Lower  *float64 `json:"lower,omitempty"` // clamping bounds per row, required for every op but count and distinct_customers, unless bounds is "auto"
	Upper  *float64 `json:"upper,omitempty"` //
	// Bounds "auto" replaces lower and upper by a DP estimate of the column's
	// range from the data, spending AutoShare of the aggregate's ε on it; the
	// range used is reported in the answer.
	Bounds    string  `json:"bounds,omitempty"`
	AutoShare float64 `json:"auto_share,omitempty"` // share of the aggregate's ε for "auto" bounds; default 0.2
	// Within asks for accuracy first: the query's epsilon is left out (0) and the
	// engine picks the smallest ε whose interval half-width for a typical cell is
	// at most Within (count, distinct_customers, sum, mean with fixed bounds).
	Within float64 `json:"within,omitempty"`
	Weight float64 `json:"weight,omitempty"` // share of the query's budget relative to the other aggregates; default 1
	Rank   float64 `json:"rank,omitempty"`   // quantile only: 0 < rank < 1 (0.5 is the median)
	// ContributionBoundsPerGroup clamps a customer's TOTAL contribution to one
	// group (count, sum, mean), as BigQuery's contribution_bounds_per_group and
	// Privacy on Beam's SumPerKey do: for sum the sum of the customer's values in
	// the group (each first clamped to lower/upper when those are given), for
	// count the customer's rows in the group, for mean the customer's average in
	// the group (the answer is then the average of the customers' averages, as
	// BigQuery's AVG). The noise is calibrated to L0 × max(|lower|, |upper|)
	// (Laplace) or √L0 × max(|lower|, |upper|) (Gaussian), or to MaxNorm.
	ContributionBoundsPerGroup *GroupBounds `json:"contribution_bounds_per_group,omitempty"`
}

// GroupBounds is the range a customer's total contribution to one group is
// clamped to, and optionally the L2 norm of its contributions to all groups.
type GroupBounds struct {
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
	// MaxNorm (count and sum, Gaussian noise) bounds the Euclidean norm of a
	// customer's vector of clamped per-group totals: a longer vector is scaled
	// down to it, every group alike, so the noise is calibrated to L2 = MaxNorm
	// when that is below √L0 × max(|lower|, |upper|). A customer spread thinly
	// over many groups keeps its whole contribution where L0 would drop groups
	// or a small clamp would cut each. Without max_groups and with public
	// groups, L0 is then every group. 0: no norm bound.
	MaxNorm float64 `json:"max_norm,omitempty"`
}

// Bounds limit each customer's contribution; the executor enforces them by
// sampling rows uniformly at random per customer.
type Bounds struct {
	MaxGroups       int `json:"max_groups,omitempty"`         // L0: groups one customer may touch; default 1 without group_by, else 4
	MaxRowsPerGroup int `json:"max_rows_per_group,omitempty"` // L∞: rows one customer adds to one group; default 8
	// MaxRows optionally caps the rows one customer adds in total, across groups
	// (a uniform sample of what the other bounds keep). Under Laplace noise a cap
	// below max_groups × max_rows_per_group makes the noise smaller.
	MaxRows int `json:"max_rows,omitempty"`
}

// Result is a DP answer. Every number in it is safe to release.
type Result struct {
	GroupBy     []string        `json:"group_by"`
	Aggregates  []AggregateInfo `json:"aggregates"`
	Rows        []Row           `json:"rows"`
	Confidence  float64         `json:"confidence"`
	Cost        Cost            `json:"cost"`        // what this answer charged (zero when Cached)
	Thresholded bool            `json:"thresholded"` // group keys came from the data and passed DP partition selection
	// Snapshot is an opaque identifier of this answer (a cached repeat shows
	// the same one). It used to be the snapshot version; it no longer tells
	// when the data changed.
	Snapshot string        `json:"snapshot"`
	Cached   bool          `json:"cached"`
	Budget   *BudgetStatus `json:"budget,omitempty"`
	// Tuning is what automatic tuning chose, when the query was tuned.
	Tuning *TuningReport `json:"tuning,omitempty"`
}

// AggregateInfo describes how one aggregate was computed.
type AggregateInfo struct {
	Name      string  `json:"name"`
	Op        string  `json:"op"`
	Column    string  `json:"column,omitempty"`
	Mechanism string  `json:"mechanism"`
	Epsilon   float64 `json:"epsilon"`
	Delta     float64 `json:"delta"`
	Lower     float64 `json:"lower,omitempty"`
	Upper     float64 `json:"upper,omitempty"`
	// AutoBounds is set when lower and upper were estimated from the data (with
	// BoundsEpsilon of the aggregate's Epsilon); before execution they are zero.
	AutoBounds    bool    `json:"auto_bounds,omitempty"`
	BoundsEpsilon float64 `json:"bounds_epsilon,omitempty"`
	// ContributionBoundsPerGroup is the clamp of a customer's total in one
	// group, when the aggregate has one.
	ContributionBoundsPerGroup *GroupBounds `json:"contribution_bounds_per_group,omitempty"`
	// Tuned: the per-group bounds were chosen by automatic tuning (see the
	// answer's tuning object); before execution they are not known.
	Tuned bool `json:"tuned,omitempty"`
}

// Row is one released group: its key values and one cell per aggregate.
type Row struct {
	Key   []string `json:"key"`
	Cells []Cell   `json:"cells"`
	// Subtotal, in an answer with rollup, is how many of the last group keys
	// the row sums over (their Key entries are ""): 1 for a per-a subtotal of
	// group_by [a, b], 2 for its grand total; 0 for a released group.
	Subtotal int `json:"subtotal,omitempty"`
}

// Cell is a noisy value with its confidence interval.
type Cell struct {
	Value float64 `json:"value"`
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
	// BoundingLoss is the estimated share of the cell's true value that
	// contribution bounding removed (a DP estimate from automatic tuning's
	// histograms; absent when the aggregate was not tuned). A tuned count's
	// or sum's value and interval are already divided by 1 − loss (the
	// tuning report's Correction) unless the query turned that off; the
	// estimate cannot see customers far above the rest below its noise, so on
	// heavy-tailed data some bias remains.
	BoundingLoss float64 `json:"bounding_loss,omitempty"`
	// Hidden marks a cell whose signal is below the noise (its interval's
	// half-width is at least its value; a mean's interval reaching the top of
	// its clamp, or a lower end other than zero), or a tuned aggregate's cell
	// whose estimated BoundingLoss is above 0.5 (mostly bias, more than the
	// correction undoes): it is released, being paid for, but should be
	// drawn as hidden; Reason says why.
	Hidden bool   `json:"hidden,omitempty"`
	Reason string `json:"reason,omitempty"`
}
