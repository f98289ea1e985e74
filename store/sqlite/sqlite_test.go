package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/sqlite"
	"github.com/privalytics/privalytics/store/storetest"
)

func open(t *testing.T, path string) *sqlite.DB {
	t.Helper()
	return storetest.Opened[*sqlite.DB](t)(sqlite.Open(context.Background(), path))
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) privalytics.MetaStore {
		return open(t, filepath.Join(t.TempDir(), "meta.db"))
	})
}

// TestReopen: the ledger and the keys survive Close and Open of the same file,
// and reopening finds every migration applied.
func TestReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "meta.db")
	storetest.RunReopen(t, func(t *testing.T) privalytics.MetaStore { return open(t, path) })
}
