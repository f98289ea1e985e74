-- 1: tenants, API keys and the ledger's charges. Amounts are integer units (see dp/units.go); the CHECK is a second guard behind dp.Decide.
CREATE TABLE tenants (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL,
	schema       JSONB NOT NULL,
	purposes     JSONB NOT NULL,
	budget_eps   BIGINT NOT NULL,
	budget_delta BIGINT NOT NULL,
	spent_eps    BIGINT NOT NULL DEFAULT 0,
	spent_delta  BIGINT NOT NULL DEFAULT 0,
	wrapped_key  BYTEA NOT NULL,
	created_at   TIMESTAMPTZ NOT NULL,
	CHECK (spent_eps <= budget_eps AND spent_delta <= budget_delta)
);
CREATE TABLE api_keys (
	id         TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL,
	name       TEXT NOT NULL,
	role       TEXT NOT NULL,
	hash       BYTEA NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	revoked_at TIMESTAMPTZ
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id);
CREATE TABLE charges (
	id          TEXT PRIMARY KEY,
	tenant_id   TEXT NOT NULL REFERENCES tenants(id),
	key_id      TEXT NOT NULL,
	time        TIMESTAMPTZ NOT NULL,
	fingerprint TEXT NOT NULL,
	mechanisms  TEXT NOT NULL,
	eps         BIGINT NOT NULL,
	delta       BIGINT NOT NULL,
	refunded    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX charges_tenant_time ON charges(tenant_id, time);
