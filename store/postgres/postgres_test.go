package postgres_test

import (
	"context"
	"os"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/store/postgres"
	"github.com/privalytics/privalytics/store/storetest"
)

// dsn is the test server. .ci/run starts PostgreSQL on 127.0.0.1 and sets
// PRIVALYTICS_TEST_POSTGRES; a developer without a server sees the skip message.
func dsn(t *testing.T) string {
	t.Helper()
	d := os.Getenv("PRIVALYTICS_TEST_POSTGRES")
	if d == "" {
		t.Skip("SKIPPED: set PRIVALYTICS_TEST_POSTGRES (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run the PostgreSQL tests; .ci/run does")
	}
	return d
}

func TestConformance(t *testing.T) {
	base := dsn(t)
	t.Parallel()
	storetest.Run(t, func(t *testing.T) privalytics.MetaStore {
		return storetest.Opened[*postgres.DB](t)(postgres.Open(context.Background(), storetest.PostgresSchema(t, base)))
	})
}

func TestReopen(t *testing.T) {
	base := dsn(t)
	t.Parallel()
	schema := storetest.PostgresSchema(t, base)
	storetest.RunReopen(t, func(t *testing.T) privalytics.MetaStore {
		return storetest.Opened[*postgres.DB](t)(postgres.Open(context.Background(), schema))
	})
}

// TestPoolSettingsInTheDSN: a DSN with pgxpool's pool_max_conns (accepted when
// the store used pgxpool) still opens, and the store works within that many
// connections; the server would refuse the setting as a run-time parameter.
func TestPoolSettingsInTheDSN(t *testing.T) {
	base := dsn(t)
	t.Parallel()
	db := storetest.Opened[*postgres.DB](t)(postgres.Open(context.Background(), storetest.PostgresSchema(t, base)+"&pool_max_conns=2"))
	if _, err := db.Tenants(context.Background()); err != nil {
		t.Fatal(err)
	}
}
