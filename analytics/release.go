package analytics

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

// release turns the exact bounded aggregates into a DP result: public groups are
// all released (empty ones with noise); data-derived groups pass DP partition
// selection first; every cell gets noise and an interval. Only the Service
// calls it, after the ledger has been charged; NewPlan has checked every
// mechanism's parameters, so an error here is internal, never the data's.
func release(p *Plan, part *Partial, m dp.Mechanisms) (*privalytics.Result, error) {
	if p.tune != nil {
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "analytics: the query is tuned: call ResolveBounds before Execute")
	}
	res := &privalytics.Result{Confidence: p.q.Confidence, Thresholded: p.selection, Cost: p.cost, Rows: []privalytics.Row{}, Tuning: p.report}
	for _, d := range part.dims {
		res.GroupBy = append(res.GroupBy, d.name)
	}
	for _, a := range p.aggs {
		res.Aggregates = append(res.Aggregates, a.info)
	}
	var cells [][]dp.Cell // per released row, what rollup adds up
	for g := range part.groups {
		if len(part.dims) > 0 && emptyDims(part.dims) {
			break
		}
		if p.selection {
			if part.distinct[g] == 0 {
				continue
			}
			keep, err := m.KeepPartition(part.distinct[g], p.l0, p.selBudget.Epsilon, p.selBudget.Delta)
			if err != nil {
				return nil, fmt.Errorf("analytics: partition selection: %w", err)
			}
			if !keep {
				continue
			}
		}
		row := privalytics.Row{Key: keyOf(part.dims, g), Cells: make([]privalytics.Cell, len(p.aggs))}
		released := make([]dp.Cell, len(p.aggs))
		for i, a := range p.aggs {
			c, err := releaseCell(p, part, a, g, m)
			if err != nil {
				return nil, err
			}
			row.Cells[i], released[i] = honest(a, c), c
		}
		res.Rows = append(res.Rows, row)
		cells = append(cells, released)
	}
	if p.q.Rollup {
		sub, err := rollup(p, res.Rows, cells)
		if err != nil {
			return nil, err
		}
		res.Rows = append(res.Rows, sub...)
	}
	if res.Tuning != nil {
		correctCells(res, res.Tuning.Aggregates)
	}
	return res, nil
}

// correctCells applies a tuning report to an answer's cells: each tuned
// aggregate's cells, subtotals included, carry its estimated bounding loss
// and are multiplied — value and interval — by its Correction when it has
// one (biasCorrection). Post-processing of released numbers by a DP
// estimate, and linear, so a subtotal is still the sum of its cells and a
// hidden cell stays hidden. It is the one place a correction is applied:
// to a tuned answer here (release) and to a view's release that reuses an
// earlier release's tuning (Views.release).
func correctCells(res *privalytics.Result, tuned []privalytics.TunedAggregate) {
	for _, ta := range tuned {
		i := slices.IndexFunc(res.Aggregates, func(a privalytics.AggregateInfo) bool { return a.Name == ta.Name })
		if i < 0 {
			continue
		}
		f := ta.Correction
		if !(f > 0) {
			f = 1
		}
		for r := range res.Rows {
			c := &res.Rows[r].Cells[i]
			c.BoundingLoss = ta.BoundingLoss
			c.Value, c.Lower, c.Upper = c.Value*f, c.Lower*f, c.Upper*f
			if ta.BoundingLoss > MaxCorrectedLoss && !c.Hidden {
				c.Hidden, c.Reason = true, fmt.Sprintf(OverBoundedReason, 100*ta.BoundingLoss)
			}
		}
	}
}

// OverBoundedReason is the reason a tuned aggregate's cells carry when its
// estimated bounding loss is above MaxCorrectedLoss: the bounds tuning could
// choose remove most of the value by its own estimate, more than the
// correction undoes, so the cell is mostly bias and its interval (which
// covers the noise) does not hold the truth. On a shop of 1,000 customers
// (bench utility's workload, each question tuned 20 times through
// analytics.Service), 37% of the cells drawn as numbers were more than 2×
// off, most of them from tuned aggregates whose estimate read 0.6–1.0:
// histograms that showed little above their noise, and the smallest clamps
// then looked best.
const OverBoundedReason = "too few customers for this ε to choose its bounds: they remove an estimated %.0f%% of the value, more than the correction undoes; draw it as hidden"

// rollup sums released rows into subtotals: for each level L (1 to the
// number of group keys), a row per distinct prefix of the first n − L keys,
// in the order the prefixes first appear. Each cell is dp.SumCells of the
// cells below it: post-processing of released values.
func rollup(p *Plan, rows []privalytics.Row, cells [][]dp.Cell) ([]privalytics.Row, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	n := len(rows[0].Key)
	var out []privalytics.Row
	for level := 1; level <= n; level++ {
		keep := n - level
		var order []string
		groups := map[string][]int{}
		for r, row := range rows {
			id := strings.Join(row.Key[:keep], "\x00")
			if _, ok := groups[id]; !ok {
				order = append(order, id)
			}
			groups[id] = append(groups[id], r)
		}
		for _, id := range order {
			members := groups[id]
			key := make([]string, n)
			copy(key, rows[members[0]].Key[:keep])
			row := privalytics.Row{Key: key, Cells: make([]privalytics.Cell, len(p.aggs)), Subtotal: level}
			parts := make([]dp.Cell, len(members))
			for i, a := range p.aggs {
				for j, r := range members {
					parts[j] = cells[r][i]
				}
				c, err := dp.SumCells(parts, p.q.Confidence)
				if err != nil {
					return nil, fmt.Errorf("analytics: rollup of %q: %w", a.info.Name, err)
				}
				row.Cells[i] = honest(a, c)
			}
			out = append(out, row)
		}
	}
	return out, nil
}

// HiddenReason is the reason a cell below the noise carries.
const HiddenReason = "too few customers for this ε: the interval's half-width is at least the value; draw it as hidden"

// honest is a released cell with the hidden flag when its interval's
// half-width is at least its value (signal-to-noise below 1). A tuned
// aggregate's estimated bounding loss is added afterwards, with its
// correction (correctCells). Post-processing of released numbers.
func honest(a aggregate, c dp.Cell) privalytics.Cell {
	out := privalytics.Cell{Value: c.Value, Lower: c.Lower, Upper: c.Upper}
	if half := (c.Upper - c.Lower) / 2; half > 0 && half >= math.Abs(c.Value) && a.op != "mean" {
		out.Hidden, out.Reason = true, HiddenReason
	}
	if a.op == "mean" && c.Upper > c.Lower {
		if lo, hi := a.clamp(); hi > lo && (c.Upper >= hi || c.Lower <= lo && lo != 0) {
			out.Hidden, out.Reason = true, fmt.Sprintf(ClampedMeanReason, lo, hi)
		}
	}
	return out
}

// ClampedMeanReason is the reason of a mean whose interval reaches an end of
// its clamp (the lower end only when it is not zero: a mean of values at
// least zero clamped at zero loses nothing there): the values beyond that end
// were cut to it, so the true average may lie beyond the interval, by any
// amount. On a shop of 1,000 customers (bench utility, 8 runs) the tuned
// average line per category drew 120 cells, 70 of them more than 2× off;
// with this rule 4 were drawn in another 8 runs. On the demo shop no tuned
// mean reaches its clamp.
const ClampedMeanReason = "too few customers for this ε: the interval reaches the clamp [%g, %g], and the average of values cut to it may be far from the true one; draw it as hidden"

// clamp is the range a mean's values (or, with per-group bounds, its
// customers' averages) are clamped to.
func (a aggregate) clamp() (lo, hi float64) {
	if a.perGroup {
		return a.glo, a.ghi
	}
	return a.flo, a.fhi
}

func emptyDims(dims []execDim) bool {
	for _, d := range dims {
		if len(d.labels) == 0 {
			return true
		}
	}
	return false
}

func releaseCell(p *Plan, part *Partial, a aggregate, g int, m dp.Mechanisms) (dp.Cell, error) {
	conf := p.q.Confidence
	if a.perGroup {
		return releasePerGroup(p, part, a, g, m)
	}
	l0, rows := p.rowSens()
	switch a.op {
	case "count":
		return m.Count(part.count[g], dp.CountParams{Kind: p.kind, L0: l0, LInf: rows, Budget: a.budget, Confidence: conf})
	case "distinct_customers":
		return m.Count(part.distinct[g], dp.CountParams{Kind: p.kind, L0: p.distinctL0(), LInf: 1, Budget: a.budget, Confidence: conf})
	}
	sp := dp.SumParams{Kind: p.kind, L0: l0, RowsPerGroup: rows, Lower: a.flo, Upper: a.fhi, Scale: a.scale, Budget: a.budget, Confidence: conf}
	switch {
	case a.op == "sum" && a.isFloat:
		return m.SumFloat(part.sumF[a.slot][g], sp)
	case a.op == "sum":
		return m.SumInt(part.sumI[a.slot][g], sp)
	}
	if a.op == "median" || a.op == "quantile" {
		return m.Quantile(part.kept[a.slot][g], a.rank, sp)
	}
	// mean, variance: the sum of distances from the midpoint, in natural units.
	n := part.n[a.slot][g]
	norm := part.sum(a, g) - p.slotMid[a.slot]*float64(n)
	switch a.op {
	case "variance":
		return m.Variance(norm, part.sq[a.slot][g], n, sp)
	case "stddev":
		c, err := m.Variance(norm, part.sq[a.slot][g], n, sp)
		return dp.Cell{Value: math.Sqrt(c.Value), Lower: math.Sqrt(c.Lower), Upper: math.Sqrt(c.Upper)}, err
	}
	return m.Mean(norm, n, sp)
}

// releasePerGroup releases a cell of an aggregate with per-group bounds: the
// sum over customers of their clamped totals (count, sum) or the mean of their
// clamped averages (mean), each customer one "row" of sensitivity
// max(|lower|, |upper|) in at most L0 groups.
func releasePerGroup(p *Plan, part *Partial, a aggregate, g int, m dp.Mechanisms) (dp.Cell, error) {
	switch {
	case p.normBound(a) > 0 && a.isFloat && a.op == "sum":
		return m.SumFloat(part.pgF[a.pg][g], p.perGroupParams(a))
	case p.normBound(a) > 0: // counts in thousandths of a row, integer sums in stored units
		return m.SumInt(part.pgI[a.pg][g], p.perGroupParams(a))
	case a.op == "count":
		return m.Count(part.pgI[a.pg][g], dp.CountParams{Kind: p.kind, L0: p.distinctL0(), LInf: a.ghiI, Budget: a.budget, Confidence: p.q.Confidence})
	case a.op == "mean":
		return m.Mean(part.pgF[a.pg][g], part.pgN[a.pg][g], p.perGroupParams(a))
	case a.isFloat:
		return m.SumFloat(part.pgF[a.pg][g], p.perGroupParams(a))
	}
	return m.SumInt(part.pgI[a.pg][g], p.perGroupParams(a))
}

// sum is an aggregate's exact sum in group g, in natural units.
func (part *Partial) sum(a aggregate, g int) float64 {
	if a.isFloat {
		return part.sumF[a.slot][g]
	}
	return float64(part.sumI[a.slot][g]) / math.Pow10(a.scale)
}

// PlainResult is an exact, unbounded, non-private answer.
type PlainResult struct {
	Keys   [][]string
	Values [][]float64 // per group, per aggregate
}

// ExecutePlain computes the query exactly, without contribution bounding or noise.
// It is the baseline of the engine's benchmarks and the reference of its tests,
// and is deliberately not reachable over HTTP: its answers are not private.
func ExecutePlain(ctx context.Context, p *Plan, snap *privalytics.Snapshot) (*PlainResult, error) {
	dims, groups, err := p.resolveDims(snap, nil)
	if err != nil {
		return nil, err
	}
	distinct := false
	for _, a := range p.aggs {
		distinct = distinct || a.op == "distinct_customers"
	}
	workers := workerCount(len(snap.Chunks))
	parts := make([]*Partial, workers)
	seen := make([]map[uint64]bool, workers)
	for w := range parts {
		parts[w] = p.newPartial(dims, groups)
		if distinct {
			seen[w] = map[uint64]bool{}
		}
	}
	kinds := p.slotKinds()
	scratches := make([]scratch, workers)
	if err := parallel(ctx, workers, len(snap.Chunks), func(w, i int) {
		ch := snap.Chunks[i]
		sel, grp := p.selectChunk(ch, dims, &scratches[w])
		vals := make([][]uint64, p.slots)
		for _, a := range p.aggs {
			if a.slot >= 0 {
				vals[a.slot] = make([]uint64, len(sel))
				slotValues(a, ch.Record.Column(a.col), sel, vals[a.slot], nil)
			}
		}
		for j, g := range grp {
			parts[w].add(kinds, vals, g, j)
			if distinct {
				seen[w][uint64(ch.Subjects[sel[j]])<<32|uint64(uint32(g))] = true
			}
		}
	}); err != nil {
		return nil, err
	}
	part := parts[0]
	for _, q := range parts[1:] {
		part.merge(q)
	}
	if distinct {
		for _, m := range seen[1:] {
			for k := range m {
				seen[0][k] = true
			}
		}
		for k := range seen[0] {
			part.distinct[int32(uint32(k))]++
		}
	}
	out := &PlainResult{}
	for g := range groups {
		if part.count[g] == 0 || emptyDims(dims) {
			continue
		}
		key := keyOf(dims, g)
		vals := make([]float64, len(p.aggs))
		for i, a := range p.aggs {
			switch {
			case a.op == "count":
				vals[i] = float64(part.count[g])
			case a.op == "distinct_customers":
				vals[i] = float64(part.distinct[g])
			case a.op == "sum":
				vals[i] = part.sum(a, g)
			case a.op == "mean":
				vals[i] = part.sum(a, g) / math.Max(1, float64(part.n[a.slot][g]))
			case a.op == "median" || a.op == "quantile":
				vals[i] = exactQuantile(part.kept[a.slot][g], a.rank)
			default: // variance, stddev: E[(x−m)²] − E[x−m]²
				n := math.Max(1, float64(part.n[a.slot][g]))
				mu := part.sum(a, g)/n - p.slotMid[a.slot]
				v := math.Max(0, part.sq[a.slot][g]/n-mu*mu)
				if a.op == "stddev" {
					v = math.Sqrt(v)
				}
				vals[i] = v
			}
		}
		out.Keys, out.Values = append(out.Keys, key), append(out.Values, vals)
	}
	return out, nil
}

// exactQuantile is the nearest-rank quantile of values (the plain path only).
func exactQuantile(values []float64, rank float64) float64 {
	if len(values) == 0 {
		return 0
	}
	v := slices.Clone(values)
	slices.Sort(v)
	return v[min(len(v)-1, int(math.Ceil(rank*float64(len(v))))-1+boolInt(rank*float64(len(v)) == 0))]
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
