package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/analytics"
	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/synth"
)

// UtilityOptions size the utility section: a marketer's workload over the
// demo's shop, answered three ways (today's fixed defaults, automatic tuning,
// the best fixed parameters found with hindsight) against a non-private
// reference computed here with plain loops over the generator's rows.
type UtilityOptions struct {
	Customers, Events int     // the synthetic shop (the demo's: 50,000 and 1,000,000); Events 0 skips the section
	Seed              uint64  // the dataset
	Epsilon           float64 // ε of each question (the dashboard's 0.5)
	Runs              int     // noisy runs per configuration, cells pooled
	Candidates        int     // hindsight grid points (ranked by expected error on the exact data) run through the engine
}

// DefaultUtilityOptions are the README's: the demo's shop, ε 0.5 per question.
func DefaultUtilityOptions() UtilityOptions {
	return UtilityOptions{Customers: 50_000, Events: 1_000_000, Seed: 1, Epsilon: 0.5, Runs: 3, Candidates: 6}
}

// utilityDelta is every question's δ: it lets tuning and the ceiling choose
// Gaussian noise; today's defaults use Laplace and spend none of it.
const utilityDelta = 1e-6

// utilQuestion is one question of the workload: one aggregate of purchases
// over the generated year, split by dims ("month" is the time bucket).
type utilQuestion struct {
	title string
	op    string // sum (revenue), count (purchase lines), distinct_customers, mean (average line)
	dims  []string
}

// utilityWorkload is the marketer's standard dashboard: twelve questions.
var utilityWorkload = []utilQuestion{
	{"revenue per month", "sum", []string{"month"}},
	{"purchases per month", "count", []string{"month"}},
	{"customers per month", "distinct_customers", []string{"month"}},
	{"revenue per month × channel", "sum", []string{"month", "channel"}},
	{"revenue per month × category", "sum", []string{"month", "category"}},
	{"revenue per month × store", "sum", []string{"month", "store"}},
	{"purchases per month × channel", "count", []string{"month", "channel"}},
	{"revenue per store", "sum", []string{"store"}},
	{"revenue per category", "sum", []string{"category"}},
	{"revenue per country", "sum", []string{"country"}},
	{"customers per store", "distinct_customers", []string{"store"}},
	{"average line per category", "mean", []string{"category"}},
}

// utilTruth is a question's exact answer from the reference, with what the
// hindsight grid needs: each customer's total per cell.
type utilTruth struct {
	cells  map[string]float64 // exact answer per cell key ("2025-03|web")
	keys   [][]string         // per dim, the keys present (declared as public keys)
	perCus map[string]map[string]float64
}

// utilReference computes every question's exact answer with plain Go loops
// over the generator's events — not the engine — so the errors measured are
// against an independent truth. Purchases in [start, start+days) only.
func utilReference(cfg synth.Config, qs []utilQuestion) ([]*utilTruth, error) {
	gen, err := synth.New(cfg)
	if err != nil {
		return nil, err
	}
	end := cfg.Start.AddDate(0, 0, cfg.Days)
	out := make([]*utilTruth, len(qs))
	sums := make([]map[string]float64, len(qs)) // mean: Σ amount
	lines := make([]map[string]float64, len(qs))
	dimKeys := make([][]map[string]bool, len(qs))
	for i, q := range qs {
		out[i] = &utilTruth{cells: map[string]float64{}, perCus: map[string]map[string]float64{}}
		sums[i], lines[i] = map[string]float64{}, map[string]float64{}
		dimKeys[i] = make([]map[string]bool, len(q.dims))
		for d := range q.dims {
			dimKeys[i][d] = map[string]bool{}
		}
	}
	var ev synth.Event
	key := make([]string, 0, 3)
	for gen.Next(&ev) {
		if ev.Type != privalytics.EventPurchase || ev.TS.Before(cfg.Start) || !ev.TS.Before(end) {
			continue
		}
		amount := float64(ev.AmountMilli) / 1000
		for i, q := range qs {
			key = key[:0]
			for d, dim := range q.dims {
				var k string
				switch dim {
				case "month":
					k = ev.TS.UTC().Format("2006-01")
				case "channel":
					k = ev.Channel
				case "category":
					k = ev.Category
				case "store":
					k = ev.Store
				case "country":
					k = ev.Country
				}
				key = append(key, k)
				dimKeys[i][d][k] = true
			}
			cell := strings.Join(key, "|")
			t := out[i]
			pc := t.perCus[ev.CustomerID]
			if pc == nil {
				pc = map[string]float64{}
				t.perCus[ev.CustomerID] = pc
			}
			switch q.op {
			case "sum":
				t.cells[cell] += amount
				pc[cell] += amount
			case "count":
				t.cells[cell]++
				pc[cell]++
			case "distinct_customers":
				if pc[cell] == 0 {
					t.cells[cell]++
				}
				pc[cell] = 1
			case "mean":
				sums[i][cell] += amount
				lines[i][cell]++
				pc[cell]++
			}
		}
	}
	for i, q := range qs {
		if q.op == "mean" {
			for c, s := range sums[i] {
				out[i].cells[c] = s / lines[i][c]
			}
		}
		for d := range q.dims {
			keys := make([]string, 0, len(dimKeys[i][d]))
			for k := range dimKeys[i][d] {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			out[i].keys = append(out[i].keys, keys)
		}
	}
	return out, nil
}

// utilConfig is one way of asking a question.
type utilConfig struct {
	label string
	l0    int
	clamp float64 // per-group clamp (sum: amount, count: rows, mean: average); 0 for distinct_customers
	norm  float64 // max_norm (count, sum; Gaussian): L2 bound of each customer's per-group totals; 0 for none
	noise dp.NoiseKind
}

func (c utilConfig) String() string {
	switch {
	case c.norm > 0:
		return fmt.Sprintf("L0 %d, norm %g, %s", c.l0, c.norm, c.noise)
	case c.clamp > 0:
		return fmt.Sprintf("L0 %d, clamp %g, %s", c.l0, c.clamp, c.noise)
	}
	return fmt.Sprintf("L0 %d, %s", c.l0, c.noise)
}

// utilQuery is the engine's query for question q: "default" is today's fixed
// defaults (L0 4, L∞ 8, per-row clamp [0, 60] as the demo's questions),
// "auto" gives no bounds (automatic tuning, asked for explicitly so counts
// are tuned too; "auto-uncorrected" the same with tuning.correct_bias false),
// otherwise cfg's fixed per-group bounds.
func utilQuery(q utilQuestion, t *utilTruth, cfg synth.Config, eps float64, mode string, c utilConfig) *privalytics.Query {
	end := cfg.Start.AddDate(0, 0, cfg.Days)
	out := &privalytics.Query{
		Where: []privalytics.Filter{{Column: "type", Eq: privalytics.EventPurchase},
			{Column: "ts", Gte: cfg.Start.Format(time.DateOnly), Lt: end.Format(time.DateOnly)}},
		Epsilon: eps, Delta: utilityDelta,
	}
	for d, dim := range q.dims {
		if dim == "month" {
			out.GroupBy = append(out.GroupBy, privalytics.GroupKey{Time: "month"})
		} else {
			out.GroupBy = append(out.GroupBy, privalytics.GroupKey{Column: dim, Keys: t.keys[d]})
		}
	}
	a := privalytics.Aggregate{Name: q.title, Op: q.op}
	if q.op == "sum" || q.op == "mean" {
		a.Column = "amount"
	}
	switch mode {
	case "default":
		out.Bounds = privalytics.Bounds{MaxGroups: 4, MaxRowsPerGroup: 8}
		out.Noise = string(dp.Laplace)
		if a.Column != "" {
			a.Lower, a.Upper = ptr(0), ptr(60)
		}
	case "auto":
		out.Tuning = &privalytics.Tuning{}
	case "auto-uncorrected":
		off := false
		out.Tuning = &privalytics.Tuning{CorrectBias: &off}
	default:
		out.Bounds = privalytics.Bounds{MaxGroups: c.l0}
		out.Noise = string(c.noise)
		if q.op != "distinct_customers" {
			a.ContributionBoundsPerGroup = &privalytics.GroupBounds{Lower: 0, Upper: c.clamp, MaxNorm: c.norm}
		}
	}
	out.Aggregates = []privalytics.Aggregate{a}
	return out
}

// utilScore is the accuracy of one configuration over its runs, cells pooled.
type utilScore struct {
	median, within10 float64
	cells            int
	// runs holds each run's relative cell errors, for the bootstrap over
	// runs (ratioInterval).
	runs [][]float64
	eps  float64
	res  *privalytics.Result // the last run's answer
	// Over all runs, of the cells not hidden (drawn as numbers): how many,
	// how many of their intervals hold the exact answer, and how many are
	// more than 2× off it.
	drawn, held, wild int
}

// utilMeasure runs query runs times through the service and scores the
// released cells against the reference.
func utilMeasure(ctx context.Context, svc *analytics.Service, tenant *privalytics.Tenant, q *privalytics.Query, t *utilTruth, runs int) (utilScore, error) {
	var errs []float64
	var sc utilScore
	for r := range runs {
		first := len(errs)
		qq := *q
		qq.Epsilon += float64(r) * 1e-9 // a new fingerprint per run; the bench's cache never answers anyway
		res, err := svc.Run(ctx, analytics.Request{Tenant: tenant, KeyID: "utility", Query: &qq, FingerprintKey: []byte("utility fingerprint key")})
		if err != nil {
			return sc, err
		}
		seen := 0
		for _, row := range res.Rows {
			w, ok := t.cells[strings.Join(row.Key, "|")]
			if !ok || w <= 0 {
				continue
			}
			seen++
			c := row.Cells[0]
			errs = append(errs, math.Abs(c.Value-w)/w)
			if !c.Hidden {
				sc.drawn++
				if c.Lower <= w && w <= c.Upper {
					sc.held++
				}
				if c.Value > 2*w || c.Value < w/2 {
					sc.wild++
				}
			}
		}
		if seen != len(t.cells) {
			return sc, fmt.Errorf("%s: the answer has %d of the reference's %d cells", q.Aggregates[0].Name, seen, len(t.cells))
		}
		sc.eps, sc.res = res.Cost.Epsilon, res
		sc.runs = append(sc.runs, slices.Clone(errs[first:]))
	}
	sc.median, sc.within10, _ = errorStats(errs)
	sc.cells = len(t.cells)
	return sc, nil
}

// utilGrid is the hindsight grid, ranked by the expected relative error of a
// median cell computed on the exact data (bias of bounding, with each
// customer keeping min(1, L0/groups) of its cells, and the noise's standard
// deviation) — a non-private choice, the ceiling a fixed choice can reach.
// Counts and sums also get the norm candidates (max_norm: L0 every cell, each
// customer's totals scaled to the norm, Gaussian noise), ranked the same way.
// Means have no closed form here: their grid is ranked by a run each.
func utilGrid(q utilQuestion, t *utilTruth, eps float64) []utilConfig {
	l0s := []int{1, 2, 3, 4, 6, 8, 12, 16, 24, 32}
	var clamps []float64
	switch q.op {
	case "sum":
		clamps = []float64{10, 20, 40, 60, 100, 150, 250, 400, 700, 1000, 2000}
	case "count":
		clamps = []float64{1, 2, 3, 4, 6, 8, 12, 16, 24}
	case "mean":
		clamps = []float64{20, 40, 80, 160}
		l0s = []int{1, 2, 4, 8}
	default:
		clamps = []float64{1}
	}
	ncells := len(t.cells)
	var grid []utilConfig
	for _, kind := range []dp.NoiseKind{dp.Laplace, dp.Gaussian} {
		for _, l0 := range l0s {
			if l0 > ncells {
				continue
			}
			for _, c := range clamps {
				cfg := utilConfig{l0: l0, clamp: c, noise: kind}
				if q.op == "distinct_customers" {
					cfg.clamp = 0
				}
				grid = append(grid, cfg)
			}
		}
	}
	if q.op == "mean" {
		return grid
	}
	if q.op == "sum" || q.op == "count" {
		for _, n := range clamps {
			// Each cell clamped to the norm too (no cell of a vector exceeds
			// its norm); counts to whole rows.
			grid = append(grid, utilConfig{l0: ncells, clamp: math.Ceil(n), norm: n, noise: dp.Gaussian})
		}
	}
	score := make([]float64, len(grid))
	cellIdx := map[string]int{}
	truth := make([]float64, 0, ncells)
	for k, v := range t.cells {
		cellIdx[k] = len(truth)
		truth = append(truth, v)
	}
	kept := make([]float64, ncells)
	rel := make([]float64, ncells)
	for gi, g := range grid {
		clear(kept)
		c := g.clamp
		if c == 0 {
			c = 1
		}
		for _, pc := range t.perCus {
			p := math.Min(1, float64(g.l0)/float64(len(pc)))
			if g.norm > 0 {
				sq := 0.0
				for _, v := range pc {
					sq += math.Min(v, c) * math.Min(v, c)
				}
				p = math.Min(1, g.norm/math.Sqrt(sq))
			}
			for k, v := range pc {
				kept[cellIdx[k]] += p * math.Min(v, c)
			}
		}
		sd := dp.NoiseStd(g.noise, int64(g.l0), c, dp.Budget{Epsilon: eps, Delta: utilityDelta})
		if g.norm > 0 {
			sd = dp.NoiseStd(dp.Gaussian, 1, g.norm, dp.Budget{Epsilon: eps, Delta: utilityDelta})
		}
		for i, w := range truth {
			bias := w - kept[i]
			rel[i] = math.Sqrt(bias*bias+sd*sd) / w
		}
		slices.Sort(rel)
		score[gi] = rel[len(rel)/2]
	}
	idx := make([]int, len(grid))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmpFloat(score[a], score[b]) })
	out := make([]utilConfig, len(grid))
	for i, j := range idx {
		out[i] = grid[j]
	}
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// utilRow is one question's line of the report.
type utilRow struct {
	q                utilQuestion
	base, auto, ceil utilScore
	ceilCfg          utilConfig
	tuned            string
	// estLoss is tuning's estimate of the share of the true value its bounds
	// remove (its DP histograms), exactLoss the share they do remove on the
	// reference's data (utilExactLoss); hasLoss when the question is a tuned
	// count or sum.
	estLoss, exactLoss float64
	hasLoss            bool
	// heavy is the share of the exact loss held by the heaviest few
	// customers — as many as one noise scale of a tuning histogram
	// (utilHidden): what no DP histogram at that ε can show.
	heavy float64
	// raw is the tuned answer without the correction for bounding's
	// estimated bias (tuning.correct_bias false), for counts and sums.
	raw utilScore
	// joint is the question answered workload-aware (see utilJoint), when
	// it is: one tuned query with rollup answers it and its coarser
	// question on their two ε together; jointWith names the other.
	joint     *utilScore
	jointWith string
}

// jointMaxParts is the most cells of a finer question a coarser question's
// cell may sum for the two to be answered together: a total of k cells
// carries √k cells' noise, so few parts keep the coarse answer as good as
// asking it alone. A rule on public information (the declared keys).
const jointMaxParts = 4

// RunUtility starts a server, loads the demo's shop through HTTP ingest and
// prints the utility section to out.
func RunUtility(ctx context.Context, out io.Writer, start StartFunc, opt UtilityOptions) error {
	app, stop, err := start(ctx, "privalytics-bench-utility-", ServerOptions{})
	if err != nil {
		return err
	}
	defer stop()
	_, err = benchUtility(ctx, out, app, client.New(app.URL(), app.OperatorKey()), opt)
	return err
}

// benchUtility is the utility section on a running server: the shop goes
// through HTTP ingest into a tenant of its own, then utilityOn answers.
func benchUtility(ctx context.Context, out io.Writer, app Server, op *client.Client, opt UtilityOptions) ([]utilRow, error) {
	began := time.Now()
	cfg := utilityShop(opt)
	_, ingest, err := benchTenant(ctx, op, "utility")
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "\nUtility: %d events, %d customers through HTTP ingest; %d questions at ε %g (δ %g) each, %d runs per configuration …\n",
		cfg.Events, cfg.Customers, len(utilityWorkload), opt.Epsilon, utilityDelta, opt.Runs)
	if _, err := Stream(ctx, ingest, cfg, 20_000, 2, nil); err != nil {
		return nil, err
	}
	tenant, err := app.Meta().Tenant(ctx, "utility")
	if err != nil {
		return nil, err
	}
	snap, err := app.Events().Snapshot(ctx, "utility", tenant.Schema)
	if err != nil {
		return nil, err
	}
	rows, err := utilityOn(ctx, tenant, snap, opt)
	if err != nil {
		return nil, err
	}
	writeUtility(out, rows, opt.Epsilon, time.Since(began))
	return rows, nil
}

func utilityShop(opt UtilityOptions) synth.Config {
	cfg := synth.DefaultConfig()
	cfg.Customers, cfg.Events, cfg.Seed = opt.Customers, opt.Events, opt.Seed
	return cfg
}

// utilityOn answers the workload over snap, which holds utilityShop(opt)'s
// events, through analytics.Service (the one path to a release, with the
// secure mechanisms) and scores it against utilReference.
func utilityOn(ctx context.Context, tenant *privalytics.Tenant, snap *privalytics.Snapshot, opt UtilityOptions) ([]utilRow, error) {
	cfg := utilityShop(opt)
	truths, err := utilReference(cfg, utilityWorkload)
	if err != nil {
		return nil, err
	}
	ports := benchPorts{snap: snap}
	svc := analytics.NewService(analytics.ServiceDeps{Ledger: ports, Events: ports, Consent: ports, Mechanisms: dp.Secure(), Cache: ports})

	var rows []utilRow
	for i, q := range utilityWorkload {
		t := truths[i]
		r := utilRow{q: q}
		if r.base, err = utilMeasure(ctx, svc, tenant, utilQuery(q, t, cfg, opt.Epsilon, "default", utilConfig{}), t, opt.Runs); err != nil {
			return nil, fmt.Errorf("%s, defaults: %w", q.title, err)
		}
		if r.auto, err = utilMeasure(ctx, svc, tenant, utilQuery(q, t, cfg, opt.Epsilon, "auto", utilConfig{}), t, opt.Runs); err != nil {
			return nil, fmt.Errorf("%s, tuned: %w", q.title, err)
		}
		if q.op == "sum" || q.op == "count" {
			if r.raw, err = utilMeasure(ctx, svc, tenant, utilQuery(q, t, cfg, opt.Epsilon, "auto-uncorrected", utilConfig{}), t, opt.Runs); err != nil {
				return nil, fmt.Errorf("%s, tuned without correction: %w", q.title, err)
			}
		} else {
			r.raw = r.auto // nothing to correct
		}
		if tr := r.auto.res.Tuning; tr != nil {
			if len(tr.Aggregates) > 0 && (q.op == "sum" || q.op == "count") {
				a := tr.Aggregates[0]
				r.estLoss, r.hasLoss = a.BoundingLoss, true
				r.exactLoss, r.heavy = utilExactLoss(t, tr.MaxGroups, a.Upper, a.MaxNorm, utilHidden(opt.Epsilon))
			}
			r.tuned = fmt.Sprintf("L0 %d, %s", tr.MaxGroups, tr.Noise)
			switch {
			case len(tr.Aggregates) > 0 && tr.Aggregates[0].MaxNorm > 0:
				r.tuned = fmt.Sprintf("L0 %d, norm %g, %s", tr.MaxGroups, tr.Aggregates[0].MaxNorm, tr.Noise)
			case len(tr.Aggregates) > 0:
				r.tuned = fmt.Sprintf("L0 %d, clamp %g, %s", tr.MaxGroups, tr.Aggregates[0].Upper, tr.Noise)
			}
		}
		// The ceiling: the best-ranked grid points one run each, the best
		// of them measured again over opt.Runs runs.
		grid := utilGrid(q, t, opt.Epsilon)
		if q.op != "mean" {
			grid = grid[:min(len(grid), opt.Candidates)]
		}
		best := math.Inf(1)
		for _, g := range grid {
			s, err := utilMeasure(ctx, svc, tenant, utilQuery(q, t, cfg, opt.Epsilon, "fixed", g), t, 1)
			if err != nil {
				return nil, fmt.Errorf("%s, %v: %w", q.title, g, err)
			}
			if s.median < best {
				best, r.ceilCfg = s.median, g
			}
		}
		if r.ceil, err = utilMeasure(ctx, svc, tenant, utilQuery(q, t, cfg, opt.Epsilon, "fixed", r.ceilCfg), t, opt.Runs); err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	if err := utilJoint(ctx, svc, tenant, cfg, truths, rows, opt); err != nil {
		return nil, err
	}
	return rows, nil
}

// utilJoint answers the workload-aware way where it pays: a question split
// by [a, b] whose b has at most jointMaxParts keys, and the question of the
// same aggregate split by [a] alone, become one tuned query with rollup at
// their two ε together — the finer cells get twice the ε, the coarser ones
// are their sums, free. Same total ε as asking both.
func utilJoint(ctx context.Context, svc *analytics.Service, tenant *privalytics.Tenant, cfg synth.Config, truths []*utilTruth, rows []utilRow, opt UtilityOptions) error {
	for i, fine := range utilityWorkload {
		if len(fine.dims) != 2 || len(truths[i].keys[1]) > jointMaxParts {
			continue
		}
		for j, coarse := range utilityWorkload {
			if coarse.op != fine.op || len(coarse.dims) != 1 || coarse.dims[0] != fine.dims[0] || rows[j].joint != nil {
				continue
			}
			q := utilQuery(fine, truths[i], cfg, 2*opt.Epsilon, "auto", utilConfig{})
			q.Rollup = true
			f, c, err := utilMeasureJoint(ctx, svc, tenant, q, truths[i], truths[j], opt.Runs)
			if err != nil {
				return fmt.Errorf("%s with %s: %w", fine.title, coarse.title, err)
			}
			rows[i].joint, rows[i].jointWith = &f, coarse.title
			rows[j].joint, rows[j].jointWith = &c, fine.title
		}
	}
	return nil
}

// utilMeasureJoint scores a rollup query's released cells against fine and
// its first subtotals against coarse; each side is charged half the ε.
func utilMeasureJoint(ctx context.Context, svc *analytics.Service, tenant *privalytics.Tenant, q *privalytics.Query, fine, coarse *utilTruth, runs int) (f, c utilScore, err error) {
	var fe, ce []float64
	for r := range runs {
		qq := *q
		qq.Epsilon += float64(r) * 1e-9
		res, err := svc.Run(ctx, analytics.Request{Tenant: tenant, KeyID: "utility", Query: &qq, FingerprintKey: []byte("utility fingerprint key")})
		if err != nil {
			return f, c, err
		}
		nf, nc := 0, 0
		for _, row := range res.Rows {
			truth, key := fine, strings.Join(row.Key, "|")
			switch row.Subtotal {
			case 0:
			case 1:
				truth, key = coarse, row.Key[0]
			default:
				continue
			}
			w, ok := truth.cells[key]
			if !ok || w <= 0 {
				continue
			}
			e := math.Abs(row.Cells[0].Value-w) / w
			if row.Subtotal == 0 {
				fe, nf = append(fe, e), nf+1
			} else {
				ce, nc = append(ce, e), nc+1
			}
		}
		if nf != len(fine.cells) || nc != len(coarse.cells) {
			return f, c, fmt.Errorf("the answer has %d of %d cells and %d of %d subtotals", nf, len(fine.cells), nc, len(coarse.cells))
		}
		f.eps, c.eps = res.Cost.Epsilon/2, res.Cost.Epsilon/2
		f.res, c.res = res, res
	}
	f.median, f.within10, _ = errorStats(fe)
	c.median, c.within10, _ = errorStats(ce)
	f.cells, c.cells = len(fine.cells), len(coarse.cells)
	return f, c, nil
}

// utilExactLoss is the share of a count's or sum's true value that bounds
// remove on the reference's data: each customer keeps min(1, l0/k) of its k
// cells (in expectation: the engine keeps a uniform random l0 of them), each
// cell's total clamped to [0, upper], and with a norm the vector of clamped
// totals scaled to it (the kept subset's norm taken as √(l0/k) of the
// whole's). Positive totals only: the workload's purchases. heavy is the
// share of that loss the n customers it removes most from hold.
func utilExactLoss(t *utilTruth, l0 int, upper, norm float64, n int) (loss, heavy float64) {
	removed, total := utilRemoved(t, l0, upper, norm)
	slices.SortFunc(removed, func(a, b float64) int { return cmpFloat(b, a) })
	var top, all float64
	for i, r := range removed {
		if i < n {
			top += r
		}
		all += r
	}
	if total <= 0 {
		return 0, 0
	}
	if all > 0 {
		heavy = top / all
	}
	return all / total, heavy
}

// utilRemoved is what the bounds remove from each customer (utilExactLoss's
// model), and the true total.
func utilRemoved(t *utilTruth, l0 int, upper, norm float64) (removed []float64, total float64) {
	removed = make([]float64, 0, len(t.perCus))
	for _, pc := range t.perCus {
		f := math.Min(1, float64(l0)/float64(len(pc)))
		var whole, sum, sq float64
		for _, v := range pc {
			whole += v
			c := math.Min(v, upper)
			sum += c
			sq += c * c
		}
		s := 1.0
		if n := math.Sqrt(f * sq); norm > 0 && n > norm {
			s = norm / n
		}
		total += whole
		removed = append(removed, whole-f*s*sum)
	}
	return removed, total
}

// utilHidden is how many customers one noise scale of a tuning histogram
// stands for at a question's ε (each histogram gets analytics.HistogramShare
// of it; Laplace scale 1/ε): at ε 0.5, 40. A bin holding that many customers
// is indistinguishable from an empty one, and the thresholds tuning applies
// need about ten scales to show a bin at all — so whatever the heaviest few
// customers hold is invisible to the loss estimate.
func utilHidden(eps float64) int {
	return int(math.Round(1 / (analytics.HistogramShare * eps)))
}

// errorStats are the median and the share within 10% of relative errors.
func errorStats(errs []float64) (median, within10 float64, n int) {
	slices.Sort(errs)
	in := 0
	for _, e := range errs {
		if e <= 0.1 {
			in++
		}
	}
	return errs[len(errs)/2], float64(in) / float64(len(errs)), len(errs)
}

// utilTotals are a configuration's workload totals: ε spent and the share
// of all cells within 10%.
func utilTotals(rows []utilRow, pick func(utilRow) utilScore) (eps, within float64, cells int) {
	var in float64
	for _, r := range rows {
		s := pick(r)
		eps += s.eps
		in += s.within10 * float64(s.cells)
		cells += s.cells
	}
	return eps, in / float64(cells), cells
}

// ratioInterval is a 90% bootstrap interval of a's median cell error ÷ b's:
// each side's runs drawn again with replacement (a run's cells stay
// together, as they share its noise and its tuning), 1,000 times, with a
// fixed seed so that a report reads the same for the same answers. The
// medians of both sides move between runs; the interval says whether a
// question's distance from the 1.25× target is more than that spread.
// Resampling a measurement, not noise for a release: math/rand is right
// here.
func ratioInterval(a, b utilScore) (lo, hi float64) {
	if len(a.runs) == 0 || len(b.runs) == 0 {
		return math.NaN(), math.NaN()
	}
	rng := rand.New(rand.NewPCG(15, 32))
	resampled := func(s utilScore) float64 {
		var errs []float64
		for range s.runs {
			errs = append(errs, s.runs[rng.IntN(len(s.runs))]...)
		}
		m, _, _ := errorStats(errs)
		return m
	}
	const draws = 1000
	ratios := make([]float64, 0, draws)
	for range draws {
		if d := resampled(b); d > 0 {
			ratios = append(ratios, resampled(a)/d)
		}
	}
	if len(ratios) == 0 {
		return math.NaN(), math.NaN()
	}
	slices.Sort(ratios)
	return ratios[len(ratios)*5/100], ratios[len(ratios)*95/100]
}

// nearCeiling is how many questions pick's median error puts within 1.25×
// of the ceiling's (the target).
func nearCeiling(rows []utilRow, pick func(utilRow) utilScore) int {
	n := 0
	for _, r := range rows {
		if pick(r).median <= 1.25*r.ceil.median {
			n++
		}
	}
	return n
}

func writeUtility(out io.Writer, rows []utilRow, eps float64, took time.Duration) {
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "question\tcells\tε\tdefaults: median err\t≤10%\ttuned: median err\t≤10%\ttuned chose\tceiling: median err\t≤10%\tceiling params\ttuned ÷ ceiling\t90% over runs\t")
	clear, unclear := 0, 0
	for _, r := range rows {
		ratio := r.auto.median / r.ceil.median
		lo, hi := ratioInterval(r.auto, r.ceil)
		switch {
		case hi <= 1.25:
			clear++
		case lo <= 1.25:
			unclear++
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2g\t%.1f%%\t%.0f%%\t%.1f%%\t%.0f%%\t%s\t%.1f%%\t%.0f%%\t%v\t%.2f× %s\t%.2f–%.2f×\t\n", r.q.title, r.auto.cells, r.auto.eps,
			r.base.median*100, r.base.within10*100, r.auto.median*100, r.auto.within10*100, r.tuned, r.ceil.median*100, r.ceil.within10*100, r.ceilCfg, ratio, okMark(ratio <= 1.25), lo, hi)
	}
	be, bw, cells := utilTotals(rows, func(r utilRow) utilScore { return r.base })
	ae, aw, _ := utilTotals(rows, func(r utilRow) utilScore { return r.auto })
	ce, cw, _ := utilTotals(rows, func(r utilRow) utilScore { return r.ceil })
	tw.Flush()
	meets := nearCeiling(rows, func(r utilRow) utilScore { return r.auto })
	fmt.Fprintf(out, "\nworkload, %d cells: ε spent defaults %.2g, tuned %.2g, ceiling %.2g; cells within 10%%: defaults %.1f%%, tuned %.1f%%, ceiling %.1f%%\n", cells, be, ae, ce, bw*100, aw*100, cw*100)
	gain := aw / bw
	fmt.Fprintf(out, "tuned ÷ defaults, share within 10%%: %.2f× (target ≥ 4×: %s); tuned median error within 1.25× of the ceiling: %d of %d questions (target: all: %s)\n",
		gain, verdict(gain >= 4), meets, len(rows), verdict(meets == len(rows)))
	fmt.Fprintf(out, "bootstrap over runs (90%% interval of tuned ÷ ceiling): %d of %d questions within 1.25× throughout, %d with 1.25× inside the interval (more runs would tell), %d above it throughout\n",
		clear, len(rows), unclear, len(rows)-clear-unclear)
	fmt.Fprintf(out, "defaults: L0 4, L∞ 8, per-row clamp [0, 60], Laplace; ceiling: best of a grid over L0, per-group clamp and noise, and over max_norm (L0 every cell, Gaussian), chosen with the exact data\n")
	writeLoss(out, rows, utilHidden(eps))
	writeHonesty(out, rows)
	writeJoint(out, rows)
	fmt.Fprintf(out, "section took %.1fs\n", took.Seconds())
}

// writeLoss reports, for the tuned counts and sums, tuning's estimate of the
// share its bounds remove beside the share they remove on the exact data: how
// far the tuning histograms, blind to the few heaviest customers, under-state
// bounding's bias (the README's tuning section).
func writeLoss(out io.Writer, rows []utilRow, hidden int) {
	fmt.Fprintln(out, "\nbounding loss of the tuned bounds (last run): tuning's estimate from its DP histograms against the exact share they remove (reference data), and how much of that the heaviest few customers hold — as many as one noise scale of a tuning histogram, which no DP histogram at this ε can show; the tuned answers are divided by 1 − the estimate (tuning.correct_bias), here beside the same query asked with correct_bias false (tuned for an uncorrected answer, so its bounds may differ):")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "question\ttuned chose\testimated loss\texact loss\tof it, from the heaviest %d\tuncorrected: median err\t≤10%%\tcorrected: median err\t≤10%%\t\n", hidden)
	for _, r := range rows {
		if r.hasLoss {
			fmt.Fprintf(tw, "%s\t%s\t%.1f%%\t%.1f%%\t%.0f%%\t%.1f%%\t%.0f%%\t%.1f%%\t%.0f%%\t\n", r.q.title, r.tuned, r.estLoss*100, r.exactLoss*100, r.heavy*100,
				r.raw.median*100, r.raw.within10*100, r.auto.median*100, r.auto.within10*100)
		}
	}
	tw.Flush()
	_, rw, cells := utilTotals(rows, func(r utilRow) utilScore { return r.raw })
	_, aw, _ := utilTotals(rows, func(r utilRow) utilScore { return r.auto })
	rawMeets, meets := nearCeiling(rows, func(r utilRow) utilScore { return r.raw }), nearCeiling(rows, func(r utilRow) utilScore { return r.auto })
	fmt.Fprintf(out, "workload, %d cells, tuned: without the correction %.1f%% within 10%%, %d of %d questions within 1.25× of the ceiling; with it %.1f%%, %d of %d\n",
		cells, rw*100, rawMeets, len(rows), aw*100, meets, len(rows))
}

// writeHonesty reports, for the defaults and the tuned answers, the cells
// drawn as numbers (not hidden) and how far they can be trusted: the share
// whose 95% interval holds the exact answer, and how many are more than 2×
// off. The intervals cover the noise only; what bounding removes beyond
// tuning's estimate is outside them (README, "Honest cells").
func writeHonesty(out io.Writer, rows []utilRow) {
	fmt.Fprintln(out, "\ncells drawn as numbers (not hidden), all runs: how many, the share whose interval holds the exact answer, and how many are more than 2× off it — the intervals cover the noise, not the bias of bounding:")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "question\tdefaults: drawn\tinterval holds the truth\t> 2× off\ttuned: drawn\tinterval holds the truth\t> 2× off\t")
	var base, auto utilScore
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\t%d\t\n", r.q.title, r.base.drawn, heldShare(r.base), r.base.wild, r.auto.drawn, heldShare(r.auto), r.auto.wild)
		base.addDrawn(r.base)
		auto.addDrawn(r.auto)
	}
	fmt.Fprintf(tw, "workload\t%d\t%s\t%d\t%d\t%s\t%d\t\n", base.drawn, heldShare(base), base.wild, auto.drawn, heldShare(auto), auto.wild)
	tw.Flush()
}

// addDrawn adds o's counts of drawn cells to s's.
func (s *utilScore) addDrawn(o utilScore) {
	s.drawn, s.held, s.wild = s.drawn+o.drawn, s.held+o.held, s.wild+o.wild
}

// heldShare is the share of a score's drawn cells whose interval holds the
// exact answer, or "–" when none was drawn.
func heldShare(s utilScore) string {
	if s.drawn == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(s.held)/float64(s.drawn))
}

// writeJoint reports the workload-aware answers beside the separate tuned
// ones, and the workload with them in place.
func writeJoint(out io.Writer, rows []utilRow) {
	any := false
	for _, r := range rows {
		any = any || r.joint != nil
	}
	if !any {
		return
	}
	fmt.Fprintf(out, "\nworkload-aware: a question split by [a, b] (b of at most %d keys) and the same aggregate split by [a] as one tuned query with rollup, on their two ε together (the subtotals are free):\n", jointMaxParts)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "question	asked alone (tuned): median err	≤10%	workload-aware: median err	≤10%	answered with	gain in median err	")
	for _, r := range rows {
		if r.joint == nil {
			continue
		}
		fmt.Fprintf(tw, "%s\t%.1f%%\t%.0f%%\t%.1f%%\t%.0f%%\t%s\t%.2f×\t\n", r.q.title, r.auto.median*100, r.auto.within10*100, r.joint.median*100, r.joint.within10*100,
			r.jointWith, r.auto.median/r.joint.median)
	}
	tw.Flush()
	ae, aw, _ := utilTotals(rows, func(r utilRow) utilScore { return r.auto })
	je, jw, cells := utilTotals(rows, func(r utilRow) utilScore {
		if r.joint != nil {
			return *r.joint
		}
		return r.auto
	})
	fmt.Fprintf(out, "workload, %d cells: tuned alone ε %.2g, %.1f%% within 10%%; workload-aware ε %.2g, %.1f%% within 10%%\n", cells, ae, aw*100, je, jw*100)
}

func okMark(ok bool) string {
	if ok {
		return "ok"
	}
	return "ABOVE 1.25×"
}
