// Package sqlstore is the metadata store written once over database/sql:
// tenants, API keys, the privacy ledger (charges, refunds, allocations, grants,
// data periods) and consent records. store/sqlite and store/postgres supply only
// the connection, a Dialect and their migrations.
//
// The ledger's guarantee: every charge reads the tenant's ledger row with the
// row locked (SQLite: the transaction holds the write lock from BEGIN
// IMMEDIATE; PostgreSQL: SELECT … FOR UPDATE), asks dp.Decide — the one budget
// policy — and writes the new sums in the same transaction, so concurrent
// charges, even from several processes, can never both pass on the same spent
// total. Amounts are integer units (dp/units.go), so no sequence of charges can
// round past a budget, and the sums that no budget binds saturate instead of
// overflowing.
package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/privalytics/privalytics"
)

// Dialect is what differs between the SQL databases the store runs on.
type Dialect struct {
	// Name prefixes internal errors ("sqlite: charge: …").
	Name string
	// Numbered placeholders ($1, $2, …) instead of ?.
	Numbered bool
	// Lock follows the SELECT of the tenant's row that every ledger change
	// starts with: " FOR UPDATE" where the row must be locked explicitly, ""
	// where the transaction already holds the write lock from its BEGIN.
	Lock string
	// MigrationLock, if set, is run first in each migration's transaction so
	// that servers starting together migrate one at a time.
	MigrationLock string
	// IsUnique reports a unique-constraint violation.
	IsUnique func(error) bool
	// Time is how a time is written: a value the column type takes, and that
	// sorts in time order (SQLite keeps fixed-width text).
	Time func(time.Time) any
	// ChangeOrder is the column that orders budget changes made within one
	// clock tick.
	ChangeOrder string
	// Types are the schema's column types (see Migrations).
	Types Types
	// ReadTx are the options of a transaction that reads several tables
	// consistently; nil for the database's default.
	ReadTx *sql.TxOptions
}

// Store is a privalytics.MetaStore over a database/sql handle.
type Store struct {
	db *sql.DB
	d  Dialect
}

var _ privalytics.MetaStore = (*Store)(nil)

// New returns a store over db, which must already be migrated (see Migrate).
func New(db *sql.DB, d Dialect) *Store { return &Store{db: db, d: d} }

// Close closes the database handle.
func (s *Store) Close() error { return s.db.Close() }

// q rewrites the ? placeholders of query for the dialect. No query of this
// package has a ? anywhere else.
func (s *Store) q(query string) string {
	if !s.d.Numbered {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// fail wraps an internal error with the store's name and the operation; coded
// errors (ENOTFOUND, EBUDGET, …) pass unchanged.
func (s *Store) fail(op string, err error) error {
	if err == nil || privalytics.ErrorCode(err) != privalytics.EINTERNAL {
		return err
	}
	return fmt.Errorf("%s: %s: %w", s.d.Name, op, err)
}

func (s *Store) tx(ctx context.Context, opts *sql.TxOptions, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

//go:embed schema/*.sql
var schemaFiles embed.FS

// Types are the column types and features a dialect's schema is written with;
// the files of schema/ are text/templates over them.
type Types struct {
	Int, Bytes, Time, JSON, Bool, False string
	// Serial is an auto-numbered primary key column's type and constraint.
	Serial string
	// Checks adds CHECK constraints that repeat the budget policy's bounds, a
	// second guard where the database can later drop and replace them.
	Checks bool
}

// Migrations renders the schema for d, version i+1 from steps[i]: a step names
// a file of this package's schema/ (e.g. "01_tenants.sql") or, for a step only
// one database has, a file of own. A store's list of steps is append-only:
// recorded versions are never renumbered.
func Migrations(d Dialect, own fs.FS, steps ...string) ([]string, error) {
	out := make([]string, len(steps))
	for i, step := range steps {
		var fsys fs.FS = own
		name := step
		if _, err := fs.Stat(schemaFiles, "schema/"+step); err == nil {
			fsys, name = schemaFiles, "schema/"+step
		}
		raw, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("%s: migration %d: %w", d.Name, i+1, err)
		}
		tmpl, err := template.New(step).Option("missingkey=error").Parse(string(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: migration %d: %w", d.Name, i+1, err)
		}
		var b strings.Builder
		if err := tmpl.Execute(&b, d.Types); err != nil {
			return nil, fmt.Errorf("%s: migration %d: %w", d.Name, i+1, err)
		}
		out[i] = b.String()
	}
	return out, nil
}

// Migrate applies the migrations not yet recorded in schema_migrations, each
// in its own transaction with its version, so a crash leaves either all or none
// of a migration. It refuses a database written by a newer build: old code on a
// newer schema could miss columns that enforce a budget.
func Migrate(ctx context.Context, db *sql.DB, d Dialect, migrations []string) error {
	s := New(db, d)
	for i := 0; i <= len(migrations); i++ {
		version := i // 0: create the table of versions
		err := s.tx(ctx, nil, func(tx *sql.Tx) error {
			if d.MigrationLock != "" {
				if _, err := tx.ExecContext(ctx, d.MigrationLock); err != nil {
					return err
				}
			}
			if version == 0 {
				if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)`); err != nil {
					return err
				}
				var newest int
				if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&newest); err != nil {
					return err
				}
				if newest > len(migrations) {
					return fmt.Errorf("the metadata database is at schema version %d but this build of Privalytics knows only up to %d; run a newer Privalytics", newest, len(migrations))
				}
				return nil
			}
			var n int
			if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), version).Scan(&n); err != nil || n > 0 {
				return err
			}
			if _, err := tx.ExecContext(ctx, migrations[version-1]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version) VALUES (?)`), version)
			return err
		})
		if err != nil && version == 0 {
			return fmt.Errorf("%s: migrate: %w", d.Name, err)
		} else if err != nil {
			return fmt.Errorf("%s: migration %d: %w", d.Name, version, err)
		}
	}
	return nil
}

// NewID returns a random 128-bit hex identifier.
func NewID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// TimeText is the form SQLite keeps times in: a fixed-width fraction, so that
// text order is time order, which the ORDER BY of Keys and Charges relies on.
func TimeText(t time.Time) any { return t.UTC().Format("2006-01-02T15:04:05.000000000Z") }

// TimeValue writes a time as itself, for a database with a time type.
func TimeValue(t time.Time) any { return t.UTC() }

// scanTime reads a time stored either way: as a time, or as RFC 3339 text.
type scanTime struct {
	t     *time.Time
	valid bool
}

func (s *scanTime) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		s.valid = false
		return nil
	case time.Time:
		*s.t = v.UTC()
	case string:
		return s.parse(v)
	case []byte:
		return s.parse(string(v))
	default:
		return fmt.Errorf("stored time of type %T", v)
	}
	s.valid = true
	return nil
}

func (s *scanTime) parse(v string) error {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return fmt.Errorf("stored time %q: %w", v, err)
	}
	*s.t, s.valid = t.UTC(), true
	return nil
}

func timeOf(t *time.Time) *scanTime { return &scanTime{t: t} }

var errNoRows = sql.ErrNoRows

func noRows(err error) bool { return errors.Is(err, errNoRows) }
