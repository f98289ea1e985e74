-- 6: the tenant's privacy policy, and consent records with their history.
ALTER TABLE tenants ADD COLUMN privacy JSONB NOT NULL DEFAULT '{}';
ALTER TABLE tenants ADD COLUMN consent_version BIGINT NOT NULL DEFAULT 0;
CREATE TABLE consents (
	seq         BIGSERIAL PRIMARY KEY,
	tenant_id   TEXT NOT NULL REFERENCES tenants(id),
	subject     BIGINT NOT NULL,
	purpose     TEXT NOT NULL,
	granted     BOOLEAN NOT NULL,
	time        TIMESTAMPTZ NOT NULL,
	source      TEXT NOT NULL,
	recorded_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX consents_subject ON consents(tenant_id, subject);
CREATE INDEX consents_purpose ON consents(tenant_id, purpose);
