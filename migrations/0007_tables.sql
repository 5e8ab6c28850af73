-- Several tables per deployment (ARCHIVE_TABLES): the archiver's own rows
-- say which table they are of. A day is now a (table, date): runs carry
-- their table, and archive_metadata and archive_refusals hold one row per
-- table and date. Rows written before this migration are of traffic_events,
-- the only table earlier versions archived; a deployment that archived
-- another table under the one-table vars sets it after this migration
-- (docs/operating.md, "Upgrading"):
--   UPDATE archive_runs SET table_name = '<table>';
--   UPDATE archive_metadata SET table_name = '<table>';
--   UPDATE archive_refusals SET table_name = '<table>';

-- The triggers install-table put on the operator's table name
-- archive_metadata. Rebuilding it (SQLite cannot change a primary key) drops
-- it before the new table takes its name, and SQLite's ALTER TABLE would
-- refuse that rename while a trigger names a table that is not there;
-- legacy_alter_table (which workerd and D1 allow) renames without checking
-- triggers, which then name the new table. install-table's migration of
-- this version replaces those triggers with ones that also say the table.
PRAGMA legacy_alter_table = ON;

ALTER TABLE archive_runs ADD COLUMN table_name TEXT NOT NULL DEFAULT 'traffic_events';
DROP INDEX archive_runs_one_in_flight;
CREATE UNIQUE INDEX archive_runs_one_in_flight ON archive_runs (table_name, date)
  WHERE status IN ('archiving', 'finalizing');
DROP INDEX archive_runs_date;
CREATE INDEX archive_runs_date ON archive_runs (table_name, date, status);

-- One row per table and date, as operators already query it (now with table_name).
CREATE TABLE archive_metadata_by_table (
  table_name TEXT NOT NULL,
  date TEXT NOT NULL,
  r2_path TEXT NOT NULL, -- object key of the day's latest archive run
  event_count INTEGER NOT NULL, -- rows in all committed archives of the day
  file_size INTEGER NOT NULL, -- bytes of all committed archive objects of the day
  archived_at TEXT NOT NULL,
  d1_cleaned INTEGER NOT NULL DEFAULT 0 CHECK (d1_cleaned IN (0, 1)),
  cleaned_at TEXT,
  keep_until TEXT,
  PRIMARY KEY (table_name, date)
);
INSERT INTO archive_metadata_by_table
  (table_name, date, r2_path, event_count, file_size, archived_at, d1_cleaned, cleaned_at, keep_until)
  SELECT 'traffic_events', date, r2_path, event_count, file_size, archived_at, d1_cleaned, cleaned_at, keep_until
  FROM archive_metadata;
DROP TABLE archive_metadata;
ALTER TABLE archive_metadata_by_table RENAME TO archive_metadata;

CREATE TABLE archive_refusals_by_table (
  table_name TEXT NOT NULL,
  date TEXT NOT NULL,
  reason TEXT NOT NULL,
  refused_at TEXT NOT NULL,
  PRIMARY KEY (table_name, date)
);
INSERT INTO archive_refusals_by_table (table_name, date, reason, refused_at)
  SELECT 'traffic_events', date, reason, refused_at FROM archive_refusals;
DROP TABLE archive_refusals;
ALTER TABLE archive_refusals_by_table RENAME TO archive_refusals;

PRAGMA legacy_alter_table = OFF;
