-- A database set up before the archiver had migrations of its own got the
-- archiver's index and triggers on traffic_events from the archiver's
-- migrations, under older names. 0002 created them again under install-table's
-- names; these are the old ones, gone so that each INSERT of the API pays for
-- one set. On any other database there is nothing to drop.
DROP TRIGGER IF EXISTS traffic_events_late_row;
DROP TRIGGER IF EXISTS traffic_events_moved_row;
DROP TRIGGER IF EXISTS traffic_events_row_into_cleaned_range;
DROP TRIGGER IF EXISTS traffic_events_row_changed_in_cleaned_range;
DROP TRIGGER IF EXISTS traffic_events_row_into_archived_range;
DROP TRIGGER IF EXISTS traffic_events_row_changed_in_archived_range;
DROP INDEX IF EXISTS traffic_events_date_id;
