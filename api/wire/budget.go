package wire

import "time"

// PeriodStatus is one data period's budget, for tenants with data-period budgets.
type PeriodStatus struct {
	Period    string `json:"period"`
	Spent     Cost   `json:"spent"`
	Remaining Cost   `json:"remaining"`
	// Reserved is what the views reserve of the period for their releases not
	// made yet; ad-hoc queries may spend Remaining − Reserved.
	Reserved Cost `json:"reserved"`
}

// BudgetStatus is a tenant's budget at one moment.
type BudgetStatus struct {
	TenantID   string         `json:"tenant_id"`
	Total      Cost           `json:"total"`
	Spent      Cost           `json:"spent"`
	Remaining  Cost           `json:"remaining"`
	Allocated  Cost           `json:"allocated"` // reserved for keys with their own allocation
	Period     string         `json:"period,omitempty"`
	Periods    []PeriodStatus `json:"periods,omitempty"`
	Accounting string         `json:"accounting,omitempty"` // "zcdp": ε figures are conversions of ρ
}

// KeyBudget is what one key may spend.
type KeyBudget struct {
	KeyID     string `json:"key_id"`
	Shared    bool   `json:"shared"` // no allocation of its own: it draws on the shared part
	Total     Cost   `json:"total"`
	Spent     Cost   `json:"spent"`
	Remaining Cost   `json:"remaining"`
}

// BudgetResponse answers GET /v1/budget: the tenant's budget and the
// calling key's.
type BudgetResponse struct {
	BudgetStatus
	Key *KeyBudget `json:"key,omitempty"`
}

// Charge is one entry of the privacy ledger.
type Charge struct {
	ID          string    `json:"id"`
	TenantID    string    `json:"tenant_id"`
	KeyID       string    `json:"key_id"`
	Time        time.Time `json:"time"`
	Fingerprint string    `json:"fingerprint"` // keyed hash of the canonical query
	Mechanisms  string    `json:"mechanisms"`
	Cost        Cost      `json:"cost"`
	Refunded    bool      `json:"refunded,omitempty"`
	Periods     []string  `json:"periods,omitempty"`
}

// ChargePage answers GET /v1/budget/charges, newest first.
type ChargePage struct {
	Charges []Charge `json:"charges"`
	Offset  int      `json:"offset"`
	Limit   int      `json:"limit"`
}

// BudgetChange records a grant or an allocation.
type BudgetChange struct {
	ID         string    `json:"id"`
	TenantID   string    `json:"tenant_id"`
	Time       time.Time `json:"time"`
	Kind       string    `json:"kind"` // "grant" or "allocate"
	KeyID      string    `json:"key_id,omitempty"`
	ActorKeyID string    `json:"actor_key_id"`
	Amount     Cost      `json:"amount"`
}

// BudgetChangePage answers GET /v1/budget/changes, newest first.
type BudgetChangePage struct {
	Changes []BudgetChange `json:"changes"`
	Offset  int            `json:"offset"`
	Limit   int            `json:"limit"`
}
