package analytics

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

// Defaults of the query model (documented in the README and the OpenAPI spec).
const (
	DefaultPurpose         = privalytics.DefaultPurpose
	DefaultConfidence      = 0.95
	DefaultMaxRowsPerGroup = 8
	DefaultMaxGroups       = 4 // with group_by; 1 without
	DefaultAutoShare       = 0.2
)

type filter struct {
	col    int
	typ    privalytics.ColumnType
	set    map[string]bool // eq / in / not_in on strings and bools
	negate bool
	// ranges on int, decimal (scaled), timestamp (µs) and float columns
	lo, hi         int64
	flo, fhi       float64
	hasLo, hasHi   bool
	isRange, isSet bool
	intSet         map[int64]bool // eq / in / not_in on ints, decimals and timestamps
	fltSet         map[float64]bool
}

type dim struct {
	name   string
	col    int
	typ    privalytics.ColumnType
	time   string    // bucket unit, "" for a column
	bounds []int64   // time, and buckets of int/decimal columns: boundaries (µs or scaled), len(labels)+1
	fbound []float64 // buckets of float columns: boundaries
	labels []string  // time and buckets: labels
	keys   []string  // column: the public keys, when public
	public bool
	hist   bool // a histogram over declared buckets of a numeric column
}

type aggregate struct {
	info     privalytics.AggregateInfo
	op       string
	col      int
	typ      privalytics.ColumnType
	scale    int // decimal scale; 0 for int
	lo, hi   int64
	flo, fhi float64
	budget   dp.Budget
	slot     int // index into the value accumulators, -1 for count/distinct
	isFloat  bool
	rank     float64 // quantiles
	// Automatic bounds: autoEps of the aggregate's ε goes to the DP estimate of
	// [lo, hi] (ResolveBounds), budget to the aggregate itself.
	auto     bool
	autoEps  float64
	resolved bool // the bounds were estimated (ResolveBounds)
	// Per-group bounds (contribution_bounds_per_group): a customer's total in
	// one group (count: its rows; sum: its values; mean: its average) is
	// clamped to [glo, ghi] natural units, [gloI, ghiI] stored units (rows for
	// count). pg indexes the Partial's per-group accumulators.
	perGroup   bool
	glo, ghi   float64
	gloI, ghiI int64
	pg         int
	// norm (count, sum; Gaussian) bounds the L2 norm of a customer's vector
	// of clamped per-group totals, natural units (rows for count); 0: none.
	// Plan.normBound says whether it binds.
	norm float64
}

// Plan is a validated query, ready to execute.
type Plan struct {
	q         privalytics.Query
	schema    privalytics.Schema
	cols      []privalytics.Column
	loc       *time.Location
	filters   []filter
	dims      []dim
	aggs      []aggregate
	slots     int       // value accumulators per group
	slotSq    []bool    // the slot also sums squared distances from its midpoint (variance, stddev)
	slotKeep  []bool    // the slot keeps every kept value per group (quantiles)
	slotMid   []float64 // midpoint of the slot's bounds, natural units
	slotUnit  []float64 // 10^scale of the slot's column (1 for floats)
	slotHist  []bool    // the slot builds a histogram of magnitudes (the first pass of automatic bounds)
	l0, linf  int64
	ltotal    int64 // rows per customer in total; 0 = no cap
	kind      dp.NoiseKind
	selection bool
	selBudget dp.Budget
	cost      privalytics.Cost
	canon     []byte // the canonical query as JSON: what fingerprints are computed over
	limits    Limits
	timeFrom  int64
	timeTo    int64
	timeBound bool
	// The tightest bounds of all range filters on the event time (µs, inclusive).
	timeLo, timeHi       int64
	timeHasLo, timeHasHi bool
	// accuracyFirst: Epsilon was chosen by NewPlan to meet the aggregates' Within.
	accuracyFirst bool
	// pgAggs are the indexes of the aggregates with per-group bounds.
	pgAggs []int
	// Automatic tuning (tune.go): tune is pending on a placeholder plan;
	// tunePass marks its histogram pass; report (the choice, each aggregate's
	// estimated bounding loss and correction) is on the tuned plan.
	tune     *tuneSpec
	tunePass bool
	report   *privalytics.TuningReport
}

// noRowCap is the rows-per-group bound of a query whose every row-additive
// aggregate has per-group bounds and that set no max_rows_per_group: the
// per-group clamp bounds the sensitivity, so no rows are sampled away.
const noRowCap = math.MaxInt32

func invalid(format string, args ...any) error {
	return privalytics.Errorf(privalytics.EINVALID, format, args...)
}

// NewPlan validates q against the schema and fills the defaults. A query that
// fails here costs nothing.
func NewPlan(q *privalytics.Query, schema privalytics.Schema, lim Limits) (*Plan, error) {
	if lim.MaxGroups <= 0 {
		lim = DefaultLimits()
	}
	if wantsTuning(q) {
		if q.Engine != "" {
			// Tuning draws its histograms in this process; a remote engine
			// runs fixed bounds only.
			return nil, invalid("query: engine %q needs fixed bounds: give bounds.max_groups and each sum's or mean's lower and upper (automatic tuning runs on this server only)", q.Engine)
		}
		return planTuned(q, schema, lim)
	}
	for _, a := range q.Aggregates {
		if a.Within != 0 {
			return planForAccuracy(q, schema, lim)
		}
	}
	return newPlan(q, schema, lim)
}

func newPlan(q *privalytics.Query, schema privalytics.Schema, lim Limits) (*Plan, error) {
	p := &Plan{q: *q, schema: schema, cols: schema.Stored(), limits: lim}
	n := &p.q
	if n.Purpose == "" {
		n.Purpose = DefaultPurpose
	}
	if !privalytics.ValidPurpose(n.Purpose) {
		return nil, invalid("purpose %q must be lower-case letters, digits, _ or -, starting with a letter, at most 32 long (default %q)", n.Purpose, DefaultPurpose)
	}
	if n.Confidence == 0 {
		n.Confidence = DefaultConfidence
	}
	if n.Noise == "" {
		n.Noise = string(dp.Laplace)
	}
	if n.TimeZone == "" {
		n.TimeZone = "UTC"
	}
	rowCapGiven, groupsGiven := n.Bounds.MaxRowsPerGroup != 0, n.Bounds.MaxGroups != 0
	if !rowCapGiven {
		n.Bounds.MaxRowsPerGroup = DefaultMaxRowsPerGroup
	}
	if n.Bounds.MaxGroups == 0 {
		n.Bounds.MaxGroups = 1
		if len(n.GroupBy) > 0 {
			n.Bounds.MaxGroups = DefaultMaxGroups
		}
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if !(n.Epsilon > 0) || math.IsInf(n.Epsilon, 0) {
		bad("epsilon must be > 0 and finite, got %v", n.Epsilon)
	}
	if !(n.Delta >= 0 && n.Delta < 1) {
		bad("delta must be in [0, 1), got %v", n.Delta)
	}
	if !(n.Confidence > 0 && n.Confidence < 1) {
		bad("confidence must be between 0 and 1 (e.g. 0.95), got %v", n.Confidence)
	}
	switch dp.NoiseKind(n.Noise) {
	case dp.Laplace:
	case dp.Gaussian:
		if n.Delta == 0 {
			bad("gaussian noise needs delta > 0")
		}
	default:
		bad("noise must be laplace or gaussian, got %q", n.Noise)
	}
	p.kind = dp.NoiseKind(n.Noise)
	if n.Bounds.MaxGroups < 1 || n.Bounds.MaxGroups > 1000 {
		bad("bounds.max_groups must be 1..1000, got %d", n.Bounds.MaxGroups)
	}
	if n.Bounds.MaxRowsPerGroup < 1 || n.Bounds.MaxRowsPerGroup > 100_000 {
		bad("bounds.max_rows_per_group must be 1..100000, got %d", n.Bounds.MaxRowsPerGroup)
	}
	if n.Bounds.MaxRows < 0 || n.Bounds.MaxRows > 1_000_000 {
		bad("bounds.max_rows must be 0 (no cap) or 1..1000000, got %d", n.Bounds.MaxRows)
	}
	loc, err := time.LoadLocation(n.TimeZone)
	if err != nil {
		bad("time_zone %q is not an IANA zone like Europe/London", n.TimeZone)
		loc = time.UTC
	}
	p.loc = loc
	if len(n.Aggregates) == 0 {
		bad("aggregates: ask for at least one, e.g. {\"op\": \"count\"}")
	}
	if len(n.Aggregates) > lim.MaxAggregates {
		bad("at most %d aggregates, got %d", lim.MaxAggregates, len(n.Aggregates))
	}
	if len(problems) > 0 {
		return nil, invalid("query: %s", strings.Join(problems, "; "))
	}
	p.l0, p.linf, p.ltotal = int64(n.Bounds.MaxGroups), int64(n.Bounds.MaxRowsPerGroup), int64(n.Bounds.MaxRows)

	for i, f := range n.Where {
		cf, err := p.compileFilter(f)
		if err != nil {
			return nil, invalid("query: where[%d]: %v", i, err)
		}
		p.filters = append(p.filters, cf)
	}
	if p.timeHasLo && p.timeHasHi {
		if p.timeLo > p.timeHi {
			return nil, invalid("query: the time filters leave no time: the latest lower bound is after the earliest upper bound")
		}
		p.timeFrom, p.timeTo, p.timeBound = p.timeLo, p.timeHi+1, true
	}
	for i, g := range n.GroupBy {
		d, err := p.compileDim(g)
		if err != nil {
			return nil, invalid("query: group_by[%d]: %v", i, err)
		}
		p.dims = append(p.dims, d)
	}
	names := map[string]bool{}
	weights := make([]float64, len(n.Aggregates))
	for i, a := range n.Aggregates {
		ag, err := p.compileAggregate(a)
		if err != nil {
			return nil, invalid("query: aggregates[%d]: %v", i, err)
		}
		if names[ag.info.Name] {
			return nil, invalid("query: aggregates[%d]: the name %q is used twice; give each aggregate its own name", i, ag.info.Name)
		}
		names[ag.info.Name] = true
		if a.Weight < 0 || math.IsInf(a.Weight, 0) || math.IsNaN(a.Weight) {
			return nil, invalid("query: aggregates[%d]: weight must be > 0, got %v", i, a.Weight)
		}
		weights[i] = a.Weight
		if weights[i] == 0 {
			weights[i] = 1
		}
		if ag.perGroup {
			ag.pg = len(p.pgAggs)
			p.pgAggs = append(p.pgAggs, len(p.aggs))
		}
		p.aggs = append(p.aggs, ag)
	}
	if !rowCapGiven && len(p.pgAggs) > 0 {
		// Rows are sampled per group only for aggregates that need it.
		needRows := false
		for _, a := range p.aggs {
			needRows = needRows || !a.perGroup && a.op != "distinct_customers"
		}
		if !needRows {
			p.linf = noRowCap
		}
	}

	// Public groups: every dimension public. Their count bounds L0 too.
	public := 1
	p.selection = false
	for _, d := range p.dims {
		if !d.public {
			p.selection = true
			continue
		}
		if d.time != "" || d.hist {
			public *= len(d.labels)
		} else {
			public *= len(d.keys)
		}
		if public > lim.MaxGroups || lim.MaxGroupSpace > 0 && public > lim.MaxGroupSpace {
			return nil, invalid("query: too many groups: the public keys make more than %d; narrow the time range, use a coarser time bucket or list fewer keys", lim.MaxGroups)
		}
	}
	if !p.selection && len(p.dims) > 0 && int64(public) < p.l0 {
		p.l0 = int64(max(public, 1)) // a customer cannot touch more groups than exist
	}
	hasNorm := false
	for _, a := range p.aggs {
		hasNorm = hasNorm || a.norm > 0
	}
	if hasNorm && p.kind != dp.Gaussian {
		return nil, invalid("query: max_norm bounds the L2 norm of each customer's per-group totals and needs Gaussian noise: set noise to gaussian and delta > 0 (e.g. 1e-6), or drop max_norm")
	}
	if hasNorm && !groupsGiven && !p.selection && len(p.dims) > 0 {
		// The norm bounds the contribution: keep every group of a customer.
		p.l0 = int64(max(public, 1))
	}
	if err := p.checkRollup(); err != nil {
		return nil, err
	}
	if p.selection && n.Delta == 0 {
		return nil, invalid("query: the group keys of %s come from the data and are released only through DP partition selection, which needs delta > 0 (e.g. 1e-6); or list the keys in group_by[].keys", p.dataDims())
	}
	aggs, sel := dp.Split(dp.Budget{Epsilon: n.Epsilon, Delta: n.Delta}, weights, p.selection, p.kind)
	for i := range p.aggs {
		a := &p.aggs[i]
		a.budget = aggs[i]
		a.info.Epsilon, a.info.Delta = aggs[i].Epsilon, aggs[i].Delta
		if a.auto {
			share := n.Aggregates[i].AutoShare
			if share == 0 {
				share = DefaultAutoShare
			}
			a.autoEps = aggs[i].Epsilon * share
			a.budget.Epsilon -= a.autoEps
			a.info.BoundsEpsilon = a.autoEps
		}
	}
	p.selBudget = sel
	p.cost = privalytics.Cost{Epsilon: n.Epsilon, Rho: p.rho()}
	if p.selection || p.kind == dp.Gaussian {
		p.cost.Delta = n.Delta
	}
	if err := p.checkMechanisms(); err != nil {
		return nil, err
	}
	if n.Engine != "" {
		if err := p.checkRemote(); err != nil {
			return nil, err
		}
	}
	p.canon, _ = json.Marshal(p.canonical())
	return p, nil
}

// checkRollup refuses, from the query alone, a rollup that would not add up.
func (p *Plan) checkRollup() error {
	if !p.q.Rollup {
		return nil
	}
	switch {
	case len(p.dims) == 0:
		return invalid("query: rollup adds subtotals over the group keys: give group_by, or drop rollup")
	case p.selection:
		return invalid("query: rollup sums the released groups, so every group must be released: the keys of %s come from the data, and the groups partition selection suppresses would be missing from the totals; list the keys in group_by[].keys (or bucket a time column), or drop rollup", p.dataDims())
	case p.q.Engine != "":
		return invalid("query: rollup runs on this server only; drop engine %q or rollup", p.q.Engine)
	}
	for _, a := range p.aggs {
		switch a.op {
		case "count", "sum":
		case "distinct_customers":
			return invalid("query: rollup cannot sum aggregate %q (distinct_customers): a customer in two groups would count twice in their total; ask the total in a query of its own, or drop rollup", a.info.Name)
		default:
			return invalid("query: rollup sums cells, and aggregate %q (%s) is not a sum of its groups; ask it in a query without rollup (a mean's total is a rolled-up sum over a rolled-up count)", a.info.Name, a.op)
		}
	}
	return nil
}

func (p *Plan) dataDims() string {
	var names []string
	for _, d := range p.dims {
		if !d.public {
			names = append(names, d.name)
		}
	}
	return strings.Join(names, ", ")
}

// canonical is the normalised query the fingerprint hashes: defaults filled, sets
// sorted, so equivalent queries share a fingerprint.
func (p *Plan) canonical() privalytics.Query {
	c := p.q
	c.Where = slices.Clone(c.Where)
	for i := range c.Where {
		f := &c.Where[i]
		sortAny := func(v []any) []any {
			v = slices.Clone(v)
			sort.Slice(v, func(a, b int) bool { return fmt.Sprint(v[a]) < fmt.Sprint(v[b]) })
			return v
		}
		f.In, f.NotIn = sortAny(f.In), sortAny(f.NotIn)
	}
	sort.SliceStable(c.Where, func(a, b int) bool { return c.Where[a].Column < c.Where[b].Column })
	return c
}

// Cost is what the query charges under basic composition; its Rho is the zCDP
// measure of the same release, recorded with every charge.
func (p *Plan) Cost() privalytics.Cost { return p.cost }

// ZCDPCost is what the query charges a tenant that accounts in zCDP: ρ, plus the δ
// of its approximate parts — partition selection, and quantile trees under
// Gaussian noise — each δ-approximately (ε²/2)-zCDP. The Gaussian sums' and
// counts' δ is absorbed into their ρ. Epsilon stays the basic-composition figure.
func (p *Plan) ZCDPCost() privalytics.Cost {
	delta := p.selBudget.Delta
	for _, a := range p.aggs {
		if p.kind == dp.Gaussian && (a.op == "median" || a.op == "quantile") {
			delta += a.budget.Delta * (1 - dp.QuantileCountShare) // the tree's; the count's is in ρ
		}
	}
	return privalytics.Cost{Epsilon: p.cost.Epsilon, Delta: delta, Rho: p.cost.Rho}
}

// rho is the zCDP cost of the release (Bun and Steinke 2016): ε²/2 for each pure
// ε-DP part (Laplace aggregates; partition selection's ε), Δ²/2σ² for each
// Gaussian, with the sensitivities release uses.
func (p *Plan) rho() float64 {
	gauss := func(linf, eps, delta float64) float64 {
		if linf <= 0 {
			linf = 1 // as release does
		}
		return dp.RhoOfGaussian(p.l0, linf, eps, delta)
	}
	total := dp.RhoOfLaplace(p.selBudget.Epsilon)
	for _, a := range p.aggs {
		e, d := a.budget.Epsilon, a.budget.Delta
		if a.auto {
			total += dp.RhoOfLaplace(a.autoEps) // the bounds' histogram: Laplace noise
		}
		maxAbs := math.Max(math.Abs(a.flo), math.Abs(a.fhi))
		if a.perGroup {
			total += p.perGroupRho(a)
			continue
		}
		switch {
		case p.kind == dp.Laplace && a.op == "mean":
			total += 2 * dp.RhoOfLaplace(e/2)
		case p.kind == dp.Laplace && (a.op == "variance" || a.op == "stddev"):
			total += 3 * dp.RhoOfLaplace(e/3)
		case p.kind == dp.Laplace && (a.op == "median" || a.op == "quantile"):
			total += dp.RhoOfLaplace(e*(1-dp.QuantileCountShare)) + dp.RhoOfLaplace(e*dp.QuantileCountShare)
		case p.kind == dp.Laplace:
			total += dp.RhoOfLaplace(e)
		case a.op == "count":
			total += gauss(float64(p.linf), e, d)
		case a.op == "distinct_customers":
			total += gauss(1, e, d)
		case a.op == "sum":
			total += gauss(maxAbs*float64(p.linf), e, d)
		case a.op == "mean":
			total += gauss(float64(p.linf), e/2, d/2) + gauss((a.fhi-a.flo)/2*float64(p.linf), e/2, d/2)
		case a.op == "median" || a.op == "quantile":
			// The library calibrates the whole quantile tree to (ε, δ)-DP: with
			// Gaussian noise δ-approximately ε²/2-zCDP, its δ charged with the
			// approximate parts (ZCDPCost). The row count sizing the interval
			// is an ordinary Gaussian count.
			s := dp.QuantileCountShare
			total += dp.RhoOfLaplace(e*(1-s)) + gauss(float64(p.linf), e*s, d*s)
		default: // variance, stddev
			half := (a.fhi - a.flo) / 2
			total += gauss(float64(p.linf), e/3, d/3) + gauss(half*float64(p.linf), e/3, d/3) + gauss(half*half*float64(p.linf), e/3, d/3)
		}
	}
	return total
}

// perGroupRho is the zCDP cost of an aggregate with per-group bounds, with the
// sensitivities releaseCell uses.
func (p *Plan) perGroupRho(a aggregate) float64 {
	e, d := a.budget.Epsilon, a.budget.Delta
	if p.kind == dp.Laplace {
		if a.op == "mean" {
			return 2 * dp.RhoOfLaplace(e/2)
		}
		return dp.RhoOfLaplace(e)
	}
	if n := p.normBound(a); n > 0 {
		return dp.RhoOfGaussian(1, n, e, d)
	}
	l0 := p.distinctL0()
	switch a.op {
	case "count":
		return dp.RhoOfGaussian(l0, float64(a.ghiI), e, d)
	case "mean":
		return dp.RhoOfGaussian(l0, 1, e/2, d/2) + dp.RhoOfGaussian(l0, (a.ghi-a.glo)/2, e/2, d/2)
	}
	linf := math.Max(math.Abs(a.glo), math.Abs(a.ghi))
	if linf <= 0 {
		linf = 1
	}
	return dp.RhoOfGaussian(l0, linf, e, d)
}

// Fingerprint identifies the canonical query under key: an HMAC-SHA-256, so
// that whoever sees a fingerprint (in a charge, the audit trail or a cache key)
// cannot test guesses of its filter values by hashing candidate queries. The
// key is a secret of the tenant (see analytics.Service).
func (p *Plan) Fingerprint(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(p.canon)
	return hex.EncodeToString(m.Sum(nil))
}

// rowSens returns the (L0, rows per group) to calibrate row-additive statistics
// with: under Laplace noise only L1 = L0 × rows matters, so a total cap below it
// is expressed as one group of max_rows rows. Gaussian noise depends on L2 as
// well, so it keeps the per-group bounds (valid, not tighter).
func (p *Plan) rowSens() (l0, rows int64) {
	if p.kind == dp.Laplace && p.ltotal > 0 && p.ltotal < p.l0*p.linf {
		return 1, p.ltotal
	}
	return p.l0, p.linf
}

// distinctL0 bounds the groups in which one customer has a kept row.
func (p *Plan) distinctL0() int64 {
	if p.ltotal > 0 {
		return min(p.l0, p.ltotal)
	}
	return p.l0
}

// Months returns the calendar months (UTC, "2006-01") the query's time filter
// touches, or nil when the time range is not bounded on both sides. Tenants with
// data-period budgets are charged in each of them.
func (p *Plan) Months() []string {
	if !p.timeBound {
		return nil
	}
	_, labels, err := buckets("month", p.timeFrom, p.timeTo, time.UTC, 1<<20)
	if err != nil {
		return nil
	}
	return labels
}

// Purpose is the declared purpose the query serves.
func (p *Plan) Purpose() string { return p.q.Purpose }

// Mechanisms describes the mechanisms, for the ledger.
func (p *Plan) Mechanisms() string {
	var parts []string
	if p.tune != nil {
		parts = append(parts, fmt.Sprintf("laplace tuning histograms (%d)", 1+len(p.tune.tuned)))
	}
	for _, a := range p.aggs {
		kind := string(p.kind)
		if p.tune != nil && len(p.tune.kinds) > 1 {
			kind = "laplace or gaussian (tuned)"
		}
		s := kind + " " + a.op
		if a.info.Column != "" {
			s += "(" + a.info.Column + ")"
		}
		parts = append(parts, s)
	}
	if p.selection {
		parts = append(parts, "partition selection")
	}
	return strings.Join(parts, "; ")
}

// column resolves a field name to its stored index and declaration.
func (p *Plan) column(name string) (int, privalytics.Column, error) {
	if name == p.schema.Subject || name == privalytics.SubjectColumn {
		return 0, privalytics.Column{}, fmt.Errorf("the customer identifier %q cannot be filtered, grouped or aggregated; it is the privacy unit", name)
	}
	for i, c := range p.cols {
		if i > 0 && c.Name == name {
			return i, c, nil
		}
	}
	var known []string
	for _, c := range p.cols[1:] {
		known = append(known, c.Name)
	}
	return 0, privalytics.Column{}, fmt.Errorf("unknown column %q; the schema has %s", name, strings.Join(known, ", "))
}

// parseScalar parses a filter value for a column: strings as is, ints and
// decimals scaled, timestamps as µs, floats, bools.
func (p *Plan) parseScalar(c privalytics.Column, v any) (s string, n int64, f float64, err error) {
	text, err := valueText(v)
	if err != nil {
		return "", 0, 0, err
	}
	switch c.Type {
	case privalytics.TypeString:
		return text, 0, 0, nil
	case privalytics.TypeBool:
		if text != "true" && text != "false" {
			return "", 0, 0, fmt.Errorf("%s is a bool column; use true or false, got %q", c.Name, text)
		}
		return text, 0, 0, nil
	case privalytics.TypeInt:
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return "", 0, 0, fmt.Errorf("%s is an int column; %q is not a whole number", c.Name, text)
		}
		return "", n, 0, nil
	case privalytics.TypeDecimal:
		n, err := scaled(text, c.Scale)
		if err != nil {
			return "", 0, 0, fmt.Errorf("%s: %v", c.Name, err)
		}
		return "", n, 0, nil
	case privalytics.TypeFloat:
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return "", 0, 0, fmt.Errorf("%s is a float column; %q is not a finite number", c.Name, text)
		}
		return "", 0, f, nil
	case privalytics.TypeTimestamp:
		t, err := parseTime(text, p.loc)
		if err != nil {
			return "", 0, 0, fmt.Errorf("%s: %v", c.Name, err)
		}
		return "", t.UnixMicro(), 0, nil
	}
	return "", 0, 0, fmt.Errorf("unsupported column type %s", c.Type)
}

// scaled parses a decimal string into an int64 scaled by 10^scale, exactly.
func scaled(text string, scale int) (int64, error) {
	r, ok := new(big.Rat).SetString(text)
	if !ok || strings.ContainsAny(text, "eE/") {
		return 0, fmt.Errorf("%q is not a decimal number", text)
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)))
	if !r.IsInt() {
		return 0, fmt.Errorf("%q has more than %d digits after the point", text, scale)
	}
	if !r.Num().IsInt64() {
		return 0, fmt.Errorf("%q is too large", text)
	}
	return r.Num().Int64(), nil
}

// parseTime accepts RFC 3339 or a date (midnight in loc).
func parseTime(text string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, text); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, text, loc); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time; use RFC 3339 (2025-03-01T00:00:00Z) or a date (2025-03-01)", text)
}

func (p *Plan) compileFilter(f privalytics.Filter) (filter, error) {
	idx, c, err := p.column(f.Column)
	if err != nil {
		return filter{}, err
	}
	cf := filter{col: idx, typ: c.Type}
	families := 0
	if f.Eq != nil {
		families++
	}
	if f.In != nil {
		families++
	}
	if f.NotIn != nil {
		families++
	}
	ranged := f.Gt != nil || f.Gte != nil || f.Lt != nil || f.Lte != nil
	if ranged {
		families++
	}
	if families != 1 {
		return filter{}, fmt.Errorf("set exactly one of eq, in, not_in, or a range (gt/gte, lt/lte) on %q", f.Column)
	}
	if f.Gt != nil && f.Gte != nil || f.Lt != nil && f.Lte != nil {
		return filter{}, fmt.Errorf("give one lower bound (gt or gte) and one upper bound (lt or lte) on %q", f.Column)
	}
	if ranged {
		if c.Type == privalytics.TypeString || c.Type == privalytics.TypeBool {
			return filter{}, fmt.Errorf("%q is a %s column; ranges apply to numbers and times, use eq or in", f.Column, c.Type)
		}
		cf.isRange = true
		bound := func(v any, upper, inclusive bool) error {
			_, n, fl, err := p.parseScalar(c, v)
			if err != nil {
				return err
			}
			if c.Type == privalytics.TypeFloat {
				if upper {
					cf.fhi, cf.hasHi = fl, true
					if !inclusive {
						cf.fhi = math.Nextafter(fl, math.Inf(-1))
					}
				} else {
					cf.flo, cf.hasLo = fl, true
					if !inclusive {
						cf.flo = math.Nextafter(fl, math.Inf(1))
					}
				}
				return nil
			}
			// Integer domains: store inclusive bounds.
			if upper {
				cf.hi, cf.hasHi = n, true
				if !inclusive {
					cf.hi = n - 1
				}
			} else {
				cf.lo, cf.hasLo = n, true
				if !inclusive {
					cf.lo = n + 1
				}
			}
			return nil
		}
		for _, b := range []struct {
			v          any
			upper, inc bool
		}{{f.Gt, false, false}, {f.Gte, false, true}, {f.Lt, true, false}, {f.Lte, true, true}} {
			if b.v != nil {
				if err := bound(b.v, b.upper, b.inc); err != nil {
					return filter{}, err
				}
			}
		}
		if cf.hasLo && cf.hasHi && (cf.lo > cf.hi || c.Type == privalytics.TypeFloat && cf.flo > cf.fhi) {
			return filter{}, fmt.Errorf("the range on %q is empty: the lower bound is above the upper", f.Column)
		}
		if idx == 1 { // the event time: filters are ANDed, so the range is the tightest of them
			if cf.hasLo && (!p.timeHasLo || cf.lo > p.timeLo) {
				p.timeLo, p.timeHasLo = cf.lo, true
			}
			if cf.hasHi && (!p.timeHasHi || cf.hi < p.timeHi) {
				p.timeHi, p.timeHasHi = cf.hi, true
			}
		}
		return cf, nil
	}
	values := f.In
	switch {
	case f.Eq != nil:
		values = []any{f.Eq}
	case f.NotIn != nil:
		values, cf.negate = f.NotIn, true
	}
	if len(values) == 0 {
		return filter{}, fmt.Errorf("in and not_in need at least one value")
	}
	if len(values) > p.limits.MaxFilterValues {
		return filter{}, fmt.Errorf("at most %d values in one filter, got %d", p.limits.MaxFilterValues, len(values))
	}
	cf.isSet = true
	for _, v := range values {
		s, n, fl, err := p.parseScalar(c, v)
		if err != nil {
			return filter{}, err
		}
		switch c.Type {
		case privalytics.TypeString, privalytics.TypeBool:
			if cf.set == nil {
				cf.set = map[string]bool{}
			}
			cf.set[s] = true
		case privalytics.TypeFloat:
			if cf.fltSet == nil {
				cf.fltSet = map[float64]bool{}
			}
			cf.fltSet[fl] = true
		default:
			if cf.intSet == nil {
				cf.intSet = map[int64]bool{}
			}
			cf.intSet[n] = true
		}
	}
	return cf, nil
}

var timeUnits = []string{"hour", "day", "week", "month", "quarter", "year"}

func (p *Plan) compileDim(g privalytics.GroupKey) (dim, error) {
	switch {
	case g.Column != "" && g.Time != "":
		return dim{}, fmt.Errorf("set column or time, not both")
	case g.Time != "":
		if !slices.Contains(timeUnits, g.Time) {
			return dim{}, fmt.Errorf("time bucket %q is not one of %s", g.Time, strings.Join(timeUnits, ", "))
		}
		if len(g.Keys) > 0 {
			return dim{}, fmt.Errorf("keys apply to column groups; time buckets inside a bounded time filter are public already")
		}
		// Public when the time filter bounds the range on both sides; otherwise
		// the buckets are enumerated from the data at execution and selected with DP.
		d := dim{name: g.Time, col: 1, typ: privalytics.TypeTimestamp, time: g.Time, public: p.timeBound}
		if p.timeBound {
			var err error
			if d.bounds, d.labels, err = buckets(g.Time, p.timeFrom, p.timeTo, p.loc, p.limits.MaxTimeBuckets); err != nil {
				return dim{}, err
			}
		}
		return d, nil
	case g.Column != "" && len(g.Buckets) > 0:
		idx, c, err := p.column(g.Column)
		if err != nil {
			return dim{}, err
		}
		if len(g.Keys) > 0 {
			return dim{}, fmt.Errorf("set buckets or keys, not both")
		}
		d := dim{name: c.Name, col: idx, typ: c.Type, hist: true, public: true}
		if len(g.Buckets) < 2 || len(g.Buckets) > 1001 {
			return dim{}, fmt.Errorf("buckets needs 2 to 1001 ascending edges, got %d", len(g.Buckets))
		}
		for i, e := range g.Buckets {
			if math.IsInf(e, 0) || math.IsNaN(e) || (i > 0 && e <= g.Buckets[i-1]) {
				return dim{}, fmt.Errorf("bucket edges must be finite and strictly ascending")
			}
		}
		for i := range len(g.Buckets) - 1 {
			d.labels = append(d.labels, fmt.Sprintf("[%g, %g)", g.Buckets[i], g.Buckets[i+1]))
		}
		switch c.Type {
		case privalytics.TypeFloat:
			d.fbound = slices.Clone(g.Buckets)
		case privalytics.TypeInt, privalytics.TypeDecimal:
			// Stored values are integers in units of 10^-scale: an edge beyond
			// int64 would convert to garbage, and two edges within one unit would
			// make an empty bucket; both are the query's mistake, said now.
			unit := math.Pow10(c.Scale)
			for i, e := range g.Buckets {
				v := math.Ceil(e * unit)
				if !(v > math.MinInt64 && v < math.MaxInt64) {
					return dim{}, fmt.Errorf("bucket edge %g is outside the values %s column %q can hold (±%.4g)", e, c.Type, g.Column, math.MaxInt64/unit)
				}
				if i > 0 && int64(v) <= d.bounds[i-1] {
					return dim{}, fmt.Errorf("bucket edges %g and %g fall on the same stored value of %q (%d digits after the point); space the edges further apart", g.Buckets[i-1], e, g.Column, c.Scale)
				}
				d.bounds = append(d.bounds, int64(v))
			}
		default:
			return dim{}, fmt.Errorf("buckets need a numeric column; %q is %s", g.Column, c.Type)
		}
		return d, nil
	case g.Column != "":
		idx, c, err := p.column(g.Column)
		if err != nil {
			return dim{}, err
		}
		d := dim{name: c.Name, col: idx, typ: c.Type}
		switch c.Type {
		case privalytics.TypeString, privalytics.TypeInt, privalytics.TypeBool:
		default:
			return dim{}, fmt.Errorf("cannot group by %s column %q; group by string, int or bool columns, or by a time bucket", c.Type, g.Column)
		}
		switch {
		case len(g.Keys) > 0:
			if len(g.Keys) > p.limits.MaxGroups {
				return dim{}, fmt.Errorf("at most %d keys", p.limits.MaxGroups)
			}
			for _, k := range g.Keys {
				if _, _, _, err := p.parseScalar(c, k); err != nil {
					return dim{}, err
				}
			}
			d.keys, d.public = dedupe(g.Keys), true
		case len(c.Allowed) > 0:
			d.keys, d.public = slices.Clone(c.Allowed), true
		case c.Type == privalytics.TypeBool:
			d.keys, d.public = []string{"false", "true"}, true
		}
		return d, nil
	}
	return dim{}, fmt.Errorf("set column (e.g. \"category\") or time (e.g. \"month\")")
}

func dedupe(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// buckets enumerates the time buckets overlapping [from, to) µs in loc.
func buckets(unit string, from, to int64, loc *time.Location, maxBuckets int) ([]int64, []string, error) {
	start := truncate(time.UnixMicro(from).In(loc), unit)
	var bounds []int64
	var labels []string
	for t := start; t.UnixMicro() < to; t = next(t, unit) {
		bounds = append(bounds, t.UnixMicro())
		labels = append(labels, label(t, unit))
		if len(labels) > maxBuckets {
			return nil, nil, fmt.Errorf("more than %d %s buckets; narrow the time range or use a coarser bucket", maxBuckets, unit)
		}
	}
	if len(labels) == 0 {
		return nil, nil, fmt.Errorf("the time range is empty")
	}
	bounds = append(bounds, next(time.UnixMicro(bounds[len(bounds)-1]).In(loc), unit).UnixMicro())
	return bounds, labels, nil
}

func truncate(t time.Time, unit string) time.Time {
	y, m, d := t.Date()
	loc := t.Location()
	switch unit {
	case "hour":
		return time.Date(y, m, d, t.Hour(), 0, 0, 0, loc)
	case "day":
		return time.Date(y, m, d, 0, 0, 0, 0, loc)
	case "week":
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		return time.Date(y, m, d-back, 0, 0, 0, 0, loc)
	case "month":
		return time.Date(y, m, 1, 0, 0, 0, 0, loc)
	case "quarter":
		return time.Date(y, (m-1)/3*3+1, 1, 0, 0, 0, 0, loc)
	}
	return time.Date(y, 1, 1, 0, 0, 0, 0, loc)
}

func next(t time.Time, unit string) time.Time {
	switch unit {
	case "hour":
		return t.Add(time.Hour)
	case "day":
		return t.AddDate(0, 0, 1)
	case "week":
		return t.AddDate(0, 0, 7)
	case "month":
		return t.AddDate(0, 1, 0)
	case "quarter":
		return t.AddDate(0, 3, 0)
	}
	return t.AddDate(1, 0, 0)
}

// prev is the start of the bucket before the one starting at t.
func prev(t time.Time, unit string) time.Time {
	switch unit {
	case "hour":
		return t.Add(-time.Hour)
	case "day":
		return t.AddDate(0, 0, -1)
	case "week":
		return t.AddDate(0, 0, -7)
	case "month":
		return t.AddDate(0, -1, 0)
	case "quarter":
		return t.AddDate(0, -3, 0)
	}
	return t.AddDate(-1, 0, 0)
}

func label(t time.Time, unit string) string {
	switch unit {
	case "hour":
		return t.Format("2006-01-02T15")
	case "day":
		return t.Format(time.DateOnly)
	case "week":
		y, w := t.ISOWeek()
		return fmt.Sprintf("%d-W%02d", y, w)
	case "month":
		return t.Format("2006-01")
	case "quarter":
		return fmt.Sprintf("%d-Q%d", t.Year(), (int(t.Month())-1)/3+1)
	}
	return t.Format("2006")
}

// aggregateName is a's name in answers: its own, or op_column (op alone for
// count and distinct_customers).
func aggregateName(a privalytics.Aggregate) string {
	switch {
	case a.Name != "":
		return a.Name
	case a.Op == "count" || a.Op == "distinct_customers":
		return a.Op
	}
	return a.Op + "_" + a.Column
}

func (p *Plan) compileAggregate(a privalytics.Aggregate) (aggregate, error) {
	ag := aggregate{op: a.Op, slot: -1}
	ag.info = privalytics.AggregateInfo{Name: aggregateName(a), Op: a.Op, Column: a.Column, Mechanism: string(p.kind)}
	switch a.Op {
	case "count", "distinct_customers":
		if a.Column != "" || a.Lower != nil || a.Upper != nil {
			return ag, fmt.Errorf("%s takes no column or bounds", a.Op)
		}
		if gb := a.ContributionBoundsPerGroup; gb != nil {
			if a.Op != "count" {
				return ag, fmt.Errorf("contribution_bounds_per_group applies to count, sum and mean, not %s", a.Op)
			}
			if gb.Lower != math.Trunc(gb.Lower) || gb.Upper != math.Trunc(gb.Upper) || gb.Lower < 0 || gb.Upper < 1 || gb.Lower > gb.Upper || gb.Upper > 100_000 {
				return ag, fmt.Errorf("count's contribution_bounds_per_group are rows per customer and group: whole numbers 0 <= lower <= upper, 1 <= upper <= 100000, e.g. {\"lower\": 0, \"upper\": 10}; got [%v, %v]", gb.Lower, gb.Upper)
			}
			ag.perGroup, ag.glo, ag.ghi, ag.gloI, ag.ghiI = true, gb.Lower, gb.Upper, int64(gb.Lower), int64(gb.Upper)
			ag.info.ContributionBoundsPerGroup = &privalytics.GroupBounds{Lower: gb.Lower, Upper: gb.Upper}
			if err := compileNorm(&ag, a.Op, gb.MaxNorm); err != nil {
				return ag, err
			}
		}
		return ag, nil
	case "sum", "mean", "variance", "stddev":
	case "median":
		ag.rank = 0.5
	case "quantile":
		if !(a.Rank > 0 && a.Rank < 1) {
			return ag, fmt.Errorf("quantile needs a rank between 0 and 1 (0.5 is the median), got %v", a.Rank)
		}
		ag.rank = a.Rank
	default:
		return ag, fmt.Errorf("op %q is not one of count, distinct_customers, sum, mean, variance, stddev, median, quantile", a.Op)
	}
	if a.Rank != 0 && a.Op != "quantile" {
		return ag, fmt.Errorf("rank applies to quantile only")
	}
	if a.ContributionBoundsPerGroup != nil && a.Op != "sum" && a.Op != "mean" {
		return ag, fmt.Errorf("contribution_bounds_per_group applies to count, sum and mean, not %s", a.Op)
	}
	idx, c, err := p.column(a.Column)
	if err != nil {
		return ag, err
	}
	switch c.Type {
	case privalytics.TypeInt, privalytics.TypeDecimal:
		ag.scale = c.Scale
	case privalytics.TypeFloat:
		ag.isFloat = true
	default:
		return ag, fmt.Errorf("%s needs a numeric column; %q is %s", a.Op, a.Column, c.Type)
	}
	switch a.Bounds {
	case "":
		if a.AutoShare != 0 {
			return ag, fmt.Errorf("auto_share applies only with \"bounds\": \"auto\"")
		}
	case "auto":
		if a.Lower != nil || a.Upper != nil {
			return ag, fmt.Errorf("give either lower and upper or \"bounds\": \"auto\", not both")
		}
		if a.AutoShare != 0 && !(a.AutoShare > 0 && a.AutoShare < 1) {
			return ag, fmt.Errorf("auto_share must be between 0 and 1 (default %v), got %v", DefaultAutoShare, a.AutoShare)
		}
	default:
		return ag, fmt.Errorf("bounds must be \"auto\" or absent (then give lower and upper), got %q", a.Bounds)
	}
	if gb := a.ContributionBoundsPerGroup; gb != nil {
		if a.Bounds == "auto" {
			return ag, fmt.Errorf("give either contribution_bounds_per_group or \"bounds\": \"auto\", not both")
		}
		ag.col, ag.typ = idx, c.Type
		if err := p.perGroupBounds(&ag, a, *gb); err != nil {
			return ag, err
		}
		return ag, nil
	}
	if a.Bounds == "auto" {
		ag.col, ag.typ, ag.auto = idx, c.Type, true
		ag.info.AutoBounds = true
		p.addSlot(&ag, a.Op, 0, 0)
		return ag, nil
	}
	if a.Lower == nil || a.Upper == nil {
		return ag, fmt.Errorf("%s(%s) needs clamping bounds lower and upper, e.g. \"lower\": 0, \"upper\": 500, or \"bounds\": \"auto\", or contribution_bounds_per_group; or leave every bound out (and the query's bounds too) for automatic tuning", a.Op, a.Column)
	}
	lo, hi := *a.Lower, *a.Upper
	if math.IsInf(lo, 0) || math.IsNaN(lo) || math.IsInf(hi, 0) || math.IsNaN(hi) {
		return ag, fmt.Errorf("bounds must be finite")
	}
	if lo > hi {
		return ag, fmt.Errorf("bounds are reversed: lower %v is above upper %v", lo, hi)
	}
	if a.Op != "sum" && lo == hi {
		return ag, fmt.Errorf("%s needs lower < upper", a.Op)
	}
	if math.Max(math.Abs(lo), math.Abs(hi))*math.Pow10(ag.scale)*float64(p.q.Bounds.MaxRowsPerGroup) > 1e15 {
		return ag, fmt.Errorf("bounds are too large for exact arithmetic; use smaller bounds")
	}
	ag.col, ag.typ = idx, c.Type
	p.addSlot(&ag, a.Op, lo, hi)
	return ag, nil
}

// perGroupBounds compiles a sum or mean with contribution_bounds_per_group:
// per-row lower/upper are optional (each row is clamped first when given).
func (p *Plan) perGroupBounds(ag *aggregate, a privalytics.Aggregate, gb privalytics.GroupBounds) error {
	lo, hi := gb.Lower, gb.Upper
	if math.IsInf(lo, 0) || math.IsNaN(lo) || math.IsInf(hi, 0) || math.IsNaN(hi) {
		return fmt.Errorf("contribution_bounds_per_group must be finite")
	}
	if lo > hi {
		return fmt.Errorf("contribution_bounds_per_group are reversed: lower %v is above upper %v", lo, hi)
	}
	if a.Op == "mean" && lo == hi {
		return fmt.Errorf("mean needs contribution_bounds_per_group with lower < upper")
	}
	unit := math.Pow10(ag.scale)
	if math.Max(math.Abs(lo), math.Abs(hi))*unit > 1e15 {
		return fmt.Errorf("contribution_bounds_per_group are too large for exact arithmetic; use smaller bounds")
	}
	if (a.Lower == nil) != (a.Upper == nil) {
		return fmt.Errorf("give both per-row lower and upper, or neither (contribution_bounds_per_group alone bounds the contribution)")
	}
	ag.perGroup, ag.glo, ag.ghi = true, lo, hi
	ag.gloI, ag.ghiI = int64(math.Ceil(lo*unit)), int64(math.Floor(hi*unit))
	ag.info.ContributionBoundsPerGroup = &privalytics.GroupBounds{Lower: lo, Upper: hi}
	if err := compileNorm(ag, a.Op, gb.MaxNorm); err != nil {
		return err
	}
	if a.Lower != nil {
		rlo, rhi := *a.Lower, *a.Upper
		if math.IsInf(rlo, 0) || math.IsNaN(rlo) || math.IsInf(rhi, 0) || math.IsNaN(rhi) || rlo > rhi {
			return fmt.Errorf("per-row bounds must be finite with lower <= upper")
		}
		if math.Max(math.Abs(rlo), math.Abs(rhi))*unit > 1e15 {
			return fmt.Errorf("bounds are too large for exact arithmetic; use smaller bounds")
		}
		p.addSlot(ag, a.Op, rlo, rhi)
	} else {
		// No per-row clamp: the slot passes every value; only the per-group
		// clamp bounds the contribution.
		p.addSlot(ag, a.Op, 0, 0)
		ag.flo, ag.fhi = math.Inf(-1), math.Inf(1)
		ag.lo, ag.hi = math.MinInt64+1, math.MaxInt64
		ag.info.Lower, ag.info.Upper = 0, 0
		p.slotMid[ag.slot] = 0
	}
	return nil
}

// compileNorm checks and sets an aggregate's max_norm.
func compileNorm(ag *aggregate, op string, norm float64) error {
	switch {
	case norm == 0:
		return nil
	case math.IsNaN(norm) || math.IsInf(norm, 0) || norm < 0:
		return fmt.Errorf("contribution_bounds_per_group.max_norm must be a finite number > 0 (or left out), got %v", norm)
	case op != "count" && op != "sum":
		return fmt.Errorf("contribution_bounds_per_group.max_norm applies to count and sum, not %s", op)
	case norm*math.Pow10(max(ag.scale, normCountScale)) > 1e15:
		return fmt.Errorf("contribution_bounds_per_group.max_norm %v is too large for exact arithmetic; use a smaller one", norm)
	}
	ag.norm = norm
	ag.info.ContributionBoundsPerGroup.MaxNorm = norm
	return nil
}

// addSlot gives aggregate ag a value accumulator clamping to [lo, hi].
func (p *Plan) addSlot(ag *aggregate, op string, lo, hi float64) {
	ag.slot = p.slots
	p.slots++
	p.slotSq = append(p.slotSq, op == "variance" || op == "stddev")
	p.slotKeep = append(p.slotKeep, op == "median" || op == "quantile")
	p.slotMid = append(p.slotMid, 0)
	p.slotUnit = append(p.slotUnit, math.Pow10(ag.scale))
	p.slotHist = append(p.slotHist, false)
	p.setBounds(ag, lo, hi)
}

// setBounds sets the clamping range of an aggregate with a slot. Integer bounds
// round inwards so clamping never exceeds the range.
func (p *Plan) setBounds(ag *aggregate, lo, hi float64) {
	unit := p.slotUnit[ag.slot]
	ag.flo, ag.fhi = lo, hi
	ag.lo, ag.hi = int64(math.Ceil(lo*unit)), int64(math.Floor(hi*unit))
	ag.info.Lower, ag.info.Upper = lo, hi
	p.slotMid[ag.slot] = lo + (hi-lo)/2
}
