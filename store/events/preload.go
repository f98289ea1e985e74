package events

import (
	"context"
	"fmt"

	"github.com/privalytics/privalytics"
)

// TenantLister lists the tenants whose events to load; the metadata store
// (privalytics.MetaStore) is one.
type TenantLister interface {
	Tenants(ctx context.Context) ([]*privalytics.Tenant, error)
}

// PreloadTenants starts loading every listed tenant's events in the
// background (Preload), each with its schema, so the first query after a
// restart finds them in memory; /readyz answers 503 until they are loaded.
func (s *Store) PreloadTenants(ctx context.Context, meta TenantLister) error {
	ts, err := meta.Tenants(ctx)
	if err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	schemas := make(map[string]privalytics.Schema, len(ts))
	for _, t := range ts {
		schemas[t.ID] = t.Schema
	}
	s.Preload(schemas)
	return nil
}
