// Package sqlite is the embedded metadata store: tenants, API keys and the privacy
// ledger in one SQLite file (pure-Go driver, no cgo). It implements
// privalytics.MetaStore.
//
// The ledger's guarantee rests on two settings made in Open: every transaction
// begins IMMEDIATE (it takes the write lock at BEGIN, so two check-and-charges,
// even from two processes, can never both read the same spent total), and
// synchronous=FULL makes a charge durable before Charge returns. Everything
// else — the queries, the budget policy (dp.Decide) — is store/sqlstore's,
// shared with store/postgres; this package holds Open, the dialect and the
// migrations (migrations/*.sql).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/sqlstore"
)

// DB is the SQLite metadata store: the shared SQL store over one SQLite file.
type DB struct {
	*sqlstore.Store
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
	s := &DB{Store: sqlstore.New(db, dialect), db: db}
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

// dialect is SQLite's: ? placeholders, and no row locks — every transaction
// already holds the database's write lock from its BEGIN IMMEDIATE.
var dialect = sqlstore.Dialect{
	Name:        "sqlite",
	IsUnique:    func(err error) bool { return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") },
	Time:        sqlstore.TimeText,
	ChangeOrder: "rowid",
	Types: sqlstore.Types{Int: "INTEGER", Bytes: "BLOB", Time: "TEXT", JSON: "TEXT", Bool: "INTEGER", False: "0",
		Serial: "INTEGER PRIMARY KEY AUTOINCREMENT"},
}

//go:embed migrations/*.sql
var ownMigrations embed.FS

// migrations are the schema's versions, in the order this store first applied
// them; append only.
var migrations = func() []string {
	own, err := fs.Sub(ownMigrations, "migrations")
	if err != nil {
		panic(err)
	}
	m, err := sqlstore.Migrations(dialect, own, "01_tenants.sql", "02_allocations.sql", "03_budget_changes.sql", "04_periods.sql", "05_zcdp.sql",
		"pad_times.sql", "06_consents.sql", "07_retention.sql", "08_views.sql", "09_release_charged.sql")
	if err != nil {
		panic(err) // embedded at build time; TestConformance opens a store with them
	}
	return m
}()

func (s *DB) migrate(ctx context.Context, migrations []string) error {
	return sqlstore.Migrate(ctx, s.db, dialect, migrations)
}
