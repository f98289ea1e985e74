package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// PostgresSchema creates a new, empty schema on the test server at base, dropped
// when the test ends, and returns a DSN whose search_path is it, so tests run in
// parallel without seeing each other.
func PostgresSchema(t *testing.T, base string) string {
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
		if c, err := pgx.Connect(context.Background(), base); err == nil {
			c.Exec(context.Background(), "DROP SCHEMA "+name+" CASCADE")
			c.Close(context.Background())
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + name
}

// Opened returns a function that takes what a store's Open returns, fails t on
// an error and closes the store when t ends: the one way every store test
// opens a store, e.g. storetest.Opened[*sqlite.DB](t)(sqlite.Open(ctx, path)).
func Opened[S interface{ Close() error }](t *testing.T) func(S, error) S {
	return func(s S, err error) S {
		t.Helper()
		if err != nil {
			t.Fatalf("open the store: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}
