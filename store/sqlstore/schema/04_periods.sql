-- Data-period budgets. A monthly tenant's summed spending may pass one month's
-- budget, so the guard applies to single-budget tenants only.
ALTER TABLE tenants ADD COLUMN period TEXT NOT NULL DEFAULT '';
{{if .Checks -}}
ALTER TABLE tenants DROP CONSTRAINT tenants_check;
ALTER TABLE tenants ADD CONSTRAINT tenants_spent_within_budget CHECK (period <> '' OR (spent_eps <= budget_eps AND spent_delta <= budget_delta));
{{end -}}
ALTER TABLE charges ADD COLUMN periods TEXT NOT NULL DEFAULT '';
CREATE TABLE period_spent (
	tenant_id   TEXT NOT NULL REFERENCES tenants(id),
	period      TEXT NOT NULL,
	spent_eps   {{.Int}} NOT NULL DEFAULT 0,
	spent_delta {{.Int}} NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, period)
);
