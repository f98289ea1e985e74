-- Tenants, API keys and the ledger's charges. Amounts are integer units (see
-- dp/units.go): budgets rounded down, charges rounded up. Where the dialect
-- has them, CHECK constraints are a second guard behind dp.Decide.
CREATE TABLE tenants (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL,
	schema       {{.JSON}} NOT NULL,
	purposes     {{.JSON}} NOT NULL,
	budget_eps   {{.Int}} NOT NULL,  -- units of 1e-9, rounded down
	budget_delta {{.Int}} NOT NULL,  -- units of 1e-15, rounded down
	spent_eps    {{.Int}} NOT NULL DEFAULT 0,
	spent_delta  {{.Int}} NOT NULL DEFAULT 0,
	wrapped_key  {{.Bytes}} NOT NULL,
	created_at   {{.Time}} NOT NULL{{if .Checks}},
	CHECK (spent_eps <= budget_eps AND spent_delta <= budget_delta){{end}}
);
CREATE TABLE api_keys (
	id         TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL,       -- '' for operator keys
	name       TEXT NOT NULL,
	role       TEXT NOT NULL,
	hash       {{.Bytes}} NOT NULL,
	created_at {{.Time}} NOT NULL,
	revoked_at {{.Time}}
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id);
CREATE TABLE charges (
	id          TEXT PRIMARY KEY,
	tenant_id   TEXT NOT NULL REFERENCES tenants(id),
	key_id      TEXT NOT NULL,
	time        {{.Time}} NOT NULL,
	fingerprint TEXT NOT NULL,
	mechanisms  TEXT NOT NULL,
	eps         {{.Int}} NOT NULL,   -- units of 1e-9, rounded up
	delta       {{.Int}} NOT NULL,   -- units of 1e-15, rounded up
	refunded    {{.Bool}} NOT NULL DEFAULT {{.False}}
);
CREATE INDEX charges_tenant_time ON charges(tenant_id, time);
