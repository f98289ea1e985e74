-- 1: tenants, API keys and the ledger's charges. Amounts are integer units (see dp/units.go): budgets rounded down, charges rounded up.
CREATE TABLE tenants (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL,
	schema       TEXT NOT NULL,
	purposes     TEXT NOT NULL,
	budget_eps   INTEGER NOT NULL,  -- units of 1e-9, rounded down
	budget_delta INTEGER NOT NULL,  -- units of 1e-15, rounded down
	spent_eps    INTEGER NOT NULL DEFAULT 0,
	spent_delta  INTEGER NOT NULL DEFAULT 0,
	wrapped_key  BLOB NOT NULL,
	created_at   TEXT NOT NULL
);
CREATE TABLE api_keys (
	id         TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL,       -- '' for operator keys
	name       TEXT NOT NULL,
	role       TEXT NOT NULL,
	hash       BLOB NOT NULL,
	created_at TEXT NOT NULL,
	revoked_at TEXT
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id);
CREATE TABLE charges (
	id          TEXT PRIMARY KEY,
	tenant_id   TEXT NOT NULL REFERENCES tenants(id),
	key_id      TEXT NOT NULL,
	time        TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	mechanisms  TEXT NOT NULL,
	eps         INTEGER NOT NULL,   -- units of 1e-9, rounded up
	delta       INTEGER NOT NULL,   -- units of 1e-15, rounded up
	refunded    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX charges_tenant_time ON charges(tenant_id, time);
