// Package sqlite is the embedded metadata store: tenants, API keys and the privacy
// ledger in one SQLite file (pure-Go driver, no cgo). It implements
// privalytics.MetaStore.
//
// The ledger's guarantee rests on three settings made in Open: every transaction
// begins IMMEDIATE (it takes the write lock at BEGIN, so two check-and-charges,
// even from two processes, can never both read the same spent total); the
// check is a conditional UPDATE, so it and the debit are one statement; and
// synchronous=FULL makes a charge durable before Charge returns. Amounts are
// integer units (see store/ledger), so no sequence of charges can round past a
// budget.
package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/ledger"
)

// DB is the SQLite metadata store.
type DB struct {
	db *sql.DB
}

var _ privalytics.MetaStore = (*DB)(nil)

// BusyTimeout is how long a write waits for another process's transaction on
// the same file before it fails.
const BusyTimeout = 10 * time.Second

// Open opens the database at path, creating it (0600, in a 0700 directory) if
// needed, and applies migrations. It refuses a database written by a newer
// version of Privalytics.
func Open(ctx context.Context, path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	// Create the file ourselves: SQLite would create it with the umask's mode,
	// and its -wal and -shm files copy the main file's mode.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	f.Close()
	dsn, err := dataSourceName(path, BusyTimeout)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	// One connection: SQLite has one writer anyway, and this makes every
	// transaction, including check-and-charge, strictly serial within the process.
	// The PRAGMAs live in the DSN so that a connection database/sql replaces
	// gets them too.
	db.SetMaxOpenConns(1)
	s := &DB{db: db}
	if err := s.migrate(ctx, migrations); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// dataSourceName is a file: URI for path, escaped so that a '?', '#' or '%' in
// a directory name stays part of the path, with the settings the ledger relies on.
func dataSourceName(path string, busyTimeout time.Duration) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // a Windows drive letter: file:///C:/...
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	// BEGIN IMMEDIATE: a transaction holds the write lock from its first
	// statement, so a check made inside it cannot be invalidated by a concurrent
	// writer before the debit.
	q.Set("_txlock", "immediate")
	return (&url.URL{Scheme: "file", Path: p, RawQuery: q.Encode()}).String(), nil
}

// Close closes the database.
func (s *DB) Close() error { return s.db.Close() }

var migrations = []string{
	`CREATE TABLE tenants (
		id           TEXT PRIMARY KEY,
		name         TEXT NOT NULL,
		schema       TEXT NOT NULL,
		purposes     TEXT NOT NULL,
		budget_eps   INTEGER NOT NULL,  -- units of 1e-9, rounded down
		budget_delta INTEGER NOT NULL,  -- units of 1e-15, rounded down
		spent_eps    INTEGER NOT NULL DEFAULT 0,
		spent_delta  INTEGER NOT NULL DEFAULT 0,
		wrapped_key  BLOB NOT NULL,
		created_at   TEXT NOT NULL
	);
	CREATE TABLE api_keys (
		id         TEXT PRIMARY KEY,
		tenant_id  TEXT NOT NULL,       -- '' for operator keys
		name       TEXT NOT NULL,
		role       TEXT NOT NULL,
		hash       BLOB NOT NULL,
		created_at TEXT NOT NULL,
		revoked_at TEXT
	);
	CREATE INDEX api_keys_tenant ON api_keys(tenant_id);
	CREATE TABLE charges (
		id          TEXT PRIMARY KEY,
		tenant_id   TEXT NOT NULL REFERENCES tenants(id),
		key_id      TEXT NOT NULL,
		time        TEXT NOT NULL,
		fingerprint TEXT NOT NULL,
		mechanisms  TEXT NOT NULL,
		eps         INTEGER NOT NULL,   -- units of 1e-9, rounded up
		delta       INTEGER NOT NULL,   -- units of 1e-15, rounded up
		refunded    INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX charges_tenant_time ON charges(tenant_id, time);`,
	// 2: per-key allocations. Keys without one share budget − allocated; the
	// shared pool's spending is tracked on its own so allocated shares stay whole.
	`ALTER TABLE tenants ADD COLUMN alloc_eps INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE tenants ADD COLUMN alloc_delta INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE tenants ADD COLUMN shared_eps INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE tenants ADD COLUMN shared_delta INTEGER NOT NULL DEFAULT 0;
	UPDATE tenants SET shared_eps = spent_eps, shared_delta = spent_delta;
	CREATE TABLE key_budgets (
		key_id       TEXT PRIMARY KEY,
		tenant_id    TEXT NOT NULL REFERENCES tenants(id),
		budget_eps   INTEGER NOT NULL,
		budget_delta INTEGER NOT NULL,
		spent_eps    INTEGER NOT NULL DEFAULT 0,
		spent_delta  INTEGER NOT NULL DEFAULT 0
	);
	ALTER TABLE charges ADD COLUMN from_key INTEGER NOT NULL DEFAULT 0;`,
	// 3: the record of grants and allocations.
	`CREATE TABLE budget_changes (
		id           TEXT PRIMARY KEY,
		tenant_id    TEXT NOT NULL REFERENCES tenants(id),
		time         TEXT NOT NULL,
		kind         TEXT NOT NULL,
		key_id       TEXT NOT NULL,
		actor_key_id TEXT NOT NULL,
		eps          INTEGER NOT NULL,
		delta        INTEGER NOT NULL
	);
	CREATE INDEX budget_changes_tenant_time ON budget_changes(tenant_id, time);`,
	// 4: data-period budgets.
	`ALTER TABLE tenants ADD COLUMN period TEXT NOT NULL DEFAULT '';
	ALTER TABLE charges ADD COLUMN periods TEXT NOT NULL DEFAULT '';
	CREATE TABLE period_spent (
		tenant_id   TEXT NOT NULL REFERENCES tenants(id),
		period      TEXT NOT NULL,
		spent_eps   INTEGER NOT NULL DEFAULT 0,
		spent_delta INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (tenant_id, period)
	);`,
	// 5: zCDP accounting; ρ is recorded with every charge.
	`ALTER TABLE tenants ADD COLUMN accounting TEXT NOT NULL DEFAULT '';
	ALTER TABLE tenants ADD COLUMN budget_rho INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE tenants ADD COLUMN spent_rho INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE charges ADD COLUMN rho INTEGER NOT NULL DEFAULT 0;`,
	// 6: times were RFC 3339 with trailing zeros of the fraction cut, so text
	// order was not time order ("…:05Z" sorted after "…:05.5Z"). Pad every
	// stored time to nine fraction digits, the form ts now writes.
	`UPDATE tenants SET created_at = ` + padTime("created_at") + `;
	UPDATE api_keys SET created_at = ` + padTime("created_at") + `, revoked_at = ` + padTime("revoked_at") + `;
	UPDATE charges SET time = ` + padTime("time") + `;
	UPDATE budget_changes SET time = ` + padTime("time") + `;`,
	// 7: the tenant's privacy policy, and consent records with their history.
	// consent_version goes up with every recorded batch (it keys cached answers).
	`ALTER TABLE tenants ADD COLUMN privacy TEXT NOT NULL DEFAULT '{}';
	ALTER TABLE tenants ADD COLUMN consent_version INTEGER NOT NULL DEFAULT 0;
	CREATE TABLE consents (
		seq         INTEGER PRIMARY KEY AUTOINCREMENT,
		tenant_id   TEXT NOT NULL REFERENCES tenants(id),
		subject     INTEGER NOT NULL,  -- the uint64 pseudonym, bits as int64
		purpose     TEXT NOT NULL,
		granted     INTEGER NOT NULL,
		time        TEXT NOT NULL,
		source      TEXT NOT NULL,
		recorded_at TEXT NOT NULL
	);
	CREATE INDEX consents_subject ON consents(tenant_id, subject);
	CREATE INDEX consents_purpose ON consents(tenant_id, purpose);`,
	// 8: retention periods.
	`ALTER TABLE tenants ADD COLUMN retention_days INTEGER NOT NULL DEFAULT 0;`,
}

// padTime is the SQL of migration 6 for one column: "2006-01-02T15:04:05Z" or
// "…05.5Z" becomes "…05.000000000Z" or "…05.500000000Z"; NULL stays NULL.
func padTime(col string) string {
	return `CASE WHEN substr(` + col + `, 20, 1) = '.'
		THEN substr(` + col + `, 1, 20) || substr(substr(` + col + `, 21, length(` + col + `) - 21) || '000000000', 1, 9) || 'Z'
		ELSE substr(` + col + `, 1, 19) || '.000000000Z' END`
}

// migrate applies the migrations not yet recorded in schema_migrations, each in
// its own transaction with its version, so a crash leaves either all or none of
// a migration. Version i+1 is migrations[i]; versions are never renumbered.
func (s *DB) migrate(ctx context.Context, migrations []string) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	var newest int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&newest); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	if newest > len(migrations) {
		// Running old code on a newer schema could miss columns that enforce a
		// budget (allocations, periods); refuse rather than guess.
		return fmt.Errorf("sqlite: the metadata database is at schema version %d but this build of Privalytics knows only up to %d; run a newer Privalytics", newest, len(migrations))
	}
	for i, m := range migrations {
		version := i + 1
		err := s.tx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil || n > 0 {
				return err
			}
			if _, err := tx.ExecContext(ctx, m); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES (?)`, version)
			return err
		})
		if err != nil {
			return fmt.Errorf("sqlite: migration %d: %w", version, err)
		}
	}
	return nil
}

func (s *DB) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// timeFormat has a fixed-width fraction so that text order is time order, which
// the ORDER BY of Keys and Charges rely on.
const timeFormat = "2006-01-02T15:04:05.000000000Z"

func ts(t time.Time) string { return t.UTC().Format(timeFormat) }

func parseTS(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s, err)
	}
	return t, nil
}

// CreateTenant stores t.
func (s *DB) CreateTenant(ctx context.Context, t *privalytics.Tenant) error {
	if err := t.Validate(); err != nil {
		return err
	}
	schema, err := json.Marshal(t.Schema)
	if err != nil {
		return fmt.Errorf("sqlite: create tenant: schema: %w", err)
	}
	purposes, err := json.Marshal(t.Purposes)
	if err != nil {
		return fmt.Errorf("sqlite: create tenant: purposes: %w", err)
	}
	privacy, err := json.Marshal(t.Privacy)
	if err != nil {
		return fmt.Errorf("sqlite: create tenant: privacy: %w", err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO tenants (id, name, schema, purposes, budget_eps, budget_delta, wrapped_key, created_at, period, accounting, budget_rho, privacy, retention_days) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Name, string(schema), string(purposes), ledger.Down(t.Budget.Epsilon, ledger.EpsilonDigits), ledger.Down(t.Budget.Delta, ledger.DeltaDigits), t.WrappedKey, ts(t.CreatedAt), t.Period, t.Accounting, ledger.Down(t.Budget.Rho, ledger.RhoDigits), string(privacy), t.RetentionDays)
	if isUnique(err) {
		return privalytics.Errorf(privalytics.ECONFLICT, "tenant %q already exists", t.ID)
	} else if err != nil {
		return fmt.Errorf("sqlite: create tenant: %w", err)
	}
	return nil
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

const tenantCols = `id, name, schema, purposes, budget_eps, budget_delta, wrapped_key, created_at, period, accounting, budget_rho, privacy, retention_days`

func scanTenant(row interface{ Scan(...any) error }) (*privalytics.Tenant, error) {
	var (
		t                  privalytics.Tenant
		schema, purp, crat string
		beps, bdelta       int64
		privacy            string
	)
	var brho int64
	if err := row.Scan(&t.ID, &t.Name, &schema, &purp, &beps, &bdelta, &t.WrappedKey, &crat, &t.Period, &t.Accounting, &brho, &privacy, &t.RetentionDays); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(privacy), &t.Privacy); err != nil {
		return nil, fmt.Errorf("tenant %s privacy: %w", t.ID, err)
	}
	if err := json.Unmarshal([]byte(schema), &t.Schema); err != nil {
		return nil, fmt.Errorf("tenant %s schema: %w", t.ID, err)
	}
	if err := json.Unmarshal([]byte(purp), &t.Purposes); err != nil {
		return nil, fmt.Errorf("tenant %s purposes: %w", t.ID, err)
	}
	t.Budget = ledger.Cost(beps, bdelta)
	t.Budget.Rho = ledger.RhoCost(brho)
	var err error
	if t.CreatedAt, err = parseTS(crat); err != nil {
		return nil, fmt.Errorf("tenant %s: %w", t.ID, err)
	}
	return &t, nil
}

// Tenant returns the tenant with the given ID.
func (s *DB) Tenant(ctx context.Context, id string) (*privalytics.Tenant, error) {
	t, err := scanTenant(s.db.QueryRowContext(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", id)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: tenant: %w", err)
	}
	return t, nil
}

// Tenants lists every tenant by ID.
func (s *DB) Tenants(ctx context.Context) ([]*privalytics.Tenant, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+tenantCols+` FROM tenants ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: tenants: %w", err)
	}
	defer rows.Close()
	var out []*privalytics.Tenant
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: tenants: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// CreateKey stores k.
func (s *DB) CreateKey(ctx context.Context, k *privalytics.APIKey) error {
	if !k.Role.Valid() {
		return privalytics.Errorf(privalytics.EINVALID, "role must be admin, ingest, query or processor, got %q", k.Role)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO api_keys (id, tenant_id, name, role, hash, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		k.ID, k.TenantID, k.Name, string(k.Role), k.Hash, ts(k.CreatedAt))
	if isUnique(err) {
		return privalytics.Errorf(privalytics.ECONFLICT, "key %q already exists", k.ID)
	} else if err != nil {
		return fmt.Errorf("sqlite: create key: %w", err)
	}
	return nil
}

const keyCols = `id, tenant_id, name, role, hash, created_at, revoked_at`

func scanKey(row interface{ Scan(...any) error }) (*privalytics.APIKey, error) {
	var (
		k       privalytics.APIKey
		role    string
		created string
		revoked sql.NullString
	)
	if err := row.Scan(&k.ID, &k.TenantID, &k.Name, &role, &k.Hash, &created, &revoked); err != nil {
		return nil, err
	}
	k.Role = privalytics.Role(role)
	var err error
	if k.CreatedAt, err = parseTS(created); err != nil {
		return nil, fmt.Errorf("key %s: %w", k.ID, err)
	}
	if revoked.Valid {
		t, err := parseTS(revoked.String)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", k.ID, err)
		}
		k.RevokedAt = &t
	}
	return &k, nil
}

// Key returns the key with the given ID.
func (s *DB) Key(ctx context.Context, id string) (*privalytics.APIKey, error) {
	k, err := scanKey(s.db.QueryRowContext(ctx, `SELECT `+keyCols+` FROM api_keys WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, privalytics.Errorf(privalytics.ENOTFOUND, "no key %q", id)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: key: %w", err)
	}
	return k, nil
}

// Keys lists a tenant's keys, oldest first.
func (s *DB) Keys(ctx context.Context, tenantID string) ([]*privalytics.APIKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+keyCols+` FROM api_keys WHERE tenant_id = ? ORDER BY created_at, id`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: keys: %w", err)
	}
	defer rows.Close()
	out := []*privalytics.APIKey{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: keys: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeKey marks the tenant's key revoked.
func (s *DB) RevokeKey(ctx context.Context, tenantID, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? AND tenant_id = ?`, ts(at), id, tenantID)
	if err != nil {
		return fmt.Errorf("sqlite: revoke key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return privalytics.Errorf(privalytics.ENOTFOUND, "no key %q", id)
	}
	return nil
}

// SetRetention changes a tenant's retention period.
func (s *DB) SetRetention(ctx context.Context, tenantID string, days int) error {
	if err := privalytics.ValidateRetention(days); err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE tenants SET retention_days = ? WHERE id = ?`, days, tenantID)
	if err != nil {
		return fmt.Errorf("sqlite: set retention: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", tenantID)
	}
	return nil
}

// Charge checks and records c in one statement: the spent counters move only if
// the result stays within the budget, so concurrent charges can never overspend.
func (s *DB) Charge(ctx context.Context, c *privalytics.Charge) (privalytics.BudgetStatus, error) {
	if err := ledger.CheckCharge(c.Cost); err != nil {
		return privalytics.BudgetStatus{}, err
	}
	eps, delta, rho := ledger.Up(c.Cost.Epsilon, ledger.EpsilonDigits), ledger.Up(c.Cost.Delta, ledger.DeltaDigits), ledger.Up(c.Cost.Rho, ledger.RhoDigits)
	var idb [16]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return privalytics.BudgetStatus{}, fmt.Errorf("sqlite: charge: %w", err)
	}
	// The caller's charge gets its ID only once it is recorded.
	id := hex.EncodeToString(idb[:])
	var st privalytics.BudgetStatus
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var period, accounting string
		var pb, pd int64
		if err := tx.QueryRowContext(ctx, `SELECT period, budget_eps, budget_delta, accounting FROM tenants WHERE id = ?`, c.TenantID).Scan(&period, &pb, &pd, &accounting); errors.Is(err, sql.ErrNoRows) {
			return privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", c.TenantID)
		} else if err != nil {
			return err
		}
		if accounting == privalytics.AccountingZCDP {
			// ρ adds up; the approximate parts' δ may use half the δ budget, the
			// other half is kept for converting ρ back to (ε, δ).
			var srho int64
			err := tx.QueryRowContext(ctx, `UPDATE tenants SET spent_rho = spent_rho + ?, spent_delta = spent_delta + ?, spent_eps = spent_eps + ?
				WHERE id = ? AND spent_rho + ? <= budget_rho AND spent_delta + ? <= budget_delta / 2 RETURNING spent_rho`, rho, delta, eps, c.TenantID, rho, delta).Scan(&srho)
			if errors.Is(err, sql.ErrNoRows) {
				cur, err := budgetTx(ctx, tx, c.TenantID)
				if err != nil {
					return err
				}
				return ledger.ExhaustedRho(c.Cost, cur.Remaining)
			} else if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO charges (id, tenant_id, key_id, time, fingerprint, mechanisms, eps, delta, rho) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				id, c.TenantID, c.KeyID, ts(c.Time), c.Fingerprint, c.Mechanisms, eps, delta, rho); err != nil {
				return err
			}
			var err2 error
			st, err2 = budgetTx(ctx, tx, c.TenantID)
			return err2
		}
		// Every charge records its ρ, whatever the accounting.
		if _, err := tx.ExecContext(ctx, `UPDATE tenants SET spent_rho = spent_rho + ? WHERE id = ?`, rho, c.TenantID); err != nil {
			return err
		}
		if period != "" {
			if err := ledger.CheckPeriods(c.Periods); err != nil {
				return err
			}
			// Each period the query touches needs room for the whole charge.
			for _, p := range c.Periods {
				if _, err := tx.ExecContext(ctx, `INSERT INTO period_spent (tenant_id, period) VALUES (?, ?) ON CONFLICT DO NOTHING`, c.TenantID, p); err != nil {
					return err
				}
				var se, sd int64
				err := tx.QueryRowContext(ctx, `UPDATE period_spent SET spent_eps = spent_eps + ?, spent_delta = spent_delta + ?
					WHERE tenant_id = ? AND period = ? AND spent_eps + ? <= ? AND spent_delta + ? <= ? RETURNING spent_eps`, eps, delta, c.TenantID, p, eps, pb, delta, pd).Scan(&se)
				if errors.Is(err, sql.ErrNoRows) {
					if err := tx.QueryRowContext(ctx, `SELECT spent_eps, spent_delta FROM period_spent WHERE tenant_id = ? AND period = ?`, c.TenantID, p).Scan(&se, &sd); err != nil {
						return err
					}
					return ledger.ExhaustedPeriod(p, c.Cost, ledger.Cost(pb-se, pd-sd))
				} else if err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `UPDATE tenants SET spent_eps = spent_eps + ?, spent_delta = spent_delta + ? WHERE id = ?`, eps, delta, c.TenantID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO charges (id, tenant_id, key_id, time, fingerprint, mechanisms, eps, delta, periods, rho) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				id, c.TenantID, c.KeyID, ts(c.Time), c.Fingerprint, c.Mechanisms, eps, delta, strings.Join(c.Periods, ","), rho); err != nil {
				return err
			}
			var err error
			st, err = budgetTx(ctx, tx, c.TenantID)
			return err
		}
		// A key with an allocation spends only from it.
		var own int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM key_budgets WHERE key_id = ? AND tenant_id = ?`, c.KeyID, c.TenantID).Scan(&own); err != nil {
			return err
		}
		if own > 0 {
			res, err := tx.ExecContext(ctx, `UPDATE key_budgets SET spent_eps = spent_eps + ?, spent_delta = spent_delta + ?
				WHERE key_id = ? AND spent_eps + ? <= budget_eps AND spent_delta + ? <= budget_delta`, eps, delta, c.KeyID, eps, delta)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				kb, err := keyBudget(ctx, tx, c.TenantID, c.KeyID)
				if err != nil {
					return err
				}
				return ledger.ExhaustedKey(c.Cost, kb.Remaining)
			}
		}
		shared := `AND shared_eps + ? <= budget_eps - alloc_eps AND shared_delta + ? <= budget_delta - alloc_delta`
		sharedSet := `, shared_eps = shared_eps + ?, shared_delta = shared_delta + ?`
		args := []any{eps, delta, eps, delta, c.TenantID, eps, delta, eps, delta}
		if own > 0 {
			shared, sharedSet = "", ""
			args = []any{eps, delta, c.TenantID, eps, delta}
		}
		var beps, bdelta, seps, sdelta, aeps, adelta int64
		err := tx.QueryRowContext(ctx, `UPDATE tenants SET spent_eps = spent_eps + ?, spent_delta = spent_delta + ?`+sharedSet+`
			WHERE id = ? AND spent_eps + ? <= budget_eps AND spent_delta + ? <= budget_delta `+shared+`
			RETURNING budget_eps, budget_delta, spent_eps, spent_delta, alloc_eps, alloc_delta`, args...).Scan(&beps, &bdelta, &seps, &sdelta, &aeps, &adelta)
		if errors.Is(err, sql.ErrNoRows) {
			kb, err := keyBudget(ctx, tx, c.TenantID, c.KeyID)
			if err != nil {
				return err
			}
			return ledger.Exhausted(c.Cost, kb.Remaining)
		} else if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO charges (id, tenant_id, key_id, time, fingerprint, mechanisms, eps, delta, from_key, rho) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, c.TenantID, c.KeyID, ts(c.Time), c.Fingerprint, c.Mechanisms, eps, delta, own > 0, rho); err != nil {
			return err
		}
		st = ledger.Status(c.TenantID, beps, bdelta, seps, sdelta)
		st.Allocated = ledger.Cost(aeps, adelta)
		return nil
	})
	if err != nil {
		if privalytics.ErrorCode(err) != privalytics.EINTERNAL {
			return privalytics.BudgetStatus{}, err
		}
		return privalytics.BudgetStatus{}, fmt.Errorf("sqlite: charge: %w", err)
	}
	c.ID = id
	return st, nil
}

type querier interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

// keyBudget is what a key may spend: its allocation, or the shared pool.
func keyBudget(ctx context.Context, q querier, tenantID, keyID string) (privalytics.KeyBudget, error) {
	var b, d, se, sd int64
	err := q.QueryRowContext(ctx, `SELECT budget_eps, budget_delta, spent_eps, spent_delta FROM key_budgets WHERE key_id = ? AND tenant_id = ?`, keyID, tenantID).Scan(&b, &d, &se, &sd)
	if err == nil {
		return ledger.KeyStatus(keyID, false, b, d, se, sd), nil
	} else if !errors.Is(err, sql.ErrNoRows) {
		return privalytics.KeyBudget{}, err
	}
	var ae, ad int64
	err = q.QueryRowContext(ctx, `SELECT budget_eps, budget_delta, alloc_eps, alloc_delta, shared_eps, shared_delta FROM tenants WHERE id = ?`, tenantID).Scan(&b, &d, &ae, &ad, &se, &sd)
	if errors.Is(err, sql.ErrNoRows) {
		return privalytics.KeyBudget{}, privalytics.Errorf(privalytics.ENOTFOUND, "no tenant %q", tenantID)
	} else if err != nil {
		return privalytics.KeyBudget{}, err
	}
	return ledger.KeyStatus(keyID, true, b-ae, d-ad, se, sd), nil
}

// KeyBudget returns what the key may spend.
func (s *DB) KeyBudget(ctx context.Context, tenantID, keyID string) (privalytics.KeyBudget, error) {
	kb, err := keyBudget(ctx, s.db, tenantID, keyID)
	if err != nil && privalytics.ErrorCode(err) == privalytics.EINTERNAL {
		return kb, fmt.Errorf("sqlite: key budget: %w", err)
	}
	return kb, err
}

// Allocate sets or removes a key's own share.
func (s *DB) Allocate(ctx context.Context, tenantID, keyID string, share privalytics.Cost, actorKeyID string) error {
	if err := ledger.CheckCharge(share); err != nil {
		return err
	}
	eps, delta := ledger.Down(share.Epsilon, ledger.EpsilonDigits), ledger.Down(share.Delta, ledger.DeltaDigits)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var owner string
		if err := tx.QueryRowContext(ctx, `SELECT tenant_id FROM api_keys WHERE id = ?`, keyID).Scan(&owner); errors.Is(err, sql.ErrNoRows) || owner != tenantID {
			return privalytics.Errorf(privalytics.ENOTFOUND, "no key %q", keyID)
		} else if err != nil {
			return err
		}
		var oe, od, ke, kd int64 // the key's old share and spending
		err := tx.QueryRowContext(ctx, `SELECT budget_eps, budget_delta, spent_eps, spent_delta FROM key_budgets WHERE key_id = ?`, keyID).Scan(&oe, &od, &ke, &kd)
		had := err == nil
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var b, d, ae, ad, se, sd int64
		var period string
		if err := tx.QueryRowContext(ctx, `SELECT budget_eps, budget_delta, alloc_eps, alloc_delta, shared_eps, shared_delta, period || accounting FROM tenants WHERE id = ?`, tenantID).Scan(&b, &d, &ae, &ad, &se, &sd, &period); err != nil {
			return err
		}
		if period != "" {
			return ledger.ErrSharesWithPeriods
		}
		plan, err := ledger.Reallocate(ledger.Allocation{Budget: [2]int64{b, d}, Allocated: [2]int64{ae, ad}, SharedSpent: [2]int64{se, sd}},
			had, [2]int64{oe, od}, [2]int64{ke, kd}, [2]int64{eps, delta})
		if err != nil {
			return err
		}
		if plan.Remove {
			if _, err := tx.ExecContext(ctx, `DELETE FROM key_budgets WHERE key_id = ?`, keyID); err != nil {
				return err
			}
		} else if _, err := tx.ExecContext(ctx, `INSERT INTO key_budgets (key_id, tenant_id, budget_eps, budget_delta) VALUES (?, ?, ?, ?)
			ON CONFLICT (key_id) DO UPDATE SET budget_eps = excluded.budget_eps, budget_delta = excluded.budget_delta`, keyID, tenantID, eps, delta); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tenants SET alloc_eps = ?, alloc_delta = ?, shared_eps = ?, shared_delta = ? WHERE id = ?`,
			plan.Allocated[0], plan.Allocated[1], plan.SharedSpent[0], plan.SharedSpent[1], tenantID); err != nil {
			return err
		}
		return recordChange(ctx, tx, tenantID, "allocate", keyID, actorKeyID, eps, delta)
	})
	if err != nil && privalytics.ErrorCode(err) == privalytics.EINTERNAL {
		return fmt.Errorf("sqlite: allocate: %w", err)
	}
	return err
}

func budgetTx(ctx context.Context, q querier, tenantID string) (privalytics.BudgetStatus, error) {
	var beps, bdelta, seps, sdelta, aeps, adelta, brho, srho int64
	var period, accounting string
	err := q.QueryRowContext(ctx, `SELECT budget_eps, budget_delta, spent_eps, spent_delta, alloc_eps, alloc_delta, period, accounting, budget_rho, spent_rho FROM tenants WHERE id = ?`, tenantID).Scan(&beps, &bdelta, &seps, &sdelta, &aeps, &adelta, &period, &accounting, &brho, &srho)
	if errors.Is(err, sql.ErrNoRows) {
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
	rows, err := q.QueryContext(ctx, `SELECT period, spent_eps, spent_delta FROM period_spent WHERE tenant_id = ? ORDER BY period`, tenantID)
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
func (s *DB) Refund(ctx context.Context, tenantID, chargeID string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var eps, delta int64
		var keyID, periods, accounting string
		var fromKey bool
		var rho int64
		err := tx.QueryRowContext(ctx, `UPDATE charges SET refunded = 1 WHERE id = ? AND tenant_id = ? AND refunded = 0 RETURNING eps, delta, key_id, from_key, periods, rho`, chargeID, tenantID).Scan(&eps, &delta, &keyID, &fromKey, &periods, &rho)
		if errors.Is(err, sql.ErrNoRows) {
			return privalytics.Errorf(privalytics.ENOTFOUND, "no unrefunded charge %q", chargeID)
		} else if err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `UPDATE tenants SET spent_rho = spent_rho - ? WHERE id = ? RETURNING accounting`, rho, tenantID).Scan(&accounting); err != nil {
			return err
		}
		if accounting == privalytics.AccountingZCDP {
			_, err = tx.ExecContext(ctx, `UPDATE tenants SET spent_eps = spent_eps - ?, spent_delta = spent_delta - ? WHERE id = ?`, eps, delta, tenantID)
			return err
		}
		if periods != "" {
			for _, p := range strings.Split(periods, ",") {
				if _, err := tx.ExecContext(ctx, `UPDATE period_spent SET spent_eps = spent_eps - ?, spent_delta = spent_delta - ? WHERE tenant_id = ? AND period = ?`, eps, delta, tenantID, p); err != nil {
					return err
				}
			}
			_, err = tx.ExecContext(ctx, `UPDATE tenants SET spent_eps = spent_eps - ?, spent_delta = spent_delta - ? WHERE id = ?`, eps, delta, tenantID)
			return err
		}
		if fromKey {
			if _, err := tx.ExecContext(ctx, `UPDATE key_budgets SET spent_eps = spent_eps - ?, spent_delta = spent_delta - ? WHERE key_id = ?`, eps, delta, keyID); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `UPDATE tenants SET spent_eps = spent_eps - ?, spent_delta = spent_delta - ? WHERE id = ?`, eps, delta, tenantID)
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE tenants SET spent_eps = spent_eps - ?, spent_delta = spent_delta - ?, shared_eps = shared_eps - ?, shared_delta = shared_delta - ? WHERE id = ?`, eps, delta, eps, delta, tenantID)
		return err
	})
	if err != nil && privalytics.ErrorCode(err) == privalytics.EINTERNAL {
		return fmt.Errorf("sqlite: refund: %w", err)
	}
	return err
}

// Budget returns the tenant's status.
func (s *DB) Budget(ctx context.Context, tenantID string) (privalytics.BudgetStatus, error) {
	st, err := budgetTx(ctx, s.db, tenantID)
	if err != nil && privalytics.ErrorCode(err) == privalytics.EINTERNAL {
		return st, fmt.Errorf("sqlite: budget: %w", err)
	}
	return st, err
}

// Charges lists a tenant's charges, newest first.
func (s *DB) Charges(ctx context.Context, tenantID string, offset, limit int) ([]privalytics.Charge, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, key_id, time, fingerprint, mechanisms, eps, delta, refunded, rho, periods FROM charges
		WHERE tenant_id = ? ORDER BY time DESC, id DESC LIMIT ? OFFSET ?`, tenantID, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("sqlite: charges: %w", err)
	}
	defer rows.Close()
	out := []privalytics.Charge{}
	for rows.Next() {
		c := privalytics.Charge{TenantID: tenantID}
		var t string
		var eps, delta, rho int64
		var periods string
		if err := rows.Scan(&c.ID, &c.KeyID, &t, &c.Fingerprint, &c.Mechanisms, &eps, &delta, &c.Refunded, &rho, &periods); err != nil {
			return nil, fmt.Errorf("sqlite: charges: %w", err)
		}
		if c.Time, err = parseTS(t); err != nil {
			return nil, fmt.Errorf("sqlite: charges: %w", err)
		}
		c.Cost = ledger.Cost(eps, delta)
		c.Cost.Rho = ledger.RhoCost(rho)
		if periods != "" {
			c.Periods = strings.Split(periods, ",")
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// recordChange appends to the record of grants and allocations.
func recordChange(ctx context.Context, tx *sql.Tx, tenantID, kind, keyID, actor string, eps, delta int64) error {
	id, err := ledger.NewID()
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO budget_changes (id, tenant_id, time, kind, key_id, actor_key_id, eps, delta) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		id, tenantID, ts(time.Now()), kind, keyID, actor, eps, delta)
	return err
}

// Grant raises the tenant's total.
func (s *DB) Grant(ctx context.Context, tenantID string, add privalytics.Cost, actorKeyID string) (privalytics.BudgetStatus, error) {
	var st privalytics.BudgetStatus
	err := s.tx(ctx, func(tx *sql.Tx) error {
		cur, err := budgetTx(ctx, tx, tenantID)
		if err != nil {
			return err
		}
		eps, delta, err := ledger.CheckGrant(add, ledger.Down(cur.Total.Epsilon, ledger.EpsilonDigits), ledger.Down(cur.Total.Delta, ledger.DeltaDigits))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tenants SET budget_eps = budget_eps + ?, budget_delta = budget_delta + ? WHERE id = ?`, eps, delta, tenantID); err != nil {
			return err
		}
		if err := recordChange(ctx, tx, tenantID, "grant", "", actorKeyID, eps, delta); err != nil {
			return err
		}
		st, err = budgetTx(ctx, tx, tenantID)
		return err
	})
	if err != nil && privalytics.ErrorCode(err) == privalytics.EINTERNAL {
		return st, fmt.Errorf("sqlite: grant: %w", err)
	}
	return st, err
}

// BudgetChanges lists grants and allocations, newest first.
func (s *DB) BudgetChanges(ctx context.Context, tenantID string, offset, limit int) ([]privalytics.BudgetChange, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, time, kind, key_id, actor_key_id, eps, delta FROM budget_changes
		WHERE tenant_id = ? ORDER BY time DESC, rowid DESC LIMIT ? OFFSET ?`, tenantID, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("sqlite: budget changes: %w", err)
	}
	defer rows.Close()
	out := []privalytics.BudgetChange{}
	for rows.Next() {
		c := privalytics.BudgetChange{TenantID: tenantID}
		var t string
		var eps, delta int64
		if err := rows.Scan(&c.ID, &t, &c.Kind, &c.KeyID, &c.ActorKeyID, &eps, &delta); err != nil {
			return nil, fmt.Errorf("sqlite: budget changes: %w", err)
		}
		if c.Time, err = parseTS(t); err != nil {
			return nil, fmt.Errorf("sqlite: budget changes: %w", err)
		}
		c.Amount = ledger.Cost(eps, delta)
		out = append(out, c)
	}
	return out, rows.Err()
}
