-- Views (saved questions released once per bucket), their releases,
-- dashboards of views and their share links. The primary key of releases is
-- what makes a bucket's release happen once: the reader whose INSERT wins the
-- key runs the query; every other reader finds the row.
CREATE TABLE views (
	id         TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL REFERENCES tenants(id),
	key_id     TEXT NOT NULL,
	spec       {{.JSON}} NOT NULL,
	created_at {{.Time}} NOT NULL
);
CREATE INDEX views_tenant ON views(tenant_id);
CREATE TABLE view_releases (
	view_id     TEXT NOT NULL REFERENCES views(id) ON DELETE CASCADE,
	bucket      TEXT NOT NULL,
	state       TEXT NOT NULL,      -- 'so_far' or 'closed' once released; 'pending' while claimed
	kind        TEXT NOT NULL,      -- 'so_far' or 'closed': the release this row is
	start_at    {{.Time}} NOT NULL,
	end_at      {{.Time}} NOT NULL,
	claimed_at  {{.Time}} NOT NULL,
	released_at {{.Time}},
	result      {{.JSON}},
	parameters  {{.JSON}},
	PRIMARY KEY (view_id, bucket, kind)
);
CREATE TABLE dashboards (
	id         TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL REFERENCES tenants(id),
	name       TEXT NOT NULL,
	view_ids   {{.JSON}} NOT NULL,
	layout     {{.JSON}} NOT NULL,
	created_at {{.Time}} NOT NULL
);
CREATE INDEX dashboards_tenant ON dashboards(tenant_id);
CREATE TABLE dashboard_shares (
	key_id       TEXT PRIMARY KEY,
	tenant_id    TEXT NOT NULL REFERENCES tenants(id),
	dashboard_id TEXT NOT NULL,
	created_at   {{.Time}} NOT NULL,
	revoked_at   {{.Time}}
);
