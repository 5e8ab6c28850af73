-- Cleanup deletes only rows equal to a row of the committed archive, so a
-- range can end with rows of its date still in it: rows that entered it after
-- it was archived (an explicit id below the last archived one, an UPDATE that
-- moved a row into the date, a changed row). They are counted here, and a
-- later run archives them: planning looks for rows of a date outside the
-- ranges that still hold archived rows.
ALTER TABLE archive_chunks ADD COLUMN rows_left INTEGER;

-- The triggers that keep d1_cleaned and the cleaned ranges true while the API
-- writes are on the archived table, from `pnpm install-table` (install-sql.ts).
