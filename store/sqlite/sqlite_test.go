package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/sqlite"
	"github.com/privalytics/privalytics/store/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) privalytics.MetaStore {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "meta.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}

func TestReopenKeepsLedgerAndMigratesOnce(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "meta.db")
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateTenant(ctx, &privalytics.Tenant{ID: "a", Schema: privalytics.DefaultRetailSchema(), Budget: privalytics.Cost{Epsilon: 2}, WrappedKey: []byte{1}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Charge(ctx, &privalytics.Charge{TenantID: "a", Time: time.Now(), Cost: privalytics.Cost{Epsilon: 0.5}}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	b, err := db.Budget(ctx, "a")
	if err != nil || b.Spent.Epsilon != 0.5 {
		t.Errorf("after reopen: %+v %v", b, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database file mode %v, want 0600", fi.Mode().Perm())
	}
}
