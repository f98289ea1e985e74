// Package ledger holds the arithmetic every ledger implementation shares: privacy
// amounts as integers, so that no sequence of charges can pass a budget through
// floating-point rounding.
package ledger

import (
	"math"
	"math/big"
	"strconv"

	"github.com/privalytics/privalytics"
)

// Units: ε is counted in 1e-9, δ in 1e-15.
const (
	EpsilonDigits = 9
	DeltaDigits   = 15
)

// Up converts v to units of 10^-digits, rounding up (for charges). Down rounds
// down (for totals). Both go through the float's shortest decimal form — the
// number the user wrote, e.g. 0.1 or 31 — so the conversion itself adds no error.
func Up(v float64, digits int64) int64   { return units(v, digits, true) }
func Down(v float64, digits int64) int64 { return units(v, digits, false) }

func units(v float64, digits int64, up bool) int64 {
	r, ok := new(big.Rat).SetString(strconv.FormatFloat(v, 'g', -1, 64))
	if !ok {
		return 0
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(digits), nil)))
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if m.Sign() != 0 && up && r.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return math.MaxInt64
	}
	return q.Int64()
}

// Cost converts units back to a Cost.
func Cost(eps, delta int64) privalytics.Cost {
	return privalytics.Cost{Epsilon: float64(eps) / 1e9, Delta: float64(delta) / 1e15}
}

// Status builds a BudgetStatus from units.
func Status(tenantID string, budgetEps, budgetDelta, spentEps, spentDelta int64) privalytics.BudgetStatus {
	return privalytics.BudgetStatus{TenantID: tenantID, Total: Cost(budgetEps, budgetDelta), Spent: Cost(spentEps, spentDelta), Remaining: Cost(budgetEps-spentEps, budgetDelta-spentDelta)}
}

// Exhausted is the EBUDGET error: what the query needed and what is left.
func Exhausted(needed, remaining privalytics.Cost) error {
	return privalytics.Errorf(privalytics.EBUDGET, "privacy budget exhausted: the query needs ε=%g, δ=%g but ε=%g, δ=%g remain",
		needed.Epsilon, needed.Delta, remaining.Epsilon, remaining.Delta).With("remaining", remaining).With("needed", needed)
}

// CheckCharge validates a charge's amounts.
func CheckCharge(c privalytics.Cost) error {
	if e, d := c.Epsilon, c.Delta; !(e >= 0) || math.IsInf(e, 0) || !(d >= 0) || d >= 1 {
		return privalytics.Errorf(privalytics.EINVALID, "charge: ε must be ≥ 0 and finite and δ in [0, 1), got ε=%v δ=%v", e, d)
	}
	return nil
}
