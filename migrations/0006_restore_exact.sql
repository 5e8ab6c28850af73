-- A row leaves D1 only if restoring its archive would give back exactly that
-- row (ARCHITECTURE §8). Two things cleanup and restore need for that:

-- 1. Every power of two a double can be scaled by, exactly. SQLite's text to
-- REAL conversion (JSON's included) is one unit in the last place off for
-- about one double in six of the whole range (measured locally on 20 000
-- random doubles; most below 1e-100 or above 1e100), and its REAL to text
-- conversion as often. Halving and doubling are exact, so these values are:
-- cleanup and restore rebuild an archived REAL x as m * 2^k (m an integer of
-- at most 53 bits, exact as a JSON integer), never by parsing its digits.
CREATE TABLE archive_powers_of_two (k INTEGER PRIMARY KEY, v REAL NOT NULL);
INSERT INTO archive_powers_of_two (k, v)
  WITH RECURSIVE down (k, v) AS (SELECT 0, 1.0 UNION ALL SELECT k - 1, v / 2 FROM down WHERE k > -1074),
    up (k, v) AS (SELECT 1, 2.0 UNION ALL SELECT k + 1, v * 2 FROM up WHERE k < 1023)
  SELECT k, v FROM down UNION ALL SELECT k, v FROM up;

-- 2. A range's cleanup knows whether a row entered or changed in it since
-- its run was planned: cleanup_epoch grows (the triggers `pnpm install-table`
-- puts on the archived table, install-sql.ts), and
-- - a cleanup that started before marks the range cleaned only after another
--   pass over it, and a cleaned range goes back to not cleaned, so an
--   identical row that comes back (an explicit id, a restore) is deleted by
--   the next pass instead of a new run archiving the same content again;
-- - rows a cleanup leaves in a range whose epoch never grew are rows nothing
--   changed since they were archived, yet cleanup could not match: health
--   reports them (rows_unmatched) instead of every cron archiving them again
--   in silence.
ALTER TABLE archive_chunks ADD COLUMN cleanup_epoch INTEGER NOT NULL DEFAULT 0;

-- A day that planning refuses to archive (a row id beyond ±2^53, which D1
-- cannot return exactly) says why at once, in status and health, instead of
-- looking like a day never tried. Cleared when the day plans again.
CREATE TABLE archive_refusals (
  date TEXT PRIMARY KEY,
  reason TEXT NOT NULL,
  refused_at TEXT NOT NULL
);

-- A chunk whose claim was taken over from a consumer that outlived its lease
-- may have that consumer's part upload land after the new owner's, leaving R2
-- a part whose etag nobody recorded: complete() then refuses the run forever.
-- Counted here, so such a finalizer archives exactly those chunks again.
ALTER TABLE archive_chunks ADD COLUMN takeovers INTEGER NOT NULL DEFAULT 0;
