-- Health problems announced to ALERT_WEBHOOK_URL: each new problem and each
-- problem that cleared is posted once, not on every cron run. A problem that
-- comes back after it cleared is raised again (the same row, reopened).
CREATE TABLE alerts (
  key TEXT PRIMARY KEY, -- the problem's code and subject, e.g. run_failed:<runId>
  code TEXT NOT NULL,
  date TEXT,
  run_id TEXT,
  message TEXT NOT NULL,
  since TEXT NOT NULL,
  raised_at TEXT NOT NULL, -- when it was posted as a new problem
  cleared_at TEXT -- when it was posted as cleared; NULL while it is open
);
CREATE INDEX alerts_open ON alerts (raised_at) WHERE cleared_at IS NULL;

-- When cleanup refused a range (health's "since"), and when cleanup messages
-- for a range were last sent (the cron re-sends only ranges that made no
-- progress for a while, never work that is under way).
ALTER TABLE archive_chunks ADD COLUMN cleanup_failed_at TEXT;
ALTER TABLE archive_chunks ADD COLUMN cleanup_enqueued_at TEXT;
CREATE INDEX archive_chunks_cleanup_failed ON archive_chunks (run_id) WHERE cleanup_state = 'failed';

-- Health and metrics count the letters not replayed without reading the others.
CREATE INDEX dead_letters_pending ON dead_letters (received_at) WHERE replayed_at IS NULL;
