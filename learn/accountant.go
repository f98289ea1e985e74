package learn

import (
	"fmt"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

// Charge is one release and its zCDP cost.
type Charge struct {
	What string  `json:"what"`
	Rho  float64 `json:"rho"`
}

// Accountant holds a training's budget in zCDP: the franchisor states (ε, δ)
// per customer, the accountant converts it once to ρ and refuses any release
// that would exceed it, before any data is touched for that release.
type Accountant struct {
	Epsilon, Delta float64
	Budget         float64 // ρ
	Charges        []Charge
}

// NewAccountant converts (ε, δ) to the largest ρ that still converts back to ε.
func NewAccountant(epsilon, delta float64) (*Accountant, error) {
	if !(epsilon > 0) || epsilon > 10 || !(delta > 0) || delta >= 1e-3 {
		return nil, privalytics.Errorf(privalytics.EINVALID, "learn: epsilon must be in (0, 10] and delta in (0, 0.001), got %g and %g", epsilon, delta)
	}
	return &Accountant{Epsilon: epsilon, Delta: delta, Budget: dp.RhoForEpsilon(epsilon, delta)}, nil
}

// Spent is the ρ charged so far (zCDP composes by addition).
func (a *Accountant) Spent() float64 {
	s := 0.0
	for _, c := range a.Charges {
		s += c.Rho
	}
	return s
}

// Charge records a release of cost rho, or refuses it when the budget cannot
// cover it. A tolerance of 1e-12·budget absorbs float rounding of planned splits.
func (a *Accountant) Charge(what string, rho float64) error {
	if !(rho > 0) {
		return privalytics.Errorf(privalytics.EINTERNAL, "learn: charge %q has rho %g", what, rho)
	}
	if a.Spent()+rho > a.Budget*(1+1e-12) {
		return privalytics.Errorf(privalytics.EBUDGET, "learn: %s needs ρ=%.3g but only %.3g of ρ=%.3g (ε=%g, δ=%g) is left; raise epsilon or train fewer rounds", what, rho, a.Budget-a.Spent(), a.Budget, a.Epsilon, a.Delta)
	}
	a.Charges = append(a.Charges, Charge{What: what, Rho: rho})
	return nil
}

// EpsilonSpent is the (ε, δ) guarantee of what was charged.
func (a *Accountant) EpsilonSpent() float64 { return dp.EpsilonOfRho(a.Spent(), a.Delta) }

func (a *Accountant) String() string {
	return fmt.Sprintf("ρ=%.4g of %.4g (ε=%.3g of %g at δ=%g)", a.Spent(), a.Budget, a.EpsilonSpent(), a.Epsilon, a.Delta)
}
