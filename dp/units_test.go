package dp

import (
	"math"
	"strings"
	"testing"

	"github.com/privalytics/privalytics"
)

func TestUnitsAreExactForDecimalInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v        float64
		up, down int64
	}{
		{1, 1e9, 1e9}, {31, 31e9, 31e9}, {0.1, 1e8, 1e8}, {1e-4, 1e5, 1e5},
		{1.0000000001, 1000000001, 1000000000}, {0.3, 3e8, 3e8}, {0, 0, 0},
	}
	for _, tt := range tests {
		if got := Up(tt.v, EpsilonDigits); got != tt.up {
			t.Errorf("Up(%v) = %d, want %d", tt.v, got, tt.up)
		}
		if got := Down(tt.v, EpsilonDigits); got != tt.down {
			t.Errorf("Down(%v) = %d, want %d", tt.v, got, tt.down)
		}
	}
	if Up(1e-6, DeltaDigits) != 1e9 {
		t.Errorf("δ 1e-6 is not 1e9 units")
	}
}

// TestCheckCostKeepsUnitsInRange: every cost CheckCost lets through converts
// to units that fit an int64 without saturating, and the ones past the range
// are refused with a message that says what to change.
func TestCheckCostKeepsUnitsInRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cost privalytics.Cost
		ok   bool
		says string
	}{
		{"zero", privalytics.Cost{}, true, ""},
		{"largest ε", privalytics.Cost{Epsilon: MaxEpsilon}, true, ""},
		{"ε past the largest budget", privalytics.Cost{Epsilon: math.Nextafter(MaxEpsilon, 2e6)}, false, "smaller epsilon"},
		{"δ just below 1", privalytics.Cost{Delta: math.Nextafter(1, 0)}, true, ""},
		{"δ 1", privalytics.Cost{Delta: 1}, false, "[0, 1)"},
		{"ρ of Laplace ε 4290", privalytics.Cost{Epsilon: 4290, Rho: 4290 * 4290 / 2.0}, true, ""},
		{"ρ of Laplace ε 4300", privalytics.Cost{Epsilon: 4300, Rho: 4300 * 4300 / 2.0}, false, "epsilon below 4294"},
		{"largest ρ", privalytics.Cost{Rho: MaxRho}, true, ""},
		{"NaN ε", privalytics.Cost{Epsilon: math.NaN()}, false, "ε must be"},
		{"infinite ρ", privalytics.Cost{Rho: math.Inf(1)}, false, "ρ must be"},
		{"negative δ", privalytics.Cost{Delta: -1e-9}, false, "δ must be"},
	}
	for _, tt := range tests {
		err := CheckCost(tt.cost)
		if (err == nil) != tt.ok {
			t.Errorf("%s: CheckCost(%+v) = %v, want ok=%v", tt.name, tt.cost, err, tt.ok)
			continue
		}
		if err != nil {
			if privalytics.ErrorCode(err) != privalytics.EINVALID || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("%s: %v, want EINVALID saying %q", tt.name, err, tt.says)
			}
			continue
		}
		u := UnitsUp(tt.cost)
		if u.Eps == math.MaxInt64 || u.Delta == math.MaxInt64 || u.Rho == math.MaxInt64 {
			t.Errorf("%s: %+v saturates its units: %+v", tt.name, tt.cost, u)
		}
	}
}

func TestPlusSaturatesAndMinusStopsAtZero(t *testing.T) {
	t.Parallel()
	big := Units{Eps: math.MaxInt64 - 1, Delta: 5, Rho: math.MaxInt64}
	if got := big.Plus(Units{Eps: 2, Delta: 1, Rho: 1}); got != (Units{Eps: math.MaxInt64, Delta: 6, Rho: math.MaxInt64}) {
		t.Errorf("Plus = %+v", got)
	}
	if got := (Units{Eps: 3, Delta: 3, Rho: 3}).Minus(Units{Eps: 1, Delta: 3, Rho: 5}); got != (Units{Eps: 2}) {
		t.Errorf("Minus = %+v", got)
	}
}

func TestCheckGrantStopsAtTheLargestBudget(t *testing.T) {
	t.Parallel()
	total := UnitsDown(privalytics.Cost{Epsilon: 999_999, Delta: 0.5})
	if u, err := CheckGrant(privalytics.Cost{Epsilon: 1, Delta: 0.25}, total); err != nil || u != (Units{Eps: 1e9, Delta: 25e13}) {
		t.Errorf("grant of ε 1 up to 1e6: %+v %v", u, err)
	}
	if _, err := CheckGrant(privalytics.Cost{Epsilon: 1.000000001}, total); privalytics.ErrorCode(err) != privalytics.EINVALID || !strings.Contains(err.Error(), "at most ε 1") {
		t.Errorf("grant past 1e6: %v", err)
	}
	if _, err := CheckGrant(privalytics.Cost{Delta: 0.5}, total); privalytics.ErrorCode(err) != privalytics.EINVALID {
		t.Errorf("grant taking δ to 1: %v", err)
	}
}

// FuzzCostUnits: for any amounts CheckCost accepts, the units a charge takes
// round up and a budget's round down, by at most one unit, never saturate, and
// read back within one unit of the amount; what it refuses is EINVALID.
func FuzzCostUnits(f *testing.F) {
	f.Add(0.1, 1e-6, 0.005)
	f.Add(4290.0, 0.0, 4290.0*4290/2)
	f.Add(1e6, 0.999999999999999, 9.22e6)
	f.Add(3e-10, 3e-16, 1e-13)
	f.Add(math.Nextafter(0.3, 1), 0.0, 0.0)
	f.Fuzz(func(t *testing.T, e, d, r float64) {
		c := privalytics.Cost{Epsilon: e, Delta: d, Rho: r}
		if err := CheckCost(c); err != nil {
			if privalytics.ErrorCode(err) != privalytics.EINVALID {
				t.Fatalf("CheckCost(%+v) = %v, want EINVALID", c, err)
			}
			return
		}
		up, down := UnitsUp(c), UnitsDown(c)
		for _, x := range []struct {
			v        float64
			up, down int64
			scale    float64
		}{{e, up.Eps, down.Eps, 1e9}, {d, up.Delta, down.Delta, 1e15}, {r, up.Rho, down.Rho, 1e12}} {
			if x.up == math.MaxInt64 || x.up < x.down || x.up-x.down > 1 {
				t.Fatalf("%v: up %d, down %d", x.v, x.up, x.down)
			}
			if v := x.v * x.scale; float64(x.up) < v*(1-1e-15)-1 || float64(x.down) > v*(1+1e-15)+1 {
				t.Fatalf("%v: up %d, down %d are not around %v units", x.v, x.up, x.down, v)
			}
		}
	})
}
