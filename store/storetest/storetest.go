// Package storetest is the conformance suite of privalytics.MetaStore. Every
// implementation (SQLite, PostgreSQL) runs the same tests through Run.
package storetest

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
)

// Run runs the suite. open must return a fresh, empty store for each call.
func Run(t *testing.T, open func(t *testing.T) privalytics.MetaStore) {
	t.Run("TenantsAndKeys", func(t *testing.T) { testTenantsAndKeys(t, open(t)) })
	t.Run("ChargeRefundBudget", func(t *testing.T) { testCharge(t, open(t)) })
	t.Run("ConcurrentChargesNeverOverspend", func(t *testing.T) { testConcurrent(t, open(t)) })
	t.Run("SmallChargesCannotRoundPastTotal", func(t *testing.T) { testRounding(t, open(t)) })
	t.Run("KeyAllocations", func(t *testing.T) { testAllocations(t, open(t)) })
	t.Run("DataPeriodBudgets", func(t *testing.T) { testPeriods(t, open(t)) })
	t.Run("ZCDPAccounting", func(t *testing.T) { testZCDP(t, open(t)) })
}

func tenant(id string, eps, delta float64) *privalytics.Tenant {
	return &privalytics.Tenant{ID: id, Name: id, Schema: privalytics.DefaultRetailSchema(), Budget: privalytics.Cost{Epsilon: eps, Delta: delta},
		Purposes: []string{"analytics"}, WrappedKey: []byte("wrapped"), CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
}

func testTenantsAndKeys(t *testing.T, s privalytics.MetaStore) {
	ctx := context.Background()
	if err := s.CreateTenant(ctx, tenant("shop", 1, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTenant(ctx, tenant("shop", 1, 0)); privalytics.ErrorCode(err) != privalytics.ECONFLICT {
		t.Errorf("duplicate tenant: %v, want conflict", err)
	}
	for _, bad := range []*privalytics.Tenant{tenant("Bad ID", 1, 0), tenant("x", -1, 0), tenant("y", 1, 1.5)} {
		if err := s.CreateTenant(ctx, bad); privalytics.ErrorCode(err) != privalytics.EINVALID {
			t.Errorf("tenant %q budget %+v: %v, want invalid", bad.ID, bad.Budget, err)
		}
	}
	got, err := s.Tenant(ctx, "shop")
	if err != nil || got.Schema.Subject != "customer_id" || string(got.WrappedKey) != "wrapped" || got.Budget.Epsilon != 1 {
		t.Errorf("tenant round trip: %+v %v", got, err)
	}
	if _, err := s.Tenant(ctx, "none"); privalytics.ErrorCode(err) != privalytics.ENOTFOUND {
		t.Errorf("missing tenant: %v", err)
	}
	if err := s.CreateTenant(ctx, tenant("other", 1, 0)); err != nil {
		t.Fatal(err)
	}
	k := &privalytics.APIKey{ID: "abc", TenantID: "shop", Name: "k", Role: privalytics.RoleQuery, Hash: []byte{1, 2}, CreatedAt: time.Now().UTC()}
	if err := s.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKey(ctx, k); privalytics.ErrorCode(err) != privalytics.ECONFLICT {
		t.Errorf("duplicate key: %v", err)
	}
	if err := s.RevokeKey(ctx, "other", "abc", time.Now()); privalytics.ErrorCode(err) != privalytics.ENOTFOUND {
		t.Errorf("revoking another tenant's key: %v, want not found", err)
	}
	if err := s.RevokeKey(ctx, "shop", "abc", time.Now()); err != nil {
		t.Fatal(err)
	}
	got2, err := s.Key(ctx, "abc")
	if err != nil || got2.RevokedAt == nil || got2.Role != privalytics.RoleQuery || string(got2.Hash) != "\x01\x02" {
		t.Errorf("revoked key: %+v %v", got2, err)
	}
	keys, err := s.Keys(ctx, "shop")
	if err != nil || len(keys) != 1 {
		t.Errorf("keys of shop: %v %v", keys, err)
	}
	if keys, _ := s.Keys(ctx, "other"); len(keys) != 0 {
		t.Errorf("keys of other: %v", keys)
	}
}

func testCharge(t *testing.T, s privalytics.MetaStore) {
	ctx := context.Background()
	if err := s.CreateTenant(ctx, tenant("shop", 1, 1e-6)); err != nil {
		t.Fatal(err)
	}
	c := &privalytics.Charge{TenantID: "shop", KeyID: "k", Time: time.Now(), Fingerprint: "f", Mechanisms: "laplace count", Cost: privalytics.Cost{Epsilon: 0.75}}
	st, err := s.Charge(ctx, c)
	if err != nil || c.ID == "" {
		t.Fatalf("charge: %v", err)
	}
	if d := st.Remaining.Epsilon - 0.25; d > 1e-9 || d < -1e-9 {
		t.Errorf("remaining %v, want 0.25", st.Remaining.Epsilon)
	}
	_, err = s.Charge(ctx, &privalytics.Charge{TenantID: "shop", Cost: privalytics.Cost{Epsilon: 0.5}})
	if privalytics.ErrorCode(err) != privalytics.EBUDGET {
		t.Fatalf("over budget: %v, want budget", err)
	}
	if d := privalytics.ErrorDetails(err); d["remaining"] == nil || d["needed"] == nil {
		t.Errorf("budget error details %v, want remaining and needed", d)
	}
	if err := s.Refund(ctx, "other", c.ID); privalytics.ErrorCode(err) != privalytics.ENOTFOUND {
		t.Errorf("refund through another tenant: %v", err)
	}
	if err := s.Refund(ctx, "shop", c.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Refund(ctx, "shop", c.ID); privalytics.ErrorCode(err) != privalytics.ENOTFOUND {
		t.Errorf("second refund: %v, want not found", err)
	}
	b, _ := s.Budget(ctx, "shop")
	if b.Spent.Epsilon != 0 || b.Remaining.Epsilon != 1 {
		t.Errorf("after refund: %+v", b)
	}
	list, err := s.Charges(ctx, "shop", 0, 10)
	if err != nil || len(list) != 1 || !list[0].Refunded || list[0].Cost.Epsilon != 0.75 {
		t.Errorf("charges: %+v %v", list, err)
	}
}

// testConcurrent: 64 goroutines charge ε=1 at once against a budget of exactly k;
// exactly k succeed, in each of 100 trials.
func testConcurrent(t *testing.T, s privalytics.MetaStore) {
	ctx := context.Background()
	for trial := range 100 {
		k := 1 + trial%40
		id := fmt.Sprintf("t%d", trial)
		if err := s.CreateTenant(ctx, tenant(id, float64(k), 0)); err != nil {
			t.Fatal(err)
		}
		var ok, refused atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := s.Charge(ctx, &privalytics.Charge{TenantID: id, Time: time.Now(), Cost: privalytics.Cost{Epsilon: 1}})
				switch privalytics.ErrorCode(err) {
				case "":
					ok.Add(1)
				case privalytics.EBUDGET:
					refused.Add(1)
				default:
					t.Errorf("charge: %v", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if ok.Load() != int64(k) || refused.Load() != int64(64-k) {
			t.Fatalf("trial %d: %d charges succeeded and %d were refused, want exactly %d and %d", trial, ok.Load(), refused.Load(), k, 64-k)
		}
	}
}

// testRounding: 10,000 charges of ε=1e-4 (not exact in binary) against ε=1 can
// never take the spent total past the budget.
func testRounding(t *testing.T, s privalytics.MetaStore) {
	ctx := context.Background()
	if err := s.CreateTenant(ctx, tenant("r", 1, 0)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for range 10_050 {
		st, err := s.Charge(ctx, &privalytics.Charge{TenantID: "r", Time: time.Now(), Cost: privalytics.Cost{Epsilon: 1e-4}})
		if privalytics.ErrorCode(err) == privalytics.EBUDGET {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		n++
		if st.Spent.Epsilon > st.Total.Epsilon {
			t.Fatalf("spent %v > total %v", st.Spent.Epsilon, st.Total.Epsilon)
		}
	}
	if n > 10_000 {
		t.Errorf("%d charges of 1e-4 fit in a budget of 1", n)
	}
	if n < 10_000 {
		t.Errorf("only %d charges of 1e-4 fit in a budget of 1; rounding is stricter than it needs to be", n)
	}
}

// testAllocations: a key with an allocation spends only from it; keys without one
// share what is not allocated; allocations cannot exceed the total.
func testAllocations(t *testing.T, s privalytics.MetaStore) {
	ctx := context.Background()
	if err := s.CreateTenant(ctx, tenant("alloc", 10, 1e-5)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTenant(ctx, tenant("stranger", 1, 0)); err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct{ id, tenant string }{{"ka", "alloc"}, {"kb", "alloc"}, {"kc", "alloc"}, {"kx", "stranger"}} {
		if err := s.CreateKey(ctx, &privalytics.APIKey{ID: k.id, TenantID: k.tenant, Name: k.id, Role: privalytics.RoleQuery, Hash: []byte{1}, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	charge := func(key string, eps float64) error {
		_, err := s.Charge(ctx, &privalytics.Charge{TenantID: "alloc", KeyID: key, Time: time.Now(), Cost: privalytics.Cost{Epsilon: eps}})
		return err
	}
	if err := s.Allocate(ctx, "alloc", "ka", privalytics.Cost{Epsilon: 4}, "admin1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Allocate(ctx, "alloc", "kb", privalytics.Cost{Epsilon: 7}, "admin1"); privalytics.ErrorCode(err) != privalytics.EINVALID {
		t.Errorf("allocating 4 + 7 of 10: %v, want invalid", err)
	}
	if err := s.Allocate(ctx, "alloc", "kx", privalytics.Cost{Epsilon: 1}, "admin1"); privalytics.ErrorCode(err) != privalytics.ENOTFOUND {
		t.Errorf("allocating to another tenant's key: %v, want not found", err)
	}
	if err := s.Allocate(ctx, "alloc", "kb", privalytics.Cost{Epsilon: 3}, "admin1"); err != nil {
		t.Fatal(err)
	}
	// ka: 4 of its own. kb: 3. kc: the shared 10 − 7 = 3.
	if err := charge("ka", 3.5); err != nil {
		t.Fatal(err)
	}
	if err := charge("ka", 1); privalytics.ErrorCode(err) != privalytics.EBUDGET {
		t.Errorf("ka over its allocation: %v, want budget", err)
	}
	if err := charge("kc", 3); err != nil {
		t.Fatalf("kc spending the shared pool: %v", err)
	}
	if err := charge("kc", 0.5); privalytics.ErrorCode(err) != privalytics.EBUDGET {
		t.Errorf("kc past the shared pool: %v, want budget (kb's share must stay untouched)", err)
	}
	if err := charge("kb", 3); err != nil {
		t.Errorf("kb spending its untouched share: %v", err)
	}
	kb, err := s.KeyBudget(ctx, "alloc", "ka")
	if err != nil || kb.Shared || kb.Total.Epsilon != 4 || kb.Spent.Epsilon != 3.5 || kb.Remaining.Epsilon != 0.5 {
		t.Errorf("ka's budget: %+v %v", kb, err)
	}
	kc, err := s.KeyBudget(ctx, "alloc", "kc")
	if err != nil || !kc.Shared || kc.Total.Epsilon != 3 || kc.Remaining.Epsilon != 0 {
		t.Errorf("kc's budget: %+v %v", kc, err)
	}
	if err := s.Allocate(ctx, "alloc", "ka", privalytics.Cost{Epsilon: 3}, "admin1"); privalytics.ErrorCode(err) != privalytics.EINVALID {
		t.Errorf("shrinking ka below what it spent: %v, want invalid", err)
	}
	st, _ := s.Budget(ctx, "alloc")
	if st.Spent.Epsilon != 9.5 || st.Allocated.Epsilon != 7 || st.Spent.Epsilon > st.Total.Epsilon {
		t.Errorf("tenant status %+v", st)
	}
	// A grant raises the total and so the shared pool: kc can spend again.
	if _, err := s.Grant(ctx, "alloc", privalytics.Cost{Epsilon: -1}, "admin1"); privalytics.ErrorCode(err) != privalytics.EINVALID {
		t.Errorf("negative grant: %v, want invalid", err)
	}
	st, err = s.Grant(ctx, "alloc", privalytics.Cost{Epsilon: 2, Delta: 1e-6}, "admin1")
	if err != nil || st.Total.Epsilon != 12 || math.Abs(st.Total.Delta-1.1e-5) > 1e-18 {
		t.Fatalf("grant: %+v %v", st, err)
	}
	if err := charge("kc", 2); err != nil {
		t.Errorf("kc after a grant of 2: %v", err)
	}
	changes, err := s.BudgetChanges(ctx, "alloc", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, c := range changes {
		kinds = append(kinds, c.Kind+":"+c.KeyID)
		if c.ActorKeyID != "admin1" {
			t.Errorf("change %+v lost its actor", c)
		}
	}
	if want := []string{"grant:", "allocate:kb", "allocate:ka"}; !slices.Equal(kinds, want) {
		t.Errorf("recorded changes %v, want %v (newest first; refused changes are not recorded)", kinds, want)
	}
}

// testPeriods: with monthly budgets, each month has the whole budget; a charge
// touching several months needs room in each; refunds give back to each.
func testPeriods(t *testing.T, s privalytics.MetaStore) {
	ctx := context.Background()
	tn := tenant("monthly", 1, 0)
	tn.Period = privalytics.PeriodMonth
	if err := s.CreateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Tenant(ctx, "monthly")
	if got.Period != privalytics.PeriodMonth {
		t.Fatalf("period not stored: %q", got.Period)
	}
	charge := func(eps float64, periods ...string) (*privalytics.Charge, error) {
		c := &privalytics.Charge{TenantID: "monthly", KeyID: "k", Time: time.Now(), Cost: privalytics.Cost{Epsilon: eps}, Periods: periods}
		_, err := s.Charge(ctx, c)
		return c, err
	}
	if _, err := charge(0.5); privalytics.ErrorCode(err) != privalytics.EINVALID {
		t.Errorf("a charge without periods on a monthly tenant: %v, want invalid", err)
	}
	if _, err := charge(0.7, "2025-01", "2025-02"); err != nil {
		t.Fatal(err)
	}
	if _, err := charge(0.7, "2025-03"); err != nil {
		t.Errorf("March has its own budget: %v", err)
	}
	c, err := charge(0.3, "2025-02", "2025-03")
	if err != nil {
		t.Fatalf("0.3 more in February and March (0.7 spent of 1 each): %v", err)
	}
	_, err = charge(0.1, "2025-01", "2025-03")
	if privalytics.ErrorCode(err) != privalytics.EBUDGET || !strings.Contains(privalytics.ErrorMessage(err), "2025-03") {
		t.Errorf("March is full: %v, want budget naming 2025-03", err)
	}
	if _, err := charge(0.2, "2025-01"); err != nil {
		t.Errorf("January still has 0.3: %v", err)
	}
	if err := s.Refund(ctx, "monthly", c.ID); err != nil {
		t.Fatal(err)
	}
	st, err := s.Budget(ctx, "monthly")
	if err != nil {
		t.Fatal(err)
	}
	spent := map[string]float64{}
	for _, p := range st.Periods {
		spent[p.Period] = p.Spent.Epsilon
	}
	want := map[string]float64{"2025-01": 0.9, "2025-02": 0.7, "2025-03": 0.7}
	for p, w := range want {
		if math.Abs(spent[p]-w) > 1e-9 {
			t.Errorf("%s spent %v, want %v (all: %v)", p, spent[p], w, spent)
		}
	}
	if st.Period != privalytics.PeriodMonth || st.Total.Epsilon != 1 {
		t.Errorf("status %+v", st)
	}
	if err := s.Allocate(ctx, "monthly", "k", privalytics.Cost{Epsilon: 0.5}, "a"); privalytics.ErrorCode(err) == "" {
		t.Errorf("allocating a key share on a monthly tenant succeeded; shares are not available there")
	}
}

// testZCDP: a zCDP tenant is bounded by ρ (and half its δ for approximate parts),
// not by the sum of ε's; every charge records ρ; refunds give ρ back.
func testZCDP(t *testing.T, s privalytics.MetaStore) {
	ctx := context.Background()
	tn := tenant("z", 1, 2e-6)
	tn.Accounting, tn.Budget.Rho = privalytics.AccountingZCDP, 0.01
	if err := s.CreateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Tenant(ctx, "z"); got.Accounting != privalytics.AccountingZCDP || got.Budget.Rho != 0.01 {
		t.Fatalf("tenant round trip: %+v", got)
	}
	charge := func(eps, delta, rho float64) (*privalytics.Charge, error) {
		c := &privalytics.Charge{TenantID: "z", KeyID: "k", Time: time.Now(), Cost: privalytics.Cost{Epsilon: eps, Delta: delta, Rho: rho}}
		_, err := s.Charge(ctx, c)
		return c, err
	}
	// Ten charges of ε = 0.5 would be 5 > 1 under basic composition; in ρ they fit.
	var last *privalytics.Charge
	for i := range 10 {
		c, err := charge(0.5, 0, 0.001)
		if err != nil {
			t.Fatalf("charge %d of ρ=0.001 against ρ=0.01: %v", i, err)
		}
		last = c
	}
	if _, err := charge(0.5, 0, 0.001); privalytics.ErrorCode(err) != privalytics.EBUDGET || !strings.Contains(err.Error(), "ρ") {
		t.Errorf("the eleventh ρ=0.001: %v, want budget in ρ", err)
	}
	if err := s.Refund(ctx, "z", last.ID); err != nil {
		t.Fatal(err)
	}
	// δ for approximate parts: half of 2e-6.
	if _, err := charge(0.1, 1.5e-6, 0.0001); privalytics.ErrorCode(err) != privalytics.EBUDGET {
		t.Errorf("δ 1.5e-6 past half the δ budget: %v, want budget", err)
	}
	if _, err := charge(0.1, 1e-6, 0.0001); err != nil {
		t.Errorf("δ 1e-6, exactly half: %v", err)
	}
	st, err := s.Budget(ctx, "z")
	if err != nil || st.Accounting != privalytics.AccountingZCDP || math.Abs(st.Spent.Rho-0.0091) > 1e-12 || math.Abs(st.Remaining.Rho-0.0009) > 1e-12 || st.Remaining.Delta != 0 {
		t.Errorf("status %+v %v", st, err)
	}
	list, _ := s.Charges(ctx, "z", 0, 1)
	if len(list) != 1 || list[0].Cost.Rho != 0.0001 {
		t.Errorf("the ledger row lost ρ: %+v", list)
	}
}
