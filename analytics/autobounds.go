package analytics

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

// Automatic bounds ("bounds": "auto").
//
// A first pass over the snapshot, with the query's filters and the same
// per-customer contribution bounding, counts the kept values of the column in
// logarithmic bins: [0, 2^m), [2^m, 2^(m+1)), … and their mirror images below
// zero. Each customer keeps at most R = L0 × L∞ rows (or max_rows), so adding or
// removing one changes the histogram by at most R in L1 norm; Laplace noise of
// scale R/ε_b on every bin makes it ε_b-DP (ε_b = auto_share × the aggregate's
// ε). The range is then read off the noisy histogram only (post-processing):
// the outermost bins whose noisy count clears a threshold set so that an empty
// bin clears it with probability at most autoFalseBin over all bins, widened to
// include zero. A cleared bin standing apart above the run of the fullest one
// (more than maxGap empty magnitudes between, both signs judged together) is
// taken for noise unless it clears the threshold by isolatedScales noise
// scales, as tuning's histograms do (dropIsolated): without that, the one run
// in a thousand whose spurious count cleared the threshold far out set a range
// reaching −2.7·10⁸ for values of 0 to 8 (seen in TestAutoBoundsUnderSecureNoise).
// When no bin clears it, the bin with the largest noisy count is used. The
// second pass — the query itself — clamps to that range.

// autoFalseBin bounds the probability that any empty bin's noise alone clears
// the threshold and widens the range.
const autoFalseBin = 1e-3

// magnitudeBins are the histogram bins of one column: k magnitude bins per sign,
// from 2^minExp up to 2^(minExp+k-1), plus one bin per sign below 2^minExp.
type magnitudeBins struct {
	minExp, k int
}

func (b magnitudeBins) n() int { return 2 * (b.k + 1) }

// bin is the index of x: 0..k for x ≥ 0, k+1..2k+1 for x < 0. Values beyond the
// largest edge fall in the outermost bin.
func (b magnitudeBins) bin(x float64) int {
	neg := x < 0
	if neg {
		x = -x
	}
	i := 0
	if x >= math.Ldexp(1, b.minExp) {
		_, e := math.Frexp(x) // x = f × 2^e, f in [0.5, 1): floor(log2 x) = e − 1
		i = min(b.k, e-b.minExp)
	}
	if neg {
		return b.k + 1 + i
	}
	return i
}

// edge is the magnitude bin i's upper edge: values in it are below 2^(minExp+i).
func (b magnitudeBins) edge(i int) float64 { return math.Ldexp(1, b.minExp+i) }

// histBins are the bins of slot s: from the column's smallest unit (10^-scale;
// 2^-20 for floats) up to the largest magnitude the exact arithmetic allows with
// the query's rows per group.
func (p *Plan) histBins(s int) magnitudeBins {
	var a aggregate
	for _, x := range p.aggs {
		if x.slot == s {
			a = x
		}
	}
	minExp := -20
	if !a.isFloat {
		minExp = int(math.Floor(math.Log2(1 / p.slotUnit[s])))
	}
	// maxAbs × 10^scale × rows per group must stay ≤ 1e15 (compileAggregate's rule).
	maxExp := int(math.Floor(math.Log2(1e15 / p.slotUnit[s] / float64(p.linf))))
	if a.isFloat {
		maxExp = min(maxExp, 60)
	}
	return magnitudeBins{minExp: minExp, k: max(1, maxExp-minExp)}
}

// HasAutoBounds reports whether some aggregate estimates its bounds from the data.
func (p *Plan) HasAutoBounds() bool {
	for _, a := range p.aggs {
		if a.auto {
			return true
		}
	}
	return false
}

// ResolveBounds returns the plan with every "auto" range estimated from the
// snapshot without the hidden customers (as ExecuteHiding), ready for Execute; a plan without automatic bounds is
// returned as is. It draws noise: like release, call it only for a query whose
// answer will be charged, and release nothing if the charge fails.
func (p *Plan) ResolveBounds(ctx context.Context, snap *privalytics.Snapshot, hidden []bool, m dp.Mechanisms) (*Plan, error) {
	if p.tune != nil {
		return p.resolveTuning(ctx, snap, hidden, m)
	}
	if !p.HasAutoBounds() {
		return p, nil
	}
	// The histogram pass: auto slots unclamped, counting magnitudes.
	hp := p.clone()
	for i := range hp.aggs {
		a := &hp.aggs[i]
		if a.auto {
			hp.slotHist[a.slot] = true
			a.lo, a.hi = math.MinInt64+1, math.MaxInt64
			a.flo, a.fhi = -math.MaxFloat64, math.MaxFloat64
		}
	}
	part, err := execute(ctx, hp, snap, hidden)
	if err != nil {
		return nil, err
	}
	rp := p.clone()
	rows := p.l0 * p.linf
	if p.ltotal > 0 {
		rows = min(rows, p.ltotal)
	}
	for i := range rp.aggs {
		a := &rp.aggs[i]
		if !a.auto {
			continue
		}
		lo, hi, err := noisyRange(part.hist[a.slot], rp.histBins(a.slot), rows, a.autoEps, m)
		if err != nil {
			return nil, fmt.Errorf("analytics: automatic bounds of %s: %w", a.info.Name, err)
		}
		rp.setBounds(a, lo, hi)
		a.resolved = true
	}
	return rp, nil
}

// noisyRange adds Laplace noise to each bin (sensitivity rows in L1) and reads
// the range off the noisy counts.
func noisyRange(hist []int64, b magnitudeBins, rows int64, eps float64, m dp.Mechanisms) (lo, hi float64, err error) {
	noisy := make([]int64, len(hist))
	for i, c := range hist {
		// L0 = 1, L∞ = rows: Laplace scale rows/ε, the L1 sensitivity of the histogram.
		if noisy[i], err = m.Laplace.AddNoiseInt64(c, 1, rows, eps, 0); err != nil {
			return 0, 0, err
		}
	}
	scale := float64(rows) / eps
	threshold := scale * math.Log(float64(len(hist))/(2*autoFalseBin))
	cleared := make([]float64, len(noisy)) // positive magnitudes, then negative
	for i, c := range noisy {
		if float64(c) > threshold {
			cleared[i] = float64(c)
		}
	}
	dropIsolated(cleared, 2, threshold+isolatedScales*scale)
	for i := 0; i <= b.k; i++ { // the highest magnitude kept, per sign
		if cleared[i] > 0 {
			hi = b.edge(i)
		}
		if cleared[b.k+1+i] > 0 {
			lo = -b.edge(i)
		}
	}
	if lo == 0 && hi == 0 {
		best := slices.Index(noisy, slices.Max(noisy))
		if best <= b.k {
			hi = b.edge(best)
		} else {
			lo = -b.edge(best - b.k - 1)
		}
	}
	return lo, hi, nil
}

// clone copies the plan so that bounds can be set without touching p.
func (p *Plan) clone() *Plan {
	c := *p
	c.aggs = slices.Clone(p.aggs)
	c.slotMid = slices.Clone(p.slotMid)
	c.slotHist = slices.Clone(p.slotHist)
	return &c
}
