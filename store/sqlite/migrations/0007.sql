-- 7: the tenant's privacy policy, and consent records with their history. consent_version goes up with every recorded batch (it keys cached answers).
ALTER TABLE tenants ADD COLUMN privacy TEXT NOT NULL DEFAULT '{}';
ALTER TABLE tenants ADD COLUMN consent_version INTEGER NOT NULL DEFAULT 0;
CREATE TABLE consents (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	tenant_id   TEXT NOT NULL REFERENCES tenants(id),
	subject     INTEGER NOT NULL,  -- the uint64 pseudonym, bits as int64
	purpose     TEXT NOT NULL,
	granted     INTEGER NOT NULL,
	time        TEXT NOT NULL,
	source      TEXT NOT NULL,
	recorded_at TEXT NOT NULL
);
CREATE INDEX consents_subject ON consents(tenant_id, subject);
CREATE INDEX consents_purpose ON consents(tenant_id, purpose);
