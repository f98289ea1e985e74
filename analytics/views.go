package analytics

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

// Views are saved questions released once per bucket. The rules:
//
//   - Each closed bucket (day, ISO week or month, UTC) is released once,
//     through Service.Run — so the charge, the pre-check, the consent mask and
//     the audit entry are the query service's — and stored with its Result and
//     parameters. Every later read of it is free and returns the same numbers.
//   - A closed bucket is released at the first read (or refresh) at least Grace
//     after it ends. Events that arrive later for it are not counted by any
//     release: a closed release is never recomputed, and the next bucket's
//     release covers only its own time range ("late events are ignored").
//   - A view with so_far gets one release of its open bucket, made at the first
//     read once half of the bucket has passed; it is shown until the closed
//     release replaces it, and costs as much as a closed release.
//   - One release per (view, bucket, kind): the store's unique key and the
//     claim's transaction make exactly one reader run the query, across
//     processes; within a process, readers of a view wait for its releases.
//   - A release refused for budget before any data is read costs nothing and is
//     retried at a later read; one that failed after reading data is stored as
//     failed (its charge stays) and never retried.
type Views struct {
	store   privalytics.ViewStore
	queries *Service
	ledger  Ledger
	limits  Limits
	now     func() time.Time
	grace   time.Duration
	stale   time.Duration
	log     *slog.Logger
	locks   sync.Map // view ID → *sync.Mutex
	cache   sync.Map // view ID → *viewCache, read and written under the view's lock
}

// ViewsDeps are the views' ports and settings.
type ViewsDeps struct {
	Store   privalytics.ViewStore
	Queries *Service
	Ledger  Ledger
	Limits  Limits
	Now     func() time.Time
	// Grace is how long after a bucket ends its closed release waits for late
	// events. 0: 5 minutes.
	Grace time.Duration
	// StaleClaim is how long a claimed release may run before another reader
	// may take it over (its claimer is presumed dead). 0: 10 minutes.
	StaleClaim time.Duration
	Logger     *slog.Logger
}

// NewViews returns the views use case.
func NewViews(d ViewsDeps) *Views {
	v := &Views{store: d.Store, queries: d.Queries, ledger: d.Ledger, limits: d.Limits, now: d.Now, grace: d.Grace, stale: d.StaleClaim, log: d.Logger}
	if v.limits.MaxGroups <= 0 {
		v.limits = DefaultLimits()
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.grace <= 0 {
		v.grace = 5 * time.Minute
	}
	if v.stale <= 0 {
		v.stale = 10 * time.Minute
	}
	if v.log == nil {
		v.log = slog.Default()
	}
	return v
}

// ViewRequest is one call of a key on a tenant's views.
type ViewRequest struct {
	Tenant         *privalytics.Tenant
	KeyID          string
	FingerprintKey []byte
	RequestID      string
}

// ViewCost is what a view costs and whether the tenant's budget carries it.
type ViewCost struct {
	PerRelease privalytics.Cost `json:"per_release"`
	// ReleasesPerPeriod is the most releases of the view that draw on one
	// period (a 31-day month: 31 daily, 6 weekly or 1 monthly), doubled with
	// so_far.
	ReleasesPerPeriod int              `json:"releases_per_period"`
	PerPeriod         privalytics.Cost `json:"per_period"`
	AllViewsPerPeriod privalytics.Cost `json:"all_views_per_period"`
	Period            string           `json:"period"`
	// PeriodBudget is each period's budget, or for a tenant with one budget,
	// what remains of it.
	PeriodBudget privalytics.Cost `json:"period_budget"`
	// PeriodsBudgetLasts is nil when the budget renews every period.
	PeriodsBudgetLasts *int   `json:"periods_budget_lasts"`
	Fits               bool   `json:"fits"`
	Message            string `json:"message"`
}

// RollupRow is one roll-up cell: a quarter, a year or the total, for one group
// (an empty Group is all groups together).
type RollupRow struct {
	Bucket    string                `json:"bucket"`
	Group     map[string]string     `json:"group"`
	Values    map[string]float64    `json:"values"`
	Intervals map[string][2]float64 `json:"intervals"`
	// Buckets is how many closed releases the row sums; Complete says whether
	// every bucket of its span has been released.
	Buckets  int  `json:"buckets"`
	Complete bool `json:"complete"`
}

// MaxViewBackfillDays is how far back a view may start: its first read
// releases every past bucket (each a query), so the backlog is bounded.
const MaxViewBackfillDays = 3660 // ten years

// maxReleasesPerRefresh bounds the releases one read makes; a longer backlog
// is made over the following reads.
const maxReleasesPerRefresh = 200

// bucketSpan is one cadence bucket.
type bucketSpan struct {
	label      string
	start, end time.Time
}

func bucketAt(cadence string, t time.Time) bucketSpan {
	s := truncate(t.UTC(), cadence)
	return bucketSpan{label: label(s, cadence), start: s, end: next(s, cadence)}
}

// maxReleasesPerMonth is how many buckets of a cadence can touch one calendar
// month: 31 days, 6 ISO weeks (a 31-day month starting on a Sunday), 1 month.
func maxReleasesPerMonth(cadence string) int {
	switch cadence {
	case privalytics.CadenceDay:
		return 31
	case privalytics.CadenceWeek:
		return 6
	}
	return 1
}

// checkSpec validates a view from public information only and returns the
// plan of its first bucket's query.
func (v *Views) checkSpec(r ViewRequest, spec *privalytics.ViewSpec) (*Plan, error) {
	var problems []string
	spec.Name = strings.TrimSpace(spec.Name)
	if spec.Name == "" || len(spec.Name) > 200 {
		problems = append(problems, "name must be 1 to 200 characters")
	}
	switch spec.Cadence {
	case privalytics.CadenceDay, privalytics.CadenceWeek, privalytics.CadenceMonth:
	default:
		problems = append(problems, fmt.Sprintf("cadence must be day, week or month, got %q", spec.Cadence))
	}
	if e := spec.Epsilon; !(e > 0) || math.IsInf(e, 0) {
		problems = append(problems, fmt.Sprintf("epsilon (per release) must be > 0 and finite, got %v", e))
	}
	if d := spec.Delta; !(d >= 0 && d < 1) {
		problems = append(problems, fmt.Sprintf("delta must be in [0, 1), got %v", d))
	}
	start, err := time.Parse(time.DateOnly, spec.Start)
	if err != nil {
		problems = append(problems, fmt.Sprintf("start must be a day as YYYY-MM-DD, got %q", spec.Start))
	} else if now := v.now().UTC(); start.Before(now.AddDate(0, 0, -MaxViewBackfillDays)) || start.After(now.AddDate(1, 0, 0)) {
		problems = append(problems, fmt.Sprintf("start must be within %d days before today and a year after, got %s", MaxViewBackfillDays, spec.Start))
	}
	q := &spec.Query
	if q.Epsilon != 0 && q.Epsilon != spec.Epsilon {
		problems = append(problems, "leave the query's epsilon out: the view's epsilon is what each release spends")
	}
	if q.Delta != 0 && q.Delta != spec.Delta {
		problems = append(problems, "leave the query's delta out: the view's delta is what each release spends")
	}
	if q.TimeZone != "" && q.TimeZone != "UTC" {
		problems = append(problems, "a view's buckets are UTC days, weeks and months; leave time_zone out")
	}
	for _, f := range q.Where {
		if f.Column == r.Tenant.Schema.Time {
			problems = append(problems, fmt.Sprintf("leave the filter on %s out: the view adds each bucket's time range", f.Column))
		}
	}
	for _, a := range q.Aggregates {
		if a.Within != 0 {
			problems = append(problems, "a view's cost is declared: use epsilon, not within, on its aggregates")
		}
	}
	if len(problems) > 0 {
		return nil, invalid("view: %s", strings.Join(problems, "; "))
	}
	q.Epsilon, q.Delta = spec.Epsilon, spec.Delta
	b := bucketAt(spec.Cadence, start)
	return v.queries.plan(Request{Tenant: r.Tenant, KeyID: r.KeyID, Query: bucketQuery(r.Tenant, spec, b), FingerprintKey: r.FingerprintKey})
}

// bucketQuery is the view's query over one bucket.
func bucketQuery(t *privalytics.Tenant, spec *privalytics.ViewSpec, b bucketSpan) *privalytics.Query {
	q := spec.Query
	q.Epsilon, q.Delta = spec.Epsilon, spec.Delta
	q.Where = append(append([]privalytics.Filter(nil), spec.Query.Where...),
		privalytics.Filter{Column: t.Schema.Time, Gte: b.start.Format(time.RFC3339), Lt: b.end.Format(time.RFC3339)})
	return &q
}

// releaseCost is one release's cost in the tenant's accounting.
func releaseCost(t *privalytics.Tenant, p *Plan) privalytics.Cost {
	if t.Accounting == privalytics.AccountingZCDP {
		return p.ZCDPCost()
	}
	return p.Cost()
}

func scale(c privalytics.Cost, n int) privalytics.Cost {
	return privalytics.Cost{Epsilon: c.Epsilon * float64(n), Delta: c.Delta * float64(n), Rho: c.Rho * float64(n)}
}

func addCost(a, b privalytics.Cost) privalytics.Cost {
	return privalytics.Cost{Epsilon: a.Epsilon + b.Epsilon, Delta: a.Delta + b.Delta, Rho: a.Rho + b.Rho}
}

func (v *Views) releasesPerPeriod(spec *privalytics.ViewSpec) int {
	n := maxReleasesPerMonth(spec.Cadence)
	if spec.SoFar {
		n *= 2
	}
	return n
}

// pastReleases is how many releases of spec are due now (its backfill).
func (v *Views) pastReleases(spec *privalytics.ViewSpec) int {
	start, _ := time.Parse(time.DateOnly, spec.Start)
	now := v.now().UTC()
	n := 0
	for b := bucketAt(spec.Cadence, start); !b.start.After(now) && n < 1<<20; b = bucketAt(spec.Cadence, b.end) {
		n++
		if spec.SoFar && b.end.After(now) {
			n++
		}
	}
	return n
}

// Preview answers what a view would cost, alone and with the tenant's other
// views, and whether the budget carries it: nothing is stored or spent.
func (v *Views) Preview(ctx context.Context, r ViewRequest, spec *privalytics.ViewSpec) (*ViewCost, error) {
	return v.preview(ctx, r, spec, "")
}

// preview is Preview of spec, which is the stored view selfID if not empty.
func (v *Views) preview(ctx context.Context, r ViewRequest, spec *privalytics.ViewSpec, selfID string) (*ViewCost, error) {
	plan, err := v.checkSpec(r, spec)
	if err != nil {
		return nil, err
	}
	others, err := v.store.Views(ctx, r.Tenant.ID)
	if err != nil {
		return nil, err
	}
	per := releaseCost(r.Tenant, plan)
	c := &ViewCost{PerRelease: per, ReleasesPerPeriod: v.releasesPerPeriod(spec), Period: privalytics.PeriodMonth}
	c.PerPeriod = scale(per, c.ReleasesPerPeriod)
	c.AllViewsPerPeriod = c.PerPeriod
	for _, o := range others {
		oc, err := v.storedCost(r, o)
		if err != nil {
			return nil, err
		}
		c.AllViewsPerPeriod = addCost(c.AllViewsPerPeriod, oc)
	}
	st, err := v.ledger.Budget(ctx, r.Tenant.ID)
	if err != nil {
		return nil, err
	}
	a := dp.AccountOf(st, privalytics.KeyBudget{Shared: true, Remaining: st.Remaining, Total: st.Total})
	fits, periods := dp.ViewsFit(a, dp.UnitsUp(c.AllViewsPerPeriod), dp.UnitsUp(scale(per, v.pastReleases(spec))))
	c.Fits = fits
	if periods >= 0 {
		c.PeriodsBudgetLasts = &periods
		c.PeriodBudget = st.Remaining
	} else {
		c.PeriodBudget = st.Total
	}
	c.Message = costMessage(spec, c, r.Tenant.Accounting == privalytics.AccountingZCDP)
	// A stored view's own releases are in the spending already: its check
	// was made at creation.
	if c.Fits && a.Period != "" && selfID == "" {
		short, err := v.shortMonth(ctx, r, a, spec, per, selfID)
		if err != nil {
			return nil, err
		}
		if short != nil {
			c.Fits = false
			c.Message += " " + short.Error()
		}
	}
	return c, nil
}

// shortMonth is, on a tenant with a budget per month, the refusal of the
// first month from the view's start to now whose budget cannot carry the
// view's releases of it beside what was spent of it and what the other views
// reserve (dp.Decide, as the releases' charges will be decided), or nil.
// Later months start with their whole budget, which ViewsFit checked.
func (v *Views) shortMonth(ctx context.Context, r ViewRequest, a dp.Account, spec *privalytics.ViewSpec, per privalytics.Cost, selfID string) (error, error) {
	start, err := time.Parse(time.DateOnly, spec.Start)
	if err != nil {
		return nil, invalid("view: start must be a day as YYYY-MM-DD, got %q", spec.Start)
	}
	now := v.now().UTC()
	var months []string
	for m := time.Date(start.Year(), start.Month(), 1, 0, 0, 0, 0, time.UTC); !m.After(now) && len(months) < 240; m = m.AddDate(0, 1, 0) {
		months = append(months, m.Format("2006-01"))
	}
	if len(months) == 0 {
		return nil, nil
	}
	reserved, err := v.ledger.Reserved(ctx, r.Tenant.ID, selfID, months)
	if err != nil {
		return nil, err
	}
	a.Reserved = map[string]dp.Units{}
	for p, c := range reserved {
		a.Reserved[p] = dp.UnitsUp(c)
	}
	mine := []dp.ViewReservation{{Cadence: spec.Cadence, Start: spec.Start, SoFar: spec.SoFar, PerRelease: dp.UnitsUp(privalytics.Cost{Epsilon: per.Epsilon, Delta: per.Delta})}}
	for _, m := range months {
		need := dp.Reserved(mine, m)
		if need == (dp.Units{}) {
			continue
		}
		if err := dp.Decide(a, need, []string{m}); err != nil {
			left, _ := privalytics.ErrorDetails(err)["remaining"].(privalytics.Cost)
			return fmt.Errorf("But its releases of %s would not all be made: they need ε %.4g of that month, and only ε %.4g of it is left beside what was spent and what your other views reserve. Start the view in a later month, lower the epsilon, or delete a view.",
				m, need.Cost().Epsilon, left.Epsilon), nil
		}
	}
	return nil, nil
}

// storedCost is a stored view's cost per period.
func (v *Views) storedCost(r ViewRequest, o *privalytics.View) (privalytics.Cost, error) {
	spec := o.ViewSpec
	plan, err := v.checkSpec(r, &spec)
	if err != nil {
		// The tenant's schema changed under the view: count its declared ε.
		return scale(privalytics.Cost{Epsilon: spec.Epsilon, Delta: spec.Delta}, v.releasesPerPeriod(&spec)), nil
	}
	return scale(releaseCost(r.Tenant, plan), v.releasesPerPeriod(&spec)), nil
}

// costMessage says what the view costs in plain words.
func costMessage(spec *privalytics.ViewSpec, c *ViewCost, zcdp bool) string {
	n := func(x float64) string { return fmt.Sprintf("%.4g", x) }
	every := map[string]string{privalytics.CadenceDay: "daily", privalytics.CadenceWeek: "weekly", privalytics.CadenceMonth: "monthly"}[spec.Cadence]
	var b strings.Builder
	fmt.Fprintf(&b, "This view spends ε %s on each %s release; up to %d releases draw on one month of data", n(c.PerRelease.Epsilon), every, c.ReleasesPerPeriod)
	if spec.SoFar {
		b.WriteString(" (counting one 'so far' release of each open bucket)")
	}
	fmt.Fprintf(&b, ", so it costs ε %s per month. All your views together cost ε %s per month. ", n(c.PerPeriod.Epsilon), n(c.AllViewsPerPeriod.Epsilon))
	if c.PeriodsBudgetLasts == nil {
		if c.Fits {
			fmt.Fprintf(&b, "That fits: each month of data has its own budget of ε %s, and it renews every month. ", n(c.PeriodBudget.Epsilon))
		} else {
			fmt.Fprintf(&b, "That does not fit in the ε %s each month of data has: lower the epsilon, choose a longer cadence, turn off 'so far', or delete a view. ", n(c.PeriodBudget.Epsilon))
		}
		b.WriteString("A budget per month is a weaker promise than one budget for all time: it limits what the answers reveal about any one month of a customer's activity, not about all of it together.")
		return b.String()
	}
	left := "ε " + n(c.PeriodBudget.Epsilon)
	if zcdp {
		left = "the budget"
	}
	if c.Fits {
		fmt.Fprintf(&b, "This tenant has one budget for all time (%s left): after this view's releases of past buckets it lasts %d more months of all your views' releases, then releases stop.", left, *c.PeriodsBudgetLasts)
	} else {
		fmt.Fprintf(&b, "That does not fit: this tenant has one budget for all time (%s left), not enough for this view's releases of past buckets and one month of all your views. Lower the epsilon, start later, choose a longer cadence, or delete a view.", left)
	}
	return b.String()
}

// Create stores a view after checking that the budget carries it with all the
// tenant's views; a view that would overrun is refused (ECONFLICT, with the
// ViewCost as the "cost" detail) and nothing is stored.
func (v *Views) Create(ctx context.Context, r ViewRequest, spec privalytics.ViewSpec) (*privalytics.View, *ViewCost, error) {
	c, err := v.Preview(ctx, r, &spec)
	if err != nil {
		return nil, nil, err
	}
	if !c.Fits {
		return nil, c, privalytics.Errorf(privalytics.ECONFLICT, "view not created: %s", c.Message).With("cost", c)
	}
	view := &privalytics.View{ViewSpec: spec, ID: "view_" + randomHex(8), TenantID: r.Tenant.ID, KeyID: r.KeyID, CreatedAt: v.now().UTC()}
	if err := v.store.CreateView(ctx, view); err != nil {
		return nil, nil, err
	}
	return view, c, nil
}

// Cost is a stored view's cost now (its creation's check, recomputed).
func (v *Views) Cost(ctx context.Context, r ViewRequest, view *privalytics.View) (*ViewCost, error) {
	spec := view.ViewSpec
	c, err := v.preview(ctx, r, &spec, view.ID)
	if err != nil {
		return nil, err
	}
	// The view is among the others already: count it once.
	c.AllViewsPerPeriod = addCost(c.AllViewsPerPeriod, scale(c.PerPeriod, -1))
	c.Message = costMessage(&spec, c, r.Tenant.Accounting == privalytics.AccountingZCDP)
	return c, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("analytics: no randomness for an id: %v", err))
	}
	return hex.EncodeToString(b)
}

// View returns a tenant's view.
func (v *Views) View(ctx context.Context, tenantID, id string) (*privalytics.View, error) {
	return v.store.View(ctx, tenantID, id)
}

// List lists a tenant's views.
func (v *Views) List(ctx context.Context, tenantID string) ([]*privalytics.View, error) {
	return v.store.Views(ctx, tenantID)
}

// Delete removes a view and its releases (what was spent stays spent).
func (v *Views) Delete(ctx context.Context, tenantID, id string) error {
	defer v.cache.Delete(id)
	return v.store.DeleteView(ctx, tenantID, id)
}

func (v *Views) lock(id string) func() {
	m, _ := v.locks.LoadOrStore(id, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// Refresh makes the releases of a view that are due now: every closed bucket
// not yet released and, with so_far, the open bucket's one release.
func (v *Views) Refresh(ctx context.Context, r ViewRequest, view *privalytics.View) error {
	unlock := v.lock(view.ID)
	defer unlock()
	v.cache.Delete(view.ID)
	_, err := v.refresh(ctx, r, view)
	return err
}

// viewCache is what a view's readers share between two due times: its
// releases, which change only when a new one is made (closed ones never).
type viewCache struct {
	rels []privalytics.Release
	due  time.Time // the next time a release becomes due
}

// refresh makes the due releases (the caller holds the view's lock) and
// returns when the next one will be due: now, when one was left pending or
// refused, so the next read looks again.
func (v *Views) refresh(ctx context.Context, r ViewRequest, view *privalytics.View) (time.Time, error) {
	now := v.now().UTC()
	have, err := v.store.Releases(ctx, r.Tenant.ID, view.ID)
	if err != nil {
		return now, err
	}
	due := now.AddDate(100, 0, 0)
	made := 0
	done := map[string]bool{}
	for _, rel := range have {
		fresh := rel.ClaimedAt.After(now.Add(-v.stale))
		if rel.State != privalytics.ReleasePending || fresh {
			done[rel.Bucket+"/"+kindOf(rel)] = true
		}
		if rel.State == privalytics.ReleasePending {
			due = now // being made by another reader: look again
		}
	}
	start, err := time.Parse(time.DateOnly, view.Start)
	if err != nil {
		return now, privalytics.Errorf(privalytics.EINTERNAL, "view %s: stored start %q: %v", view.ID, view.Start, err)
	}
	for b := bucketAt(view.Cadence, start); !b.start.After(now); b = bucketAt(view.Cadence, b.end) {
		closeAt, half := b.end.Add(v.grace), b.start.Add(b.end.Sub(b.start)/2)
		kind := ""
		switch {
		case !closeAt.After(now):
			kind = privalytics.ReleaseClosed
		case view.SoFar && !done[b.label+"/"+privalytics.ReleaseClosed] && !half.After(now):
			kind = privalytics.ReleaseSoFar
		}
		if closeAt.After(now) && closeAt.Before(due) {
			due = closeAt
		}
		if view.SoFar && half.After(now) && half.Before(due) {
			due = half
		}
		if kind == "" || done[b.label+"/"+kind] {
			continue
		}
		if made >= maxReleasesPerRefresh {
			return now, nil // the rest at the next read
		}
		rel, err := v.release(ctx, r, view, b, kind, have)
		if err != nil {
			return now, err
		}
		if rel != nil {
			made++
			have = append(have, *rel) // a backfill's later buckets may reuse its tuning
		} else {
			due = now
		}
	}
	if !start.After(now) {
		return due, nil
	}
	// Nothing has begun yet: the first bucket's so_far or close is next.
	b := bucketAt(view.Cadence, start)
	if view.SoFar {
		return b.start.Add(b.end.Sub(b.start) / 2), nil
	}
	return b.end.Add(v.grace), nil
}

// kindOf is the release (closed or so_far) a stored row is or will be: the
// store names a pending row's kind in its Parameters.
func kindOf(r privalytics.Release) string {
	if r.State == privalytics.ReleasePending {
		if k, ok := r.Parameters["kind"].(string); ok {
			return k
		}
		return privalytics.ReleaseClosed
	}
	return r.State
}

// reuseTunings is how many releases in a row may reuse the limits tuning
// chose for an earlier one before the view tunes afresh (tuningFrom).
const reuseTunings = 3

// tuningFrom is, for a view whose query is tuned, the tuning report of its
// latest release that tuned afresh (ε spent on it), when at most
// reuseTunings releases since have reused it; nil otherwise. Its limits are a
// DP output already paid for: reusing them for the next release is
// post-processing, and that release spends all its ε on the answer instead
// of 15% on histograms — 18% more ε for the cells, for a view whose data
// changes slowly from one bucket to the next.
func tuningFrom(q *privalytics.Query, have []privalytics.Release, before time.Time) (*privalytics.TuningReport, string) {
	if !wantsTuning(q) || (q.Tuning != nil && q.Tuning.Share != 0) {
		return nil, ""
	}
	rels := slices.Clone(have)
	slices.SortFunc(rels, func(a, b privalytics.Release) int { return b.Start.Compare(a.Start) })
	reused := 0
	for _, rel := range rels {
		if rel.State != privalytics.ReleaseClosed || rel.Result == nil || rel.Result.Tuning == nil || !rel.Start.Before(before) {
			continue
		}
		if rel.Result.Tuning.Epsilon > 0 {
			return rel.Result.Tuning, rel.Bucket
		}
		if reused++; reused >= reuseTunings {
			return nil, ""
		}
	}
	return nil, ""
}

// withTuning is q with the limits of a tuning report as fixed bounds; nil
// when the report does not cover every aggregate tuning would choose for.
func withTuning(q *privalytics.Query, t *privalytics.TuningReport) *privalytics.Query {
	out := *q
	out.Tuning = nil
	out.Noise = t.Noise
	out.Bounds = privalytics.Bounds{MaxGroups: t.MaxGroups}
	out.Aggregates = slices.Clone(q.Aggregates)
	for i, a := range out.Aggregates {
		if a.Op == "distinct_customers" {
			continue
		}
		name := aggregateName(a)
		k := slices.IndexFunc(t.Aggregates, func(ta privalytics.TunedAggregate) bool { return ta.Name == name })
		if k < 0 {
			return nil
		}
		ta := t.Aggregates[k]
		out.Aggregates[i].ContributionBoundsPerGroup = &privalytics.GroupBounds{Lower: ta.Lower, Upper: ta.Upper, MaxNorm: ta.MaxNorm}
	}
	return &out
}

// release makes one release: claim, run through the query service, store;
// it returns the release made, nil when none was. have are the view's
// releases so far (for the tuning a release may reuse).
func (v *Views) release(ctx context.Context, r ViewRequest, view *privalytics.View, b bucketSpan, kind string, have []privalytics.Release) (*privalytics.Release, error) {
	now := v.now().UTC()
	rel := &privalytics.Release{ViewID: view.ID, Bucket: b.label, Start: b.start, End: b.end, State: kind, ClaimedAt: now}
	err := v.store.ClaimRelease(ctx, r.Tenant.ID, rel, now.Add(-v.stale))
	if privalytics.ErrorCode(err) == privalytics.ECONFLICT {
		return nil, nil // another reader made it, or is making it
	} else if err != nil {
		return nil, err
	}
	q := bucketQuery(r.Tenant, &view.ViewSpec, b)
	reused, from := tuningFrom(q, have, b.start)
	if reused != nil {
		// Planned here first: a release that fails after its claim is
		// stored as failed for good, so a reuse that would not plan tunes
		// afresh instead.
		fixed := withTuning(q, reused)
		if fixed != nil {
			if _, err := NewPlan(fixed, r.Tenant.Schema, v.queries.limits); err != nil {
				fixed = nil
			}
		}
		if fixed == nil {
			reused = nil
		} else {
			q = fixed
		}
	}
	// Once claimed, the release is every reader's: a reader that goes away
	// does not cancel it (a cancelled query is charged, and abandoned it
	// would be charged again).
	ctx = context.WithoutCancel(ctx)
	res, err := v.queries.Run(ctx, Request{Tenant: r.Tenant, KeyID: view.KeyID, Query: q, FingerprintKey: r.FingerprintKey,
		RequestID: r.RequestID + " view " + view.ID + " " + b.label + " " + kind,
		ViewID:    view.ID, ViewBucket: b.label, ViewKind: kind})
	params := map[string]any{"query": q, "epsilon": view.Epsilon, "delta": view.Delta, "cadence": view.Cadence}
	switch code := privalytics.ErrorCode(err); {
	case err == nil && res != nil:
		res.Budget = nil
		if reused != nil {
			// The answer says whose limits it used and that none of its ε
			// went to choosing them.
			t := *reused
			t.Share, t.Epsilon = 0, 0
			t.Reason = fmt.Sprintf("the limits tuning chose for the release of %s, reused (a DP output already paid for): all of ε went to this answer; there: %s", from, reused.Reason)
			res.Tuning = &t
			// The reused estimate of bounding's loss, and its correction,
			// apply to this release's cells as its limits do. On copies: the
			// rows are shared with the answer cache's entry, which stays the
			// fixed-bounds query's answer.
			rows := slices.Clone(res.Rows)
			for i := range rows {
				rows[i].Cells = slices.Clone(rows[i].Cells)
			}
			res.Rows = rows
			correctCells(res, t.Aggregates)
		}
		if _, jerr := json.Marshal(res); jerr != nil {
			// Not storable (a non-finite value): recorded as failed, never
			// retried, as the charge is made.
			v.log.Error("view release not storable", "tenant", r.Tenant.ID, "view", view.ID, "bucket", b.label, "error", jerr)
			params["error"] = "the answer could not be stored: " + jerr.Error()
			res = nil
			break
		}
		params["cost"] = res.Cost
		params["mechanisms"] = mechanismsOf(res)
		params["answer_id"] = res.Snapshot
	case code == privalytics.EBUDGET || code == privalytics.EUNAVAILABLE || code == privalytics.ESTORAGEFULL:
		// Refused before any data was read (the release is not cancelled, so
		// EUNAVAILABLE comes from before the data), or the charge was refused:
		// nothing was spent, and a later read tries again.
		v.log.Warn("view release not made", "tenant", r.Tenant.ID, "view", view.ID, "bucket", b.label, "error", err)
		return nil, v.store.AbandonRelease(ctx, r.Tenant.ID, view.ID, b.label, kind)
	default:
		// Data may have been read and charged: record the failure, never retry.
		v.log.Error("view release failed", "tenant", r.Tenant.ID, "view", view.ID, "bucket", b.label, "error", err)
		params["error"] = privalytics.ErrorMessage(err)
		res = nil
	}
	rel.ReleasedAt = v.now().UTC()
	rel.Result, rel.Parameters = res, params
	return rel, v.store.CompleteRelease(ctx, r.Tenant.ID, rel)
}

func mechanismsOf(res *privalytics.Result) string {
	var parts []string
	for _, a := range res.Aggregates {
		parts = append(parts, a.Mechanism+" "+a.Op)
	}
	return strings.Join(parts, "; ")
}

// Releases refreshes the view, then returns its releases whose bucket starts
// in [from, to) (zero times: unbounded): each closed bucket's one release and,
// for the open bucket, its so_far release if made.
func (v *Views) Releases(ctx context.Context, r ViewRequest, view *privalytics.View, from, to time.Time) ([]privalytics.Release, error) {
	all, err := v.current(ctx, r, view)
	if err != nil {
		return nil, err
	}
	closed := map[string]bool{}
	for _, rel := range all {
		if rel.State == privalytics.ReleaseClosed {
			closed[rel.Bucket] = true
		}
	}
	out := []privalytics.Release{}
	for _, rel := range all {
		switch {
		case rel.State == privalytics.ReleasePending,
			rel.State == privalytics.ReleaseSoFar && closed[rel.Bucket],
			!from.IsZero() && rel.Start.Before(from),
			!to.IsZero() && !rel.Start.Before(to):
			continue
		}
		out = append(out, rel)
	}
	return out, nil
}

// current is the view's releases after making those due, from the cache while
// nothing new is due.
func (v *Views) current(ctx context.Context, r ViewRequest, view *privalytics.View) ([]privalytics.Release, error) {
	unlock := v.lock(view.ID)
	defer unlock()
	if c, ok := v.cache.Load(view.ID); ok && v.now().Before(c.(*viewCache).due) {
		return c.(*viewCache).rels, nil
	}
	v.cache.Delete(view.ID)
	due, err := v.refresh(ctx, r, view)
	if err != nil {
		return nil, err
	}
	all, err := v.store.Releases(ctx, r.Tenant.ID, view.ID)
	if err != nil {
		return nil, err
	}
	v.cache.Store(view.ID, &viewCache{rels: all, due: due})
	return all, nil
}

// Rollup sums a view's closed releases by quarter, year or in total, for each
// group and for all groups together. Only additive aggregates (count, sum)
// roll up; the others are not sums of their buckets and are left out. The
// buckets are measured independently, so the least-squares consistent
// estimate of any total is the sum of its parts: rows add up exactly, across
// time and across groups. Intervals combine as independent errors: each side's
// distance to the value adds in quadrature (a normal approximation). A week
// belongs to the quarter and year of its Monday. Post-processing: free.
func (v *Views) Rollup(ctx context.Context, r ViewRequest, view *privalytics.View, by string) ([]RollupRow, error) {
	if by != "quarter" && by != "year" && by != "total" {
		return nil, invalid("by must be quarter, year or total, got %q", by)
	}
	rels, err := v.Releases(ctx, r, view, time.Time{}, time.Time{})
	if err != nil {
		return nil, err
	}
	type acc struct {
		row          RollupRow
		lo2, hi2     map[string]float64
		buckets      map[string]bool
		first, after time.Time
	}
	accs := map[string]*acc{}
	var order []string
	timeDim := map[int]bool{}
	for i, g := range view.Query.GroupBy {
		if g.Time != "" {
			timeDim[i] = true
		}
	}
	start, _ := time.Parse(time.DateOnly, view.Start)
	for _, rel := range rels {
		if rel.State != privalytics.ReleaseClosed || rel.Result == nil {
			continue
		}
		span := rollupLabel(rel.Start, by)
		for _, row := range rel.Result.Rows {
			if row.Subtotal > 0 {
				continue // a rollup's subtotal: its cells are already among the rows
			}
			group := map[string]string{}
			for i, k := range row.Key {
				if !timeDim[i] && i < len(rel.Result.GroupBy) {
					group[rel.Result.GroupBy[i]] = k
				}
			}
			keys := []map[string]string{group}
			if len(group) > 0 {
				keys = append(keys, map[string]string{})
			}
			for _, g := range keys {
				id := span + "\x00" + groupID(g)
				a := accs[id]
				if a == nil {
					a = &acc{row: RollupRow{Bucket: span, Group: g, Values: map[string]float64{}, Intervals: map[string][2]float64{}}, lo2: map[string]float64{}, hi2: map[string]float64{}, buckets: map[string]bool{}}
					accs[id] = a
					order = append(order, id)
				}
				a.buckets[rel.Bucket] = true
				for j, cell := range row.Cells {
					if j >= len(rel.Result.Aggregates) {
						break
					}
					ag := rel.Result.Aggregates[j]
					if ag.Op != "count" && ag.Op != "sum" {
						continue
					}
					a.row.Values[ag.Name] += cell.Value
					a.lo2[ag.Name] += (cell.Value - cell.Lower) * (cell.Value - cell.Lower)
					a.hi2[ag.Name] += (cell.Upper - cell.Value) * (cell.Upper - cell.Value)
				}
			}
		}
	}
	now := v.now().UTC()
	out := make([]RollupRow, 0, len(order))
	for _, id := range order {
		a := accs[id]
		for name, val := range a.row.Values {
			a.row.Intervals[name] = [2]float64{val - math.Sqrt(a.lo2[name]), val + math.Sqrt(a.hi2[name])}
		}
		a.row.Buckets = len(a.buckets)
		a.row.Complete = spanComplete(a.row.Bucket, by, view.Cadence, start, now, a.row.Buckets)
		out = append(out, a.row)
	}
	return out, nil
}

func groupID(g map[string]string) string {
	var parts []string
	for k, v := range g {
		parts = append(parts, k+"="+v)
	}
	// Sorted so equal groups get equal IDs.
	for i := 1; i < len(parts); i++ {
		for j := i; j > 0 && parts[j] < parts[j-1]; j-- {
			parts[j], parts[j-1] = parts[j-1], parts[j]
		}
	}
	return strings.Join(parts, "\x01")
}

func rollupLabel(t time.Time, by string) string {
	switch by {
	case "quarter":
		return label(t.UTC(), "quarter")
	case "year":
		return label(t.UTC(), "year")
	}
	return "total"
}

// spanComplete says whether every bucket of the view starting in the span
// (from the view's start on) has ended and been summed: n is how many were.
func spanComplete(span, by, cadence string, start, now time.Time, n int) bool {
	var from, to time.Time
	switch by {
	case "quarter", "year":
		unit := by
		var t time.Time
		if by == "quarter" {
			var y, q int
			fmt.Sscanf(span, "%d-Q%d", &y, &q)
			t = time.Date(y, time.Month(3*(q-1)+1), 1, 0, 0, 0, 0, time.UTC)
		} else {
			var y int
			fmt.Sscanf(span, "%d", &y)
			t = time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
		}
		from, to = t, next(t, unit)
	default:
		return false // a running total is never complete
	}
	want := 0
	for b := bucketAt(cadence, start); b.start.Before(to); b = bucketAt(cadence, b.end) {
		if b.start.Before(from) {
			continue
		}
		if b.end.After(now) {
			return false
		}
		want++
	}
	return n == want
}
