-- The archiver's own tables. The table it archives is the operator's (the
-- example's is examples/traffic-events/); what the archiver needs on it, an
-- index and triggers, comes from `pnpm install-table`
-- (packages/shared/src/archived-table/install-sql.ts). Applied through the
-- migrations table archiver_migrations (wrangler's `migrations_table`), apart
-- from the operator's own d1_migrations.

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
