package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/dp"
)

// CreateTenant stores t.
func (s *Store) CreateTenant(ctx context.Context, t *privalytics.Tenant) error {
	if err := t.Validate(); err != nil {
		return err
	}
	// A zCDP budget past dp.MaxRho would not fit the ledger's units.
	if r := t.Budget.Rho; !(r >= 0) || r > dp.MaxRho {
		return privalytics.Errorf(privalytics.EINVALID, "tenant: budget ρ must be in [0, %g], got %v", float64(dp.MaxRho), r)
	}
	var js [3][]byte
	for i, v := range []any{t.Schema, t.Purposes, t.Privacy} {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("%s: create tenant: %w", s.d.Name, err)
		}
		js[i] = b
	}
	b := dp.UnitsDown(t.Budget)
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO tenants (id, name, schema, purposes, budget_eps, budget_delta, wrapped_key, created_at, period, accounting, budget_rho, privacy, retention_days) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		t.ID, t.Name, string(js[0]), string(js[1]), b.Eps, b.Delta, t.WrappedKey, s.d.Time(t.CreatedAt), t.Period, t.Accounting, b.Rho, string(js[2]), t.RetentionDays)
	if s.d.IsUnique(err) {
		return privalytics.Errorf(privalytics.ECONFLICT, "tenant %q already exists", t.ID)
	}
	return s.fail("create tenant", err)
}

const tenantCols = `id, name, schema, purposes, budget_eps, budget_delta, wrapped_key, created_at, period, accounting, budget_rho, privacy, retention_days`

func scanTenant(row interface{ Scan(...any) error }) (*privalytics.Tenant, error) {
	var (
		t                     privalytics.Tenant
		schema, purp, privacy string
		b                     dp.Units
	)
	if err := row.Scan(&t.ID, &t.Name, &schema, &purp, &b.Eps, &b.Delta, &t.WrappedKey, timeOf(&t.CreatedAt), &t.Period, &t.Accounting, &b.Rho, &privacy, &t.RetentionDays); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		raw string
		v   any
	}{{privacy, &t.Privacy}, {schema, &t.Schema}, {purp, &t.Purposes}} {
		if err := json.Unmarshal([]byte(f.raw), f.v); err != nil {
			return nil, fmt.Errorf("tenant %s: %w", t.ID, err)
		}
	}
	t.Budget = b.Cost()
	return &t, nil
}

// Tenant returns the tenant with the given ID.
func (s *Store) Tenant(ctx context.Context, id string) (*privalytics.Tenant, error) {
	t, err := scanTenant(s.db.QueryRowContext(ctx, s.q(`SELECT `+tenantCols+` FROM tenants WHERE id = ?`), id))
	if noRows(err) {
		return nil, privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", id)
	}
	return t, s.fail("tenant", err)
}

// Tenants lists every tenant by ID.
func (s *Store) Tenants(ctx context.Context) ([]*privalytics.Tenant, error) {
	out, err := list(ctx, s.db, `SELECT `+tenantCols+` FROM tenants ORDER BY id`, nil, scanTenant)
	if len(out) == 0 {
		out = nil // as before the stores were one: no tenants is nil
	}
	return out, s.fail("tenants", err)
}

// list runs a query and scans each row with scan.
func list[T any](ctx context.Context, q querier, query string, args []any, scan func(interface{ Scan(...any) error }) (T, error)) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

type querier interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

// CreateKey stores k.
func (s *Store) CreateKey(ctx context.Context, k *privalytics.APIKey) error {
	if !k.Role.Valid() {
		return privalytics.Errorf(privalytics.EINVALID, "role must be admin, ingest, query or processor, got %q", k.Role)
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO api_keys (id, tenant_id, name, role, hash, created_at) VALUES (?, ?, ?, ?, ?, ?)`),
		k.ID, k.TenantID, k.Name, string(k.Role), k.Hash, s.d.Time(k.CreatedAt))
	if s.d.IsUnique(err) {
		return privalytics.Errorf(privalytics.ECONFLICT, "key %q already exists", k.ID)
	}
	return s.fail("create key", err)
}

const keyCols = `id, tenant_id, name, role, hash, created_at, revoked_at`

func scanKey(row interface{ Scan(...any) error }) (*privalytics.APIKey, error) {
	var (
		k       privalytics.APIKey
		role    string
		revoked time.Time
	)
	rev := timeOf(&revoked)
	if err := row.Scan(&k.ID, &k.TenantID, &k.Name, &role, &k.Hash, timeOf(&k.CreatedAt), rev); err != nil {
		return nil, err
	}
	k.Role = privalytics.Role(role)
	if rev.valid {
		k.RevokedAt = &revoked
	}
	return &k, nil
}

// Key returns the key with the given ID.
func (s *Store) Key(ctx context.Context, id string) (*privalytics.APIKey, error) {
	k, err := scanKey(s.db.QueryRowContext(ctx, s.q(`SELECT `+keyCols+` FROM api_keys WHERE id = ?`), id))
	if noRows(err) {
		return nil, privalytics.Errorf(privalytics.ENOTFOUND, "no key %q", id)
	}
	return k, s.fail("key", err)
}

// Keys lists a tenant's keys, oldest first.
func (s *Store) Keys(ctx context.Context, tenantID string) ([]*privalytics.APIKey, error) {
	out, err := list(ctx, s.db, s.q(`SELECT `+keyCols+` FROM api_keys WHERE tenant_id = ? ORDER BY created_at, id`), []any{tenantID}, scanKey)
	return out, s.fail("keys", err)
}

// RevokeKey marks the tenant's key revoked.
func (s *Store) RevokeKey(ctx context.Context, tenantID, id string, at time.Time) error {
	return s.updateOne(ctx, "revoke key", privalytics.Errorf(privalytics.ENOTFOUND, "no key %q", id),
		`UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? AND tenant_id = ?`, s.d.Time(at), id, tenantID)
}

// SetRetention changes a tenant's retention period.
func (s *Store) SetRetention(ctx context.Context, tenantID string, days int) error {
	if err := privalytics.ValidateRetention(days); err != nil {
		return err
	}
	return s.updateOne(ctx, "set retention", privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", tenantID),
		`UPDATE tenants SET retention_days = ? WHERE id = ?`, days, tenantID)
}

// updateOne runs an UPDATE that must change a row, else returns none.
func (s *Store) updateOne(ctx context.Context, op string, none error, query string, args ...any) error {
	res, err := s.db.ExecContext(ctx, s.q(query), args...)
	if err != nil {
		return s.fail(op, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return s.fail(op, err)
	} else if n == 0 {
		return none
	}
	return nil
}
