package analytics

import (
	"context"

	"github.com/privalytics/privalytics"
)

// MaxWorkload is the most queries one workload explanation takes.
const MaxWorkload = 100

// WorkloadExplanation explains a list of queries (a dashboard's, say) before
// anything is spent: each query's explanation, and what running all of them
// would cost in total under the tenant's accounting (basic composition: ε, δ
// and ρ add up).
type WorkloadExplanation struct {
	Queries []Explanation             `json:"queries"`
	Cost    privalytics.Cost          `json:"cost"`
	Budget  *privalytics.BudgetStatus `json:"budget,omitempty"`
	// Fits: the total fits in what the tenant has left now.
	Fits bool `json:"fits"`
}

// ExplainWorkload plans and explains each request's query (public information
// only: no data is read, nothing is spent). A query that fails to plan fails
// the whole workload with its index in the message.
func (s *Service) ExplainWorkload(ctx context.Context, rs []Request) (*WorkloadExplanation, error) {
	if len(rs) == 0 || len(rs) > MaxWorkload {
		return nil, invalid("workload: send 1 to %d queries, got %d", MaxWorkload, len(rs))
	}
	out := &WorkloadExplanation{Queries: make([]Explanation, len(rs))}
	for i, r := range rs {
		plan, err := s.plan(r)
		if err != nil {
			return nil, privalytics.Errorf(privalytics.ErrorCode(err), "workload: queries[%d]: %s", i, privalytics.ErrorMessage(err))
		}
		ex, err := plan.Explain(s.mech)
		if err != nil {
			return nil, err
		}
		if r.Tenant.Accounting == privalytics.AccountingZCDP {
			ex.Cost = plan.ZCDPCost()
		}
		out.Queries[i] = *ex
		out.Cost.Epsilon += ex.Cost.Epsilon
		out.Cost.Delta += ex.Cost.Delta
		out.Cost.Rho += ex.Cost.Rho
	}
	status, err := s.ledger.Budget(ctx, rs[0].Tenant.ID)
	if err != nil {
		return nil, err
	}
	if rs[0].Tenant.Accounting == privalytics.AccountingZCDP {
		out.Fits = out.Cost.Rho <= status.Remaining.Rho && out.Cost.Delta <= status.Remaining.Delta
	} else {
		out.Fits = out.Cost.Epsilon <= status.Remaining.Epsilon && out.Cost.Delta <= status.Remaining.Delta
	}
	PresentBudget(&status)
	out.Budget = &status
	return out, nil
}
