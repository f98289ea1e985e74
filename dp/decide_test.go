package dp

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
)

func eps(e float64) Units { return UnitsDown(privalytics.Cost{Epsilon: e}) }

// TestDecide walks the budget policy through each kind of tenant: what fits
// is allowed to the unit, one unit more is refused with the binding budget's
// remaining amount in the details.
func TestDecide(t *testing.T) {
	t.Parallel()
	zcdp := Account{Accounting: privalytics.AccountingZCDP, Total: Units{Eps: 1e9, Delta: 2e9, Rho: 10e9}, Spent: Units{Eps: 5e9, Delta: 1e9, Rho: 9e9}}
	month := Account{Period: privalytics.PeriodMonth, Total: eps(1), Spent: eps(5), PeriodSpent: map[string]Units{"2025-03": eps(0.75)}}
	own := Account{Total: eps(1), Spent: eps(0.5), Allocated: eps(0.5), Key: &Share{Total: eps(0.5), Spent: eps(0.25)}}
	pool := Account{Total: eps(1), Spent: eps(0.5), Allocated: eps(0.5), SharedSpent: eps(0.25)}
	tests := []struct {
		name      string
		a         Account
		need      Units
		periods   []string
		code      string
		remaining privalytics.Cost
	}{
		{"zCDP: all the ρ left", zcdp, Units{Eps: 1e12, Rho: 1e9}, nil, "", privalytics.Cost{}},
		{"zCDP: one ρ unit more", zcdp, Units{Rho: 1e9 + 1}, nil, privalytics.EBUDGET, privalytics.Cost{Rho: 0.001}},
		{"zCDP: δ past half the δ budget", zcdp, Units{Delta: 1}, nil, privalytics.EBUDGET, privalytics.Cost{Rho: 0.001}},
		{"month: what is left of March", month, eps(0.25), []string{"2025-03", "2025-04"}, "", privalytics.Cost{}},
		{"month: one unit more", month, Units{Eps: 25e7 + 1}, []string{"2025-04", "2025-03"}, privalytics.EBUDGET, privalytics.Cost{Epsilon: 0.25}},
		{"month: no periods", month, eps(0.1), nil, privalytics.EINVALID, privalytics.Cost{}},
		{"own share: what is left of it", own, eps(0.25), nil, "", privalytics.Cost{}},
		{"own share: one unit more", own, Units{Eps: 25e7 + 1}, nil, privalytics.EBUDGET, privalytics.Cost{Epsilon: 0.25}},
		{"shared pool: what is left of it", pool, eps(0.25), nil, "", privalytics.Cost{}},
		{"shared pool: one unit more, though the tenant has 0.5", pool, Units{Eps: 25e7 + 1}, nil, privalytics.EBUDGET, privalytics.Cost{Epsilon: 0.25}},
	}
	for _, tt := range tests {
		err := Decide(tt.a, tt.need, tt.periods)
		if got := privalytics.ErrorCode(err); (err == nil) != (tt.code == "") || (err != nil && got != tt.code) {
			t.Errorf("%s: Decide = %v, want code %q", tt.name, err, tt.code)
			continue
		}
		if tt.code != privalytics.EBUDGET {
			continue
		}
		d := privalytics.ErrorDetails(err)
		if diff := cmp.Diff(tt.remaining, d["remaining"]); diff != "" {
			t.Errorf("%s: remaining (-want +got):\n%s", tt.name, diff)
		}
		if diff := cmp.Diff(tt.need.Cost(), d["needed"]); diff != "" {
			t.Errorf("%s: needed (-want +got):\n%s", tt.name, diff)
		}
	}
}

// TestBudgetErrorSpeaksTheTenantsUnit: a basic tenant is told in ε (and δ
// when the query needs some) and never in ρ; a zCDP tenant in ρ (issue 17).
func TestBudgetErrorSpeaksTheTenantsUnit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		err        error
		want       string
		mustNotSay string
	}{
		{"basic", BudgetError("", privalytics.Cost{Epsilon: 0.5, Rho: 0}, privalytics.Cost{Epsilon: 2, Rho: 200}),
			"this query needs ε 2 but only ε 0.5 of this tenant's privacy budget remains; ask the tenant admin for more budget or use a smaller epsilon", "ρ"},
		{"basic with δ", BudgetError("", privalytics.Cost{Epsilon: 8.5, Delta: 0}, privalytics.Cost{Epsilon: 0.1, Delta: 1e-7, Rho: 200}),
			"this query needs ε 0.1 and δ 1e-07 but only ε 8.5 and δ 0 of this tenant's privacy budget remain; ask the tenant admin for more budget or use a smaller epsilon", "ρ"},
		{"zCDP", BudgetError(privalytics.AccountingZCDP, privalytics.Cost{Epsilon: 3, Rho: 0.0009}, privalytics.Cost{Epsilon: 0.5, Rho: 0.001}),
			"this query needs ρ 0.001 but only ρ 0.0009 of this tenant's privacy budget remains; ask the tenant admin for more budget or use a smaller epsilon", "ε"},
		{"key share", KeyBudgetError(privalytics.Cost{Epsilon: 0.25}, privalytics.Cost{Epsilon: 0.5}),
			"this query needs ε 0.5 but only ε 0.25 of this API key's share of the privacy budget remains; ask the tenant admin to allocate more to this key or use a smaller epsilon", "ρ"},
		{"period", PeriodBudgetError("2025-03", privalytics.Cost{Epsilon: 0}, privalytics.Cost{Epsilon: 0.1}),
			"this query needs ε 0.1 but only ε 0 of the privacy budget of 2025-03 remains; leave that month out of the time range or use a smaller epsilon", "ρ"},
	}
	for _, tt := range tests {
		if privalytics.ErrorCode(tt.err) != privalytics.EBUDGET {
			t.Errorf("%s: code %q", tt.name, privalytics.ErrorCode(tt.err))
		}
		msg := privalytics.ErrorMessage(tt.err)
		if msg != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, msg, tt.want)
		}
		if strings.Contains(msg, tt.mustNotSay) {
			t.Errorf("%s: %q speaks of %s", tt.name, msg, tt.mustNotSay)
		}
	}
	if p := privalytics.ErrorDetails(PeriodBudgetError("2025-03", privalytics.Cost{}, privalytics.Cost{}))["period"]; p != "2025-03" {
		t.Errorf("period detail %v", p)
	}
}

// TestAccountOfAgreesWithTheStore: the pre-check's Account, built
// from the statuses a store reports, refuses what the store's own Account
// refuses and allows what it allows, for the shared pool, an own share and a
// zCDP tenant.
func TestAccountOfAgreesWithTheStore(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		st   privalytics.BudgetStatus
		kb   privalytics.KeyBudget
		fits Units
	}{
		{"shared pool smaller than the tenant's remaining",
			privalytics.BudgetStatus{Total: privalytics.Cost{Epsilon: 1}, Remaining: privalytics.Cost{Epsilon: 0.5}},
			privalytics.KeyBudget{Shared: true, Total: privalytics.Cost{Epsilon: 0.5}, Remaining: privalytics.Cost{Epsilon: 0.25}}, eps(0.25)},
		{"own share",
			privalytics.BudgetStatus{Total: privalytics.Cost{Epsilon: 1}, Remaining: privalytics.Cost{Epsilon: 0.5}},
			privalytics.KeyBudget{Total: privalytics.Cost{Epsilon: 0.5}, Remaining: privalytics.Cost{Epsilon: 0.125}}, eps(0.125)},
		{"zCDP",
			privalytics.BudgetStatus{Accounting: privalytics.AccountingZCDP, Total: privalytics.Cost{Epsilon: 1, Delta: 2e-6, Rho: 0.01}, Remaining: privalytics.Cost{Delta: 1e-6, Rho: 0.004}},
			privalytics.KeyBudget{Shared: true}, Units{Rho: 4e9, Delta: 1e9}},
	}
	for _, tt := range tests {
		a := AccountOf(tt.st, tt.kb)
		if err := Decide(a, tt.fits, nil); err != nil {
			t.Errorf("%s: %+v does not fit: %v", tt.name, tt.fits, err)
		}
		more := tt.fits
		if more.Rho > 0 {
			more.Rho++
		} else {
			more.Eps++
		}
		if err := Decide(a, more, nil); privalytics.ErrorCode(err) != privalytics.EBUDGET {
			t.Errorf("%s: one unit past %+v: %v, want EBUDGET", tt.name, tt.fits, err)
		}
	}
}

// TestViewsFit: a period tenant's views fit when a month's need fits a month's
// budget and then renew; a lifetime tenant's budget lasts the whole months
// left after the views' past releases.
func TestViewsFit(t *testing.T) {
	t.Parallel()
	u := func(eps float64) Units { return UnitsUp(privalytics.Cost{Epsilon: eps}) }
	month := Account{Period: privalytics.PeriodMonth, Total: u(10)}
	if fits, n := ViewsFit(month, u(7), u(30)); !fits || n != -1 {
		t.Errorf("period tenant, ε 7 of 10 a month: fits %v, %d periods; want true, -1 (renews)", fits, n)
	}
	if fits, _ := ViewsFit(month, u(10.5), Units{}); fits {
		t.Error("period tenant, ε 10.5 of 10 a month: fits")
	}
	life := Account{Total: u(10), Spent: u(2)}
	// A plan's ρ does not bind a tenant with basic composition.
	if fits, n := ViewsFit(life, UnitsUp(privalytics.Cost{Epsilon: 3, Rho: 4.5}), u(1)); !fits || n != 2 {
		t.Errorf("lifetime tenant, a need with ρ: fits %v, %d months; want true, 2", fits, n)
	}
	// 8 left, 1 now for the past buckets: 7 left, 3 a month → 2 months.
	if fits, n := ViewsFit(life, u(3), u(1)); !fits || n != 2 {
		t.Errorf("lifetime tenant: fits %v, %d months; want true, 2", fits, n)
	}
	if fits, n := ViewsFit(life, u(3), u(6)); fits || n != 0 {
		t.Errorf("lifetime tenant, past releases leave ε 2 for ε 3 a month: fits %v, %d; want false, 0", fits, n)
	}
	if fits, n := ViewsFit(life, u(3), u(9)); fits || n != 0 {
		t.Errorf("lifetime tenant, past releases overrun: fits %v, %d; want false, 0", fits, n)
	}
}
