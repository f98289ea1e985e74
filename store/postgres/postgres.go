// Package postgres is the production metadata store: tenants, API keys and the
// privacy ledger on PostgreSQL (pgx). It implements privalytics.MetaStore with the
// same semantics as store/sqlite — the conformance suite in store/storetest runs
// against both. The ledger's check-and-charge is one conditional UPDATE; the row
// lock it takes serialises concurrent charges of a tenant, also across server
// processes sharing the database.
package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/ledger"
)

// DB is the PostgreSQL metadata store.
type DB struct {
	pool *pgxpool.Pool
}

var _ privalytics.MetaStore = (*DB)(nil)

// Open connects with a pgx connection string (e.g.
// "postgres://user@127.0.0.1:5432/db?sslmode=disable") and applies migrations.
func Open(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: cannot reach the database: %w", err)
	}
	db := &DB{pool: pool}
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// Close closes the pool.
func (db *DB) Close() error { db.pool.Close(); return nil }

var migrations = []string{
	`CREATE TABLE tenants (
		id           TEXT PRIMARY KEY,
		name         TEXT NOT NULL,
		schema       JSONB NOT NULL,
		purposes     JSONB NOT NULL,
		budget_eps   BIGINT NOT NULL,
		budget_delta BIGINT NOT NULL,
		spent_eps    BIGINT NOT NULL DEFAULT 0,
		spent_delta  BIGINT NOT NULL DEFAULT 0,
		wrapped_key  BYTEA NOT NULL,
		created_at   TIMESTAMPTZ NOT NULL,
		CHECK (spent_eps <= budget_eps AND spent_delta <= budget_delta)
	);
	CREATE TABLE api_keys (
		id         TEXT PRIMARY KEY,
		tenant_id  TEXT NOT NULL,
		name       TEXT NOT NULL,
		role       TEXT NOT NULL,
		hash       BYTEA NOT NULL,
		created_at TIMESTAMPTZ NOT NULL,
		revoked_at TIMESTAMPTZ
	);
	CREATE INDEX api_keys_tenant ON api_keys(tenant_id);
	CREATE TABLE charges (
		id          TEXT PRIMARY KEY,
		tenant_id   TEXT NOT NULL REFERENCES tenants(id),
		key_id      TEXT NOT NULL,
		time        TIMESTAMPTZ NOT NULL,
		fingerprint TEXT NOT NULL,
		mechanisms  TEXT NOT NULL,
		eps         BIGINT NOT NULL,
		delta       BIGINT NOT NULL,
		refunded    BOOLEAN NOT NULL DEFAULT FALSE
	);
	CREATE INDEX charges_tenant_time ON charges(tenant_id, time);`,
	// 2: per-key allocations (see store/sqlite for the model).
	`ALTER TABLE tenants ADD COLUMN alloc_eps BIGINT NOT NULL DEFAULT 0,
		ADD COLUMN alloc_delta BIGINT NOT NULL DEFAULT 0,
		ADD COLUMN shared_eps BIGINT NOT NULL DEFAULT 0,
		ADD COLUMN shared_delta BIGINT NOT NULL DEFAULT 0;
	UPDATE tenants SET shared_eps = spent_eps, shared_delta = spent_delta;
	CREATE TABLE key_budgets (
		key_id       TEXT PRIMARY KEY,
		tenant_id    TEXT NOT NULL REFERENCES tenants(id),
		budget_eps   BIGINT NOT NULL,
		budget_delta BIGINT NOT NULL,
		spent_eps    BIGINT NOT NULL DEFAULT 0,
		spent_delta  BIGINT NOT NULL DEFAULT 0,
		CHECK (spent_eps <= budget_eps AND spent_delta <= budget_delta)
	);
	ALTER TABLE charges ADD COLUMN from_key BOOLEAN NOT NULL DEFAULT FALSE;`,
	// 3: the record of grants and allocations.
	`CREATE TABLE budget_changes (
		id           TEXT PRIMARY KEY,
		tenant_id    TEXT NOT NULL REFERENCES tenants(id),
		time         TIMESTAMPTZ NOT NULL,
		kind         TEXT NOT NULL,
		key_id       TEXT NOT NULL,
		actor_key_id TEXT NOT NULL,
		eps          BIGINT NOT NULL,
		delta        BIGINT NOT NULL
	);
	CREATE INDEX budget_changes_tenant_time ON budget_changes(tenant_id, time);`,
	// 4: data-period budgets. A monthly tenant's summed spending may pass one
	// month's budget, so the guard applies to single-budget tenants only.
	`ALTER TABLE tenants ADD COLUMN period TEXT NOT NULL DEFAULT '';
	ALTER TABLE tenants DROP CONSTRAINT tenants_check;
	ALTER TABLE tenants ADD CONSTRAINT tenants_spent_within_budget CHECK (period <> '' OR (spent_eps <= budget_eps AND spent_delta <= budget_delta));
	ALTER TABLE charges ADD COLUMN periods TEXT NOT NULL DEFAULT '';
	CREATE TABLE period_spent (
		tenant_id   TEXT NOT NULL REFERENCES tenants(id),
		period      TEXT NOT NULL,
		spent_eps   BIGINT NOT NULL DEFAULT 0,
		spent_delta BIGINT NOT NULL DEFAULT 0,
		PRIMARY KEY (tenant_id, period)
	);`,
	// 5: zCDP accounting; ρ is recorded with every charge.
	`ALTER TABLE tenants ADD COLUMN accounting TEXT NOT NULL DEFAULT '';
	ALTER TABLE tenants ADD COLUMN budget_rho BIGINT NOT NULL DEFAULT 0;
	ALTER TABLE tenants ADD COLUMN spent_rho BIGINT NOT NULL DEFAULT 0;
	ALTER TABLE charges ADD COLUMN rho BIGINT NOT NULL DEFAULT 0;
	ALTER TABLE tenants DROP CONSTRAINT tenants_spent_within_budget;
	ALTER TABLE tenants ADD CONSTRAINT tenants_spent_within_budget CHECK (
		(accounting = 'zcdp' AND spent_rho <= budget_rho AND 2 * spent_delta <= budget_delta)
		OR (accounting = '' AND (period <> '' OR (spent_eps <= budget_eps AND spent_delta <= budget_delta))));`,
	// 6: the tenant's privacy policy, and consent records with their history
	// (see store/sqlite).
	`ALTER TABLE tenants ADD COLUMN privacy JSONB NOT NULL DEFAULT '{}';
	ALTER TABLE tenants ADD COLUMN consent_version BIGINT NOT NULL DEFAULT 0;
	CREATE TABLE consents (
		seq         BIGSERIAL PRIMARY KEY,
		tenant_id   TEXT NOT NULL REFERENCES tenants(id),
		subject     BIGINT NOT NULL,
		purpose     TEXT NOT NULL,
		granted     BOOLEAN NOT NULL,
		time        TIMESTAMPTZ NOT NULL,
		source      TEXT NOT NULL,
		recorded_at TIMESTAMPTZ NOT NULL
	);
	CREATE INDEX consents_subject ON consents(tenant_id, subject);
	CREATE INDEX consents_purpose ON consents(tenant_id, purpose);`,
	// 7: retention periods.
	`ALTER TABLE tenants ADD COLUMN retention_days INTEGER NOT NULL DEFAULT 0;`,
}

func (db *DB) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// One migrator at a time, even with several servers starting together.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7263521)`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)`); err != nil {
			return fmt.Errorf("postgres: migrate: %w", err)
		}
		for i, m := range migrations {
			var n int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = $1`, i+1).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				continue
			}
			if _, err := tx.Exec(ctx, m); err != nil {
				return fmt.Errorf("postgres: migration %d: %w", i+1, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, i+1); err != nil {
				return err
			}
		}
		return nil
	})
}

func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// CreateTenant stores t.
func (db *DB) CreateTenant(ctx context.Context, t *privalytics.Tenant) error {
	if err := t.Validate(); err != nil {
		return err
	}
	schema, _ := json.Marshal(t.Schema)
	purposes, _ := json.Marshal(t.Purposes)
	privacy, _ := json.Marshal(t.Privacy)
	_, err := db.pool.Exec(ctx, `INSERT INTO tenants (id, name, schema, purposes, budget_eps, budget_delta, wrapped_key, created_at, period, accounting, budget_rho, privacy, retention_days) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		t.ID, t.Name, schema, purposes, ledger.Down(t.Budget.Epsilon, ledger.EpsilonDigits), ledger.Down(t.Budget.Delta, ledger.DeltaDigits), t.WrappedKey, t.CreatedAt, t.Period, t.Accounting, ledger.Down(t.Budget.Rho, ledger.RhoDigits), privacy, t.RetentionDays)
	if isUnique(err) {
		return privalytics.Errorf(privalytics.ECONFLICT, "tenant %q already exists", t.ID)
	} else if err != nil {
		return fmt.Errorf("postgres: create tenant: %w", err)
	}
	return nil
}

const tenantCols = `id, name, schema, purposes, budget_eps, budget_delta, wrapped_key, created_at, period, accounting, budget_rho, privacy, retention_days`

func scanTenant(row pgx.Row) (*privalytics.Tenant, error) {
	var (
		t            privalytics.Tenant
		schema, purp []byte
		beps, bdelta int64
		privacy      []byte
	)
	var brho int64
	if err := row.Scan(&t.ID, &t.Name, &schema, &purp, &beps, &bdelta, &t.WrappedKey, &t.CreatedAt, &t.Period, &t.Accounting, &brho, &privacy, &t.RetentionDays); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(privacy, &t.Privacy); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(schema, &t.Schema); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(purp, &t.Purposes); err != nil {
		return nil, err
	}
	t.Budget, t.CreatedAt = ledger.Cost(beps, bdelta), t.CreatedAt.UTC()
	t.Budget.Rho = ledger.RhoCost(brho)
	return &t, nil
}

// Tenant returns the tenant.
func (db *DB) Tenant(ctx context.Context, id string) (*privalytics.Tenant, error) {
	t, err := scanTenant(db.pool.QueryRow(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", id)
	} else if err != nil {
		return nil, fmt.Errorf("postgres: tenant: %w", err)
	}
	return t, nil
}

// Tenants lists every tenant by ID.
func (db *DB) Tenants(ctx context.Context) ([]*privalytics.Tenant, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+tenantCols+` FROM tenants ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: tenants: %w", err)
	}
	defer rows.Close()
	var out []*privalytics.Tenant
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: tenants: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// CreateKey stores k.
func (db *DB) CreateKey(ctx context.Context, k *privalytics.APIKey) error {
	if !k.Role.Valid() {
		return privalytics.Errorf(privalytics.EINVALID, "role must be admin, ingest, query or processor, got %q", k.Role)
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO api_keys (id, tenant_id, name, role, hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		k.ID, k.TenantID, k.Name, string(k.Role), k.Hash, k.CreatedAt)
	if isUnique(err) {
		return privalytics.Errorf(privalytics.ECONFLICT, "key %q already exists", k.ID)
	} else if err != nil {
		return fmt.Errorf("postgres: create key: %w", err)
	}
	return nil
}

const keyCols = `id, tenant_id, name, role, hash, created_at, revoked_at`

func scanKey(row pgx.Row) (*privalytics.APIKey, error) {
	var k privalytics.APIKey
	var role string
	if err := row.Scan(&k.ID, &k.TenantID, &k.Name, &role, &k.Hash, &k.CreatedAt, &k.RevokedAt); err != nil {
		return nil, err
	}
	k.Role = privalytics.Role(role)
	return &k, nil
}

// Key returns a key by ID.
func (db *DB) Key(ctx context.Context, id string) (*privalytics.APIKey, error) {
	k, err := scanKey(db.pool.QueryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, privalytics.Errorf(privalytics.ENOTFOUND, "no key %q", id)
	} else if err != nil {
		return nil, fmt.Errorf("postgres: key: %w", err)
	}
	return k, nil
}

// Keys lists a tenant's keys, oldest first.
func (db *DB) Keys(ctx context.Context, tenantID string) ([]*privalytics.APIKey, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+keyCols+` FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("postgres: keys: %w", err)
	}
	defer rows.Close()
	out := []*privalytics.APIKey{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: keys: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeKey marks the tenant's key revoked.
func (db *DB) RevokeKey(ctx context.Context, tenantID, id string, at time.Time) error {
	tag, err := db.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND tenant_id = $3`, at, id, tenantID)
	if err != nil {
		return fmt.Errorf("postgres: revoke key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return privalytics.Errorf(privalytics.ENOTFOUND, "no key %q", id)
	}
	return nil
}

// SetRetention changes a tenant's retention period.
func (db *DB) SetRetention(ctx context.Context, tenantID string, days int) error {
	if err := privalytics.ValidateRetention(days); err != nil {
		return err
	}
	tag, err := db.pool.Exec(ctx, `UPDATE tenants SET retention_days = $1 WHERE id = $2`, days, tenantID)
	if err != nil {
		return fmt.Errorf("postgres: set retention: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", tenantID)
	}
	return nil
}

// Charge checks and records c in one transaction.
func (db *DB) Charge(ctx context.Context, c *privalytics.Charge) (privalytics.BudgetStatus, error) {
	if err := ledger.CheckCharge(c.Cost); err != nil {
		return privalytics.BudgetStatus{}, err
	}
	eps, delta, rho := ledger.Up(c.Cost.Epsilon, ledger.EpsilonDigits), ledger.Up(c.Cost.Delta, ledger.DeltaDigits), ledger.Up(c.Cost.Rho, ledger.RhoDigits)
	var idb [16]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return privalytics.BudgetStatus{}, fmt.Errorf("postgres: charge: %w", err)
	}
	// The caller's charge gets its ID only once it is recorded.
	id := hex.EncodeToString(idb[:])
	var st privalytics.BudgetStatus
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var period, accounting string
		var pb, pd int64
		if err := tx.QueryRow(ctx, `SELECT period, budget_eps, budget_delta, accounting FROM tenants WHERE id = $1`, c.TenantID).Scan(&period, &pb, &pd, &accounting); errors.Is(err, pgx.ErrNoRows) {
			return privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", c.TenantID)
		} else if err != nil {
			return err
		}
		if accounting == privalytics.AccountingZCDP {
			// ρ adds up; the approximate parts' δ may use half the δ budget, the
			// other half is kept for converting ρ back to (ε, δ).
			var srho int64
			err := tx.QueryRow(ctx, `UPDATE tenants SET spent_rho = spent_rho + $1, spent_delta = spent_delta + $2, spent_eps = spent_eps + $3
				WHERE id = $4 AND spent_rho + $1 <= budget_rho AND spent_delta + $2 <= budget_delta / 2 RETURNING spent_rho`, rho, delta, eps, c.TenantID).Scan(&srho)
			if errors.Is(err, pgx.ErrNoRows) {
				cur, err := budget(ctx, tx, c.TenantID)
				if err != nil {
					return err
				}
				return ledger.ExhaustedRho(c.Cost, cur.Remaining)
			} else if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO charges (id, tenant_id, key_id, time, fingerprint, mechanisms, eps, delta, rho) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
				id, c.TenantID, c.KeyID, c.Time, c.Fingerprint, c.Mechanisms, eps, delta, rho); err != nil {
				return err
			}
			var err2 error
			st, err2 = budget(ctx, tx, c.TenantID)
			return err2
		}
		// Every charge records its ρ, whatever the accounting.
		if _, err := tx.Exec(ctx, `UPDATE tenants SET spent_rho = spent_rho + $1 WHERE id = $2`, rho, c.TenantID); err != nil {
			return err
		}
		if period != "" {
			if err := ledger.CheckPeriods(c.Periods); err != nil {
				return err
			}
			// Each period the query touches needs room for the whole charge; the
			// row locks serialise charges of one period across processes.
			for _, p := range c.Periods {
				if _, err := tx.Exec(ctx, `INSERT INTO period_spent (tenant_id, period) VALUES ($1, $2) ON CONFLICT DO NOTHING`, c.TenantID, p); err != nil {
					return err
				}
				tag, err := tx.Exec(ctx, `UPDATE period_spent SET spent_eps = spent_eps + $1, spent_delta = spent_delta + $2
					WHERE tenant_id = $3 AND period = $4 AND spent_eps + $1 <= $5 AND spent_delta + $2 <= $6`, eps, delta, c.TenantID, p, pb, pd)
				if err != nil {
					return err
				}
				if tag.RowsAffected() == 0 {
					var se, sd int64
					if err := tx.QueryRow(ctx, `SELECT spent_eps, spent_delta FROM period_spent WHERE tenant_id = $1 AND period = $2`, c.TenantID, p).Scan(&se, &sd); err != nil {
						return err
					}
					return ledger.ExhaustedPeriod(p, c.Cost, ledger.Cost(pb-se, pd-sd))
				}
			}
			if _, err := tx.Exec(ctx, `UPDATE tenants SET spent_eps = spent_eps + $1, spent_delta = spent_delta + $2 WHERE id = $3`, eps, delta, c.TenantID); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO charges (id, tenant_id, key_id, time, fingerprint, mechanisms, eps, delta, periods, rho) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
				id, c.TenantID, c.KeyID, c.Time, c.Fingerprint, c.Mechanisms, eps, delta, strings.Join(c.Periods, ","), rho); err != nil {
				return err
			}
			var err error
			st, err = budget(ctx, tx, c.TenantID)
			return err
		}
		// A key with an allocation spends only from it. The UPDATE's row lock
		// serialises charges of one key across processes.
		tag, err := tx.Exec(ctx, `UPDATE key_budgets SET spent_eps = spent_eps + $1, spent_delta = spent_delta + $2
			WHERE key_id = $3 AND tenant_id = $4 AND spent_eps + $1 <= budget_eps AND spent_delta + $2 <= budget_delta`, eps, delta, c.KeyID, c.TenantID)
		if err != nil {
			return err
		}
		own := tag.RowsAffected() > 0
		if !own {
			var n int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM key_budgets WHERE key_id = $1 AND tenant_id = $2`, c.KeyID, c.TenantID).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				kb, err := keyBudget(ctx, tx, c.TenantID, c.KeyID)
				if err != nil {
					return err
				}
				return ledger.ExhaustedKey(c.Cost, kb.Remaining)
			}
		}
		shared := ` AND shared_eps + $1 <= budget_eps - alloc_eps AND shared_delta + $2 <= budget_delta - alloc_delta`
		sharedSet := `, shared_eps = shared_eps + $1, shared_delta = shared_delta + $2`
		if own {
			shared, sharedSet = "", ""
		}
		var beps, bdelta, seps, sdelta, aeps, adelta int64
		err = tx.QueryRow(ctx, `UPDATE tenants SET spent_eps = spent_eps + $1, spent_delta = spent_delta + $2`+sharedSet+`
			WHERE id = $3 AND spent_eps + $1 <= budget_eps AND spent_delta + $2 <= budget_delta`+shared+`
			RETURNING budget_eps, budget_delta, spent_eps, spent_delta, alloc_eps, alloc_delta`, eps, delta, c.TenantID).Scan(&beps, &bdelta, &seps, &sdelta, &aeps, &adelta)
		if errors.Is(err, pgx.ErrNoRows) {
			kb, err := keyBudget(ctx, tx, c.TenantID, c.KeyID)
			if err != nil {
				return err
			}
			return ledger.Exhausted(c.Cost, kb.Remaining)
		} else if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO charges (id, tenant_id, key_id, time, fingerprint, mechanisms, eps, delta, from_key, rho) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			id, c.TenantID, c.KeyID, c.Time, c.Fingerprint, c.Mechanisms, eps, delta, own, rho); err != nil {
			return err
		}
		st = ledger.Status(c.TenantID, beps, bdelta, seps, sdelta)
		st.Allocated = ledger.Cost(aeps, adelta)
		return nil
	})
	if err != nil {
		if privalytics.ErrorCode(err) == privalytics.EINTERNAL {
			return privalytics.BudgetStatus{}, fmt.Errorf("postgres: charge: %w", err)
		}
		return privalytics.BudgetStatus{}, err
	}
	c.ID = id
	return st, nil
}

type querier interface {
	QueryRow(context.Context, string, ...any) pgx.Row
	Query(context.Context, string, ...any) (pgx.Rows, error)
}

// keyBudget is what a key may spend: its allocation, or the shared pool.
func keyBudget(ctx context.Context, q querier, tenantID, keyID string) (privalytics.KeyBudget, error) {
	var b, d, se, sd int64
	err := q.QueryRow(ctx, `SELECT budget_eps, budget_delta, spent_eps, spent_delta FROM key_budgets WHERE key_id = $1 AND tenant_id = $2`, keyID, tenantID).Scan(&b, &d, &se, &sd)
	if err == nil {
		return ledger.KeyStatus(keyID, false, b, d, se, sd), nil
	} else if !errors.Is(err, pgx.ErrNoRows) {
		return privalytics.KeyBudget{}, err
	}
	var ae, ad int64
	err = q.QueryRow(ctx, `SELECT budget_eps, budget_delta, alloc_eps, alloc_delta, shared_eps, shared_delta FROM tenants WHERE id = $1`, tenantID).Scan(&b, &d, &ae, &ad, &se, &sd)
	if errors.Is(err, pgx.ErrNoRows) {
		return privalytics.KeyBudget{}, privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", tenantID)
	} else if err != nil {
		return privalytics.KeyBudget{}, err
	}
	return ledger.KeyStatus(keyID, true, b-ae, d-ad, se, sd), nil
}

// KeyBudget returns what the key may spend.
func (db *DB) KeyBudget(ctx context.Context, tenantID, keyID string) (privalytics.KeyBudget, error) {
	kb, err := keyBudget(ctx, db.pool, tenantID, keyID)
	if err != nil && privalytics.ErrorCode(err) == privalytics.EINTERNAL {
		return kb, fmt.Errorf("postgres: key budget: %w", err)
	}
	return kb, err
}

// Allocate sets or removes a key's own share.
func (db *DB) Allocate(ctx context.Context, tenantID, keyID string, share privalytics.Cost, actorKeyID string) error {
	if err := ledger.CheckCharge(share); err != nil {
		return err
	}
	eps, delta := ledger.Down(share.Epsilon, ledger.EpsilonDigits), ledger.Down(share.Delta, ledger.DeltaDigits)
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var owner string
		if err := tx.QueryRow(ctx, `SELECT tenant_id FROM api_keys WHERE id = $1`, keyID).Scan(&owner); errors.Is(err, pgx.ErrNoRows) || owner != tenantID {
			return privalytics.Errorf(privalytics.ENOTFOUND, "no key %q", keyID)
		} else if err != nil {
			return err
		}
		// Lock the tenant row first: allocations and charges of the shared pool
		// must not interleave.
		var b, d, ae, ad, se, sd int64
		var period string
		if err := tx.QueryRow(ctx, `SELECT budget_eps, budget_delta, alloc_eps, alloc_delta, shared_eps, shared_delta, period || accounting FROM tenants WHERE id = $1 FOR UPDATE`, tenantID).Scan(&b, &d, &ae, &ad, &se, &sd, &period); err != nil {
			return err
		}
		if period != "" {
			return ledger.ErrSharesWithPeriods
		}
		var oe, od, ke, kd int64
		err := tx.QueryRow(ctx, `SELECT budget_eps, budget_delta, spent_eps, spent_delta FROM key_budgets WHERE key_id = $1 FOR UPDATE`, keyID).Scan(&oe, &od, &ke, &kd)
		had := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		plan, err := ledger.Reallocate(ledger.Allocation{Budget: [2]int64{b, d}, Allocated: [2]int64{ae, ad}, SharedSpent: [2]int64{se, sd}},
			had, [2]int64{oe, od}, [2]int64{ke, kd}, [2]int64{eps, delta})
		if err != nil {
			return err
		}
		if plan.Remove {
			if _, err := tx.Exec(ctx, `DELETE FROM key_budgets WHERE key_id = $1`, keyID); err != nil {
				return err
			}
		} else if _, err := tx.Exec(ctx, `INSERT INTO key_budgets (key_id, tenant_id, budget_eps, budget_delta) VALUES ($1, $2, $3, $4)
			ON CONFLICT (key_id) DO UPDATE SET budget_eps = excluded.budget_eps, budget_delta = excluded.budget_delta`, keyID, tenantID, eps, delta); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE tenants SET alloc_eps = $1, alloc_delta = $2, shared_eps = $3, shared_delta = $4 WHERE id = $5`,
			plan.Allocated[0], plan.Allocated[1], plan.SharedSpent[0], plan.SharedSpent[1], tenantID); err != nil {
			return err
		}
		return recordChange(ctx, tx, tenantID, "allocate", keyID, actorKeyID, eps, delta)
	})
	if err != nil && privalytics.ErrorCode(err) == privalytics.EINTERNAL {
		return fmt.Errorf("postgres: allocate: %w", err)
	}
	return err
}

func budget(ctx context.Context, q querier, tenantID string) (privalytics.BudgetStatus, error) {
	var beps, bdelta, seps, sdelta, aeps, adelta, brho, srho int64
	var period, accounting string
	err := q.QueryRow(ctx, `SELECT budget_eps, budget_delta, spent_eps, spent_delta, alloc_eps, alloc_delta, period, accounting, budget_rho, spent_rho FROM tenants WHERE id = $1`, tenantID).Scan(&beps, &bdelta, &seps, &sdelta, &aeps, &adelta, &period, &accounting, &brho, &srho)
	if errors.Is(err, pgx.ErrNoRows) {
		return privalytics.BudgetStatus{}, privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", tenantID)
	} else if err != nil {
		return privalytics.BudgetStatus{}, err
	}
	st := ledger.Status(tenantID, beps, bdelta, seps, sdelta)
	st.Allocated = ledger.Cost(aeps, adelta)
	st = ledger.WithRho(st, accounting, bdelta, sdelta, brho, srho)
	if period == "" {
		return st, nil
	}
	rows, err := q.Query(ctx, `SELECT period, spent_eps, spent_delta FROM period_spent WHERE tenant_id = $1 ORDER BY period`, tenantID)
	if err != nil {
		return st, err
	}
	defer rows.Close()
	var ps []ledger.PeriodUnits
	for rows.Next() {
		var p ledger.PeriodUnits
		if err := rows.Scan(&p.Period, &p.Eps, &p.Delta); err != nil {
			return st, err
		}
		ps = append(ps, p)
	}
	return ledger.WithPeriods(st, period, beps, bdelta, ps), rows.Err()
}

// Refund marks a charge refunded and gives its amount back, once.
func (db *DB) Refund(ctx context.Context, tenantID, chargeID string) error {
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var eps, delta int64
		var keyID, periods, accounting string
		var fromKey bool
		var rho int64
		err := tx.QueryRow(ctx, `UPDATE charges SET refunded = TRUE WHERE id = $1 AND tenant_id = $2 AND NOT refunded RETURNING eps, delta, key_id, from_key, periods, rho`, chargeID, tenantID).Scan(&eps, &delta, &keyID, &fromKey, &periods, &rho)
		if errors.Is(err, pgx.ErrNoRows) {
			return privalytics.Errorf(privalytics.ENOTFOUND, "no unrefunded charge %q", chargeID)
		} else if err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `UPDATE tenants SET spent_rho = spent_rho - $1 WHERE id = $2 RETURNING accounting`, rho, tenantID).Scan(&accounting); err != nil {
			return err
		}
		if accounting == privalytics.AccountingZCDP {
			_, err = tx.Exec(ctx, `UPDATE tenants SET spent_eps = spent_eps - $1, spent_delta = spent_delta - $2 WHERE id = $3`, eps, delta, tenantID)
			return err
		}
		if periods != "" {
			for _, p := range strings.Split(periods, ",") {
				if _, err := tx.Exec(ctx, `UPDATE period_spent SET spent_eps = spent_eps - $1, spent_delta = spent_delta - $2 WHERE tenant_id = $3 AND period = $4`, eps, delta, tenantID, p); err != nil {
					return err
				}
			}
			_, err = tx.Exec(ctx, `UPDATE tenants SET spent_eps = spent_eps - $1, spent_delta = spent_delta - $2 WHERE id = $3`, eps, delta, tenantID)
			return err
		}
		if fromKey {
			if _, err := tx.Exec(ctx, `UPDATE key_budgets SET spent_eps = spent_eps - $1, spent_delta = spent_delta - $2 WHERE key_id = $3`, eps, delta, keyID); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `UPDATE tenants SET spent_eps = spent_eps - $1, spent_delta = spent_delta - $2 WHERE id = $3`, eps, delta, tenantID)
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE tenants SET spent_eps = spent_eps - $1, spent_delta = spent_delta - $2, shared_eps = shared_eps - $1, shared_delta = shared_delta - $2 WHERE id = $3`, eps, delta, tenantID)
		return err
	})
	if err != nil && privalytics.ErrorCode(err) == privalytics.EINTERNAL {
		return fmt.Errorf("postgres: refund: %w", err)
	}
	return err
}

// Budget returns the tenant's status.
func (db *DB) Budget(ctx context.Context, tenantID string) (privalytics.BudgetStatus, error) {
	st, err := budget(ctx, db.pool, tenantID)
	if err != nil && privalytics.ErrorCode(err) == privalytics.EINTERNAL {
		return st, fmt.Errorf("postgres: budget: %w", err)
	}
	return st, err
}

// Charges lists a tenant's charges, newest first.
func (db *DB) Charges(ctx context.Context, tenantID string, offset, limit int) ([]privalytics.Charge, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, key_id, time, fingerprint, mechanisms, eps, delta, refunded, rho, periods FROM charges
		WHERE tenant_id = $1 ORDER BY time DESC, id DESC LIMIT $2 OFFSET $3`, tenantID, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("postgres: charges: %w", err)
	}
	defer rows.Close()
	out := []privalytics.Charge{}
	for rows.Next() {
		c := privalytics.Charge{TenantID: tenantID}
		var eps, delta, rho int64
		var periods string
		if err := rows.Scan(&c.ID, &c.KeyID, &c.Time, &c.Fingerprint, &c.Mechanisms, &eps, &delta, &c.Refunded, &rho, &periods); err != nil {
			return nil, fmt.Errorf("postgres: charges: %w", err)
		}
		c.Time, c.Cost = c.Time.UTC(), ledger.Cost(eps, delta)
		c.Cost.Rho = ledger.RhoCost(rho)
		if periods != "" {
			c.Periods = strings.Split(periods, ",")
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// recordChange appends to the record of grants and allocations. The sequence
// column orders changes made within one clock tick.
func recordChange(ctx context.Context, tx pgx.Tx, tenantID, kind, keyID, actor string, eps, delta int64) error {
	id, err := ledger.NewID()
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO budget_changes (id, tenant_id, time, kind, key_id, actor_key_id, eps, delta) VALUES ($1, $2, clock_timestamp(), $3, $4, $5, $6, $7)`,
		id, tenantID, kind, keyID, actor, eps, delta)
	return err
}

// Grant raises the tenant's total.
func (db *DB) Grant(ctx context.Context, tenantID string, add privalytics.Cost, actorKeyID string) (privalytics.BudgetStatus, error) {
	var st privalytics.BudgetStatus
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var b, d int64
		err := tx.QueryRow(ctx, `SELECT budget_eps, budget_delta FROM tenants WHERE id = $1 FOR UPDATE`, tenantID).Scan(&b, &d)
		if errors.Is(err, pgx.ErrNoRows) {
			return privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", tenantID)
		} else if err != nil {
			return err
		}
		eps, delta, err := ledger.CheckGrant(add, b, d)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE tenants SET budget_eps = budget_eps + $1, budget_delta = budget_delta + $2 WHERE id = $3`, eps, delta, tenantID); err != nil {
			return err
		}
		if err := recordChange(ctx, tx, tenantID, "grant", "", actorKeyID, eps, delta); err != nil {
			return err
		}
		st, err = budget(ctx, tx, tenantID)
		return err
	})
	if err != nil && privalytics.ErrorCode(err) == privalytics.EINTERNAL {
		return st, fmt.Errorf("postgres: grant: %w", err)
	}
	return st, err
}

// BudgetChanges lists grants and allocations, newest first.
func (db *DB) BudgetChanges(ctx context.Context, tenantID string, offset, limit int) ([]privalytics.BudgetChange, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, time, kind, key_id, actor_key_id, eps, delta FROM budget_changes
		WHERE tenant_id = $1 ORDER BY time DESC, id DESC LIMIT $2 OFFSET $3`, tenantID, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("postgres: budget changes: %w", err)
	}
	defer rows.Close()
	out := []privalytics.BudgetChange{}
	for rows.Next() {
		c := privalytics.BudgetChange{TenantID: tenantID}
		var eps, delta int64
		if err := rows.Scan(&c.ID, &c.Time, &c.Kind, &c.KeyID, &c.ActorKeyID, &eps, &delta); err != nil {
			return nil, fmt.Errorf("postgres: budget changes: %w", err)
		}
		c.Time, c.Amount = c.Time.UTC(), ledger.Cost(eps, delta)
		out = append(out, c)
	}
	return out, rows.Err()
}
