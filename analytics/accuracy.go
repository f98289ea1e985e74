package analytics

import (
	"fmt"
	"math"
	"strconv"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

// Accuracy first: a query without epsilon whose aggregates state the ± error
// they want ("within") gets the smallest ε that meets every target, found by
// bisection over the explained half-widths (which shrink as ε grows and do not
// depend on the data). The chosen ε is rounded up to three significant digits
// and shown by explain before anything is spent; running the query charges it.

const (
	accuracyMinEpsilon = 1e-4
	accuracyMaxEpsilon = 100
)

func planForAccuracy(q *privalytics.Query, schema privalytics.Schema, lim Limits) (*Plan, error) {
	if q.Epsilon != 0 {
		return nil, invalid("query: give either epsilon or a target error (within) on the aggregates, not both")
	}
	for i, a := range q.Aggregates {
		if a.Within == 0 {
			continue
		}
		if !(a.Within > 0) || math.IsInf(a.Within, 0) {
			return nil, invalid("query: aggregates[%d]: within must be a positive number (the ± half-width wanted), got %v", i, a.Within)
		}
		switch {
		case a.Bounds == "auto":
			return nil, invalid("query: aggregates[%d]: within needs fixed bounds: the error of \"bounds\": \"auto\" depends on the data", i)
		case a.Op != "count" && a.Op != "distinct_customers" && a.Op != "sum" && a.Op != "mean":
			return nil, invalid("query: aggregates[%d]: within is supported for count, distinct_customers, sum and mean; the error of %s depends on the data", i, a.Op)
		}
	}
	at := func(eps float64) (*Plan, bool, error) {
		c := *q
		c.Epsilon = eps
		p, err := newPlan(&c, schema, lim)
		if err != nil {
			return nil, false, err
		}
		// Interval widths are functions of the parameters only; the secure
		// mechanisms' interval formulas are used whatever noise the caller adds.
		ex, err := p.Explain(dp.Secure())
		if err != nil {
			return nil, false, err
		}
		for i, a := range q.Aggregates {
			if a.Within != 0 && ex.Aggregates[i].HalfWidth > a.Within {
				return p, false, nil
			}
		}
		return p, true, nil
	}
	if _, ok, err := at(accuracyMaxEpsilon); err != nil {
		return nil, err
	} else if !ok {
		return nil, invalid("query: the requested errors (within) need more than ε = %v; ask for a larger within, fewer or coarser groups, or tighter bounds", float64(accuracyMaxEpsilon))
	}
	lo, hi := math.Log(accuracyMinEpsilon), math.Log(accuracyMaxEpsilon)
	if _, ok, _ := at(accuracyMinEpsilon); ok {
		hi = lo
	}
	for range 60 {
		mid := (lo + hi) / 2
		if _, ok, err := at(math.Exp(mid)); err != nil {
			return nil, err
		} else if ok {
			hi = mid
		} else {
			lo = mid
		}
	}
	eps := roundUp3(math.Exp(hi))
	p, ok, err := at(eps)
	if err != nil {
		return nil, err
	}
	if !ok { // cannot happen: rounding up only narrows the intervals
		return nil, privalytics.Errorf(privalytics.EINTERNAL, "analytics: accuracy-first ε %v misses its target", eps)
	}
	p.accuracyFirst = true
	return p, nil
}

// roundUp3 rounds x > 0 up to three significant digits.
func roundUp3(x float64) float64 {
	e := math.Floor(math.Log10(x)) - 2
	unit := math.Pow(10, e)
	r := math.Ceil(x/unit-1e-9) * unit
	// Print and parse so the value is the short decimal a user would type.
	v, _ := strconv.ParseFloat(fmt.Sprintf("%.3g", r), 64)
	if v < x {
		v, _ = strconv.ParseFloat(fmt.Sprintf("%.3g", r+unit), 64)
	}
	return v
}
