-- 4: data-period budgets.
ALTER TABLE tenants ADD COLUMN period TEXT NOT NULL DEFAULT '';
ALTER TABLE charges ADD COLUMN periods TEXT NOT NULL DEFAULT '';
CREATE TABLE period_spent (
	tenant_id   TEXT NOT NULL REFERENCES tenants(id),
	period      TEXT NOT NULL,
	spent_eps   INTEGER NOT NULL DEFAULT 0,
	spent_delta INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, period)
);
