-- Hot store written by the web API: one row per request.
-- AUTOINCREMENT guarantees ids only grow, so a rowid range once archived can
-- never gain a row: late rows for a day always land above its last run's range.
CREATE TABLE traffic_events (
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
CREATE INDEX traffic_events_date_id ON traffic_events (event_date, id);

-- One row per archive run of a date. A date may have several runs over time
-- (late rows), but at most one in flight.
CREATE TABLE archive_runs (
  run_id TEXT PRIMARY KEY,
  date TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('archiving', 'finalizing', 'archived', 'failed')),
  object_key TEXT NOT NULL,
  manifest_key TEXT NOT NULL,
  upload_id TEXT NOT NULL,
  part_size INTEGER NOT NULL,
  rowid_lo INTEGER NOT NULL,
  rowid_hi INTEGER NOT NULL,
  planned_rows INTEGER NOT NULL,
  chunk_count INTEGER NOT NULL,
  est_gz_bytes_per_row REAL NOT NULL,
  plan_rows_read INTEGER NOT NULL,
  archived_rows INTEGER,
  raw_bytes INTEGER,
  object_bytes INTEGER,
  part_count INTEGER,
  rows_read INTEGER,
  finalize_token TEXT,
  finalize_started_at TEXT,
  created_at TEXT NOT NULL,
  archived_at TEXT,
  failed_at TEXT,
  error TEXT,
  -- Cleanup: set once every range of the run is deleted from D1.
  rows_deleted INTEGER,
  cleaned_at TEXT,
  cleanup_error TEXT
);
CREATE UNIQUE INDEX archive_runs_one_in_flight ON archive_runs (date)
  WHERE status IN ('archiving', 'finalizing');
CREATE INDEX archive_runs_date ON archive_runs (date, status);

-- One row per chunk: a rowid range of one run, written as parts
-- first_part .. first_part + max_parts - 1 of the run's multipart upload.
CREATE TABLE archive_chunks (
  run_id TEXT NOT NULL REFERENCES archive_runs (run_id),
  chunk_index INTEGER NOT NULL,
  rowid_lo INTEGER NOT NULL,
  rowid_hi INTEGER NOT NULL,
  planned_rows INTEGER NOT NULL,
  first_part INTEGER NOT NULL,
  max_parts INTEGER NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'archived')),
  claim_token TEXT,
  claimed_at TEXT,
  enqueued_at TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  rows INTEGER,
  raw_bytes INTEGER,
  gz_bytes INTEGER,
  padding_bytes INTEGER,
  parts TEXT, -- JSON [{ "partNumber", "etag", "size" }]
  columns TEXT, -- JSON array of the column names archived, in order
  sha256 TEXT, -- of the chunk's JSON Lines bytes, recomputable from D1
  rows_read INTEGER,
  peak_buffered_bytes INTEGER,
  duration_ms INTEGER,
  archived_at TEXT,
  -- Cleanup of the range: verified against the manifest and D1 once, before the
  -- first delete; rows_deleted and delete_statements grow in the same
  -- transaction as each bounded DELETE, so a retry continues where it stopped.
  cleanup_state TEXT NOT NULL DEFAULT 'none' CHECK (cleanup_state IN ('none', 'pending', 'cleaned', 'failed')),
  cleanup_verified_at TEXT,
  rows_deleted INTEGER NOT NULL DEFAULT 0,
  delete_statements INTEGER NOT NULL DEFAULT 0,
  cleanup_rows_written INTEGER NOT NULL DEFAULT 0, -- D1's rows_written for the deletes, as billed
  cleanup_ms INTEGER NOT NULL DEFAULT 0,
  cleanup_error TEXT,
  cleaned_at TEXT,
  PRIMARY KEY (run_id, chunk_index)
);

-- One row per date, as operators already query it.
CREATE TABLE archive_metadata (
  date TEXT PRIMARY KEY,
  r2_path TEXT NOT NULL, -- object key of the date's latest archive run
  event_count INTEGER NOT NULL, -- rows in all committed archives of the date
  file_size INTEGER NOT NULL, -- bytes of all committed archive objects of the date
  archived_at TEXT NOT NULL,
  d1_cleaned INTEGER NOT NULL DEFAULT 0 CHECK (d1_cleaned IN (0, 1)),
  cleaned_at TEXT
);

-- A row arriving for a day already cleaned (a late row) makes the day not
-- cleaned any more, at once: d1_cleaned = 1 must always mean no row of the
-- day is in D1. The lookup is by primary key on a table of one row per day.
CREATE TRIGGER traffic_events_late_row AFTER INSERT ON traffic_events
BEGIN
  UPDATE archive_metadata SET d1_cleaned = 0, cleaned_at = NULL
  WHERE date = NEW.event_date AND d1_cleaned = 1;
END;

-- Every message that reached a dead-letter queue.
CREATE TABLE dead_letters (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL, -- the original queue the message was meant for
  message_id TEXT NOT NULL,
  body TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  date TEXT,
  run_id TEXT,
  last_error TEXT,
  received_at TEXT NOT NULL,
  replayed_at TEXT,
  replay_count INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX dead_letters_message ON dead_letters (queue, message_id);
