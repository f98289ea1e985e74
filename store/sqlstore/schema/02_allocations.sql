-- Per-key allocations. Keys without one share budget − allocated; the shared
-- pool's spending is tracked on its own so allocated shares stay whole.
ALTER TABLE tenants ADD COLUMN alloc_eps {{.Int}} NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN alloc_delta {{.Int}} NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN shared_eps {{.Int}} NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN shared_delta {{.Int}} NOT NULL DEFAULT 0;
UPDATE tenants SET shared_eps = spent_eps, shared_delta = spent_delta;
CREATE TABLE key_budgets (
	key_id       TEXT PRIMARY KEY,
	tenant_id    TEXT NOT NULL REFERENCES tenants(id),
	budget_eps   {{.Int}} NOT NULL,
	budget_delta {{.Int}} NOT NULL,
	spent_eps    {{.Int}} NOT NULL DEFAULT 0,
	spent_delta  {{.Int}} NOT NULL DEFAULT 0{{if .Checks}},
	CHECK (spent_eps <= budget_eps AND spent_delta <= budget_delta){{end}}
);
ALTER TABLE charges ADD COLUMN from_key {{.Bool}} NOT NULL DEFAULT {{.False}};
