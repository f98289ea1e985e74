// Package postgres is the production metadata store: tenants, API keys, the
// privacy ledger and consent records on PostgreSQL, through pgx's database/sql
// driver. The store itself — its queries and the budget policy (dp.Decide) — is
// store/sqlstore's, shared with store/sqlite; this package holds Open, the
// dialect and the migrations (migrations/*.sql). The conformance suite in
// store/storetest runs against both.
//
// Every ledger change starts with SELECT … FOR UPDATE of the tenant's row, so
// concurrent charges of a tenant are serialised, also across server processes
// sharing the database; the CHECK constraints of the schema are a second guard.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/sqlstore"
)

// DB is the PostgreSQL metadata store.
type DB struct {
	*sqlstore.Store
}

var _ privalytics.MetaStore = (*DB)(nil)

var dialect = sqlstore.Dialect{
	Name:     "postgres",
	Numbered: true,
	Lock:     " FOR UPDATE",
	// One migrator at a time, even with several servers starting together.
	MigrationLock: `SELECT pg_advisory_xact_lock(7263521)`,
	IsUnique: func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "23505"
	},
	Time:        sqlstore.TimeValue,
	ChangeOrder: "seq",
	Types: sqlstore.Types{Int: "BIGINT", Bytes: "BYTEA", Time: "TIMESTAMPTZ", JSON: "JSONB", Bool: "BOOLEAN", False: "FALSE",
		Serial: "BIGSERIAL PRIMARY KEY", Checks: true},
	// The consent version and the decisions it covers are read from one snapshot.
	ReadTx: &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true},
}

//go:embed migrations/*.sql
var ownMigrations embed.FS

// steps are the schema's versions, in the order this store first applied
// them; append only.
var steps = []string{"01_tenants.sql", "02_allocations.sql", "03_budget_changes.sql", "04_periods.sql", "05_zcdp.sql",
	"06_consents.sql", "07_retention.sql", "budget_change_seq.sql", "08_views.sql", "09_release_charged.sql"}

// Open connects with a pgx connection string (e.g.
// "postgres://user@127.0.0.1:5432/db?sslmode=disable") and applies migrations.
func Open(ctx context.Context, dsn string) (*DB, error) {
	// pgxpool's parser takes the pool_* settings (pool_max_conns, …) out of
	// the DSN, as when the store used pgxpool; pgx alone would send them to the
	// server as unknown parameters.
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	db := stdlib.OpenDB(*cfg.ConnConfig)
	// As many connections as pgxpool allowed (default max(4, CPUs)), all kept
	// open: a burst of charges waits for a connection instead of opening one
	// per request up to the server's max_connections.
	db.SetMaxOpenConns(int(cfg.MaxConns))
	db.SetMaxIdleConns(int(cfg.MaxConns))
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: cannot reach the database: %w", err)
	}
	own, err := fs.Sub(ownMigrations, "migrations")
	if err != nil {
		db.Close()
		return nil, err
	}
	migrations, err := sqlstore.Migrations(dialect, own, steps...)
	if err == nil {
		err = sqlstore.Migrate(ctx, db, dialect, migrations)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return &DB{sqlstore.New(db, dialect)}, nil
}
