import { type ArchivedTable, addDays, utcDate } from "@path-stats/shared";
import { closedDaysInD1 } from "../days-in-d1.ts";
import { type DayState, dayState } from "../status.ts";

interface RunSummary {
  run_id: string;
  date: string;
  status: "archiving" | "finalizing" | "archived" | "failed";
  archived_rows: number | null;
  object_bytes: number | null;
  part_count: number | null;
  rowid_hi: number;
  archived_at: string | null;
  error: string | null;
  cleanup_error: string | null;
  ranges: number;
  ranges_cleaned: number;
  ranges_pending: number;
  ranges_failed: number;
}

export interface DayOverview {
  date: string;
  state: DayState;
  /** Rows of the day in D1 that no archive holds yet (late rows, or a day not archived). */
  unarchivedRowsInD1: boolean;
  rows: number;
  objectBytes: number;
  parts: number;
  runs: number;
  archivedAt: string | null;
  cleanedAt: string | null;
  lastError: string | null;
}

/**
 * The last `days` closed days in one cheap pass: per day its state, rows,
 * bytes, parts, runs, when archived and cleaned, and its last error; and the
 * success rates of archive runs and cleanup ranges over the window. Reads the
 * window's runs and their chunks, its archive_metadata rows, and one index
 * seek per day still in D1 — never a day's events.
 */
export async function overview(
  db: D1Database,
  tables: readonly ArchivedTable[],
  table: ArchivedTable,
  now: Date,
  days: number,
) {
  const today = utcDate(now);
  const first = addDays(today, -days);
  const [runsResult, metaResult, refusalsResult] = await db.batch([
    db
      .prepare(
        `SELECT r.run_id, r.date, r.status, r.archived_rows, r.object_bytes, r.part_count, r.rowid_hi, r.archived_at,
                r.error, r.cleanup_error,
                COUNT(c.chunk_index) AS ranges,
                IFNULL(SUM(c.cleanup_state = 'cleaned'), 0) AS ranges_cleaned,
                IFNULL(SUM(c.cleanup_state = 'pending'), 0) AS ranges_pending,
                IFNULL(SUM(c.cleanup_state = 'failed'), 0) AS ranges_failed
         FROM archive_runs r LEFT JOIN archive_chunks c ON c.run_id = r.run_id
         WHERE r.table_name = ?3 AND r.date >= ?1 AND r.date < ?2
         GROUP BY r.run_id ORDER BY r.date, r.rowid`,
      )
      .bind(first, today, table.name),
    db
      .prepare(
        "SELECT date, d1_cleaned, cleaned_at FROM archive_metadata WHERE table_name = ?3 AND date >= ?1 AND date < ?2",
      )
      .bind(first, today, table.name),
    db
      .prepare("SELECT date, reason FROM archive_refusals WHERE table_name = ?3 AND date >= ?1 AND date < ?2")
      .bind(first, today, table.name),
  ]);
  const refusals = new Map(
    ((refusalsResult?.results ?? []) as { date: string; reason: string }[]).map((r) => [r.date, r.reason]),
  );
  const runs = (runsResult?.results ?? []) as RunSummary[];
  const meta = new Map(
    ((metaResult?.results ?? []) as { date: string; d1_cleaned: number; cleaned_at: string | null }[]).map((m) => [
      m.date,
      m,
    ]),
  );
  const stillInD1 = await closedDaysInD1(db, table, today);
  const newestId = new Map(stillInD1.days.filter((d) => d.date >= first).map((d) => [d.date, d.newestId]));
  const inD1 = [...newestId.keys()];
  const d1RowsRead =
    (runsResult?.meta.rows_read ?? 0) +
    (metaResult?.meta.rows_read ?? 0) +
    (refusalsResult?.meta.rows_read ?? 0) +
    stillInD1.rowsRead;

  const byDate = new Map<string, RunSummary[]>();
  for (const run of runs) byDate.set(run.date, [...(byDate.get(run.date) ?? []), run]);
  const dates = [...new Set([...byDate.keys(), ...inD1])].sort().reverse();
  const dayViews: DayOverview[] = dates.map((date) => {
    const dayRuns = byDate.get(date) ?? [];
    const archived = dayRuns.filter((r) => r.status === "archived");
    const archivedUpTo = Math.max(...archived.map((r) => r.rowid_hi), -Infinity);
    return {
      date,
      state: dayState(
        dayRuns.map((r) => ({
          status: r.status,
          chunks: { cleanupPending: r.ranges_pending, cleanupFailed: r.ranges_failed },
        })),
        meta.get(date)?.d1_cleaned === 1,
        refusals.has(date),
      ),
      unarchivedRowsInD1: (newestId.get(date) ?? 0) > archivedUpTo,
      rows: archived.reduce((sum, r) => sum + (r.archived_rows ?? 0), 0),
      objectBytes: archived.reduce((sum, r) => sum + (r.object_bytes ?? 0), 0),
      parts: archived.reduce((sum, r) => sum + (r.part_count ?? 0), 0),
      runs: dayRuns.length,
      archivedAt: archived.at(-1)?.archived_at ?? null,
      cleanedAt: meta.get(date)?.cleaned_at ?? null,
      lastError:
        refusals.get(date) ?? dayRuns.map((r) => r.cleanup_error ?? r.error).findLast((e) => e !== null) ?? null,
    };
  });

  const finished = runs.filter((r) => r.status === "archived" || r.status === "failed");
  const rangesDone = runs.reduce((sum, r) => sum + r.ranges_cleaned, 0);
  const rangesRefused = runs.reduce((sum, r) => sum + r.ranges_failed, 0);
  return {
    table: table.name,
    /** Every table archived here, for a choice of which to look at. */
    tables: tables.map((t) => t.name),
    from: first,
    to: addDays(today, -1),
    days: dayViews,
    rates: {
      /** Archived runs among finished runs of the window; null when none finished. */
      archiveSuccess: finished.length ? finished.filter((r) => r.status === "archived").length / finished.length : null,
      /** Cleaned ranges among ranges cleanup finished or refused; null when none did. */
      cleanupSuccess: rangesDone + rangesRefused ? rangesDone / (rangesDone + rangesRefused) : null,
      runsArchived: finished.filter((r) => r.status === "archived").length,
      runsFailed: finished.filter((r) => r.status === "failed").length,
      rangesCleaned: rangesDone,
      rangesRefused,
    },
    cost: { d1RowsRead },
  };
}
