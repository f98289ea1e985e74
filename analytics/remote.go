package analytics

import (
	"context"
	"encoding/json"
	"math"
	"slices"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

// Remote engines (beam/: Privacy on Beam) aggregate and noise a planned query
// outside this process. The Service still owns every privacy rule: it plans,
// pre-checks, charges the ledger before the job is submitted, computes the
// intervals from the mechanisms' parameters (through dp/), caches and audits.

// RemoteEngine runs a charged query elsewhere and returns its released
// (already noised) cells. An error after Run has started is never refunded.
type RemoteEngine interface {
	Run(ctx context.Context, job RemoteJob) ([]RemoteCell, error)
}

// RemoteJob is what a remote engine gets: the plan's mechanisms, the snapshot
// and the customers the query may not see (by dense subject number; nil: none).
type RemoteJob struct {
	TenantID string
	Spec     RemoteSpec
	Snapshot *privalytics.Snapshot
	Hidden   []bool
}

// RemoteCell is one released value: aggregate index, group key, noisy value.
type RemoteCell struct {
	Aggregate int      `json:"aggregate"`
	Key       []string `json:"key"`
	Value     float64  `json:"value"`
}

// RemoteSpec is a plan as a remote pipeline needs it: the canonical query and
// schema (the pipeline re-plans them with NewPlan, so filters and group keys are
// compiled by the same code) and the mechanisms' parameters, which are also what
// the intervals are computed from.
type RemoteSpec struct {
	Query      privalytics.Query  `json:"query"`
	Schema     privalytics.Schema `json:"schema"`
	Noise      string             `json:"noise"`
	L0         int64              `json:"l0"`
	LInf       int64              `json:"linf"`
	Confidence float64            `json:"confidence"`
	// Selection: group keys come from the data and pass DP partition selection
	// once (SelectionBudget), then every aggregate uses the selected keys.
	Selection       bool      `json:"selection"`
	SelectionBudget dp.Budget `json:"selection_budget"`
	// PublicKeys are every group of a query whose keys are all public.
	PublicKeys [][]string        `json:"public_keys,omitempty"`
	Aggregates []RemoteAggregate `json:"aggregates"`
}

// RemoteAggregate is one aggregate's mechanism.
type RemoteAggregate struct {
	Name   string    `json:"name"`
	Op     string    `json:"op"`
	Lower  float64   `json:"lower,omitempty"`
	Upper  float64   `json:"upper,omitempty"`
	Rank   float64   `json:"rank,omitempty"`
	Budget dp.Budget `json:"budget"`
}

// remoteOps are the ops Privacy on Beam has.
var remoteOps = []string{"count", "distinct_customers", "sum", "mean", "median", "quantile"}

// checkRemote refuses, from the query alone, what a remote engine cannot run.
func (p *Plan) checkRemote() error {
	for _, a := range p.aggs {
		if !slices.Contains(remoteOps, a.op) {
			return invalid("query: engine %q has no %s; use one of %v, or the default engine", p.q.Engine, a.op, remoteOps)
		}
		if a.auto {
			return invalid("query: engine %q needs fixed bounds (lower and upper) for %s, not \"auto\"", p.q.Engine, a.info.Name)
		}
		if a.perGroup {
			// The pipeline clamps rows (per-row lower/upper with L∞ rows per
			// group); it does not yet compile per-group bounds.
			return invalid("query: engine %q takes per-row bounds (lower and upper) for %s, not contribution_bounds_per_group", p.q.Engine, a.info.Name)
		}
	}
	if p.ltotal > 0 {
		return invalid("query: engine %q has no bounds.max_rows; leave it out", p.q.Engine)
	}
	return nil
}

// Engine is the engine the query asked for: "" is this process.
func (p *Plan) Engine() string { return p.q.Engine }

// Remote describes the plan for a remote engine.
func (p *Plan) Remote() RemoteSpec {
	q := p.q
	q.Engine = "" // the pipeline plans it as a local plan
	s := RemoteSpec{Query: q, Schema: p.schema, Noise: string(p.kind), L0: p.l0, LInf: p.linf, Confidence: p.q.Confidence, Selection: p.selection, SelectionBudget: p.selBudget}
	if !p.selection {
		s.PublicKeys = [][]string{{}}
		for _, d := range p.dims {
			labels := d.keys
			if d.time != "" || d.hist {
				labels = d.labels
			}
			var next [][]string
			for _, k := range s.PublicKeys {
				for _, l := range labels {
					next = append(next, append(slices.Clone(k), l))
				}
			}
			s.PublicKeys = next
		}
	}
	for _, a := range p.aggs {
		s.Aggregates = append(s.Aggregates, RemoteAggregate{Name: a.info.Name, Op: a.op, Lower: a.flo, Upper: a.fhi, Rank: a.rank, Budget: a.budget})
	}
	return s
}

// ScanChunk is the filter and group stage of the plan for a remote engine: it
// calls f with the index of each row of ch that passes the filters and has a key in every
// dimension, its group key, and per aggregate the row's clamped value in natural
// units (NaN: no value; 0 for count and distinct_customers). Data-derived keys
// are the row's own values (the pipeline's partition selection decides which
// are released); public keys are those of the plan.
func (p *Plan) ScanChunk(ch privalytics.Chunk, f func(row int, key []string, values []float64)) error {
	dims, _, err := p.resolveDims(&privalytics.Snapshot{Chunks: []privalytics.Chunk{ch}}, nil)
	if err != nil {
		return err
	}
	var sc scratch
	sel, grp := p.selectChunk(ch, dims, &sc)
	vals := make([][]uint64, len(p.aggs))
	for i, a := range p.aggs {
		if a.slot >= 0 {
			vals[i] = make([]uint64, len(sel))
			slotValues(a, ch.Record.Column(a.col), sel, vals[i], nil)
		}
	}
	row := make([]float64, len(p.aggs))
	for j, g := range grp {
		for i, a := range p.aggs {
			switch {
			case a.slot < 0:
				row[i] = 0
			case a.isFloat:
				row[i] = math.Float64frombits(vals[i][j])
			case int64(vals[i][j]) == missingInt:
				row[i] = math.NaN()
			default:
				row[i] = float64(int64(vals[i][j])) / math.Pow10(a.scale)
			}
		}
		f(int(sel[j]), keyOf(dims, int(g)), row)
	}
	return nil
}

// releaseRemote turns a remote engine's released cells into a result with
// intervals computed from the mechanisms' parameters. Every group key a cell
// names was released by the engine (public, or selected there).
func releaseRemote(p *Plan, cells []RemoteCell) (*privalytics.Result, error) {
	res := &privalytics.Result{Confidence: p.q.Confidence, Thresholded: p.selection, Cost: p.cost, Rows: []privalytics.Row{}}
	for _, d := range p.dims {
		res.GroupBy = append(res.GroupBy, d.name)
	}
	for _, a := range p.aggs {
		res.Aggregates = append(res.Aggregates, a.info)
	}
	rows := map[string]int{}
	for _, c := range cells {
		if c.Aggregate < 0 || c.Aggregate >= len(p.aggs) || len(c.Key) != len(p.dims) {
			return nil, privalytics.Errorf(privalytics.EINTERNAL, "analytics: the remote engine returned a cell that does not fit the query (aggregate %d, key of %d)", c.Aggregate, len(c.Key))
		}
		k, _ := json.Marshal(c.Key)
		r, ok := rows[string(k)]
		if !ok {
			r = len(res.Rows)
			rows[string(k)] = r
			res.Rows = append(res.Rows, privalytics.Row{Key: c.Key, Cells: make([]privalytics.Cell, len(p.aggs))})
			for i, a := range p.aggs { // a cell the engine did not return is unknown: widest interval
				res.Rows[r].Cells[i] = privalytics.Cell{Value: math.NaN(), Lower: a.flo, Upper: a.fhi}
			}
		}
		cell, err := p.remoteInterval(p.aggs[c.Aggregate], c.Value)
		if err != nil {
			return nil, err
		}
		res.Rows[r].Cells[c.Aggregate] = honest(p.aggs[c.Aggregate], cell)
	}
	slices.SortFunc(res.Rows, func(a, b privalytics.Row) int { return slices.Compare(a.Key, b.Key) })
	return res, nil
}

func (p *Plan) remoteInterval(a aggregate, v float64) (dp.Cell, error) {
	conf := p.q.Confidence
	switch a.op {
	case "count":
		return dp.CountInterval(v, dp.CountParams{Kind: p.kind, L0: p.l0, LInf: p.linf, Budget: a.budget, Confidence: conf})
	case "distinct_customers":
		return dp.CountInterval(v, dp.CountParams{Kind: p.kind, L0: p.l0, LInf: 1, Budget: a.budget, Confidence: conf})
	case "sum":
		return dp.SumInterval(v, dp.SumParams{Kind: p.kind, L0: p.l0, RowsPerGroup: p.linf, Lower: a.flo, Upper: a.fhi, Scale: -1, Budget: a.budget, Confidence: conf})
	}
	// mean, quantiles: Privacy on Beam keeps the noisy parts inside; the
	// interval that holds for certain is the clamping range.
	return dp.Cell{Value: v, Lower: a.flo, Upper: a.fhi}, nil
}
