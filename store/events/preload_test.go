package events

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
)

type tenantList struct {
	ts  []*privalytics.Tenant
	err error
}

func (l tenantList) Tenants(context.Context) ([]*privalytics.Tenant, error) { return l.ts, l.err }

// TestPreloadTenants: a failing list is an error naming it; listed tenants
// are loaded in the background until the store reports ready.
func TestPreloadTenants(t *testing.T) {
	t.Parallel()
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PreloadTenants(context.Background(), tenantList{err: errors.New("db down")}); err == nil || !strings.Contains(err.Error(), "list tenants: db down") {
		t.Fatalf("a failing list: %v", err)
	}
	ts := []*privalytics.Tenant{{ID: "shop", Schema: privalytics.DefaultRetailSchema()}, {ID: "cafe", Schema: privalytics.DefaultRetailSchema()}}
	if err := s.PreloadTenants(context.Background(), tenantList{ts: ts}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Readiness() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 10 s: %v", s.Readiness())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
