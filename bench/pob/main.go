// Command pob-compare runs Privalytics and Google's Privacy on Beam side by
// side on UCI Online Retail: revenue per country × month (the ten countries
// with the most rows, 13 months, all public keys) at several ε, many runs
// each, scored by the revenue-weighted error Σ|noisy − true| ÷ Σ true against
// exact sums computed here by plain loops over the file.
//
// It compares (a) Privalytics with per-group bounds equal to Privacy on Beam's
// SumPerKey bounds (MaxPartitionsContributed = max_groups, MinValue/MaxValue =
// contribution_bounds_per_group, Laplace noise both), at the bounds that are
// best for Privacy on Beam in hindsight, and (b) Privalytics with automatic
// tuning (no bounds given) against Privacy on Beam given those best bounds.
//
// It is a module of its own so that Beam never enters the product's go.mod;
// it is a measurement tool only (the product's beam/ module is separate).
//
//	cd bench/pob && go run . -runs 20
package main

import (
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/direct"
	"github.com/google/differential-privacy/privacy-on-beam/v3/pbeam"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/analytics"
	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/ingest"
	"github.com/privalytics/privalytics/store/events"
)

// countries are the ten with the most rows in the file (its truth file).
var countries = []string{"United Kingdom", "Germany", "France", "EIRE", "Spain", "Netherlands", "Belgium", "Switzerland", "Portugal", "Australia"}

// months are the file's 13 months (local UK time), public keys.
var months = []string{"2010-12", "2011-01", "2011-02", "2011-03", "2011-04", "2011-05", "2011-06", "2011-07", "2011-08", "2011-09", "2011-10", "2011-11", "2011-12"}

// Contribution is one customer's total revenue in one cell. Privacy on Beam's
// SumPerKey sums a privacy unit's values per partition before clamping the
// total to [MinValue, MaxValue], so feeding it these totals is the same as
// feeding it the lines, and much faster on the direct runner.
type Contribution struct {
	ID    string
	Cell  string
	Value float64
}

func cellOf(c Contribution) (string, float64) { return c.Cell, c.Value }

// collect receives a branch's released cells on the direct runner (one
// process, so a shared map is the simplest sink).
type collect struct {
	Branch string
}

var (
	outMu sync.Mutex
	out   = map[string]map[string]float64{}
)

func (c *collect) ProcessElement(cell string, v float64) {
	outMu.Lock()
	defer outMu.Unlock()
	m := out[c.Branch]
	if m == nil {
		m = map[string]float64{}
		out[c.Branch] = m
	}
	m[cell] = v
}

func init() {
	register.Function1x2[Contribution, string, float64](cellOf)
	register.DoFn2x0[string, float64](&collect{})
}

func main() {
	beam.Init()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type bounds struct {
	l0  int64
	max float64
}

func (b bounds) String() string { return fmt.Sprintf("L0 %d, [0, %g]", b.l0, b.max) }

func run() error {
	data := flag.String("data", "../../../shared/data/online_retail_uci.csv.gz", "UCI Online Retail (../shared/data of the worktree)")
	runs := flag.Int("runs", 20, "runs per ε and configuration")
	gridRuns := flag.Int("grid-runs", 2, "runs per grid point when choosing Privacy on Beam's best bounds in hindsight")
	epsList := flag.String("epsilon", "0.5,1,4", "ε values, comma-separated")
	flag.Parse()
	if _, err := os.Stat(*data); err != nil {
		return fmt.Errorf("UCI Online Retail not found at %s (give -data): %w", *data, err)
	}
	var epss []float64
	for _, s := range strings.Split(*epsList, ",") {
		e, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return fmt.Errorf("-epsilon: %w", err)
		}
		epss = append(epss, e)
	}
	began := time.Now()
	contribs, truth, err := reference(*data)
	if err != nil {
		return err
	}
	var total float64
	for _, v := range truth {
		total += v
	}
	fmt.Printf("UCI Online Retail: %d customer-cells, %d public cells (10 countries × 13 months), exact revenue %.0f\n", len(contribs), len(countries)*len(months), total)

	svc, err := privalyticsService(*data)
	if err != nil {
		return err
	}
	defer svc.close()
	var keys []string
	for _, c := range countries {
		for _, m := range months {
			keys = append(keys, c+"|"+m)
		}
	}

	grid := []bounds{}
	for _, l0 := range []int64{1, 2, 3, 4, 6, 8, 13} {
		for _, m := range []float64{100, 300, 1000, 3000, 10000, 30000} {
			grid = append(grid, bounds{l0, m})
		}
	}
	type line struct {
		eps                float64
		best               bounds
		pob, pv, auto, raw stat
		autoChose          string
	}
	var lines []line
	for _, eps := range epss {
		// Privacy on Beam's best bounds with hindsight: every grid point,
		// gridRuns runs each, in one pipeline.
		var branches []branch
		for _, b := range grid {
			for r := range *gridRuns {
				branches = append(branches, branch{name: fmt.Sprintf("%v|%d", b, r), b: b})
			}
		}
		res, err := runPoB(contribs, keys, eps, branches)
		if err != nil {
			return err
		}
		best, bestErr := bounds{}, math.Inf(1)
		for _, b := range grid {
			var e float64
			for r := range *gridRuns {
				e += weighted(res[fmt.Sprintf("%v|%d", b, r)], truth, keys)
			}
			if e /= float64(*gridRuns); e < bestErr {
				best, bestErr = b, e
			}
		}
		// The figures: runs fresh runs at the best bounds.
		branches = branches[:0]
		for r := range *runs {
			branches = append(branches, branch{name: fmt.Sprintf("best|%d", r), b: best})
		}
		if res, err = runPoB(contribs, keys, eps, branches); err != nil {
			return err
		}
		l := line{eps: eps, best: best}
		for r := range *runs {
			l.pob.add(weighted(res[fmt.Sprintf("best|%d", r)], truth, keys))
		}
		for r := range *runs {
			got, _, err := privalyticsRun(svc, eps+float64(r)*1e-9, &best, false)
			if err != nil {
				return err
			}
			l.pv.add(weighted(got, truth, keys))
			got, chose, err := privalyticsRun(svc, eps+float64(r)*1e-9, nil, true)
			if err != nil {
				return err
			}
			l.auto.add(weighted(got, truth, keys))
			l.autoChose = chose
			if got, _, err = privalyticsRun(svc, eps+float64(r)*1e-9, nil, false); err != nil {
				return err
			}
			l.raw.add(weighted(got, truth, keys))
		}
		lines = append(lines, l)
		fmt.Fprintf(os.Stderr, "ε %g done (%.0fs)\n", eps, time.Since(began).Seconds())
	}

	fmt.Printf("\nrevenue per country × month, revenue-weighted error Σ|noisy − true| ÷ Σ true, mean ± standard error of %d runs; Laplace noise, δ 0 throughout\n", *runs)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ε\tPoB best bounds (hindsight)\tPoB\t(a) Privalytics, same per-group bounds\t(a) ÷ PoB\t(b) Privalytics, automatic tuning\ttuning chose (last run)\t(b) ÷ PoB\t(b) without bias correction\t÷ PoB\t")
	for _, l := range lines {
		ra, rb, rr := l.pv.mean()/l.pob.mean(), l.auto.mean()/l.pob.mean(), l.raw.mean()/l.pob.mean()
		fmt.Fprintf(tw, "%g\t%v\t%v\t%v\t%.2f× %s\t%v\t%s\t%.2f× %s\t%v\t%.2f×\t\n", l.eps, l.best, l.pob, l.pv, ra, sameBounds(l.pv, l.pob), l.auto, l.autoChose, rb, mark(rb <= 1.25), l.raw, rr)
	}
	tw.Flush()
	fmt.Printf("targets: (a) ≤ 1× Privacy on Beam's error (\"ties\": above it by less than two standard errors of the difference — the same bounds and noise have the same expected error), (b) ≤ 1.25×. Privacy on Beam v3.0.0, Beam v2.54.0 direct runner; took %.0fs\n", time.Since(began).Seconds())
	return nil
}

// stat is a mean with its standard error.
type stat struct{ xs []float64 }

func (s *stat) add(x float64) { s.xs = append(s.xs, x) }

func (s stat) mean() float64 {
	m := 0.0
	for _, x := range s.xs {
		m += x
	}
	return m / float64(len(s.xs))
}

// se is the standard error of the mean.
func (s stat) se() float64 {
	m, v := s.mean(), 0.0
	for _, x := range s.xs {
		v += (x - m) * (x - m)
	}
	if n := float64(len(s.xs)); n > 1 {
		return math.Sqrt(v / (n - 1) / n)
	}
	return 0
}

func (s stat) String() string {
	return fmt.Sprintf("%.2f%% ± %.2f", s.mean()*100, s.se()*100)
}

// sameBounds is the verdict on (a): Privalytics and Privacy on Beam with the
// same bounds and Laplace noise have the same expected error, so a mean above
// Privacy on Beam's by less than two standard errors of the difference (the
// runs are independent) is a tie, not a miss.
func sameBounds(pv, pob stat) string {
	d, se := pv.mean()-pob.mean(), math.Hypot(pv.se(), pob.se())
	switch {
	case d <= 0:
		return "(meets)"
	case d < 2*se:
		return fmt.Sprintf("(ties: +%.2f ± %.2f)", d*100, se*100)
	}
	return "(MISSES)"
}

func mark(ok bool) string {
	if ok {
		return "(meets)"
	}
	return "(MISSES)"
}

// weighted is Σ|got − truth| ÷ Σ truth over the public cells (a cell missing
// from got counts as 0).
func weighted(got, truth map[string]float64, keys []string) float64 {
	var num, den float64
	for _, k := range keys {
		num += math.Abs(got[k] - truth[k])
		den += truth[k]
	}
	return num / den
}

// reference reads the file with the import preset's rules — rows with a
// CustomerID, purchases (InvoiceNo not starting with C), amount Quantity ×
// UnitPrice — and returns each customer's total per public cell and the exact
// revenue per cell.
func reference(path string) ([]Contribution, map[string]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, nil, err
	}
	r := csv.NewReader(zr)
	r.FieldsPerRecord = -1
	hdr, err := r.Read()
	if err != nil {
		return nil, nil, err
	}
	col := map[string]int{}
	for i, h := range hdr {
		col[strings.TrimPrefix(h, "\ufeff")] = i
	}
	public := map[string]bool{}
	for _, c := range countries {
		public[c] = true
	}
	per := map[[2]string]float64{}
	truth := map[string]float64{}
	allByMonth, rows := map[string]float64{}, 0 // every row, for the check against the truth file
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		rows++
		q, err1 := strconv.ParseFloat(rec[col["Quantity"]], 64)
		p, err2 := strconv.ParseFloat(rec[col["UnitPrice"]], 64)
		if err1 != nil || err2 != nil {
			return nil, nil, fmt.Errorf("bad quantity or price in %v", rec)
		}
		allByMonth[rec[col["InvoiceDate"]][:7]] += q * p
		id, country := rec[col["CustomerID"]], rec[col["Country"]]
		if id == "" || strings.HasPrefix(rec[col["InvoiceNo"]], "C") || !public[country] {
			continue
		}
		cell := country + "|" + rec[col["InvoiceDate"]][:7]
		per[[2]string{id, cell}] += q * p
		truth[cell] += q * p
	}
	if err := checkTruthFile(filepath.Join(filepath.Dir(path), "online_retail_uci.truth.json"), rows, allByMonth); err != nil {
		return nil, nil, err
	}
	out := make([]Contribution, 0, len(per))
	for k, v := range per {
		out = append(out, Contribution{ID: k[0], Cell: k[1], Value: v})
	}
	slices.SortFunc(out, func(a, b Contribution) int { return strings.Compare(a.ID+a.Cell, b.ID+b.Cell) })
	return out, truth, nil
}

// checkTruthFile compares the parse with the exact aggregates computed
// independently beside the data (rows, revenue by month over every row), so
// the reference is known to read the file right.
func checkTruthFile(path string, rows int, byMonth map[string]float64) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("the reference check needs %s: %w", path, err)
	}
	var tf struct {
		UCI struct {
			Rows           int                `json:"rows"`
			RevenueByMonth map[string]float64 `json:"revenue_by_month"`
		} `json:"online_retail_uci"`
	}
	if err := json.Unmarshal(b, &tf); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if rows != tf.UCI.Rows || len(byMonth) != len(tf.UCI.RevenueByMonth) {
		return fmt.Errorf("reference: read %d rows in %d months, the truth file says %d in %d", rows, len(byMonth), tf.UCI.Rows, len(tf.UCI.RevenueByMonth))
	}
	for m, want := range tf.UCI.RevenueByMonth {
		if math.Abs(byMonth[m]-want) > 0.01 {
			return fmt.Errorf("reference: revenue of %s %.2f, the truth file says %.2f", m, byMonth[m], want)
		}
	}
	return nil
}

type branch struct {
	name string
	b    bounds
}

// runPoB runs one pipeline with one SumPerKey per branch (each its own
// PrivacySpec with ε, Laplace noise, public partitions) on the direct runner.
func runPoB(contribs []Contribution, keys []string, eps float64, branches []branch) (map[string]map[string]float64, error) {
	outMu.Lock()
	clear(out)
	outMu.Unlock()
	p, s := beam.NewPipelineWithRoot()
	col := beam.CreateList(s, contribs)
	parts := beam.CreateList(s, keys)
	for _, br := range branches {
		spec, err := pbeam.NewPrivacySpec(pbeam.PrivacySpecParams{AggregationEpsilon: eps})
		if err != nil {
			return nil, err
		}
		pcol := pbeam.MakePrivateFromStruct(s, col, spec, "ID")
		kv := pbeam.ParDo(s, cellOf, pcol)
		sums := pbeam.SumPerKey(s, kv, pbeam.SumParams{
			MaxPartitionsContributed: br.b.l0,
			MinValue:                 0,
			MaxValue:                 br.b.max,
			PublicPartitions:         parts,
		})
		beam.ParDo0(s, &collect{Branch: br.name}, sums)
	}
	if _, err := direct.Execute(context.Background(), p); err != nil {
		return nil, err
	}
	outMu.Lock()
	defer outMu.Unlock()
	res := map[string]map[string]float64{}
	for k, v := range out {
		res[k] = v
	}
	return res, nil
}

// privalyticsService imports the file with the uci-online-retail preset into
// a real event store (validation, pseudonymisation) in a temporary directory
// and returns a query service over its snapshot with the secure mechanisms.
func privalyticsService(path string) (*uciService, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "pob-compare-")
	if err != nil {
		return nil, err
	}
	ps, err := ingest.NewPseudonymiser(make([]byte, 32))
	if err != nil {
		return nil, err
	}
	schema := privalytics.DefaultRetailSchema()
	conv, err := ingest.NewConverter(schema, ps, ingest.Limits{})
	if err != nil {
		return nil, err
	}
	st, err := events.Open(filepath.Join(dir, "events"), events.Options{})
	if err != nil {
		return nil, err
	}
	m := ingest.UCIOnlineRetailMapping()
	if _, err := ingest.BenchImport(ctx, path, "csv", conv, &m, 50_000, func(r arrow.Record) error {
		_, err := st.Append(ctx, "uci", schema, privalytics.Batch{Record: r})
		return err
	}); err != nil {
		return nil, err
	}
	snap, err := st.Snapshot(ctx, "uci", schema)
	if err != nil {
		return nil, err
	}
	p := ports{snap: snap}
	return &uciService{
		svc:    analytics.NewService(analytics.ServiceDeps{Ledger: p, Events: p, Consent: p, Mechanisms: dp.Secure(), Cache: p}),
		tenant: &privalytics.Tenant{ID: "uci", Schema: schema, Purposes: []string{"analytics"}},
		close:  func() { st.Close(); os.RemoveAll(dir) },
	}, nil
}

type uciService struct {
	svc    *analytics.Service
	tenant *privalytics.Tenant
	close  func()
}

// privalyticsRun asks revenue per country × month at eps: with b, fixed
// per-group bounds and Laplace noise as Privacy on Beam; without, automatic
// tuning (δ 0, so Laplace too), its cells corrected for the estimated bias of
// bounding or not (tuning.correct_bias). It returns the cells and what tuning
// chose.
func privalyticsRun(u *uciService, eps float64, b *bounds, correct bool) (map[string]float64, string, error) {
	q := &privalytics.Query{
		Where:    []privalytics.Filter{{Column: "type", Eq: privalytics.EventPurchase}, {Column: "ts", Gte: "2010-12-01", Lt: "2011-12-10"}},
		GroupBy:  []privalytics.GroupKey{{Column: "country", Keys: countries}, {Time: "month"}},
		Epsilon:  eps,
		TimeZone: "Europe/London",
	}
	a := privalytics.Aggregate{Name: "revenue", Op: "sum", Column: "amount"}
	if b != nil {
		q.Noise = string(dp.Laplace)
		q.Bounds = privalytics.Bounds{MaxGroups: int(b.l0)}
		a.ContributionBoundsPerGroup = &privalytics.GroupBounds{Lower: 0, Upper: b.max}
	} else {
		q.Tuning = &privalytics.Tuning{CorrectBias: &correct}
	}
	q.Aggregates = []privalytics.Aggregate{a}
	res, err := u.svc.Run(context.Background(), analytics.Request{Tenant: u.tenant, KeyID: "pob", Query: q, FingerprintKey: []byte("pob-compare fingerprint")})
	if err != nil {
		return nil, "", err
	}
	got := map[string]float64{}
	for _, r := range res.Rows {
		got[strings.Join(r.Key, "|")] = r.Cells[0].Value
	}
	chose := ""
	if t := res.Tuning; t != nil && len(t.Aggregates) > 0 {
		chose = fmt.Sprintf("L0 %d, [%g, %g], %s", t.MaxGroups, t.Aggregates[0].Lower, t.Aggregates[0].Upper, t.Noise)
		if f := t.Aggregates[0].Correction; f > 0 {
			chose += fmt.Sprintf(", ×%.3f", f)
		}
	}
	return got, chose, nil
}

// ports are the in-memory ports of the query service: one snapshot, no one
// hidden, a ledger that never refuses and records nothing, no cache.
type ports struct{ snap *privalytics.Snapshot }

var budget = privalytics.Cost{Epsilon: 1e6, Delta: 0.5}

func (ports) Budget(context.Context, string) (privalytics.BudgetStatus, error) {
	return privalytics.BudgetStatus{Total: budget, Remaining: budget}, nil
}
func (ports) KeyBudget(context.Context, string, string) (privalytics.KeyBudget, error) {
	return privalytics.KeyBudget{Shared: true, Total: budget, Remaining: budget}, nil
}
func (ports) Charge(context.Context, *privalytics.Charge) (privalytics.BudgetStatus, error) {
	return privalytics.BudgetStatus{}, nil
}
func (ports) Reserved(context.Context, string, string, []string) (map[string]privalytics.Cost, error) {
	return nil, nil // no views: nothing reserved
}
func (p ports) Snapshot(context.Context, string, privalytics.Schema) (*privalytics.Snapshot, error) {
	return p.snap, nil
}
func (ports) ConsentVersion(context.Context, string) (int64, error) { return 0, nil }
func (ports) Hidden(context.Context, *privalytics.Tenant, string, *privalytics.Snapshot) ([]bool, int64, error) {
	return nil, 0, nil
}
func (ports) Get(string) (*privalytics.Result, bool) { return nil, false }
func (ports) Put(string, *privalytics.Result)        {}
