-- Path statistics that outlive the rows (docs/operating.md, "Path
-- statistics"). The archive consumer counts each chunk's rows as it archives
-- them (path_stats_chunks), and the commit of a run merges its chunks into
-- its day's rows (path_stats) in the batch that marks the run archived: a
-- run that fails or is retried adds nothing.

-- One row per table, day and (path, method): the busiest STATS_MAX_PATHS,
-- then one row with path '(other)' and method '*' holding the rest, so the
-- day's sums stay exact. A stable interface: an operator's own SQL may read
-- it; p50/p95/p99 are ready, latency_sketch merges rows exactly (its format:
-- docs/operating.md).
CREATE TABLE path_stats (
  table_name TEXT NOT NULL,
  date TEXT NOT NULL,
  path TEXT NOT NULL,
  method TEXT NOT NULL, -- '' for a NULL method
  requests INTEGER NOT NULL,
  status_1xx INTEGER NOT NULL,
  status_2xx INTEGER NOT NULL,
  status_3xx INTEGER NOT NULL,
  status_4xx INTEGER NOT NULL,
  status_5xx INTEGER NOT NULL,
  codes TEXT NOT NULL, -- JSON: requests per watched code seen, {"404": n, "429": n, "503": n}
  bytes_sum INTEGER NOT NULL,
  bytes_max, -- as the table holds it
  latency_count INTEGER NOT NULL, -- requests with a latency
  latency_sum_us INTEGER NOT NULL, -- whole microseconds: exact in any order of merges
  latency_min_ms,
  latency_max_ms,
  p50_ms REAL, -- within 1% of the exact value (the sketch's stated error)
  p95_ms REAL,
  p99_ms REAL,
  latency_sketch TEXT NOT NULL,
  first_at, -- the earliest and latest of the stats `at` column, as the table holds it
  last_at,
  PRIMARY KEY (table_name, date, path, method)
);

-- What a day's path_stats rows hold.
CREATE TABLE path_stats_days (
  table_name TEXT NOT NULL,
  date TEXT NOT NULL,
  requests INTEGER NOT NULL, -- rows of the day's committed archives counted
  paths INTEGER NOT NULL, -- path_stats rows, '(other)' included
  paths_exact INTEGER NOT NULL, -- 1: each named row holds every row of its (path, method)
  runs INTEGER NOT NULL, -- committed runs counted
  state TEXT NOT NULL CHECK (state IN ('current', 'stale')),
  stale_reason TEXT, -- why the rows no longer say what the archives hold
  version INTEGER NOT NULL, -- raised by every write: a write conditional on the version it read
  written_by TEXT NOT NULL, -- the run or recount that wrote the row last
  updated_at TEXT NOT NULL,
  PRIMARY KEY (table_name, date)
);

-- A chunk's rollup, from its archive until its run commits (or fails), in
-- pieces of at most about 500 000 characters of JSON.
CREATE TABLE path_stats_chunks (
  run_id TEXT NOT NULL,
  chunk_index INTEGER NOT NULL,
  piece INTEGER NOT NULL,
  rollup TEXT NOT NULL,
  PRIMARY KEY (run_id, chunk_index, piece)
);

-- A day's statistics counted again from its committed archives in R2 (a day
-- archived before statistics were kept, or whose statistics are stale):
-- one message per archived range to the cleanup-ranges consumer, each
-- range's rollup kept in path_stats_chunks under (recount_id, its place in
-- the recount), merged into the day by the range counted last, if the day
-- did not change meanwhile (its version), else the recount is abandoned.
CREATE TABLE path_stats_recounts (
  recount_id TEXT PRIMARY KEY,
  table_name TEXT NOT NULL,
  date TEXT NOT NULL,
  day_version INTEGER, -- path_stats_days.version when planned; NULL: the day had no row
  ranges INTEGER NOT NULL,
  runs INTEGER NOT NULL, -- committed runs counted
  state TEXT NOT NULL CHECK (state IN ('counting', 'done', 'abandoned')),
  created_at TEXT NOT NULL,
  finished_at TEXT
);
CREATE INDEX path_stats_recounts_day ON path_stats_recounts (table_name, date, state);
