-- The path-stats archiver on traffic_events: its index and triggers (docs/adopting.md).
-- Written by `pnpm install-table`; apply after the archiver's own migrations.
-- Table traffic_events, id id, day event_date (date).

SELECT archive_runs.table_name, archive_metadata.table_name FROM archive_runs, archive_chunks, archive_metadata WHERE 0;

CREATE INDEX IF NOT EXISTS "archiver_traffic_events_day_id" ON "traffic_events" ("event_date", "id");

DROP TRIGGER IF EXISTS "archiver_traffic_events_late_row";

CREATE TRIGGER "archiver_traffic_events_late_row" AFTER INSERT ON "traffic_events"
BEGIN
  UPDATE archive_metadata SET d1_cleaned = 0, cleaned_at = NULL
  WHERE table_name = 'traffic_events' AND date = NEW."event_date" AND d1_cleaned = 1;
END;

DROP TRIGGER IF EXISTS "archiver_traffic_events_moved_row";

CREATE TRIGGER "archiver_traffic_events_moved_row" AFTER UPDATE OF "event_date" ON "traffic_events"
WHEN NEW."event_date" IS NOT OLD."event_date"
BEGIN
  UPDATE archive_metadata SET d1_cleaned = 0, cleaned_at = NULL
  WHERE table_name = 'traffic_events' AND date = NEW."event_date" AND d1_cleaned = 1;
END;

DROP TRIGGER IF EXISTS "archiver_traffic_events_row_into_archived_range";

CREATE TRIGGER "archiver_traffic_events_row_into_archived_range" AFTER INSERT ON "traffic_events"
WHEN EXISTS (SELECT 1 FROM archive_runs WHERE table_name = 'traffic_events' AND date = NEW."event_date" AND status IN ('archiving', 'finalizing', 'archived'))
BEGIN
  UPDATE archive_chunks SET cleanup_epoch = cleanup_epoch + 1,
    cleanup_state = CASE cleanup_state WHEN 'cleaned' THEN 'none' ELSE cleanup_state END,
    cleaned_at = NULL
  WHERE rowid_lo <= NEW."id" AND rowid_hi >= NEW."id"
    AND run_id IN (SELECT run_id FROM archive_runs WHERE table_name = 'traffic_events' AND date = NEW."event_date" AND status IN ('archiving', 'finalizing', 'archived'));
END;

DROP TRIGGER IF EXISTS "archiver_traffic_events_row_changed_in_archived_range";

CREATE TRIGGER "archiver_traffic_events_row_changed_in_archived_range" AFTER UPDATE ON "traffic_events"
WHEN EXISTS (SELECT 1 FROM archive_runs WHERE table_name = 'traffic_events' AND date = NEW."event_date" AND status IN ('archiving', 'finalizing', 'archived'))
BEGIN
  UPDATE archive_chunks SET cleanup_epoch = cleanup_epoch + 1,
    cleanup_state = CASE cleanup_state WHEN 'cleaned' THEN 'none' ELSE cleanup_state END,
    cleaned_at = NULL
  WHERE rowid_lo <= NEW."id" AND rowid_hi >= NEW."id"
    AND run_id IN (SELECT run_id FROM archive_runs WHERE table_name = 'traffic_events' AND date = NEW."event_date" AND status IN ('archiving', 'finalizing', 'archived'));
END;
