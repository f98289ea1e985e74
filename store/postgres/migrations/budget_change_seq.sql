-- PostgreSQL only, the eighth version: budget changes made within one clock
-- tick keep the order they were made in (SQLite has its rowid for that).
ALTER TABLE budget_changes ADD COLUMN seq BIGSERIAL;
