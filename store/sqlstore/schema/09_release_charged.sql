-- A pending release whose charge is recorded is no longer reserved: the
-- charge's transaction sets charged, so the month's spending and the views'
-- reservation never count the same release twice while it is being stored.
ALTER TABLE view_releases ADD COLUMN charged {{.Bool}} NOT NULL DEFAULT {{.False}};
