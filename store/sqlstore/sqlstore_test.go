package sqlstore

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestPlaceholders(t *testing.T) {
	t.Parallel()
	q := `UPDATE t SET a = ?, b = ? WHERE id = ? AND c IN (?, ?)`
	if got := (&Store{d: Dialect{}}).q(q); got != q {
		t.Errorf("? dialect rewrote %q to %q", q, got)
	}
	want := `UPDATE t SET a = $1, b = $2 WHERE id = $3 AND c IN ($4, $5)`
	if got := (&Store{d: Dialect{Numbered: true}}).q(q); got != want {
		t.Errorf("numbered: %q, want %q", got, want)
	}
}

// TestMigrationsRenderEachDialect: the shared schema takes each dialect's
// types, the CHECK guards only where asked, a store's own step comes from its
// own files, and a step that names nothing or a type the dialect lacks fails
// instead of producing a schema with holes.
func TestMigrationsRenderEachDialect(t *testing.T) {
	t.Parallel()
	own := fstest.MapFS{"extra.sql": {Data: []byte("ALTER TABLE x ADD COLUMN y {{.Int}};")}}
	pg := Dialect{Name: "pg", Types: Types{Int: "BIGINT", Bytes: "BYTEA", Time: "TIMESTAMPTZ", JSON: "JSONB", Bool: "BOOLEAN", False: "FALSE", Serial: "BIGSERIAL PRIMARY KEY", Checks: true}}
	lite := Dialect{Name: "lite", Types: Types{Int: "INTEGER", Bytes: "BLOB", Time: "TEXT", JSON: "TEXT", Bool: "INTEGER", False: "0", Serial: "INTEGER PRIMARY KEY AUTOINCREMENT"}}
	m, err := Migrations(pg, own, "01_tenants.sql", "extra.sql")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m[0], "budget_eps   BIGINT NOT NULL") || !strings.Contains(m[0], "CHECK (spent_eps <= budget_eps") || strings.Contains(m[0], "{{") {
		t.Errorf("PostgreSQL tenants:\n%s", m[0])
	}
	if m[1] != "ALTER TABLE x ADD COLUMN y BIGINT;" {
		t.Errorf("own step: %q", m[1])
	}
	m, err = Migrations(lite, own, "01_tenants.sql", "06_consents.sql")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m[0], "CHECK (") || !strings.Contains(m[0], "refunded    INTEGER NOT NULL DEFAULT 0") {
		t.Errorf("SQLite tenants:\n%s", m[0])
	}
	if !strings.Contains(m[1], "seq         INTEGER PRIMARY KEY AUTOINCREMENT,") {
		t.Errorf("SQLite consents:\n%s", m[1])
	}
	if _, err := Migrations(lite, own, "no_such.sql"); err == nil {
		t.Error("a step that names no file rendered")
	}
	bad := fstest.MapFS{"bad.sql": {Data: []byte("{{.Decimal}}")}}
	if _, err := Migrations(lite, bad, "bad.sql"); err == nil {
		t.Error("a type the dialect lacks rendered")
	}
}
