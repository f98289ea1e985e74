-- 2: per-key allocations (see store/sqlite/migrations/0002.sql for the model).
ALTER TABLE tenants ADD COLUMN alloc_eps BIGINT NOT NULL DEFAULT 0,
	ADD COLUMN alloc_delta BIGINT NOT NULL DEFAULT 0,
	ADD COLUMN shared_eps BIGINT NOT NULL DEFAULT 0,
	ADD COLUMN shared_delta BIGINT NOT NULL DEFAULT 0;
UPDATE tenants SET shared_eps = spent_eps, shared_delta = spent_delta;
CREATE TABLE key_budgets (
	key_id       TEXT PRIMARY KEY,
	tenant_id    TEXT NOT NULL REFERENCES tenants(id),
	budget_eps   BIGINT NOT NULL,
	budget_delta BIGINT NOT NULL,
	spent_eps    BIGINT NOT NULL DEFAULT 0,
	spent_delta  BIGINT NOT NULL DEFAULT 0,
	CHECK (spent_eps <= budget_eps AND spent_delta <= budget_delta)
);
ALTER TABLE charges ADD COLUMN from_key BOOLEAN NOT NULL DEFAULT FALSE;
