// Package ledger holds the arithmetic every ledger implementation shares: privacy
// amounts as integers, so that no sequence of charges can pass a budget through
// floating-point rounding.
package ledger

import (
	"crypto/rand"
	"encoding/hex"
	"math"
	"math/big"
	"strconv"

	"github.com/privalytics/privalytics"
)

// Units: ε is counted in 1e-9, δ in 1e-15.
const (
	EpsilonDigits = 9
	DeltaDigits   = 15
	RhoDigits     = 12
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
	// A NaN or infinite ρ would convert to 0 units: a free charge for a zCDP tenant.
	if r := c.Rho; !(r >= 0) || math.IsInf(r, 0) {
		return privalytics.Errorf(privalytics.EINVALID, "charge: ρ must be ≥ 0 and finite, got ρ=%v", r)
	}
	return nil
}

// ExhaustedKey is the EBUDGET error of a key that has spent its own allocation.
func ExhaustedKey(needed, remaining privalytics.Cost) error {
	return privalytics.Errorf(privalytics.EBUDGET, "this API key's share of the privacy budget is exhausted: the query needs ε=%g, δ=%g but ε=%g, δ=%g of its share remain; ask the tenant admin to allocate more",
		needed.Epsilon, needed.Delta, remaining.Epsilon, remaining.Delta).With("remaining", remaining).With("needed", needed)
}

// KeyStatus builds a KeyBudget from units.
func KeyStatus(keyID string, shared bool, budgetEps, budgetDelta, spentEps, spentDelta int64) privalytics.KeyBudget {
	return privalytics.KeyBudget{KeyID: keyID, Shared: shared, Total: Cost(budgetEps, budgetDelta), Spent: Cost(spentEps, spentDelta), Remaining: Cost(budgetEps-spentEps, budgetDelta-spentDelta)}
}

// Allocation is a tenant's split between allocated shares and the shared pool, in
// units: index 0 is ε, index 1 is δ.
type Allocation struct {
	Budget, Allocated, SharedSpent [2]int64
	Remove                         bool
}

// Reallocate checks a change of one key's share and returns the tenant's new
// split. had says whether the key had a share (old, spent by it); share is the
// new one, zero to remove it. A removed share's spending moves to the shared pool,
// so the pool still accounts for everything spent outside the remaining shares.
func Reallocate(cur Allocation, had bool, old, spent, share [2]int64) (Allocation, error) {
	next := cur
	next.Remove = share == [2]int64{}
	for i := range 2 {
		if !had {
			old[i], spent[i] = 0, 0
		}
		next.Allocated[i] = cur.Allocated[i] - old[i] + share[i]
		if next.Remove {
			next.SharedSpent[i] += spent[i]
		} else if share[i] < spent[i] {
			return cur, privalytics.Errorf(privalytics.EINVALID, "the key has already spent more than the new share; choose at least ε=%g, δ=%g",
				Cost(spent[0], spent[1]).Epsilon, Cost(spent[0], spent[1]).Delta)
		}
		if next.Allocated[i]+next.SharedSpent[i] > cur.Budget[i] {
			free := Cost(cur.Budget[0]-cur.Allocated[0]+old[0]-cur.SharedSpent[0], cur.Budget[1]-cur.Allocated[1]+old[1]-cur.SharedSpent[1])
			return cur, privalytics.Errorf(privalytics.EINVALID, "only ε=%g, δ=%g of the tenant's budget is neither allocated nor spent from the shared pool; allocate at most that",
				free.Epsilon, free.Delta)
		}
	}
	return next, nil
}

// CheckGrant validates a grant against the tenant's current total, in units.
func CheckGrant(add privalytics.Cost, totalEps, totalDelta int64) (eps, delta int64, err error) {
	if err := CheckCharge(add); err != nil {
		return 0, 0, privalytics.Errorf(privalytics.EINVALID, "grant: ε must be ≥ 0 and finite and δ in [0, 1), got ε=%v δ=%v", add.Epsilon, add.Delta)
	}
	eps, delta = Down(add.Epsilon, EpsilonDigits), Down(add.Delta, DeltaDigits)
	if Cost(totalEps+eps, 0).Epsilon > 1e6 || Cost(0, totalDelta+delta).Delta >= 1 {
		return 0, 0, privalytics.Errorf(privalytics.EINVALID, "grant: the total would pass ε = 1e6 or δ = 1")
	}
	return eps, delta, nil
}

// NewID returns a random 128-bit hex identifier.
func NewID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// CheckPeriods validates the periods of a charge on a tenant with data-period budgets.
func CheckPeriods(periods []string) error {
	if len(periods) == 0 {
		return privalytics.Errorf(privalytics.EINVALID, "this tenant budgets each month of data separately, so a query must say which months it reads: add a time filter with both ends (gte and lt)")
	}
	if len(periods) > 240 {
		return privalytics.Errorf(privalytics.EINVALID, "a query may touch at most 240 months, this one touches %d", len(periods))
	}
	return nil
}

// ExhaustedPeriod is the EBUDGET error of a data period that is spent.
func ExhaustedPeriod(period string, needed, remaining privalytics.Cost) error {
	return privalytics.Errorf(privalytics.EBUDGET, "the privacy budget of %s is exhausted: the query needs ε=%g, δ=%g but ε=%g, δ=%g remain for that month; leave it out of the time range",
		period, needed.Epsilon, needed.Delta, remaining.Epsilon, remaining.Delta).With("remaining", remaining).With("needed", needed).With("period", period)
}

// ErrSharesWithPeriods refuses per-key shares on tenants with data-period budgets.
var ErrSharesWithPeriods = privalytics.Errorf(privalytics.EINVALID, "per-key shares are not available for tenants with data-period budgets or zCDP accounting yet")

// PeriodUnits is one period's spending in units.
type PeriodUnits struct {
	Period     string
	Eps, Delta int64
}

// WithPeriods fills a status for a tenant with data-period budgets: Total is each
// period's budget, Remaining the least any period has left.
func WithPeriods(st privalytics.BudgetStatus, period string, budgetEps, budgetDelta int64, ps []PeriodUnits) privalytics.BudgetStatus {
	st.Period = period
	st.Remaining = Cost(budgetEps, budgetDelta)
	for _, p := range ps {
		rem := Cost(budgetEps-p.Eps, budgetDelta-p.Delta)
		st.Periods = append(st.Periods, privalytics.PeriodStatus{Period: p.Period, Spent: Cost(p.Eps, p.Delta), Remaining: rem})
		st.Remaining.Epsilon = math.Min(st.Remaining.Epsilon, rem.Epsilon)
		st.Remaining.Delta = math.Min(st.Remaining.Delta, rem.Delta)
	}
	return st
}

// ExhaustedRho is the EBUDGET error of a zCDP tenant.
func ExhaustedRho(needed, remaining privalytics.Cost) error {
	return privalytics.Errorf(privalytics.EBUDGET, "privacy budget exhausted: the query needs ρ=%g, δ=%g but ρ=%g, δ=%g remain",
		needed.Rho, needed.Delta, remaining.Rho, remaining.Delta).With("remaining", remaining).With("needed", needed)
}

// RhoCost is a ρ amount in units.
func RhoCost(rho int64) float64 { return float64(rho) / 1e12 }

// WithRho fills the ρ figures of a status. For a zCDP tenant, ρ is what binds,
// and the δ left is half the δ budget (the other half converts ρ to ε) minus
// what approximate parts spent.
func WithRho(st privalytics.BudgetStatus, accounting string, budgetDelta, spentDelta, budgetRho, spentRho int64) privalytics.BudgetStatus {
	st.Spent.Rho = RhoCost(spentRho)
	if accounting != privalytics.AccountingZCDP {
		return st
	}
	st.Accounting = accounting
	st.Total.Rho, st.Remaining.Rho = RhoCost(budgetRho), RhoCost(budgetRho-spentRho)
	st.Remaining.Delta = Cost(0, budgetDelta/2-spentDelta).Delta
	return st
}
