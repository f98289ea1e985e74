// Package storetest is the conformance suite of privalytics.MetaStore: the
// behaviour every implementation (store/sqlite, store/postgres) must share,
// above all the ledger's promises — a concurrent burst of charges never spends
// past the budget, no sequence of small charges rounds past it, a refund gives
// back exactly what was taken, and what was charged survives a restart.
//
// An implementation's test calls Run with a function that opens a fresh, empty
// store, and RunReopen with one that reopens the same storage.
package storetest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

// Run runs the suite. open must return a fresh, empty store on each call and
// close it when t ends; subtests call it in parallel.
func Run(t *testing.T, open func(t *testing.T) privalytics.MetaStore) {
	tests := []struct {
		name string
		run  func(*testing.T, privalytics.MetaStore)
	}{
		{"Tenants", testTenants},
		{"TenantValidation", testTenantValidation},
		{"Keys", testKeys},
		{"ChargeRefundBudget", testCharge},
		{"ChargeValidation", testChargeValidation},
		{"ConcurrentChargesNeverOverspend", testConcurrent},
		{"SmallChargesCannotRoundPastTotal", testRounding},
		{"KeyAllocations", testAllocations},
		{"DataPeriodBudgets", testPeriods},
		{"ZCDPAccounting", testZCDP},
		{"Consents", testConsents},
		{"Retention", testRetention},
		{"LedgerExtremes", testExtremes},
		{"ChargesOfOneKey", testChargesOfOneKey},
		{"PreCheckAgreesWithLedger", testPreCheckAgrees},
		{"Views", testViews},
		{"ViewReservations", testViewReservations},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, open(t))
		})
	}
}

// RunReopen checks that tenants, keys and the ledger survive Close and a new
// open. open must return a store over the same storage every time it is called
// (empty on the first call); RunReopen closes each store it opens, so a Close
// that open also registers with t.Cleanup must be harmless the second time.
func RunReopen(t *testing.T, open func(t *testing.T) privalytics.MetaStore) {
	ctx := context.Background()
	s := open(t)
	tn := tenant("durable", 2, 1e-6)
	mustCreate(t, s, tn)
	key := &privalytics.APIKey{ID: "k1", TenantID: "durable", Name: "dashboard", Role: privalytics.RoleQuery, Hash: []byte{7, 7}, CreatedAt: at(0)}
	if err := s.CreateKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeKey(ctx, "durable", "k1", at(5)); err != nil {
		t.Fatal(err)
	}
	var refunded string
	for i := range 5 {
		c := &privalytics.Charge{TenantID: "durable", KeyID: "k1", Time: at(i), Fingerprint: fmt.Sprint("q", i), Mechanisms: "laplace count", Cost: privalytics.Cost{Epsilon: 0.3, Delta: 1e-7}}
		if _, err := s.Charge(ctx, c); err != nil {
			t.Fatal(err)
		}
		refunded = c.ID
	}
	if err := s.Refund(ctx, "durable", refunded); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, s, "durable", "k1")
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	s = open(t)
	defer s.Close()
	after := snapshot(t, s, "durable", "k1")
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("after close and reopen (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(privalytics.Cost{Epsilon: 1.2, Delta: 4e-7}, after.Budget.Spent, approx); diff != "" {
		t.Errorf("spent after four kept charges of (0.3, 1e-7) and one refund (-want +got):\n%s", diff)
	}
	// The reopened ledger still refuses what does not fit: 0.8 is left.
	if _, err := s.Charge(ctx, &privalytics.Charge{TenantID: "durable", Time: at(9), Cost: privalytics.Cost{Epsilon: 0.9}}); privalytics.ErrorCode(err) != privalytics.EBUDGET {
		t.Errorf("charging 0.9 of the 0.8 left after reopening: %v, want budget", err)
	}
}

// state is what a store reports about one tenant, for comparing across reopening.
type state struct {
	Tenant  *privalytics.Tenant
	Key     *privalytics.APIKey
	Budget  privalytics.BudgetStatus
	Charges []privalytics.Charge
}

func snapshot(t *testing.T, s privalytics.MetaStore, tenantID, keyID string) state {
	t.Helper()
	ctx := context.Background()
	var st state
	var err error
	if st.Tenant, err = s.Tenant(ctx, tenantID); err != nil {
		t.Fatal(err)
	}
	if st.Key, err = s.Key(ctx, keyID); err != nil {
		t.Fatal(err)
	}
	if st.Budget, err = s.Budget(ctx, tenantID); err != nil {
		t.Fatal(err)
	}
	if st.Charges, err = s.Charges(ctx, tenantID, "", 0, 100); err != nil {
		t.Fatal(err)
	}
	return st
}

// approx compares ledger figures read back from integer units: relative 1e-9
// is far below one unit of any amount the tests use, far above float noise.
var approx = cmpopts.EquateApprox(1e-9, 0)

// base is a fixed instant; at(i) is i seconds later, truncated to what every
// store keeps (PostgreSQL: microseconds).
var base = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }

func tenant(id string, eps, delta float64) *privalytics.Tenant {
	return &privalytics.Tenant{ID: id, Name: "Shop " + id, Schema: privalytics.DefaultRetailSchema(), Budget: privalytics.Cost{Epsilon: eps, Delta: delta},
		Purposes: []string{"analytics"}, WrappedKey: []byte("wrapped"), CreatedAt: base}
}

func mustCreate(t *testing.T, s privalytics.MetaStore, tn *privalytics.Tenant) {
	t.Helper()
	if err := s.CreateTenant(context.Background(), tn); err != nil {
		t.Fatalf("create tenant %s: %v", tn.ID, err)
	}
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := privalytics.ErrorCode(err); got != code {
		t.Errorf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
}

// ledgerAddsUp checks the ledger's central invariant: the tenant's spent total
// is the sum of its charges that were not refunded, to the unit.
func ledgerAddsUp(t *testing.T, s privalytics.MetaStore, tenantID string) privalytics.BudgetStatus {
	t.Helper()
	ctx := context.Background()
	st, err := s.Budget(ctx, tenantID)
	if err != nil {
		t.Fatal(err)
	}
	var eps, delta int64
	for offset := 0; ; offset += 1000 {
		page, err := s.Charges(ctx, tenantID, "", offset, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page {
			if !c.Refunded {
				eps += int64(math.Round(c.Cost.Epsilon * 1e9))
				delta += int64(math.Round(c.Cost.Delta * 1e15))
			}
		}
		if len(page) < 1000 {
			break
		}
	}
	if got := int64(math.Round(st.Spent.Epsilon * 1e9)); got != eps {
		t.Errorf("tenant %s: spent ε is %d units but its unrefunded charges add up to %d", tenantID, got, eps)
	}
	if got := int64(math.Round(st.Spent.Delta * 1e15)); got != delta {
		t.Errorf("tenant %s: spent δ is %d units but its unrefunded charges add up to %d", tenantID, got, delta)
	}
	return st
}

func testTenants(t *testing.T, s privalytics.MetaStore) {
	ctx := context.Background()
	for _, id := range []string{"shop-b", "shop-a", "9-shop"} {
		mustCreate(t, s, tenant(id, 1, 1e-6))
	}
	got, err := s.Tenant(ctx, "shop-a")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tenant("shop-a", 1, 1e-6), got, approx); diff != "" {
		t.Errorf("tenant round trip (-want +got):\n%s", diff)
	}

	dup := tenant("shop-a", 5, 0)
	dup.Name = "Impostor"
	wantCode(t, "creating a tenant whose ID is taken", s.CreateTenant(ctx, dup), privalytics.ECONFLICT)
	if got, _ := s.Tenant(ctx, "shop-a"); got == nil || got.Name != "Shop shop-a" || got.Budget.Epsilon != 1 {
		t.Errorf("a refused duplicate changed the tenant: %+v", got)
	}

	_, err = s.Tenant(ctx, "no-such-shop")
	wantCode(t, "reading an unknown tenant", err, privalytics.ENOTFOUND)

	all, err := s.Tenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tn := range all {
		ids = append(ids, tn.ID)
	}
	if diff := cmp.Diff([]string{"9-shop", "shop-a", "shop-b"}, ids); diff != "" {
		t.Errorf("Tenants lists by ID (-want +got):\n%s", diff)
	}
}

func testTenantValidation(t *testing.T, s privalytics.MetaStore) {
	ctx := context.Background()
	tests := []struct {
		name   string
		tenant *privalytics.Tenant
		want   string // in the message, so the user knows what to change
	}{
		{"upper case ID", tenant("Shop", 1, 0), "id"},
		{"ID with a space", tenant("my shop", 1, 0), "id"},
		{"ID starting with -", tenant("-shop", 1, 0), "id"},
		{"ID of 64 characters", tenant(strings.Repeat("a", 64), 1, 0), "id"},
		{"empty ID", tenant("", 1, 0), "id"},
		{"ε = 0", tenant("eps-zero", 0, 0), "epsilon"},
		{"negative ε", tenant("eps-neg", -1, 0), "epsilon"},
		{"infinite ε", tenant("eps-inf", math.Inf(1), 0), "epsilon"},
		{"NaN ε", tenant("eps-nan", math.NaN(), 0), "epsilon"},
		{"negative δ", tenant("delta-neg", 1, -1e-9), "delta"},
		{"δ = 1", tenant("delta-one", 1, 1), "delta"},
		{"NaN δ", tenant("delta-nan", 1, math.NaN()), "delta"},
		{"invalid schema", func() *privalytics.Tenant {
			tn := tenant("bad-schema", 1, 0)
			tn.Schema.Subject = "nobody"
			return tn
		}(), "nobody"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.CreateTenant(ctx, tt.tenant)
			wantCode(t, "CreateTenant", err, privalytics.EINVALID)
			if !strings.Contains(privalytics.ErrorMessage(err), tt.want) {
				t.Errorf("message %q does not mention %q", privalytics.ErrorMessage(err), tt.want)
			}
			if _, err := s.Tenant(ctx, tt.tenant.ID); privalytics.ErrorCode(err) != privalytics.ENOTFOUND {
				t.Errorf("a refused tenant was stored: %v", err)
			}
		})
	}
}

func testKeys(t *testing.T, s privalytics.MetaStore) {
	ctx := context.Background()
	mustCreate(t, s, tenant("shop", 1, 0))
	mustCreate(t, s, tenant("other", 1, 0))
	// CreatedAt values whose RFC 3339 text does not sort in time order
	// ("…:00Z" after "…:00.5Z"), listed out of order.
	keys := []*privalytics.APIKey{
		{ID: "k-late", TenantID: "shop", Name: "ingest", Role: privalytics.RoleIngest, Hash: []byte{3}, CreatedAt: at(1)},
		{ID: "k-first", TenantID: "shop", Name: "admin", Role: privalytics.RoleAdmin, Hash: []byte{1}, CreatedAt: at(0)},
		{ID: "k-half", TenantID: "shop", Name: "dashboard", Role: privalytics.RoleQuery, Hash: []byte{2}, CreatedAt: at(0).Add(500 * time.Millisecond)},
		{ID: "k-other", TenantID: "other", Name: "admin", Role: privalytics.RoleAdmin, Hash: []byte{4}, CreatedAt: at(0)},
		{ID: "k-operator", TenantID: "", Name: "operator", Role: privalytics.RoleAdmin, Hash: []byte{5}, CreatedAt: at(0)},
	}
	for _, k := range keys {
		if err := s.CreateKey(ctx, k); err != nil {
			t.Fatalf("create key %s: %v", k.ID, err)
		}
	}
	got, err := s.Key(ctx, "k-half")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(keys[2], got); diff != "" {
		t.Errorf("key round trip (-want +got):\n%s", diff)
	}
	_, err = s.Key(ctx, "k-none")
	wantCode(t, "reading an unknown key", err, privalytics.ENOTFOUND)
	wantCode(t, "creating a key whose ID is taken", s.CreateKey(ctx, &privalytics.APIKey{ID: "k-first", TenantID: "other", Role: privalytics.RoleQuery, Hash: []byte{9}, CreatedAt: at(2)}), privalytics.ECONFLICT)
	wantCode(t, "creating a key with an unknown role", s.CreateKey(ctx, &privalytics.APIKey{ID: "k-bad", TenantID: "shop", Role: "owner", Hash: []byte{9}, CreatedAt: at(2)}), privalytics.EINVALID)

	listed := map[string][]string{}
	for _, tenantID := range []string{"shop", "other", "", "nobody"} {
		ks, err := s.Keys(ctx, tenantID)
		if err != nil {
			t.Fatal(err)
		}
		listed[tenantID] = []string{}
		for _, k := range ks {
			listed[tenantID] = append(listed[tenantID], k.ID)
		}
	}
	want := map[string][]string{"shop": {"k-first", "k-half", "k-late"}, "other": {"k-other"}, "": {"k-operator"}, "nobody": {}}
	if diff := cmp.Diff(want, listed); diff != "" {
		t.Errorf("keys per tenant, oldest first (-want +got):\n%s", diff)
	}

	// One tenant cannot revoke, or learn of, another's key.
	wantCode(t, "revoking another tenant's key", s.RevokeKey(ctx, "other", "k-half", at(3)), privalytics.ENOTFOUND)
	wantCode(t, "revoking an operator key as a tenant", s.RevokeKey(ctx, "shop", "k-operator", at(3)), privalytics.ENOTFOUND)
	wantCode(t, "revoking an unknown key", s.RevokeKey(ctx, "shop", "k-none", at(3)), privalytics.ENOTFOUND)
	if k, _ := s.Key(ctx, "k-half"); k == nil || k.RevokedAt != nil {
		t.Errorf("a refused revocation revoked the key: %+v", k)
	}
	if err := s.RevokeKey(ctx, "shop", "k-half", at(4)); err != nil {
		t.Fatal(err)
	}
	got, err = s.Key(ctx, "k-half")
	if err != nil {
		t.Fatal(err)
	}
	revoked := *keys[2]
	revoked.RevokedAt = new(at(4))
	if diff := cmp.Diff(&revoked, got); diff != "" {
		t.Errorf("revoked key (-want +got):\n%s", diff)
	}
	if k, _ := s.Key(ctx, "k-first"); k == nil || k.RevokedAt != nil {
		t.Errorf("revoking k-half revoked k-first too: %+v", k)
	}
}

func testCharge(t *testing.T, s privalytics.MetaStore) {
	ctx := context.Background()
	mustCreate(t, s, tenant("shop", 1, 1e-6))
	mustCreate(t, s, tenant("other", 1, 1e-6))

	c := &privalytics.Charge{TenantID: "shop", KeyID: "k", Time: at(1), Fingerprint: "f1", Mechanisms: "laplace count", Cost: privalytics.Cost{Epsilon: 0.75}}
	st, err := s.Charge(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.ID) != 32 || strings.Trim(c.ID, "0123456789abcdef") != "" {
		t.Errorf("charge ID %q, want 32 lower-case hex digits (128 random bits)", c.ID)
	}
	want := privalytics.BudgetStatus{TenantID: "shop", Total: privalytics.Cost{Epsilon: 1, Delta: 1e-6}, Spent: privalytics.Cost{Epsilon: 0.75}, Remaining: privalytics.Cost{Epsilon: 0.25, Delta: 1e-6}}
	if diff := cmp.Diff(want, st, approx); diff != "" {
		t.Errorf("status after charging 0.75 of 1 (-want +got):\n%s", diff)
	}
	if got, _ := s.Budget(ctx, "shop"); !cmp.Equal(want, got, approx) {
		t.Errorf("Budget disagrees with what Charge returned: %+v", got)
	}

	over := &privalytics.Charge{TenantID: "shop", KeyID: "k", Time: at(2), Cost: privalytics.Cost{Epsilon: 0.5}}
	_, err = s.Charge(ctx, over)
	wantCode(t, "charging 0.5 when 0.25 is left", err, privalytics.EBUDGET)
	if got, want := privalytics.ErrorMessage(err), "this query needs ε 0.5 but only ε 0.25 of this tenant's privacy budget remains; ask the tenant admin for more budget or use a smaller epsilon"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	wantDetails := map[string]any{"remaining": privalytics.Cost{Epsilon: 0.25, Delta: 1e-6}, "needed": privalytics.Cost{Epsilon: 0.5}}
	if diff := cmp.Diff(wantDetails, privalytics.ErrorDetails(err), approx); diff != "" {
		t.Errorf("budget error details (-want +got):\n%s", diff)
	}
	if over.ID != "" {
		t.Errorf("a refused charge got ID %q; nothing was recorded", over.ID)
	}
	_, err = s.Charge(ctx, &privalytics.Charge{TenantID: "shop", Time: at(2), Cost: privalytics.Cost{Epsilon: 0.1, Delta: 2e-6}})
	wantCode(t, "charging δ=2e-6 when 1e-6 is left", err, privalytics.EBUDGET)
	_, err = s.Charge(ctx, &privalytics.Charge{TenantID: "no-such-shop", Time: at(2), Cost: privalytics.Cost{Epsilon: 0.1}})
	wantCode(t, "charging an unknown tenant", err, privalytics.ENOTFOUND)
	_, err = s.Budget(ctx, "no-such-shop")
	wantCode(t, "the budget of an unknown tenant", err, privalytics.ENOTFOUND)

	wantCode(t, "refunding through another tenant", s.Refund(ctx, "other", c.ID), privalytics.ENOTFOUND)
	wantCode(t, "refunding an unknown charge", s.Refund(ctx, "shop", "00000000000000000000000000000000"), privalytics.ENOTFOUND)
	if err := s.Refund(ctx, "shop", c.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "refunding the same charge twice", s.Refund(ctx, "shop", c.ID), privalytics.ENOTFOUND)
	st = ledgerAddsUp(t, s, "shop")
	want = privalytics.BudgetStatus{TenantID: "shop", Total: privalytics.Cost{Epsilon: 1, Delta: 1e-6}, Remaining: privalytics.Cost{Epsilon: 1, Delta: 1e-6}}
	if diff := cmp.Diff(want, st, approx); diff != "" {
		t.Errorf("after the refund (-want +got):\n%s", diff)
	}
	if other, _ := s.Budget(ctx, "other"); other.Spent != (privalytics.Cost{}) {
		t.Errorf("another tenant's budget moved: %+v", other)
	}

	// What the refund gave back can be spent: the whole budget, exactly.
	c2 := &privalytics.Charge{TenantID: "shop", KeyID: "k", Time: at(3), Fingerprint: "f2", Mechanisms: "gaussian sum", Cost: privalytics.Cost{Epsilon: 1, Delta: 1e-6}}
	if _, err := s.Charge(ctx, c2); err != nil {
		t.Fatalf("charging the whole budget after the refund: %v", err)
	}
	c3 := &privalytics.Charge{TenantID: "shop", KeyID: "k", Time: at(4), Fingerprint: "f3", Mechanisms: "free", Cost: privalytics.Cost{}}
	if _, err := s.Charge(ctx, c3); err != nil {
		t.Fatalf("a zero charge on a spent budget: %v", err)
	}
	st = ledgerAddsUp(t, s, "shop")
	if st.Remaining != (privalytics.Cost{}) {
		t.Errorf("remaining %+v, want zero", st.Remaining)
	}

	list, err := s.Charges(ctx, "shop", "", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	wantList := []privalytics.Charge{
		{ID: c3.ID, TenantID: "shop", KeyID: "k", Time: at(4), Fingerprint: "f3", Mechanisms: "free"},
		{ID: c2.ID, TenantID: "shop", KeyID: "k", Time: at(3), Fingerprint: "f2", Mechanisms: "gaussian sum", Cost: privalytics.Cost{Epsilon: 1, Delta: 1e-6}},
		{ID: c.ID, TenantID: "shop", KeyID: "k", Time: at(1), Fingerprint: "f1", Mechanisms: "laplace count", Cost: privalytics.Cost{Epsilon: 0.75}, Refunded: true},
	}
	if diff := cmp.Diff(wantList, list, approx, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("charges, newest first (-want +got):\n%s", diff)
	}
	page, err := s.Charges(ctx, "shop", "", 1, 1)
	if err != nil || len(page) != 1 || page[0].ID != c2.ID {
		t.Errorf("Charges(offset 1, limit 1) = %+v %v, want only the middle charge", page, err)
	}
	if list, _ := s.Charges(ctx, "other", "", 0, 10); len(list) != 0 {
		t.Errorf("another tenant's charges: %+v", list)
	}
}

func testChargeValidation(t *testing.T, s privalytics.MetaStore) {
	ctx := context.Background()
	mustCreate(t, s, tenant("shop", 1e6, 0.5))
	tests := []struct {
		name string
		cost privalytics.Cost
	}{
		{"negative ε", privalytics.Cost{Epsilon: -1}},
		{"NaN ε", privalytics.Cost{Epsilon: math.NaN()}},
		{"infinite ε", privalytics.Cost{Epsilon: math.Inf(1)}},
		{"negative δ", privalytics.Cost{Epsilon: 0.1, Delta: -1e-9}},
		{"δ = 1", privalytics.Cost{Epsilon: 0.1, Delta: 1}},
		{"NaN δ", privalytics.Cost{Epsilon: 0.1, Delta: math.NaN()}},
		// ρ is recorded for every tenant and binds a zCDP tenant; a negative
		// one would give budget back, an infinite one must not count as 0.
		{"negative ρ", privalytics.Cost{Epsilon: 0.1, Rho: -0.01}},
		{"NaN ρ", privalytics.Cost{Epsilon: 0.1, Rho: math.NaN()}},
		{"infinite ρ", privalytics.Cost{Epsilon: 0.1, Rho: math.Inf(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Charge(ctx, &privalytics.Charge{TenantID: "shop", Time: at(0), Cost: tt.cost})
			wantCode(t, fmt.Sprintf("charging %+v", tt.cost), err, privalytics.EINVALID)
		})
	}
	if list, _ := s.Charges(ctx, "shop", "", 0, 10); len(list) != 0 {
		t.Errorf("refused charges were recorded: %+v", list)
	}
}

// testConcurrent: 64 goroutines charge at once against a budget that fits
// exactly k of them; exactly k succeed, in every trial. A store that reads the
// spent total and writes it back in two steps fails this within a few trials.
func testConcurrent(t *testing.T, s privalytics.MetaStore) {
	const racers = 64
	tests := []struct {
		name           string
		budget, charge float64
		k, trials      int
	}{
		{"k=17", 17, 1, 17, 100},
		{"k=1", 1, 1, 1, 20},
		{"k=63", 63, 1, 63, 20},
		{"k=64, all fit", 64, 1, 64, 10},
		{"k=17 in tenths", 1.7, 0.1, 17, 20}, // 0.1 and 1.7 are not exact in binary
	}
	ctx := context.Background()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for trial := range tt.trials {
				id := fmt.Sprintf("race-%d-%d", i, trial)
				mustCreate(t, s, tenant(id, tt.budget, 0))
				var ok, refused atomic.Int64
				var wg sync.WaitGroup
				start := make(chan struct{})
				for range racers {
					wg.Go(func() {
						<-start
						_, err := s.Charge(ctx, &privalytics.Charge{TenantID: id, Time: time.Now(), Cost: privalytics.Cost{Epsilon: tt.charge}})
						switch privalytics.ErrorCode(err) {
						case "":
							ok.Add(1)
						case privalytics.EBUDGET:
							refused.Add(1)
						default:
							t.Errorf("charge: %v", err)
						}
					})
				}
				close(start)
				wg.Wait()
				if ok.Load() != int64(tt.k) || refused.Load() != int64(racers-tt.k) {
					t.Fatalf("trial %d: %d charges succeeded and %d were refused, want exactly %d and %d", trial, ok.Load(), refused.Load(), tt.k, racers-tt.k)
				}
				st := ledgerAddsUp(t, s, id)
				if diff := cmp.Diff(float64(tt.k)*tt.charge, st.Spent.Epsilon, approx); diff != "" {
					t.Fatalf("trial %d: spent ε (-want +got):\n%s", trial, diff)
				}
			}
		})
	}
}

// testRounding: charges that are not exact in binary, or smaller than one unit,
// can never take the spent total past the budget — and the budget is not made
// stricter than it needs to be either: exactly `fit` charges succeed.
func testRounding(t *testing.T, s privalytics.MetaStore) {
	tests := []struct {
		name           string
		budget, charge privalytics.Cost
		attempts, fit  int
	}{
		{"10^4 charges of ε=1e-4 against 1", privalytics.Cost{Epsilon: 1}, privalytics.Cost{Epsilon: 1e-4}, 10_050, 10_000},
		{"ε=0.1 against 1", privalytics.Cost{Epsilon: 1}, privalytics.Cost{Epsilon: 0.1}, 15, 10},
		// The float just above 0.3 is 0.30000000000000004, what 0.1+0.2 gives at
		// run time: it costs 300000001 units, so three do not fit in 0.9.
		{"ε=0.30000000000000004 against 0.9", privalytics.Cost{Epsilon: 0.9}, privalytics.Cost{Epsilon: math.Nextafter(0.3, 1)}, 5, 2},
		// Below one unit (1e-9) a charge costs a whole unit, never nothing.
		{"ε=3e-10 against 1e-8", privalytics.Cost{Epsilon: 1e-8}, privalytics.Cost{Epsilon: 3e-10}, 50, 10},
		{"δ=1e-7 against 1e-6", privalytics.Cost{Epsilon: 1, Delta: 1e-6}, privalytics.Cost{Delta: 1e-7}, 15, 10},
		{"δ=3e-16 against 1e-14", privalytics.Cost{Epsilon: 1, Delta: 1e-14}, privalytics.Cost{Delta: 3e-16}, 50, 10},
	}
	ctx := context.Background()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("round-%d", i)
			mustCreate(t, s, tenant(id, tt.budget.Epsilon, tt.budget.Delta))
			n := 0
			for range tt.attempts {
				st, err := s.Charge(ctx, &privalytics.Charge{TenantID: id, Time: time.Now(), Cost: tt.charge})
				if privalytics.ErrorCode(err) == privalytics.EBUDGET {
					continue
				} else if err != nil {
					t.Fatal(err)
				}
				n++
				if st.Spent.Epsilon > st.Total.Epsilon || st.Spent.Delta > st.Total.Delta {
					t.Fatalf("after %d charges: spent %+v > total %+v", n, st.Spent, st.Total)
				}
			}
			if n != tt.fit {
				t.Errorf("%d charges of %+v fit in %+v, want exactly %d", n, tt.charge, tt.budget, tt.fit)
			}
			st := ledgerAddsUp(t, s, id)
			if st.Spent.Epsilon > st.Total.Epsilon || st.Spent.Delta > st.Total.Delta || st.Remaining.Epsilon < 0 || st.Remaining.Delta < 0 {
				t.Errorf("final status %+v spends past the total", st)
			}
		})
	}
}

// testAllocations: a key with an allocation spends only from it; keys without one
// share what is not allocated; allocations cannot exceed the total.
func testAllocations(t *testing.T, s privalytics.MetaStore) {
	ctx := context.Background()
	mustCreate(t, s, tenant("alloc", 10, 1e-5))
	mustCreate(t, s, tenant("stranger", 1, 0))
	for _, k := range []struct{ id, tenant string }{{"ka", "alloc"}, {"kb", "alloc"}, {"kc", "alloc"}, {"kx", "stranger"}} {
		if err := s.CreateKey(ctx, &privalytics.APIKey{ID: k.id, TenantID: k.tenant, Name: k.id, Role: privalytics.RoleQuery, Hash: []byte{1}, CreatedAt: at(0)}); err != nil {
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
	wantCode(t, "allocating 4 + 7 of 10", s.Allocate(ctx, "alloc", "kb", privalytics.Cost{Epsilon: 7}, "admin1"), privalytics.EINVALID)
	wantCode(t, "allocating to another tenant's key", s.Allocate(ctx, "alloc", "kx", privalytics.Cost{Epsilon: 1}, "admin1"), privalytics.ENOTFOUND)
	if err := s.Allocate(ctx, "alloc", "kb", privalytics.Cost{Epsilon: 3}, "admin1"); err != nil {
		t.Fatal(err)
	}
	// ka: 4 of its own. kb: 3. kc: the shared 10 − 7 = 3.
	if err := charge("ka", 3.5); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "ka over its allocation", charge("ka", 1), privalytics.EBUDGET)
	if err := charge("kc", 3); err != nil {
		t.Fatalf("kc spending the shared pool: %v", err)
	}
	wantCode(t, "kc past the shared pool (kb's share must stay untouched)", charge("kc", 0.5), privalytics.EBUDGET)
	if err := charge("kb", 3); err != nil {
		t.Errorf("kb spending its untouched share: %v", err)
	}
	kb, err := s.KeyBudget(ctx, "alloc", "ka")
	if diff := cmp.Diff(privalytics.KeyBudget{KeyID: "ka", Total: privalytics.Cost{Epsilon: 4}, Spent: privalytics.Cost{Epsilon: 3.5}, Remaining: privalytics.Cost{Epsilon: 0.5}}, kb, approx); err != nil || diff != "" {
		t.Errorf("ka's budget (%v) (-want +got):\n%s", err, diff)
	}
	kc, err := s.KeyBudget(ctx, "alloc", "kc")
	if diff := cmp.Diff(privalytics.KeyBudget{KeyID: "kc", Shared: true, Total: privalytics.Cost{Epsilon: 3, Delta: 1e-5}, Spent: privalytics.Cost{Epsilon: 3}, Remaining: privalytics.Cost{Delta: 1e-5}}, kc, approx); err != nil || diff != "" {
		t.Errorf("kc's budget (%v) (-want +got):\n%s", err, diff)
	}
	wantCode(t, "shrinking ka below what it spent", s.Allocate(ctx, "alloc", "ka", privalytics.Cost{Epsilon: 3}, "admin1"), privalytics.EINVALID)
	st := ledgerAddsUp(t, s, "alloc")
	if st.Spent.Epsilon != 9.5 || st.Allocated.Epsilon != 7 || st.Spent.Epsilon > st.Total.Epsilon {
		t.Errorf("tenant status %+v", st)
	}
	// A grant raises the total and so the shared pool: kc can spend again.
	_, err = s.Grant(ctx, "alloc", privalytics.Cost{Epsilon: -1}, "admin1")
	wantCode(t, "a negative grant", err, privalytics.EINVALID)
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
	mustCreate(t, s, tn)
	got, _ := s.Tenant(ctx, "monthly")
	if got == nil || got.Period != privalytics.PeriodMonth {
		t.Fatalf("period not stored: %+v", got)
	}
	charge := func(eps float64, periods ...string) (*privalytics.Charge, error) {
		c := &privalytics.Charge{TenantID: "monthly", KeyID: "k", Time: time.Now(), Cost: privalytics.Cost{Epsilon: eps}, Periods: periods}
		_, err := s.Charge(ctx, c)
		return c, err
	}
	_, err := charge(0.5)
	wantCode(t, "a charge without periods on a monthly tenant", err, privalytics.EINVALID)
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
	wantCode(t, "March is full", err, privalytics.EBUDGET)
	if !strings.Contains(privalytics.ErrorMessage(err), "2025-03") {
		t.Errorf("message %q does not name the full month 2025-03", privalytics.ErrorMessage(err))
	}
	if _, err := charge(0.2, "2025-01"); err != nil {
		t.Errorf("January still has 0.3: %v", err)
	}
	if err := s.Refund(ctx, "monthly", c.ID); err != nil {
		t.Fatal(err)
	}
	st := ledgerAddsUp(t, s, "monthly")
	spent := map[string]float64{}
	for _, p := range st.Periods {
		spent[p.Period] = p.Spent.Epsilon
	}
	if diff := cmp.Diff(map[string]float64{"2025-01": 0.9, "2025-02": 0.7, "2025-03": 0.7}, spent, approx); diff != "" {
		t.Errorf("spent per month after the refund (-want +got):\n%s", diff)
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
	mustCreate(t, s, tn)
	if got, _ := s.Tenant(ctx, "z"); got == nil || got.Accounting != privalytics.AccountingZCDP || got.Budget.Rho != 0.01 {
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
	_, err := charge(0.5, 0, 0.001)
	wantCode(t, "the eleventh ρ=0.001", err, privalytics.EBUDGET)
	if !strings.Contains(privalytics.ErrorMessage(err), "ρ") {
		t.Errorf("message %q does not speak of ρ", privalytics.ErrorMessage(err))
	}
	if err := s.Refund(ctx, "z", last.ID); err != nil {
		t.Fatal(err)
	}
	// δ for approximate parts: half of 2e-6.
	_, err = charge(0.1, 1.5e-6, 0.0001)
	wantCode(t, "δ 1.5e-6 past half the δ budget", err, privalytics.EBUDGET)
	if _, err := charge(0.1, 1e-6, 0.0001); err != nil {
		t.Errorf("δ 1e-6, exactly half: %v", err)
	}
	st, err := s.Budget(ctx, "z")
	if err != nil || st.Accounting != privalytics.AccountingZCDP || math.Abs(st.Spent.Rho-0.0091) > 1e-12 || math.Abs(st.Remaining.Rho-0.0009) > 1e-12 || st.Remaining.Delta != 0 {
		t.Errorf("status %+v %v", st, err)
	}
	list, _ := s.Charges(ctx, "z", "", 0, 1)
	if len(list) != 1 || list[0].Cost.Rho != 0.0001 {
		t.Errorf("the ledger row lost ρ: %+v", list)
	}
}

// testConsents checks consent records: the privacy policy round-trips with the
// tenant, history is kept in order, the newest decision by time (then by
// record order) is in force, and every recorded batch moves the version.
func testConsents(t *testing.T, s privalytics.MetaStore) {
	ctx := context.Background()
	tn := tenant("consenting", 1, 1e-6)
	tn.Purposes = []string{"analytics", "marketing"}
	tn.Privacy = privalytics.PrivacyPolicy{Consent: map[string]string{"analytics": privalytics.OptOut, "marketing": privalytics.OptIn}, StrayData: privalytics.StrayRedact, Processors: []string{"Hosting Ltd"}}
	mustCreate(t, s, tn)
	mustCreate(t, s, tenant("other", 1, 1e-6))
	got, err := s.Tenant(ctx, tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tn.Privacy, got.Privacy); diff != "" {
		t.Errorf("privacy policy round trip (-want +got):\n%s", diff)
	}
	if v, err := s.ConsentVersion(ctx, tn.ID); err != nil || v != 0 {
		t.Errorf("ConsentVersion of a new tenant = %d, %v; want 0", v, err)
	}
	rec := func(subject uint64, purpose string, granted bool, when int) privalytics.Consent {
		return privalytics.Consent{Subject: subject, Purpose: purpose, Granted: granted, Time: at(when), Source: "test", RecordedAt: at(100)}
	}
	// Subject 1<<63 checks that the full uint64 range survives the store.
	big := uint64(1) << 63
	v1, err := s.RecordConsents(ctx, tn.ID, []privalytics.Consent{rec(1, "marketing", true, 1), rec(2, "marketing", true, 1), rec(big, "analytics", false, 1)})
	if err != nil {
		t.Fatal(err)
	}
	// Subject 1 withdraws; subject 2's late-arriving older withdrawal loses to
	// its newer grant.
	v2, err := s.RecordConsents(ctx, tn.ID, []privalytics.Consent{rec(1, "marketing", false, 5), rec(2, "marketing", false, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if !(v1 > 0 && v2 > v1) {
		t.Errorf("consent versions %d then %d; want increasing", v1, v2)
	}
	if v, _ := s.ConsentVersion(ctx, tn.ID); v != v2 {
		t.Errorf("ConsentVersion = %d, want %d", v, v2)
	}
	if v, _ := s.ConsentVersion(ctx, "other"); v != 0 {
		t.Errorf("another tenant's consents moved this tenant's version to %d", v)
	}
	dec, v, err := s.ConsentDecisions(ctx, tn.ID, "marketing")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[uint64]bool{1: false, 2: true}, dec); diff != "" || v != v2 {
		t.Errorf("marketing decisions at version %d (want %d) (-want +got):\n%s", v, v2, diff)
	}
	dec, _, err = s.ConsentDecisions(ctx, tn.ID, "analytics")
	if err != nil || len(dec) != 1 || dec[big] != false {
		t.Errorf("analytics decisions = %v, %v; want subject 2^63 withdrawn", dec, err)
	}
	hist, err := s.ConsentHistory(ctx, tn.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || !hist[0].Granted || hist[1].Granted || !hist[1].Time.Equal(at(5)) || hist[0].Seq >= hist[1].Seq || hist[0].Source != "test" || !hist[0].RecordedAt.Equal(at(100)) {
		t.Errorf("history of subject 1 = %+v; want grant at 1 then withdrawal at 5", hist)
	}
	if hist, _ := s.ConsentHistory(ctx, "other", 1); len(hist) != 0 {
		t.Errorf("another tenant sees %d consent records of subject 1", len(hist))
	}
	_, err = s.RecordConsents(ctx, "no-such-shop", []privalytics.Consent{rec(1, "analytics", true, 1)})
	wantCode(t, "recording consent for an unknown tenant", err, privalytics.ENOTFOUND)

	// A policy change is stored and moves the consent version (cached answers
	// under the old policy must not be served).
	newPolicy := privalytics.PrivacyPolicy{Consent: map[string]string{"analytics": privalytics.OptIn, "marketing": privalytics.OptIn}, StrayData: privalytics.StrayReject}
	v3, err := s.SetPrivacy(ctx, tn.ID, newPolicy)
	if err != nil || v3 <= v2 {
		t.Errorf("SetPrivacy = %d, %v; want a version above %d", v3, err, v2)
	}
	if got, _ := s.Tenant(ctx, tn.ID); got == nil || cmp.Diff(newPolicy, got.Privacy) != "" {
		t.Errorf("policy after SetPrivacy = %+v, want %+v", got, newPolicy)
	}
	_, err = s.SetPrivacy(ctx, "no-such-shop", newPolicy)
	wantCode(t, "setting the policy of an unknown tenant", err, privalytics.ENOTFOUND)
}

// testRetention: a tenant's retention period round-trips, can be changed, and
// is checked.
func testRetention(t *testing.T, s privalytics.MetaStore) {
	ctx := context.Background()
	tn := tenant("r", 1, 0)
	tn.RetentionDays = 400
	mustCreate(t, s, tn)
	if got, err := s.Tenant(ctx, "r"); err != nil || got.RetentionDays != 400 {
		t.Fatalf("tenant round trip: %+v, %v; want retention 400 days", got, err)
	}
	if err := s.SetRetention(ctx, "r", 30); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Tenant(ctx, "r"); got == nil || got.RetentionDays != 30 {
		t.Errorf("after SetRetention(30): %+v", got)
	}
	for _, days := range []int{-1, privalytics.MaxRetentionDays + 1} {
		if err := s.SetRetention(ctx, "r", days); privalytics.ErrorCode(err) != privalytics.EINVALID {
			t.Errorf("SetRetention(%d): %v, want EINVALID", days, err)
		}
	}
	if err := s.SetRetention(ctx, "nobody", 30); privalytics.ErrorCode(err) != privalytics.ENOTFOUND {
		t.Errorf("SetRetention of an unknown tenant: %v, want ENOTFOUND", err)
	}
	bad := tenant("r2", 1, 0)
	bad.RetentionDays = -5
	if err := s.CreateTenant(ctx, bad); privalytics.ErrorCode(err) != privalytics.EINVALID {
		t.Errorf("create with retention -5: %v, want EINVALID", err)
	}
	if got, _ := s.Tenants(ctx); len(got) == 0 {
		t.Error("no tenants listed")
	}
}

// testExtremes drives the ledger to the edges of its integer units (issue 20,
// item 9): a query with ε ≈ 4,300 has ρ = ε²/2 past what a 64-bit count of
// 1e-12 units holds, and many large charges push a basic tenant's recorded ρ
// (which no budget bounds) towards the same edge. Whatever the store decides —
// record or refuse — it must say so with a coded error, never an internal one,
// and the tenant's budget must stay readable and add up afterwards.
func testExtremes(t *testing.T, s privalytics.MetaStore) {
	ctx := context.Background()
	mustCreate(t, s, tenant("huge", 1e6, 0.9))
	charge := func(what string, cost privalytics.Cost) error {
		t.Helper()
		_, err := s.Charge(ctx, &privalytics.Charge{TenantID: "huge", KeyID: "k", Time: at(0), Fingerprint: what, Mechanisms: "laplace count", Cost: cost})
		if code := privalytics.ErrorCode(err); err != nil && code != privalytics.EINVALID && code != privalytics.EBUDGET {
			t.Errorf("%s: error %v (code %q), want success, EINVALID or EBUDGET", what, err, code)
		}
		if _, err := s.Budget(ctx, "huge"); err != nil {
			t.Fatalf("after %s the tenant's budget cannot be read: %v", what, err)
		}
		return err
	}
	laplace := func(eps float64) privalytics.Cost { return privalytics.Cost{Epsilon: eps, Rho: eps * eps / 2} }
	if err := charge("ε 4290", laplace(4290)); err != nil {
		t.Errorf("ε 4290: %v", err)
	}
	wantCode(t, "ε 4300 (ρ past the units' range)", charge("ε 4300", laplace(4300)), privalytics.EINVALID)
	wantCode(t, "ε 1e6 (ρ 5e11)", charge("ε 1e6", laplace(1e6)), privalytics.EINVALID)
	wantCode(t, "ε past the largest budget", charge("ε 2e6", privalytics.Cost{Epsilon: 2e6}), privalytics.EINVALID)
	wantCode(t, "ρ 1e7", charge("ρ 1e7", privalytics.Cost{Epsilon: 1, Rho: 1e7}), privalytics.EINVALID)
	// Twenty charges of ε 1000 fit the ε budget, but their ρ (5e5 each) sums
	// past 9.2e6, the most a 64-bit count of 1e-12 holds.
	for i := range 20 {
		if err := charge(fmt.Sprint("ε 1000 #", i), laplace(1000)); err != nil {
			t.Fatalf("charge %d of ε 1000 against ε 1e6: %v", i, err)
		}
	}
	// δ up to the budget's 0.9, then refused for budget.
	if err := charge("δ 0.9", privalytics.Cost{Epsilon: 1, Delta: 0.9}); err != nil {
		t.Errorf("δ 0.9 against δ 0.9: %v", err)
	}
	wantCode(t, "δ 1e-15 more", charge("δ 1e-15", privalytics.Cost{Epsilon: 1, Delta: 1e-15}), privalytics.EBUDGET)
	// The rest of the ε budget, to the unit, then nothing more.
	st := ledgerAddsUp(t, s, "huge")
	if err := charge("the rest", privalytics.Cost{Epsilon: st.Remaining.Epsilon}); err != nil {
		t.Errorf("the remaining ε %v: %v", st.Remaining.Epsilon, err)
	}
	wantCode(t, "ε 1e-9 past the total", charge("one unit more", privalytics.Cost{Epsilon: 1e-9}), privalytics.EBUDGET)
	st = ledgerAddsUp(t, s, "huge")
	if st.Remaining.Epsilon != 0 || st.Spent.Epsilon != 1e6 {
		t.Errorf("after spending everything: %+v", st)
	}
	if _, err := s.Grant(ctx, "huge", privalytics.Cost{Epsilon: 1e-9}, "admin"); privalytics.ErrorCode(err) != privalytics.EINVALID {
		t.Errorf("grant past ε 1e6: %v, want EINVALID", err)
	}

	// A zCDP tenant at the largest budget: its ρ budget fits the units, and a
	// charge of all of it is recorded exactly.
	z := tenant("huge-z", 1e6, 0.5)
	z.Accounting, z.Budget.Rho = privalytics.AccountingZCDP, 9e6
	mustCreate(t, s, z)
	if _, err := s.Charge(ctx, &privalytics.Charge{TenantID: "huge-z", KeyID: "k", Time: at(1), Cost: privalytics.Cost{Epsilon: 1e6, Rho: 9e6}}); err != nil {
		t.Errorf("ρ 9e6 against ρ 9e6: %v", err)
	}
	if _, err := s.Charge(ctx, &privalytics.Charge{TenantID: "huge-z", KeyID: "k", Time: at(2), Cost: privalytics.Cost{Epsilon: 1e6, Rho: 1e-12}}); privalytics.ErrorCode(err) != privalytics.EBUDGET {
		t.Errorf("one ρ unit past the budget: %v, want EBUDGET", err)
	}
	if st, err := s.Budget(ctx, "huge-z"); err != nil || st.Spent.Rho != 9e6 || st.Remaining.Rho != 0 {
		t.Errorf("zCDP tenant after spending ρ 9e6: %+v %v", st, err)
	}
}

// testChargesOfOneKey: Charges with a key ID lists that key's charges only,
// newest first and paged within them; with "" it lists every key's.
func testChargesOfOneKey(t *testing.T, s privalytics.MetaStore) {
	ctx := context.Background()
	mustCreate(t, s, tenant("keyed", 1, 1e-6))
	var all, mine []string
	for i, key := range []string{"a", "b", "a", "a", "b"} {
		c := &privalytics.Charge{TenantID: "keyed", KeyID: key, Time: at(i), Fingerprint: fmt.Sprint(key, i), Cost: privalytics.Cost{Epsilon: 0.01}}
		if _, err := s.Charge(ctx, c); err != nil {
			t.Fatal(err)
		}
		all = append([]string{c.Fingerprint}, all...)
		if key == "a" {
			mine = append([]string{c.Fingerprint}, mine...)
		}
	}
	fingerprints := func(keyID string, offset, limit int) []string {
		t.Helper()
		list, err := s.Charges(ctx, "keyed", keyID, offset, limit)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range list {
			out = append(out, c.Fingerprint)
		}
		return out
	}
	if diff := cmp.Diff(all, fingerprints("", 0, 10)); diff != "" {
		t.Errorf("every key's charges (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(mine, fingerprints("a", 0, 10)); diff != "" {
		t.Errorf("key a's charges (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(mine[1:2], fingerprints("a", 1, 1)); diff != "" {
		t.Errorf("key a's second charge (-want +got):\n%s", diff)
	}
	if got := fingerprints("nobody", 0, 10); len(got) != 0 {
		t.Errorf("a key without charges sees %v", got)
	}
}

// testPreCheckAgrees: the pre-check a query makes before touching data —
// dp.PreCheck, Decide over AccountOf(Budget, KeyBudget) — and the store's binding
// check agree on every charge of a long random sequence, for a basic tenant
// with an own share and a shared pool, a monthly tenant and a zCDP tenant. A
// pre-check that let through what the ledger refuses would start work the
// ledger then refuses; one that refused what the ledger allows would refuse
// for nothing.
func testPreCheckAgrees(t *testing.T, s privalytics.MetaStore) {
	ctx := context.Background()
	basic := tenant("pre-basic", 3, 1e-5)
	month := tenant("pre-month", 1, 1e-6)
	month.Period = privalytics.PeriodMonth
	z := tenant("pre-z", 2, 2e-6)
	z.Accounting, z.Budget.Rho = privalytics.AccountingZCDP, 0.05
	for _, tn := range []*privalytics.Tenant{basic, month, z} {
		mustCreate(t, s, tn)
	}
	if err := s.CreateKey(ctx, &privalytics.APIKey{ID: "own", TenantID: "pre-basic", Name: "own", Role: privalytics.RoleQuery, Hash: []byte{1}, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	if err := s.Allocate(ctx, "pre-basic", "own", privalytics.Cost{Epsilon: 1, Delta: 2e-6}, "admin"); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(13, 20))
	amounts := []float64{0.01, 0.05, 0.1, 0.125, 0.3, 0.5}
	months := []string{"2025-01", "2025-02", "2025-03"}
	agreed := map[string]int{}
	for i := range 300 {
		c := &privalytics.Charge{KeyID: "pooled", Time: at(i), Cost: privalytics.Cost{Epsilon: amounts[rng.IntN(len(amounts))]}}
		if rng.IntN(3) == 0 {
			c.Cost.Delta = 1e-7 * float64(1+rng.IntN(5))
		}
		switch rng.IntN(3) {
		case 0:
			c.TenantID = "pre-basic"
			if rng.IntN(2) == 0 {
				c.KeyID = "own"
			}
		case 1:
			c.TenantID = "pre-month"
			c.Periods = months[rng.IntN(2) : 2+rng.IntN(2)]
		case 2:
			c.TenantID = "pre-z"
			c.Cost.Rho = c.Cost.Epsilon * c.Cost.Epsilon / 2
		}
		st, err := s.Budget(ctx, c.TenantID)
		if err != nil {
			t.Fatal(err)
		}
		kb, err := s.KeyBudget(ctx, c.TenantID, c.KeyID)
		if err != nil {
			t.Fatal(err)
		}
		pre := dp.PreCheck(st, kb, c.Cost, c.Periods)
		_, err = s.Charge(ctx, c)
		if privalytics.ErrorCode(pre) != privalytics.ErrorCode(err) || (pre == nil) != (err == nil) {
			t.Fatalf("charge %d %+v on %s: pre-check says %v, the ledger %v", i, c.Cost, c.TenantID, pre, err)
		}
		if err != nil && privalytics.ErrorMessage(pre) != privalytics.ErrorMessage(err) {
			t.Errorf("charge %d: pre-check says %q, the ledger %q", i, privalytics.ErrorMessage(pre), privalytics.ErrorMessage(err))
		}
		agreed[c.TenantID+" "+privalytics.ErrorCode(err)]++
	}
	// The sequence must reach both verdicts on every tenant, or it tested little.
	for _, id := range []string{"pre-basic", "pre-month", "pre-z"} {
		if agreed[id+" "] == 0 || agreed[id+" "+privalytics.EBUDGET] == 0 {
			t.Errorf("tenant %s: verdicts %v; the sequence should both charge and refuse", id, agreed)
		}
	}
}
