package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

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

// freshSchema returns a DSN whose search_path is a new, empty schema, dropped when
// the test ends, so tests run in parallel without seeing each other.
func freshSchema(t *testing.T, base string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", base, err)
	}
	defer conn.Close(ctx)
	var b [6]byte
	rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err == nil {
			c.Exec(context.Background(), "DROP SCHEMA "+name+" CASCADE")
			c.Close(context.Background())
		}
	})
	sep := "?"
	for _, r := range base {
		if r == '?' {
			sep = "&"
		}
	}
	return base + sep + "search_path=" + name
}

func TestConformance(t *testing.T) {
	base := dsn(t)
	t.Parallel()
	storetest.Run(t, func(t *testing.T) privalytics.MetaStore {
		db, err := postgres.Open(context.Background(), freshSchema(t, base))
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
	schema := freshSchema(t, base)
	storetest.RunReopen(t, func(t *testing.T) privalytics.MetaStore {
		db, err := postgres.Open(context.Background(), schema)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}
