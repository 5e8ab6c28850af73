-- Restore: a committed archive's rows brought back into D1, range by range,
-- with their original ids and values. A range being restored or restored is
-- not cleaned (cleanup_state goes back to 'none'), so no run archives its
-- rows again and a later cleanup deletes them by exact match.
ALTER TABLE archive_chunks ADD COLUMN restore_state TEXT NOT NULL DEFAULT 'none'
  CHECK (restore_state IN ('none', 'pending', 'restored', 'failed'));
ALTER TABLE archive_chunks ADD COLUMN rows_restored INTEGER NOT NULL DEFAULT 0;
ALTER TABLE archive_chunks ADD COLUMN restore_error TEXT;
ALTER TABLE archive_chunks ADD COLUMN restored_at TEXT;
ALTER TABLE archive_chunks ADD COLUMN restore_failed_at TEXT;
CREATE INDEX archive_chunks_restore_failed ON archive_chunks (run_id) WHERE restore_state = 'failed';

-- A restored day stays in D1 until then: the cron does not clean it before.
ALTER TABLE archive_metadata ADD COLUMN keep_until TEXT;
