package privalytics

import (
	"context"
	"time"
)

// Cost is an amount of privacy loss: (ε, δ) under basic composition, and ρ, its
// zero-concentrated DP measure, for tenants that account in zCDP.
type Cost struct {
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
	Rho     float64 `json:"rho,omitempty"`
}

// Charge is one debit of a tenant's privacy budget: the record of privacy loss of
// one released answer.
type Charge struct {
	ID          string    `json:"id"`
	TenantID    string    `json:"tenant_id"`
	KeyID       string    `json:"key_id"`
	Time        time.Time `json:"time"`
	Fingerprint string    `json:"fingerprint"` // hash of the canonical query
	Mechanisms  string    `json:"mechanisms"`  // e.g. "laplace count; laplace sum; partition selection"
	Cost        Cost      `json:"cost"`
	Refunded    bool      `json:"refunded,omitempty"`
	// Periods are the data periods (e.g. "2025-03") the charge draws on, for a
	// tenant with data-period budgets; empty otherwise.
	Periods []string `json:"periods,omitempty"`
	// ViewID is the view whose release this charge is: it draws on the view's
	// own reservation (Ledger.Reserved), not on what the views reserve. Empty
	// for an ad-hoc query. Not stored.
	ViewID string `json:"-"`
	// ViewBucket and ViewKind name the view's pending release this charge
	// pays for: the ledger marks it charged in the charge's transaction, so
	// that from then on it counts as spent and no longer as reserved.
	ViewBucket, ViewKind string `json:"-"`
}

// PeriodStatus is one data period's budget, for tenants with data-period budgets.
type PeriodStatus struct {
	Period    string `json:"period"`
	Spent     Cost   `json:"spent"`
	Remaining Cost   `json:"remaining"`
	// Reserved is what the tenant's views reserve of the period for their
	// releases not made yet (Ledger.Reserved): an ad-hoc query may spend only
	// Remaining − Reserved of it.
	Reserved Cost `json:"reserved"`
}

// BudgetStatus is a tenant's budget at one moment.
type BudgetStatus struct {
	TenantID  string `json:"tenant_id"`
	Total     Cost   `json:"total"`
	Spent     Cost   `json:"spent"`
	Remaining Cost   `json:"remaining"`
	// Allocated is the part of Total reserved for keys with their own allocation;
	// keys without one share Total − Allocated.
	Allocated Cost `json:"allocated"`
	// Period and Periods are set for a tenant with data-period budgets: Total is
	// then each period's budget, Spent the sum over periods, and Periods lists
	// every period that has been charged.
	Period  string         `json:"period,omitempty"`
	Periods []PeriodStatus `json:"periods,omitempty"`
	// Accounting is "zcdp" for a tenant that accounts in ρ; its ε figures are then
	// conversions of ρ (see docs/privacy-budget.md).
	Accounting string `json:"accounting,omitempty"`
}

// BudgetChange records a change of a tenant's budget: a grant that raises the
// total, or a key's allocation set or removed.
type BudgetChange struct {
	ID         string    `json:"id"`
	TenantID   string    `json:"tenant_id"`
	Time       time.Time `json:"time"`
	Kind       string    `json:"kind"`             // "grant" or "allocate"
	KeyID      string    `json:"key_id,omitempty"` // the key allocated to
	ActorKeyID string    `json:"actor_key_id"`     // the admin key that made the change
	Amount     Cost      `json:"amount"`           // added by a grant; the new share of an allocation
}

// KeyBudget is what one API key may spend: its own allocation, or (Shared) the
// tenant's unallocated pool that every key without an allocation draws from.
type KeyBudget struct {
	KeyID     string `json:"key_id"`
	Shared    bool   `json:"shared"`
	Total     Cost   `json:"total"`
	Spent     Cost   `json:"spent"`
	Remaining Cost   `json:"remaining"`
}

// Ledger is the durable record of privacy loss. Amounts are kept in integer units
// (ε in 1e-9, δ in 1e-15, ρ in 1e-12, each charge rounded up; see dp/units.go)
// so that no sequence of small charges can sum past the total through
// floating-point rounding.
type Ledger interface {
	// Charge checks and records c in one transaction, filling c.ID. It returns the
	// status after the charge, or EBUDGET (details: remaining and needed; see
	// dp.Decide, the policy both SQL stores apply) when c would take the spent
	// total past the tenant's budget — or, for a tenant with data-period budgets,
	// any of c.Periods past its budget (EINVALID if c.Periods is empty then);
	// EINVALID for a cost the ledger cannot hold (dp.CheckCost); nothing is
	// recorded then.
	Charge(ctx context.Context, c *Charge) (BudgetStatus, error)
	// Refund marks a charge refunded. Call it only when nothing derived from the
	// charged computation was released. ENOTFOUND if there is no such charge.
	Refund(ctx context.Context, tenantID, chargeID string) error
	// Budget returns the tenant's current status. ENOTFOUND if no such tenant.
	Budget(ctx context.Context, tenantID string) (BudgetStatus, error)
	// Charges lists a tenant's charges, newest first, at most limit after
	// skipping offset: every key's when keyID is empty, else only that key's (a
	// query key sees its own charges only, so it cannot read what other keys
	// asked from their fingerprints and times).
	Charges(ctx context.Context, tenantID, keyID string, offset, limit int) ([]Charge, error)
	// Allocate sets a key's own share of the tenant budget (a zero Cost removes
	// it). EINVALID when the allocations would exceed the tenant's total or the
	// key has already spent more than the new share; ENOTFOUND for a key of
	// another tenant. Charge then checks a key with an allocation against it, and
	// any other key against the unallocated pool.
	Allocate(ctx context.Context, tenantID, keyID string, share Cost, actorKeyID string) error
	// Grant raises the tenant's total by add. EINVALID for a negative or
	// non-finite amount or a total past ε = 1e6 or δ = 1.
	Grant(ctx context.Context, tenantID string, add Cost, actorKeyID string) (BudgetStatus, error)
	// BudgetChanges lists grants and allocations, newest first.
	BudgetChanges(ctx context.Context, tenantID string, offset, limit int) ([]BudgetChange, error)
	// KeyBudget returns what the key may spend.
	KeyBudget(ctx context.Context, tenantID, keyID string) (KeyBudget, error)
	// Reserved returns, for each of periods, what the tenant's views other than
	// exceptViewID reserve of it for their releases not made yet (see
	// dp.ViewReservation): Charge refuses an ad-hoc charge that would eat into
	// it. Empty for a tenant without data-period budgets.
	Reserved(ctx context.Context, tenantID, exceptViewID string, periods []string) (map[string]Cost, error)
}
