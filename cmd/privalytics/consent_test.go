package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
	"github.com/privalytics/privalytics/dp/dptest"
)

// TestEndToEndConsentWithdrawal runs the real server without noise: a
// customer's withdrawal, sent through the SDK, removes them from the very next
// answer, and the consent history shows both decisions.
func TestEndToEndConsentWithdrawal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mech := dptest.NoNoise()
	ts := startServer(t, &mech, "")
	res, err := ts.operator.CreateTenant(ctx, wire.CreateTenantRequest{Period: "lifetime", ID: "shop", Budget: wire.Cost{Epsilon: 10, Delta: 1e-5}, Purposes: []string{"analytics", "marketing"}})
	if err != nil {
		t.Fatal(err)
	}
	admin := ts.operator.WithToken(res.AdminKey.Token)
	var events strings.Builder
	for i := range 5 {
		fmt.Fprintf(&events, `{"customer_id":"loyalty-%d","ts":"2025-03-01T10:00:00Z","type":"purchase","amount":"2.50"}`+"\n", i)
	}
	if _, err := admin.Ingest(ctx, []byte(events.String()), client.IngestOptions{}); err != nil {
		t.Fatal(err)
	}
	count := func(purpose string) float64 {
		t.Helper()
		r, err := admin.Query(ctx, &wire.Query{Purpose: purpose, Aggregates: []wire.Aggregate{{Op: "distinct_customers"}}, Epsilon: 0.5})
		if err != nil {
			t.Fatal(err)
		}
		return r.Rows[0].Cells[0].Value
	}
	if n := count(""); n != 5 {
		t.Fatalf("before: %v customers, want 5", n)
	}
	if _, err := admin.RecordConsents(ctx, []wire.ConsentRecord{
		{CustomerID: "loyalty-3", Purpose: "analytics", Granted: wire.Bool(false), Source: "e-mail"},
		{CustomerID: "loyalty-1", Purpose: "marketing", Granted: wire.Bool(true), Source: "web-form"},
	}); err != nil {
		t.Fatal(err)
	}
	if n := count(""); n != 4 {
		t.Errorf("after loyalty-3 withdrew: %v customers, want 4", n)
	}
	if n := count("marketing"); n != 1 {
		t.Errorf("marketing (opt-in) after one grant: %v customers, want 1", n)
	}
	st, err := admin.ConsentStatus(ctx, "loyalty-3")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.History) != 1 || st.History[0].Granted || st.Purposes["analytics"].Granted {
		t.Errorf("loyalty-3's consent: %+v", st)
	}
}
