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
		db, err := postgres.Open(context.Background(), storetest.PostgresSchema(t, base))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}

func TestReopen(t *testing.T) {
	base := dsn(t)
	t.Parallel()
	schema := storetest.PostgresSchema(t, base)
	storetest.RunReopen(t, func(t *testing.T) privalytics.MetaStore {
		db, err := postgres.Open(context.Background(), schema)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}
