-- Cleanup deletes only rows equal to a row of the committed archive, so a
-- range can end with rows of its date still in it: rows that entered it after
-- it was archived (an explicit id below the last archived one, an UPDATE that
-- moved a row into the date, a changed row). They are counted here, and a
-- later run archives them: planning looks for rows of a date outside the
-- ranges that still hold archived rows.
ALTER TABLE archive_chunks ADD COLUMN rows_left INTEGER;

-- d1_cleaned = 1 must always mean no row of the day is in D1. Rows arrive by
-- INSERT (the trigger of 0001; INSERT OR REPLACE too) and by an UPDATE that
-- changes a row's date, an UPSERT's update included.
CREATE TRIGGER traffic_events_moved_row AFTER UPDATE OF event_date ON traffic_events
WHEN NEW.event_date IS NOT OLD.event_date
BEGIN
  UPDATE archive_metadata SET d1_cleaned = 0, cleaned_at = NULL
  WHERE date = NEW.event_date AND d1_cleaned = 1;
END;

-- A row that enters a range whose cleanup has finished (an explicit id, a
-- row moved or changed into it) may equal a row of that range's archive: the
-- range goes back to not cleaned, so the next cleanup deletes the row by
-- exact match instead of a new run archiving it a second time; a row that
-- differs is left again and a later run archives it. The lookup is by date
-- on archive_runs and touches only the chunks of that date's runs; the WHEN
-- keeps the web API's ordinary inserts (today: no archived run) to one probe.
CREATE TRIGGER traffic_events_row_into_cleaned_range AFTER INSERT ON traffic_events
WHEN EXISTS (SELECT 1 FROM archive_runs WHERE date = NEW.event_date AND status = 'archived')
BEGIN
  UPDATE archive_chunks SET cleanup_state = 'none', cleaned_at = NULL
  WHERE cleanup_state = 'cleaned' AND rowid_lo <= NEW.id AND rowid_hi >= NEW.id
    AND run_id IN (SELECT run_id FROM archive_runs WHERE date = NEW.event_date AND status = 'archived');
END;
CREATE TRIGGER traffic_events_row_changed_in_cleaned_range AFTER UPDATE ON traffic_events
WHEN EXISTS (SELECT 1 FROM archive_runs WHERE date = NEW.event_date AND status = 'archived')
BEGIN
  UPDATE archive_chunks SET cleanup_state = 'none', cleaned_at = NULL
  WHERE cleanup_state = 'cleaned' AND rowid_lo <= NEW.id AND rowid_hi >= NEW.id
    AND run_id IN (SELECT run_id FROM archive_runs WHERE date = NEW.event_date AND status = 'archived');
END;
