-- Scrub: every committed archive is read back from R2 now and then and
-- checked against its manifest, range by range (POST /admin/verify, and the
-- cron for the archives checked longest ago). The result is kept per range
-- and per run.
ALTER TABLE archive_chunks ADD COLUMN verify_state TEXT NOT NULL DEFAULT 'none'
  CHECK (verify_state IN ('none', 'pending', 'ok', 'failed'));
ALTER TABLE archive_chunks ADD COLUMN verify_error TEXT;
ALTER TABLE archive_chunks ADD COLUMN verified_at TEXT;
ALTER TABLE archive_runs ADD COLUMN verify_requested_at TEXT;
ALTER TABLE archive_runs ADD COLUMN verified_at TEXT; -- when every range was last checked
ALTER TABLE archive_runs ADD COLUMN verify_error TEXT; -- the first difference found then, or NULL
