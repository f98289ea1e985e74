-- The tenant's privacy policy, and consent records with their history.
-- consent_version goes up with every recorded batch (it keys cached answers).
ALTER TABLE tenants ADD COLUMN privacy {{.JSON}} NOT NULL DEFAULT '{}';
ALTER TABLE tenants ADD COLUMN consent_version {{.Int}} NOT NULL DEFAULT 0;
CREATE TABLE consents (
	seq         {{.Serial}},
	tenant_id   TEXT NOT NULL REFERENCES tenants(id),
	subject     {{.Int}} NOT NULL,  -- the uint64 pseudonym, bits as int64
	purpose     TEXT NOT NULL,
	granted     {{.Bool}} NOT NULL,
	time        {{.Time}} NOT NULL,
	source      TEXT NOT NULL,
	recorded_at {{.Time}} NOT NULL
);
CREATE INDEX consents_subject ON consents(tenant_id, subject);
CREATE INDEX consents_purpose ON consents(tenant_id, purpose);
