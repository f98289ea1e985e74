-- zCDP accounting; ρ is recorded with every charge.
ALTER TABLE tenants ADD COLUMN accounting TEXT NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN budget_rho {{.Int}} NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN spent_rho {{.Int}} NOT NULL DEFAULT 0;
ALTER TABLE charges ADD COLUMN rho {{.Int}} NOT NULL DEFAULT 0;
{{if .Checks -}}
ALTER TABLE tenants DROP CONSTRAINT tenants_spent_within_budget;
ALTER TABLE tenants ADD CONSTRAINT tenants_spent_within_budget CHECK (
	(accounting = 'zcdp' AND spent_rho <= budget_rho AND 2 * spent_delta <= budget_delta)
	OR (accounting = '' AND (period <> '' OR (spent_eps <= budget_eps AND spent_delta <= budget_delta))));
{{end -}}
