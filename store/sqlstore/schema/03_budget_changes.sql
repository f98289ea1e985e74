-- The record of grants and allocations.
CREATE TABLE budget_changes (
	id           TEXT PRIMARY KEY,
	tenant_id    TEXT NOT NULL REFERENCES tenants(id),
	time         {{.Time}} NOT NULL,
	kind         TEXT NOT NULL,
	key_id       TEXT NOT NULL,
	actor_key_id TEXT NOT NULL,
	eps          {{.Int}} NOT NULL,
	delta        {{.Int}} NOT NULL
);
CREATE INDEX budget_changes_tenant_time ON budget_changes(tenant_id, time);
