-- The example API's own table: one row per request. In the demo it plays the
-- operator's database, whose migrations are recorded in wrangler's default
-- d1_migrations table and may use the same file names as the archiver's
-- (which go to archiver_migrations). IF NOT EXISTS: a database set up before
-- the archiver had migrations of its own already has it.
-- AUTOINCREMENT guarantees ids only grow, so a rowid range once archived can
-- never gain a row: late rows for a day always land above its last run's range.
CREATE TABLE IF NOT EXISTS traffic_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  event_date TEXT NOT NULL, -- YYYY-MM-DD, UTC
  ts INTEGER NOT NULL, -- epoch ms
  path TEXT NOT NULL,
  method TEXT NOT NULL,
  status INTEGER NOT NULL,
  country TEXT,
  referrer TEXT,
  user_agent TEXT,
  latency_ms INTEGER,
  bytes INTEGER
);
