-- Retention periods.
ALTER TABLE tenants ADD COLUMN retention_days INTEGER NOT NULL DEFAULT 0;
