package analytics

import (
	"errors"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

// checkMechanisms validates, at plan time, every mechanism release (and
// ResolveBounds) will call, with exactly the budget shares and sensitivities
// they pass. After this a query cannot fail on privacy parameters once data has
// been read: a failure there would depend on whether some row reached the
// mechanism, and refunding it would make the refusal a free membership oracle.
func (p *Plan) checkMechanisms() error {
	l0, rows := p.rowSens()
	for _, a := range p.aggs {
		what := string(p.kind) + " " + a.info.Name
		var err error
		if a.perGroup {
			if err = p.checkPerGroup(what, a); err != nil {
				return p.limitError(err)
			}
			continue
		}
		switch a.op {
		case "count":
			err = dp.CountParams{Kind: p.kind, L0: l0, LInf: rows, Budget: a.budget}.Check(what)
		case "distinct_customers":
			err = dp.CountParams{Kind: p.kind, L0: p.distinctL0(), LInf: 1, Budget: a.budget}.Check(what)
		default:
			lo, hi := a.flo, a.fhi
			if a.auto {
				// The bounds are estimated later; any estimate is a finite non-empty
				// range, so only the budget shares can fail, and they are known now.
				lo, hi = -1, 1
				if err = dp.CheckHistogram(what+" (automatic bounds)", p.boundsRows(), a.autoEps); err != nil {
					break
				}
			}
			sp := dp.SumParams{Kind: p.kind, L0: l0, RowsPerGroup: rows, Lower: lo, Upper: hi, Scale: a.scale, Budget: a.budget}
			switch a.op {
			case "sum":
				err = sp.CheckSum(what, !a.isFloat)
			case "mean":
				err = sp.CheckMean(what)
			case "median", "quantile":
				err = sp.CheckQuantile(what)
			default: // variance, stddev
				err = sp.CheckVariance(what)
			}
		}
		if err != nil {
			return p.limitError(err)
		}
	}
	if p.selection {
		if err := dp.CheckSelection(p.l0, p.selBudget); err != nil {
			return p.limitError(err)
		}
	}
	// What the ledger can record is dp's one rule (dp/units.go).
	if err := dp.CheckCost(p.cost); err != nil {
		return invalid("query: %s", privalytics.ErrorMessage(err))
	}
	return nil
}

// checkPerGroup validates the mechanism of an aggregate with per-group bounds,
// with the parameters releaseCell passes.
func (p *Plan) checkPerGroup(what string, a aggregate) error {
	if p.normBound(a) > 0 {
		return p.perGroupParams(a).CheckSum(what, true)
	}
	if a.op == "count" {
		return dp.CountParams{Kind: p.kind, L0: p.distinctL0(), LInf: a.ghiI, Budget: a.budget}.Check(what)
	}
	sp := p.perGroupParams(a)
	if a.op == "mean" {
		return sp.CheckMean(what)
	}
	return sp.CheckSum(what, !a.isFloat)
}

// perGroupParams are the sum parameters of an aggregate with per-group bounds:
// one "row" per customer and group — its clamped total (sum) or average (mean)
// — in at most L0 groups; or, when its norm bound binds, one "row" of at most
// the norm in one group: the library's Gaussian calibrated to L2 = the norm
// (counts in thousandths of a row, as their scaled totals are accumulated).
func (p *Plan) perGroupParams(a aggregate) dp.SumParams {
	if n := p.normBound(a); n > 0 {
		lo, scale := 0.0, a.scale
		if a.glo < 0 {
			lo = -n
		}
		if a.op == "count" {
			scale = normCountScale
		}
		return dp.SumParams{Kind: p.kind, L0: 1, RowsPerGroup: 1, Lower: lo, Upper: n, Scale: scale, Budget: a.budget, Confidence: p.q.Confidence}
	}
	return dp.SumParams{Kind: p.kind, L0: p.distinctL0(), RowsPerGroup: 1, Lower: a.glo, Upper: a.ghi, Scale: a.scale, Budget: a.budget, Confidence: p.q.Confidence}
}

// boundsRows is the L1 sensitivity of the automatic bounds' histogram: the
// rows one customer keeps.
func (p *Plan) boundsRows() int64 {
	rows := p.l0 * p.linf
	if p.ltotal > 0 {
		rows = min(rows, p.ltotal)
	}
	return rows
}

// limitError turns a mechanism's limit into a 400 that says the smallest
// epsilon (or delta) with which this query would pass: shares are linear in the
// query's total, so the smallest total is the limit over the share's fraction.
func (p *Plan) limitError(err error) error {
	var le *dp.LimitError
	if !errors.As(err, &le) {
		return invalid("query: %v", err)
	}
	switch le.Param {
	case "epsilon":
		if p.q.Epsilon > 0 && le.Got > 0 {
			need := roundUp3(le.Min / (le.Got / p.q.Epsilon) * (1 + 1e-9))
			return privalytics.Errorf(privalytics.EINVALID, "query: %v; the smallest epsilon for this query is %g (or give this part a larger weight)", le, need).
				With("min_epsilon", need)
		}
		return invalid("query: %v; give this part a larger weight", le)
	case "delta":
		if p.q.Delta > 0 && le.Got > 0 {
			need := roundUp3(le.Min / (le.Got / p.q.Delta) * (1 + 1e-9))
			return privalytics.Errorf(privalytics.EINVALID, "query: %v; the smallest delta for this query is %g (or give this part a larger weight)", le, need).
				With("min_delta", need)
		}
		return invalid("query: %v; raise delta (e.g. 1e-6) or give this part a larger weight", le)
	}
	return invalid("query: %v; use bounds that are finite and not both zero", le)
}
