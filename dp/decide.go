package dp

import (
	"fmt"
	"strings"

	"github.com/privalytics/privalytics"
)

// Account is what the budget policy needs to know of a tenant's ledger, in
// units: the one input of Decide, filled by a store inside the transaction that
// records the charge, or from a BudgetStatus for a pre-check (AccountOf).
type Account struct {
	// Accounting is "" (basic composition: ε and δ add up) or
	// privalytics.AccountingZCDP (ρ adds up; δ for the approximate parts may use
	// half the δ budget, the other half converts ρ back to (ε, δ)).
	Accounting string
	// Period is "" (one budget) or privalytics.PeriodMonth (each month of data
	// has Total to itself).
	Period string
	// Total is the tenant's budget — each period's, for a period tenant — and
	// Spent what the tenant has spent in all.
	Total, Spent Units
	// Allocated is the part of Total reserved for keys with their own share;
	// SharedSpent what the keys without one have spent from the rest. Basic
	// tenants with one budget only.
	Allocated, SharedSpent Units
	// Key is the charging key's own share, nil if it draws from the shared pool.
	Key *Share
	// PeriodSpent is the spending of each period the charge touches (absent: 0).
	PeriodSpent map[string]Units
	// Reserved is, for each period the charge touches, what the tenant's views
	// reserve of it and have not charged yet (Reserved of ViewReservations) —
	// all the views' for an ad-hoc query, the other views' for a view's
	// release, which draws on its own reservation. Period tenants only.
	Reserved map[string]Units
}

// Share is one key's allocation and what the key has spent of it.
type Share struct {
	Total, Spent Units
}

// Decide is the one budget policy: may a charge of need, drawing on periods
// (for a period tenant), be recorded against a? nil if so. Otherwise the
// EINVALID error of a period tenant's charge without valid periods, or the
// EBUDGET error (see BudgetError) of the first budget it would pass, with the
// remaining and needed amounts as details. Both SQL stores call it with the
// tenant's row locked; a query's pre-check calls it before any data is touched.
// need must have passed CheckCost.
func Decide(a Account, need Units, periods []string) error {
	fits := func(total, spent int64, n int64) bool { return n <= total-spent }
	switch {
	case a.Accounting == privalytics.AccountingZCDP:
		rem := Units{Rho: a.Total.Rho - a.Spent.Rho, Delta: a.Total.Delta/2 - a.Spent.Delta}
		if need.Rho > rem.Rho || need.Delta > rem.Delta {
			return BudgetError(a.Accounting, rem.Cost(), need.Cost())
		}
	case a.Period != "":
		if err := CheckPeriods(periods); err != nil {
			return err
		}
		for _, p := range periods {
			s, r := a.PeriodSpent[p], a.Reserved[p]
			if !fits(a.Total.Eps, s.Eps, need.Eps) || !fits(a.Total.Delta, s.Delta, need.Delta) {
				return PeriodBudgetError(p, Units{Eps: a.Total.Eps - s.Eps, Delta: a.Total.Delta - s.Delta}.Cost(), need.Cost())
			}
			if !fits(a.Total.Eps, satAdd(s.Eps, r.Eps), need.Eps) || !fits(a.Total.Delta, satAdd(s.Delta, r.Delta), need.Delta) {
				free := Units{Eps: max(a.Total.Eps-s.Eps-r.Eps, 0), Delta: max(a.Total.Delta-s.Delta-r.Delta, 0)}
				return ReservedBudgetError(p, free.Cost(), r.Cost(), need.Cost())
			}
		}
	case a.Key != nil:
		k := a.Key
		if !fits(k.Total.Eps, k.Spent.Eps, need.Eps) || !fits(k.Total.Delta, k.Spent.Delta, need.Delta) {
			return KeyBudgetError(Units{Eps: k.Total.Eps - k.Spent.Eps, Delta: k.Total.Delta - k.Spent.Delta}.Cost(), need.Cost())
		}
		if !fits(a.Total.Eps, a.Spent.Eps, need.Eps) || !fits(a.Total.Delta, a.Spent.Delta, need.Delta) {
			return BudgetError(a.Accounting, a.remaining().Cost(), need.Cost())
		}
	default:
		pool := Units{Eps: a.Total.Eps - a.Allocated.Eps - a.SharedSpent.Eps, Delta: a.Total.Delta - a.Allocated.Delta - a.SharedSpent.Delta}
		if need.Eps > pool.Eps || need.Delta > pool.Delta ||
			!fits(a.Total.Eps, a.Spent.Eps, need.Eps) || !fits(a.Total.Delta, a.Spent.Delta, need.Delta) {
			rem := a.remaining()
			rem.Eps, rem.Delta = min(rem.Eps, pool.Eps), min(rem.Delta, pool.Delta)
			return BudgetError(a.Accounting, rem.Cost(), need.Cost())
		}
	}
	return nil
}

func (a Account) remaining() Units {
	return Units{Eps: a.Total.Eps - a.Spent.Eps, Delta: a.Total.Delta - a.Spent.Delta, Rho: a.Total.Rho - a.Spent.Rho}
}

// AccountOf is the Account a pre-check can build from a tenant's status and
// the calling key's budget, as the stores report them (Budget and KeyBudget):
// the binding check remains the store's, atomic with the charge, but a query
// refused here is refused before any data is touched. Remaining amounts are
// rounded down to units, so the pre-check never lets through what the store
// would refuse.
func AccountOf(st privalytics.BudgetStatus, kb privalytics.KeyBudget) Account {
	a := Account{Accounting: st.Accounting, Period: st.Period, Total: UnitsDown(st.Total)}
	rem := UnitsDown(st.Remaining)
	a.Spent = Units{Eps: a.Total.Eps - rem.Eps, Delta: a.Total.Delta - rem.Delta, Rho: a.Total.Rho - rem.Rho}
	switch {
	case a.Accounting == privalytics.AccountingZCDP:
		// Remaining.Delta is already half the δ budget minus what was spent.
		a.Spent.Delta = a.Total.Delta/2 - rem.Delta
	case a.Period != "":
		// Each period's remaining is reported; the least one stands for them all
		// unless the caller fills PeriodSpent for the periods it touches.
		a.PeriodSpent = map[string]Units{}
		for _, p := range st.Periods {
			r := UnitsDown(p.Remaining)
			a.PeriodSpent[p.Period] = Units{Eps: a.Total.Eps - r.Eps, Delta: a.Total.Delta - r.Delta}
		}
	default:
		krem := UnitsDown(kb.Remaining)
		if !kb.Shared {
			kt := UnitsDown(kb.Total)
			a.Key = &Share{Total: kt, Spent: Units{Eps: kt.Eps - krem.Eps, Delta: kt.Delta - krem.Delta}}
		} else {
			// The shared pool's remaining is all the key may spend.
			a.Allocated = Units{}
			a.SharedSpent = Units{Eps: a.Total.Eps - krem.Eps, Delta: a.Total.Delta - krem.Delta}
		}
	}
	return a
}

// PreCheck is the pre-check of a query's cost need (on a period tenant,
// drawing on periods) before any data is touched: CheckCost, then Decide over
// AccountOf(st, kb), st and kb being what the ledger reports now (Budget and
// KeyBudget). It returns the error the ledger's Charge would return, EINVALID
// or EBUDGET, or nil; Charge stays the binding check.
func PreCheck(st privalytics.BudgetStatus, kb privalytics.KeyBudget, need privalytics.Cost, periods []string) error {
	return PreCheckReserved(st, kb, need, periods, nil)
}

// PreCheckReserved is PreCheck on a period tenant whose views reserve
// reserved (by period; the ledger's Reserved, rounded up so the pre-check is
// never more lenient than the binding check).
func PreCheckReserved(st privalytics.BudgetStatus, kb privalytics.KeyBudget, need privalytics.Cost, periods []string, reserved map[string]privalytics.Cost) error {
	if err := CheckCost(need); err != nil {
		return err
	}
	a := AccountOf(st, kb)
	if a.Period != "" && len(reserved) > 0 {
		a.Reserved = map[string]Units{}
		for p, c := range reserved {
			a.Reserved[p] = UnitsUp(c)
		}
	}
	return Decide(a, UnitsUp(need), periods)
}

// BudgetError is the EBUDGET error of a tenant's budget, in the tenant's own
// unit and in words: ε (and δ when the query needs some) for a tenant with
// basic composition, ρ only for a zCDP tenant, e.g. "this query needs ε 2 but
// only ε 0.5 of this tenant's privacy budget remains". Details: "remaining" and
// "needed" (privalytics.Cost).
func BudgetError(accounting string, remaining, needed privalytics.Cost) error {
	return budgetError(accounting, "of this tenant's privacy budget", "ask the tenant admin for more budget or use a smaller epsilon", remaining, needed)
}

// KeyBudgetError is the EBUDGET error of a key that has spent its own share.
func KeyBudgetError(remaining, needed privalytics.Cost) error {
	return budgetError("", "of this API key's share of the privacy budget", "ask the tenant admin to allocate more to this key or use a smaller epsilon", remaining, needed)
}

// PeriodBudgetError is the EBUDGET error of a data period whose budget is
// spent; the details add "period".
func PeriodBudgetError(period string, remaining, needed privalytics.Cost) error {
	err := budgetError("", "of the privacy budget of "+period, "leave that month out of the time range or use a smaller epsilon", remaining, needed)
	return err.(*privalytics.Error).With("period", period)
}

// ReservedBudgetError is the EBUDGET error of a charge that would fit in a
// period's budget but for what the tenant's views reserve of it; the details
// add "period" and "reserved" (the views' reservation not yet charged).
func ReservedBudgetError(period string, remaining, reserved, needed privalytics.Cost) error {
	need, left, held := "ε "+num(needed.Epsilon), "ε "+num(remaining.Epsilon), "ε "+num(reserved.Epsilon)
	if needed.Delta > 0 {
		need, left, held = need+" and δ "+num(needed.Delta), left+" and δ "+num(remaining.Delta), held+" and δ "+num(reserved.Delta)
	}
	return privalytics.Errorf(privalytics.EBUDGET, "this query needs %s but only %s of the privacy budget of %s is free: %s of it is reserved for the releases of this tenant's views; "+
		"delete a view to free its reservation, wait for the next month's budget (leave %s out of the time range), or use a smaller epsilon",
		need, left, period, held, period).
		With("remaining", remaining).With("needed", needed).With("period", period).With("reserved", reserved)
}

func budgetError(accounting, of, advice string, remaining, needed privalytics.Cost) error {
	var need, left []string
	if accounting == privalytics.AccountingZCDP {
		need, left = []string{"ρ " + num(needed.Rho)}, []string{"ρ " + num(remaining.Rho)}
	} else {
		need, left = []string{"ε " + num(needed.Epsilon)}, []string{"ε " + num(remaining.Epsilon)}
	}
	// δ is worth a word only when the query needs some.
	if needed.Delta > 0 {
		need, left = append(need, "δ "+num(needed.Delta)), append(left, "δ "+num(remaining.Delta))
	}
	verb := "remains"
	if len(left) > 1 {
		verb = "remain"
	}
	return privalytics.Errorf(privalytics.EBUDGET, "this query needs %s but only %s %s %s; %s",
		strings.Join(need, " and "), strings.Join(left, " and "), of, verb, advice).
		With("remaining", remaining).With("needed", needed)
}

// num prints an amount as a person would write it: 0.5, 2, 1e-06.
func num(v float64) string { return fmt.Sprintf("%.6g", max(v, 0)) }

// Allocation is a basic tenant's split between the keys' own shares and the
// pool the other keys share, in units (ε and δ only).
type Allocation struct {
	Budget, Allocated, SharedSpent Units
	// Remove is set by Reallocate when the new share is zero: the key returns
	// to the shared pool.
	Remove bool
}

// Reallocate checks a change of one key's share and returns the tenant's new
// split. had says whether the key had a share (old, of which it spent spent);
// share is the new one, zero to remove it. A removed share's spending moves to
// the shared pool, so the pool still accounts for everything spent outside the
// remaining shares. EINVALID, saying how much may be allocated, when the
// shares and the pool's spending would pass the budget or the new share is
// below what the key already spent.
func Reallocate(cur Allocation, had bool, old, spent, share Units) (Allocation, error) {
	if !had {
		old, spent = Units{}, Units{}
	}
	next := cur
	next.Remove = share.Eps == 0 && share.Delta == 0
	next.Allocated = Units{Eps: cur.Allocated.Eps - old.Eps + share.Eps, Delta: cur.Allocated.Delta - old.Delta + share.Delta}
	if next.Remove {
		next.SharedSpent = Units{Eps: cur.SharedSpent.Eps + spent.Eps, Delta: cur.SharedSpent.Delta + spent.Delta}
	} else if share.Eps < spent.Eps || share.Delta < spent.Delta {
		c := spent.Cost()
		return cur, privalytics.Errorf(privalytics.EINVALID, "the key has already spent more than the new share; choose at least ε=%g, δ=%g", c.Epsilon, c.Delta)
	}
	if next.Allocated.Eps+next.SharedSpent.Eps > cur.Budget.Eps || next.Allocated.Delta+next.SharedSpent.Delta > cur.Budget.Delta {
		free := Units{Eps: cur.Budget.Eps - cur.Allocated.Eps + old.Eps - cur.SharedSpent.Eps, Delta: cur.Budget.Delta - cur.Allocated.Delta + old.Delta - cur.SharedSpent.Delta}.Cost()
		return cur, privalytics.Errorf(privalytics.EINVALID, "only ε=%g, δ=%g of the tenant's budget is neither allocated nor spent from the shared pool; allocate at most that", free.Epsilon, free.Delta)
	}
	return next, nil
}

// ViewsFit is the budget policy's answer for a tenant's views, whose releases
// together need perPeriod in each period of data (each calendar month): on a
// tenant with data-period budgets they fit when perPeriod fits one period's
// Total, and then renew every period (periods is -1); on a tenant with one
// budget, periods is how many periods of releases the budget left covers
// after first paying now (the new view's releases of past buckets), and they
// fit when that is at least one. The ledger's Charge (Decide) stays the
// binding check of each release.
func ViewsFit(a Account, perPeriod, now Units) (fits bool, periods int) {
	if a.Period != "" {
		return perPeriod.Eps <= a.Total.Eps && perPeriod.Delta <= a.Total.Delta, -1
	}
	rem := a.remaining()
	if a.Accounting == privalytics.AccountingZCDP {
		rem.Delta = a.Total.Delta/2 - a.Spent.Delta
		rem.Eps = -1 // ρ binds, not ε
	} else {
		rem.Rho = -1 // ε and δ bind; a plan's ρ is only informative
	}
	periods = -1
	for _, d := range []struct{ left, need, now int64 }{{rem.Eps, perPeriod.Eps, now.Eps}, {rem.Delta, perPeriod.Delta, now.Delta}, {rem.Rho, perPeriod.Rho, now.Rho}} {
		if d.left < 0 || d.need <= 0 {
			continue
		}
		n := 0
		if left := d.left - d.now; left >= 0 {
			n = int(min(left/d.need, 1<<30))
		}
		if periods < 0 || n < periods {
			periods = n
		}
	}
	if periods < 0 { // nothing is needed: the budget lasts
		return true, 1 << 30
	}
	return periods >= 1, periods
}
