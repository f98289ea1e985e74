package dp

import (
	"math"
	"math/big"
	"strconv"

	"github.com/privalytics/privalytics"
)

// Ledger units. The ledger keeps every privacy amount as an integer count of a
// fixed unit, so that no sequence of charges can pass a budget through
// floating-point rounding: ε in 1e-9, δ in 1e-15, ρ in 1e-12.
const (
	EpsilonDigits = 9
	DeltaDigits   = 15
	RhoDigits     = 12
)

// The largest amounts one charge may carry. Each is chosen so that its count
// of units fits a signed 64-bit column (at most 9.22e18) with room to spare:
// ε 1e6 (also the largest budget a tenant may hold) is 1e15 units, ρ 9.22e6 is
// 9.22e18. ρ is the tightest: a Laplace query of ε has ρ = ε²/2, so ε ≈ 4,294
// is the largest such query; at ε 4,300 its ρ alone would not fit (issue 20,
// item 9, where one such query made the tenant's ledger unreadable). The sums
// of such charges that no budget bounds saturate (Units.Plus).
const (
	MaxEpsilon = 1e6
	MaxRho     = 9.22e6
)

// Units is an amount of privacy loss in ledger units.
type Units struct {
	Eps, Delta, Rho int64
}

// Up converts v to units of 10^-digits, rounding up (for charges). Down rounds
// down (for totals). Both go through the float's shortest decimal form — the
// number the user wrote, e.g. 0.1 or 31 — so the conversion itself adds no error.
// A value whose count does not fit an int64 gives math.MaxInt64; CheckCost
// refuses such values before they reach a ledger.
func Up(v float64, digits int64) int64   { return toUnits(v, digits, true) }
func Down(v float64, digits int64) int64 { return toUnits(v, digits, false) }

func toUnits(v float64, digits int64, up bool) int64 {
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

// UnitsUp is what a charge of c takes from a budget: each amount rounded up.
// Call CheckCost first.
func UnitsUp(c privalytics.Cost) Units {
	return Units{Up(c.Epsilon, EpsilonDigits), Up(c.Delta, DeltaDigits), Up(c.Rho, RhoDigits)}
}

// UnitsDown is a budget of c: each amount rounded down, so a total never grows.
func UnitsDown(c privalytics.Cost) Units {
	return Units{Down(c.Epsilon, EpsilonDigits), Down(c.Delta, DeltaDigits), Down(c.Rho, RhoDigits)}
}

// Cost converts units back to a Cost.
func (u Units) Cost() privalytics.Cost {
	return privalytics.Cost{Epsilon: float64(u.Eps) / 1e9, Delta: float64(u.Delta) / 1e15, Rho: float64(u.Rho) / 1e12}
}

// Plus adds v to u, each amount saturating at math.MaxInt64. The ledger's
// binding sums never come near it (they stay within a budget that fits); the
// sums it only records — a basic tenant's ρ, a zCDP tenant's ε — may, and
// saturating keeps them readable instead of wrapping or failing the charge.
func (u Units) Plus(v Units) Units {
	return Units{satAdd(u.Eps, v.Eps), satAdd(u.Delta, v.Delta), satAdd(u.Rho, v.Rho)}
}

// Minus takes v from u (a refund), never going below zero, which a saturated
// sum could otherwise reach.
func (u Units) Minus(v Units) Units {
	sub := func(a, b int64) int64 { return max(a-b, 0) }
	return Units{sub(u.Eps, v.Eps), sub(u.Delta, v.Delta), sub(u.Rho, v.Rho)}
}

func satAdd(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// CheckCost refuses a cost the ledger cannot hold, so that a query can be
// refused when it is planned, before any data is touched: ε, δ and ρ must be
// ≥ 0 and finite, ε at most MaxEpsilon, δ below 1 and ρ at most MaxRho. A NaN or
// infinite amount would otherwise convert to 0 units — a free charge — and one
// past the maxima would overflow the ledger's integer sums.
func CheckCost(c privalytics.Cost) error {
	e, d, r := c.Epsilon, c.Delta, c.Rho
	switch {
	case !(e >= 0) || math.IsInf(e, 0) || e > MaxEpsilon:
		return privalytics.Errorf(privalytics.EINVALID, "ε must be ≥ 0, finite and at most %g per query, got %v; use a smaller epsilon", float64(MaxEpsilon), e)
	case !(d >= 0) || d >= 1:
		return privalytics.Errorf(privalytics.EINVALID, "δ must be in [0, 1), got %v; use a smaller delta", d)
	case !(r >= 0) || math.IsInf(r, 0):
		return privalytics.Errorf(privalytics.EINVALID, "ρ must be ≥ 0 and finite, got %v", r)
	case r > MaxRho:
		// ρ follows from ε (ε²/2 for Laplace noise), so say what to change in ε.
		return privalytics.Errorf(privalytics.EINVALID, "this query's privacy loss is too large for the ledger: its ρ (zero-concentrated DP measure, ε²/2 for Laplace noise) is %g, at most %g is allowed; use an epsilon below %.0f",
			r, float64(MaxRho), math.Floor(math.Sqrt(2*MaxRho)))
	}
	return nil
}

// CheckGrant validates a grant of add on a total of the given units and
// returns the grant in units (rounded down).
func CheckGrant(add privalytics.Cost, total Units) (Units, error) {
	if e, d := add.Epsilon, add.Delta; !(e >= 0) || math.IsInf(e, 0) || !(d >= 0) || d >= 1 {
		return Units{}, privalytics.Errorf(privalytics.EINVALID, "grant: ε must be ≥ 0 and finite and δ in [0, 1), got ε=%v δ=%v", e, d)
	}
	u := Units{Eps: Down(add.Epsilon, EpsilonDigits), Delta: Down(add.Delta, DeltaDigits)}
	next := total.Plus(u)
	if next.Eps > Down(MaxEpsilon, EpsilonDigits) || next.Delta >= Down(1, DeltaDigits) {
		return Units{}, privalytics.Errorf(privalytics.EINVALID, "grant: the total would pass ε = 1e6 or δ = 1; grant at most ε %g", Units{Eps: Down(MaxEpsilon, EpsilonDigits) - total.Eps}.Cost().Epsilon)
	}
	return u, nil
}

// CheckPeriods validates the periods of a charge on a tenant with data-period
// budgets.
func CheckPeriods(periods []string) error {
	if len(periods) == 0 {
		return privalytics.Errorf(privalytics.EINVALID, "this tenant budgets each month of data separately, so a query must say which months it reads: add a time filter with both ends (gte and lt)")
	}
	if len(periods) > 240 {
		return privalytics.Errorf(privalytics.EINVALID, "a query may touch at most 240 months, this one touches %d", len(periods))
	}
	return nil
}
