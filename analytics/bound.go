package analytics

import (
	"math"

	"github.com/privalytics/privalytics/dp"
)

// The norm stage (max_norm): for an aggregate whose norm bound binds, the
// customer's clamped per-group totals — a vector over the groups it touches —
// are scaled by min(1, norm/‖v‖₂) before they are added, so that adding or
// removing a customer moves the cells by at most norm in L2: the Gaussian is
// calibrated to that, whatever L0. Counts are then fractional: they are summed
// in thousandths of a row (normCountScale), integer sums in their stored units,
// each scaled total rounded toward zero so the norm is never exceeded.

// normCountScale is the decimal scale of a norm-bounded count's accumulator.
const normCountScale = 3

// normShrink keeps a float scaling of a vector strictly inside the norm.
const normShrink = 1 - 1e-9

// normBound is a's L2 bound when it binds — below √L0 × the largest per-group
// total, so that it makes the noise smaller — and 0 otherwise: then the clamp
// alone bounds the contribution, as without max_norm.
func (p *Plan) normBound(a aggregate) float64 {
	if a.norm <= 0 || p.kind != dp.Gaussian || !a.perGroup {
		return 0
	}
	if a.norm >= math.Sqrt(float64(p.distinctL0()))*math.Max(math.Abs(a.glo), math.Abs(a.ghi)) {
		return 0
	}
	return a.norm
}

// The per-cell stage of contribution bounding (contribution_bounds_per_group):
// while the bounder walks one customer's kept rows, cellState totals them per
// group; when the customer is done, flush clamps each total to the aggregate's
// per-group bounds and adds it to the Partial. A customer thus adds at most
// max(|lower|, |upper|) to each of at most L0 groups, whatever its row count.

// cellState is one worker's per-group totals of the current customer.
type cellState struct {
	p       *Plan
	norms   []float64 // pg aggregate → its binding norm bound (normBound), 0 for none
	scales  []float64 // pg aggregate → the current customer's norm scaling
	sq      []float64 // pg aggregate → in the tuning pass, the current customer's Σ v²
	kinds   []slotKind
	stamp   uint32
	mark    []uint32 // group → stamp when touched by the current customer
	touched []int32
	rows    []int64   // group → the customer's kept rows
	sumI    [][]int64 // slot → group: Σ stored values (integer slots)
	sumF    [][]float64
	n       [][]int64 // slot → group: rows with a value
}

func newCellState(p *Plan, groups int) *cellState {
	c := &cellState{p: p, kinds: p.slotKinds(), mark: make([]uint32, groups), rows: make([]int64, groups),
		sumI: make([][]int64, p.slots), sumF: make([][]float64, p.slots), n: make([][]int64, p.slots)}
	c.stamp = 1
	c.norms, c.scales, c.sq = make([]float64, len(p.pgAggs)), make([]float64, len(p.pgAggs)), make([]float64, len(p.pgAggs))
	for k, i := range p.pgAggs {
		c.norms[k] = p.normBound(p.aggs[i])
	}
	for _, i := range p.pgAggs {
		if s := p.aggs[i].slot; s >= 0 && c.n[s] == nil {
			c.sumI[s], c.sumF[s], c.n[s] = make([]int64, groups), make([]float64, groups), make([]int64, groups)
		}
	}
	return c
}

// add totals kept row i (of vals, slot → row) into group g.
func (c *cellState) add(vals [][]uint64, g int32, i int) {
	if c.mark[g] != c.stamp {
		c.mark[g] = c.stamp
		c.touched = append(c.touched, g)
		c.rows[g] = 0
		for s := range c.n {
			if c.n[s] != nil {
				c.sumI[s][g], c.sumF[s][g], c.n[s][g] = 0, 0, 0
			}
		}
	}
	c.rows[g]++
	for s, n := range c.n {
		if n == nil {
			continue
		}
		b := vals[s][i]
		if c.kinds[s].float {
			x := math.Float64frombits(b)
			if x != x {
				continue
			}
			c.sumF[s][g] += x
		} else {
			if int64(b) == missingInt {
				continue
			}
			c.sumI[s][g] += int64(b)
		}
		n[g]++
	}
}

// flush adds the current customer's clamped totals to part and starts the next customer.
func (c *cellState) flush(part *Partial) {
	if part.tune != nil {
		c.flushTuning(part.tune)
		return
	}
	for k, ai := range c.p.pgAggs {
		if c.norms[k] > 0 {
			c.scales[k] = c.scaleTo(&c.p.aggs[ai], c.norms[k])
		}
	}
	for _, g := range c.touched {
		for k, ai := range c.p.pgAggs {
			a := &c.p.aggs[ai]
			switch {
			case c.norms[k] > 0:
				c.addScaled(part, a, g, c.scales[k])
			case a.op == "count":
				part.pgI[a.pg][g] += min(a.ghiI, max(a.gloI, c.rows[g]))
			case a.op == "mean":
				n := c.n[a.slot][g]
				if n == 0 {
					continue
				}
				var total float64
				if a.isFloat {
					total = c.sumF[a.slot][g]
				} else {
					total = float64(c.sumI[a.slot][g]) / c.kinds[a.slot].unit
				}
				avg := min(a.ghi, max(a.glo, total/float64(n)))
				part.pgF[a.pg][g] += avg - (a.glo + (a.ghi-a.glo)/2)
				part.pgN[a.pg][g]++
			case a.isFloat:
				if c.n[a.slot][g] > 0 {
					part.pgF[a.pg][g] += min(a.ghi, max(a.glo, c.sumF[a.slot][g]))
				}
			default:
				if c.n[a.slot][g] > 0 {
					part.pgI[a.pg][g] += min(a.ghiI, max(a.gloI, c.sumI[a.slot][g]))
				}
			}
		}
	}
	c.touched = c.touched[:0]
	c.stamp++
	if c.stamp == 0 { // wrapped: stale marks could match again
		clear(c.mark)
		c.stamp = 1
	}
}

// clamped is the current customer's clamped total of count or sum a in group
// g, natural units (rows for count), and whether it has one.
func (c *cellState) clamped(a *aggregate, g int32) (float64, bool) {
	switch {
	case a.op == "count":
		return float64(min(a.ghiI, max(a.gloI, c.rows[g]))), true
	case c.n[a.slot][g] == 0:
		return 0, false
	case a.isFloat:
		return min(a.ghi, max(a.glo, c.sumF[a.slot][g])), true
	}
	return float64(min(a.ghiI, max(a.gloI, c.sumI[a.slot][g]))) / c.kinds[a.slot].unit, true
}

// scaleTo is the factor that brings the current customer's vector of clamped
// totals of a to L2 norm at most norm.
func (c *cellState) scaleTo(a *aggregate, norm float64) float64 {
	var sq float64
	for _, g := range c.touched {
		if v, ok := c.clamped(a, g); ok {
			sq += v * v
		}
	}
	if l := math.Sqrt(sq); l > norm {
		return norm / l * normShrink
	}
	return 1
}

// addScaled adds the current customer's clamped total of a in group g, scaled
// by s: counts in thousandths of a row and integer sums in stored units, each
// rounded toward zero; float sums as they are.
func (c *cellState) addScaled(part *Partial, a *aggregate, g int32, s float64) {
	v, ok := c.clamped(a, g)
	if !ok {
		return
	}
	switch {
	case a.op == "count":
		part.pgI[a.pg][g] += int64(v * s * 1e3)
	case a.isFloat:
		part.pgF[a.pg][g] += v * s
	default:
		part.pgI[a.pg][g] += int64(v * c.kinds[a.slot].unit * s)
	}
}

// flushTuning adds the current customer to automatic tuning's histograms: its
// number of groups, for each tuned aggregate its value (count: rows; sum:
// total; mean: average) in each group, weighted 1/groups, and the L2 norm of
// its values over the groups — so that the customer weighs at most 1 in every
// histogram (sensitivity 1).
func (c *cellState) flushTuning(t *tuneHist) {
	k := len(c.touched)
	if k > 0 {
		t.groups[sizeBin(k)]++
		w := 1 / float64(k)
		sq := c.sq
		clear(sq)
		for _, g := range c.touched {
			for pi, ai := range c.p.pgAggs {
				a := &c.p.aggs[ai]
				var v float64
				switch {
				case a.op == "count":
					v = float64(c.rows[g])
				default:
					n := c.n[a.slot][g]
					if n == 0 {
						continue
					}
					if a.isFloat {
						v = c.sumF[a.slot][g]
					} else {
						v = float64(c.sumI[a.slot][g]) / c.kinds[a.slot].unit
					}
					if a.op == "mean" {
						v /= float64(n)
					}
				}
				// One bin per customer-group (by the value's sign and
				// magnitude), so the customer weighs 1.
				t.values[pi][valueIndex(v)] += w
				sq[pi] += v * v
			}
		}
		for pi, s := range sq {
			t.norms[pi][tuneBin(math.Sqrt(s))]++
		}
	}
	c.touched = c.touched[:0]
	c.stamp++
	if c.stamp == 0 {
		clear(c.mark)
		c.stamp = 1
	}
}
