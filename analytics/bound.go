package analytics

import "math"

// The per-cell stage of contribution bounding (contribution_bounds_per_group):
// while the bounder walks one customer's kept rows, cellState totals them per
// group; when the customer is done, flush clamps each total to the aggregate's
// per-group bounds and adds it to the Partial. A customer thus adds at most
// max(|lower|, |upper|) to each of at most L0 groups, whatever its row count.

// cellState is one worker's per-group totals of the current customer.
type cellState struct {
	p       *Plan
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
	for _, g := range c.touched {
		for _, ai := range c.p.pgAggs {
			a := &c.p.aggs[ai]
			switch {
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

// flushTuning adds the current customer to automatic tuning's histograms: its
// number of groups, and for each tuned aggregate its value (count: rows; sum:
// total; mean: average) in each group, weighted 1/groups so that the customer
// weighs at most 1 in every histogram (sensitivity 1).
func (c *cellState) flushTuning(t *tuneHist) {
	k := len(c.touched)
	if k > 0 {
		t.groups[sizeBin(k)]++
		w := 1 / float64(k)
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
			}
		}
	}
	c.touched = c.touched[:0]
	c.stamp++
	if c.stamp == 0 {
		clear(c.mark)
		c.stamp = 1
	}
}
