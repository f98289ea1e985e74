-- 2: per-key allocations. Keys without one share budget − allocated; the shared pool's spending is tracked on its own so allocated shares stay whole.
ALTER TABLE tenants ADD COLUMN alloc_eps INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN alloc_delta INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN shared_eps INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN shared_delta INTEGER NOT NULL DEFAULT 0;
UPDATE tenants SET shared_eps = spent_eps, shared_delta = spent_delta;
CREATE TABLE key_budgets (
	key_id       TEXT PRIMARY KEY,
	tenant_id    TEXT NOT NULL REFERENCES tenants(id),
	budget_eps   INTEGER NOT NULL,
	budget_delta INTEGER NOT NULL,
	spent_eps    INTEGER NOT NULL DEFAULT 0,
	spent_delta  INTEGER NOT NULL DEFAULT 0
);
ALTER TABLE charges ADD COLUMN from_key INTEGER NOT NULL DEFAULT 0;
