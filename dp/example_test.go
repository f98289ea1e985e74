package dp_test

import (
	"fmt"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

// A basic-composition tenant with ε 0.5 of 3 left is refused a query of ε 2
// in ε; the same refusal for a zCDP tenant speaks ρ.
func ExamplePreCheck() {
	st := privalytics.BudgetStatus{Total: privalytics.Cost{Epsilon: 3}, Spent: privalytics.Cost{Epsilon: 2.5}, Remaining: privalytics.Cost{Epsilon: 0.5}}
	kb := privalytics.KeyBudget{Shared: true, Total: privalytics.Cost{Epsilon: 3}, Remaining: privalytics.Cost{Epsilon: 0.5}}
	fmt.Println(dp.PreCheck(st, kb, privalytics.Cost{Epsilon: 2, Rho: 2}, nil))
	fmt.Println(dp.PreCheck(st, kb, privalytics.Cost{Epsilon: 0.5, Rho: 0.125}, nil))
	fmt.Println(dp.PreCheck(st, kb, privalytics.Cost{Epsilon: 4300, Rho: 4300 * 4300 / 2.0}, nil))

	z := privalytics.BudgetStatus{Accounting: privalytics.AccountingZCDP, Total: privalytics.Cost{Epsilon: 1, Delta: 2e-6, Rho: 0.01}, Remaining: privalytics.Cost{Delta: 1e-6, Rho: 0.0009}}
	fmt.Println(dp.PreCheck(z, privalytics.KeyBudget{Shared: true}, privalytics.Cost{Epsilon: 0.5, Rho: 0.001}, nil))
	// Output:
	// privalytics: budget: this query needs ε 2 but only ε 0.5 of this tenant's privacy budget remains; ask the tenant admin for more budget or use a smaller epsilon
	// <nil>
	// privalytics: invalid: this query's privacy loss is too large for the ledger: its ρ (zero-concentrated DP measure, ε²/2 for Laplace noise) is 9.245e+06, at most 9.22e+06 is allowed; use an epsilon below 4294
	// privalytics: budget: this query needs ρ 0.001 but only ρ 0.0009 of this tenant's privacy budget remains; ask the tenant admin for more budget or use a smaller epsilon
}
