package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/sqlstore"
	"github.com/privalytics/privalytics/store/storetest"
)

func openT(t *testing.T, path string) *DB {
	t.Helper()
	return storetest.Opened[*DB](t)(Open(context.Background(), path))
}

// openAt opens path with only the first n migrations applied, as an older
// build of Privalytics left it.
func openAt(t *testing.T, path string, n int) *DB {
	t.Helper()
	dsn, err := dataSourceName(path, BusyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	raw.SetMaxOpenConns(1)
	db := &DB{Store: sqlstore.New(raw, dialect), db: raw}
	t.Cleanup(func() { db.Close() })
	if err := db.migrate(context.Background(), migrations[:n]); err != nil {
		t.Fatal(err)
	}
	return db
}

func newTenant(id string, eps float64) *privalytics.Tenant {
	return &privalytics.Tenant{ID: id, Name: id, Schema: privalytics.DefaultRetailSchema(), Budget: privalytics.Cost{Epsilon: eps},
		Purposes: []string{"analytics"}, WrappedKey: []byte{1}, CreatedAt: time.Now()}
}

// TestOpenSettings: the PRAGMAs the ledger's guarantees rest on are in force on
// the connection Open hands out.
func TestOpenSettings(t *testing.T) {
	t.Parallel()
	db := openT(t, filepath.Join(t.TempDir(), "meta.db"))
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL: a charge is on disk before Charge returns
		{"foreign_keys", "1"},
		{"busy_timeout", fmt.Sprint(BusyTimeout.Milliseconds())},
	}
	for _, tt := range tests {
		var got string
		if err := db.db.QueryRow("PRAGMA " + tt.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tt.pragma, err)
		}
		if got != tt.want {
			t.Errorf("PRAGMA %s = %q, want %q", tt.pragma, got, tt.want)
		}
	}
}

// TestTransactionsLockAtBegin: a transaction holds the write lock from BEGIN
// (the driver's _txlock=immediate), so no other writer can slip in between a
// check and the debit. With a deferred BEGIN the second writer would get in.
func TestTransactionsLockAtBegin(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "meta.db")
	db := openT(t, path)
	ctx := context.Background()
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Another process's view of the file, which does not wait for locks.
	dsn, err := dataSourceName(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if otx, err := other.BeginTx(ctx, nil); err == nil {
		otx.Rollback()
		t.Fatal("a second writer began a transaction while the first held one; BEGIN is not IMMEDIATE")
	} else if !strings.Contains(err.Error(), "locked") && !strings.Contains(err.Error(), "busy") {
		t.Fatalf("second writer: %v, want database is locked", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	otx, err := other.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("after the first transaction ended: %v", err)
	}
	otx.Rollback()
}

// TestTwoProcessesNeverOverspend: two stores on one file — the server and a CLI
// command, say — race 64 charges of ε=1 against a budget of 17: exactly 17
// succeed in every trial. Within one store the single connection serialises;
// across stores only SQLite's lock and BEGIN IMMEDIATE do.
func TestTwoProcessesNeverOverspend(t *testing.T) {
	t.Parallel()
	const racers, k, trials = 64, 17, 20
	path := filepath.Join(t.TempDir(), "meta.db")
	stores := []*DB{openT(t, path), openT(t, path)}
	ctx := context.Background()
	for trial := range trials {
		id := fmt.Sprintf("race-%d", trial)
		if err := stores[0].CreateTenant(ctx, newTenant(id, k)); err != nil {
			t.Fatal(err)
		}
		var ok atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range racers {
			wg.Go(func() {
				<-start
				_, err := stores[i%2].Charge(ctx, &privalytics.Charge{TenantID: id, Time: time.Now(), Cost: privalytics.Cost{Epsilon: 1}})
				if err == nil {
					ok.Add(1)
				} else if privalytics.ErrorCode(err) != privalytics.EBUDGET {
					t.Errorf("charge: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if ok.Load() != k {
			t.Fatalf("trial %d: %d charges succeeded across two stores, want exactly %d", trial, ok.Load(), k)
		}
		for i, s := range stores {
			if st, err := s.Budget(ctx, id); err != nil || st.Spent.Epsilon != k {
				t.Fatalf("trial %d: store %d reads %+v %v, want spent %d", trial, i, st, err, k)
			}
		}
	}
}

// TestFilesArePrivate: the database, its WAL and the directory Open creates are
// the server user's alone; they hold wrapped keys and the ledger.
func TestFilesArePrivate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data", "meta")
	path := filepath.Join(dir, "meta.db")
	db := openT(t, path)
	if err := db.CreateTenant(context.Background(), newTenant("shop", 1)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want os.FileMode
	}{
		{dir, 0o700},
		{filepath.Dir(dir), 0o700},
		{path, 0o600},
		{path + "-wal", 0o600},
		{path + "-shm", 0o600},
	}
	for _, tt := range tests {
		fi, err := os.Stat(tt.path)
		if err != nil {
			t.Errorf("stat %s: %v", tt.path, err)
			continue
		}
		if got := fi.Mode().Perm(); got != tt.want {
			t.Errorf("%s has mode %v, want %v", filepath.Base(tt.path), got, tt.want)
		}
	}
}

// TestOpenPathsThatNeedEscaping: a data directory may contain characters that
// mean something in a URI; they must stay part of the file name.
func TestOpenPathsThatNeedEscaping(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"with space", "what?", "hash#tag", "100%", "a&b=c"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), name, "meta.db")
			db := openT(t, path)
			if err := db.CreateTenant(context.Background(), newTenant("shop", 1)); err != nil {
				t.Fatal(err)
			}
			// Closing the last connection checkpoints the WAL into the file.
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
				t.Errorf("nothing was written to %q: %v", path, err)
			}
			var names []string
			entries, _ := os.ReadDir(filepath.Dir(filepath.Dir(path)))
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if diff := cmp.Diff([]string{name}, names); diff != "" {
				t.Errorf("Open wrote beside the intended directory (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMigrationsIdempotent: reopening applies nothing twice and keeps data; the
// version table lists each migration once.
func TestMigrationsIdempotent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "meta.db")
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateTenant(ctx, newTenant("shop", 1)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for range 2 {
		db, err = Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		db.Close()
	}
	db = openT(t, path)
	var versions []int
	rows, err := db.db.Query(`SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	rows.Close()
	var want []int
	for i := range migrations {
		want = append(want, i+1)
	}
	if diff := cmp.Diff(want, versions); diff != "" {
		t.Errorf("schema_migrations after three opens (-want +got):\n%s", diff)
	}
	if _, err := db.Tenant(ctx, "shop"); err != nil {
		t.Errorf("the tenant did not survive reopening: %v", err)
	}
}

// TestRefusesNewerSchema: a database a newer build migrated is not used by an
// older one, which would not know the columns that bound spending.
func TestRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "meta.db")
	db := openT(t, path)
	if _, err := db.db.Exec(`INSERT INTO schema_migrations (version) VALUES (?)`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := Open(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), "newer Privalytics") {
		t.Errorf("opening a newer schema: %v, want a refusal asking for a newer Privalytics", err)
	}
}

// TestMigrationPadsOldTimes: times written before migration 6 ("…:05Z",
// "…:05.5Z") are rewritten so that text order is time order again.
func TestMigrationPadsOldTimes(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "meta.db")
	old := openAt(t, path, 5)
	ctx := context.Background()
	if _, err := old.db.ExecContext(ctx, `INSERT INTO tenants (id, name, schema, purposes, budget_eps, budget_delta, wrapped_key, created_at) VALUES ('shop', 'shop', '{}', '[]', 1000000000, 0, x'01', '2025-03-01T12:00:05Z')`); err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct{ id, created, revoked string }{
		{"k-whole", "2025-03-01T12:00:05Z", "2025-03-02T00:00:00.25Z"},
		{"k-half", "2025-03-01T12:00:04.5Z", ""},
		{"k-nano", "2025-03-01T12:00:05.000000001Z", ""},
	} {
		revoked := sql.NullString{String: k.revoked, Valid: k.revoked != ""}
		if _, err := old.db.ExecContext(ctx, `INSERT INTO api_keys (id, tenant_id, name, role, hash, created_at, revoked_at) VALUES (?, 'shop', ?, 'query', x'01', ?, ?)`, k.id, k.id, k.created, revoked); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := old.db.ExecContext(ctx, `INSERT INTO charges (id, tenant_id, key_id, time, fingerprint, mechanisms, eps, delta) VALUES ('c1', 'shop', 'k', '2025-03-01T12:00:05Z', '', '', 1, 0), ('c2', 'shop', 'k', '2025-03-01T12:00:05.5Z', '', '', 1, 0)`); err != nil {
		t.Fatal(err)
	}
	if err := old.migrate(ctx, migrations); err != nil {
		t.Fatal(err)
	}

	var stored []string
	rows, err := old.db.QueryContext(ctx, `SELECT created_at FROM tenants UNION ALL SELECT created_at FROM api_keys UNION ALL SELECT COALESCE(revoked_at, 'NULL') FROM api_keys UNION ALL SELECT time FROM charges`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, s)
	}
	rows.Close()
	want := []string{
		"2025-03-01T12:00:05.000000000Z",
		"2025-03-01T12:00:05.000000000Z", "2025-03-01T12:00:04.500000000Z", "2025-03-01T12:00:05.000000001Z",
		"2025-03-02T00:00:00.250000000Z", "NULL", "NULL",
		"2025-03-01T12:00:05.000000000Z", "2025-03-01T12:00:05.500000000Z",
	}
	if diff := cmp.Diff(want, stored); diff != "" {
		t.Errorf("times after migration 6 (-want +got):\n%s", diff)
	}

	keys, err := old.Keys(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	if diff := cmp.Diff([]string{"k-half", "k-whole", "k-nano"}, ids); diff != "" {
		t.Errorf("keys oldest first after migration (-want +got):\n%s", diff)
	}
	charges, err := old.Charges(ctx, "shop", "", 0, 10)
	if err != nil || len(charges) != 2 || charges[0].ID != "c2" || !charges[1].Time.Equal(time.Date(2025, 3, 1, 12, 0, 5, 0, time.UTC)) {
		t.Errorf("charges newest first after migration: %+v %v", charges, err)
	}
}
