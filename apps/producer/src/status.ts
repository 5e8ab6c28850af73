import { type ArchivedTable, daySql, type RunRow, tableSql } from "@path-stats/shared";

export type DayState = "none" | "archiving" | "archived" | "cleaning" | "cleaned" | "failed" | "refused";

interface ChunkCounts {
  run_id: string;
  total: number;
  archived: number;
  archive_errors: number;
  cleaned: number;
  cleanup_pending: number;
  cleanup_failed: number;
  rows_archived: number;
  rows_deleted: number;
  rows_left: number;
  delete_statements: number;
  cleanup_rows_written: number;
  gz_bytes: number;
  padding_bytes: number;
  rows_read: number;
  peak_buffered_bytes: number;
  last_archive_error: string | null;
  last_cleanup_error: string | null;
  restore_pending: number;
  restored: number;
  restore_failed: number;
  rows_restored: number;
  last_restore_error: string | null;
  verify_pending: number;
}

/**
 * The operator's one view of a day: its state, each run with chunk progress,
 * rows planned, archived, deleted and left, bytes, keys and the last errors.
 *
 * Polled while work is in flight, so it reads O(runs + chunks) rows: the
 * counts come from what the archiver and cleanup record as they work. The
 * day's rows still in D1 are counted only when asked (`countLive`), which
 * reads every one of them (1M rows for a 1M day). `cost.d1RowsRead` says what
 * the call read.
 */
export async function dayStatus(
  db: D1Database,
  table: ArchivedTable,
  date: string,
  options: { countLive?: boolean } = {},
) {
  const [runsResult, chunksResult, metadata, refusalResult, remaining] = await db.batch([
    db.prepare("SELECT * FROM archive_runs WHERE table_name = ?2 AND date = ?1 ORDER BY rowid").bind(date, table.name),
    db
      .prepare(
        `SELECT c.run_id, COUNT(*) AS total,
           SUM(c.state = 'archived') AS archived,
           SUM(c.state = 'pending' AND c.last_error IS NOT NULL) AS archive_errors,
           SUM(c.cleanup_state = 'cleaned') AS cleaned,
           SUM(c.cleanup_state = 'pending') AS cleanup_pending,
           SUM(c.cleanup_state = 'failed') AS cleanup_failed,
           COALESCE(SUM(c.rows), 0) AS rows_archived,
           SUM(c.rows_deleted) AS rows_deleted,
           COALESCE(SUM(c.rows_left), 0) AS rows_left,
           SUM(c.delete_statements) AS delete_statements,
           SUM(c.cleanup_rows_written) AS cleanup_rows_written,
           COALESCE(SUM(c.gz_bytes), 0) AS gz_bytes,
           COALESCE(SUM(c.padding_bytes), 0) AS padding_bytes,
           COALESCE(SUM(c.rows_read), 0) AS rows_read,
           COALESCE(MAX(c.peak_buffered_bytes), 0) AS peak_buffered_bytes,
           MAX(c.last_error) AS last_archive_error,
           MAX(c.cleanup_error) AS last_cleanup_error,
           SUM(c.restore_state = 'pending') AS restore_pending,
           SUM(c.restore_state = 'restored') AS restored,
           SUM(c.restore_state = 'failed') AS restore_failed,
           SUM(c.rows_restored) AS rows_restored,
           MAX(c.restore_error) AS last_restore_error,
           SUM(c.verify_state = 'pending') AS verify_pending
         FROM archive_chunks c JOIN archive_runs r ON r.run_id = c.run_id
         WHERE r.table_name = ?2 AND r.date = ?1 GROUP BY c.run_id`,
      )
      .bind(date, table.name),
    db.prepare("SELECT * FROM archive_metadata WHERE table_name = ?2 AND date = ?1").bind(date, table.name),
    db
      .prepare("SELECT reason, refused_at FROM archive_refusals WHERE table_name = ?2 AND date = ?1")
      .bind(date, table.name),
    ...(options.countLive
      ? [db.prepare(`SELECT COUNT(*) AS n FROM ${tableSql(table)} WHERE ${daySql(table)} = ?1`).bind(date)]
      : []),
  ]);
  const runs = (runsResult?.results ?? []) as RunRow[];
  const counts = new Map(((chunksResult?.results ?? []) as ChunkCounts[]).map((c) => [c.run_id, c]));
  const meta = (metadata?.results[0] ?? null) as { d1_cleaned: number; cleaned_at: string | null } | null;
  const d1Remaining = remaining ? ((remaining.results[0] as { n: number } | undefined)?.n ?? 0) : null;
  const refusal = (refusalResult?.results[0] ?? null) as { reason: string; refused_at: string } | null;
  const d1RowsRead = [runsResult, chunksResult, metadata, refusalResult, remaining].reduce(
    (sum, r) => sum + (r?.meta.rows_read ?? 0),
    0,
  );

  const runViews = runs.map((run) => {
    const c = counts.get(run.run_id);
    return {
      runId: run.run_id,
      status: run.status,
      objectKey: run.object_key,
      manifestKey: run.manifest_key,
      rowidLo: run.rowid_lo,
      rowidHi: run.rowid_hi,
      partSize: run.part_size,
      chunks: {
        total: run.chunk_count,
        done: c?.archived ?? 0,
        failing: c?.archive_errors ?? 0,
        cleaned: c?.cleaned ?? 0,
        cleanupPending: c?.cleanup_pending ?? 0,
        cleanupFailed: c?.cleanup_failed ?? 0,
      },
      rows: {
        planned: run.planned_rows,
        archived: c?.rows_archived ?? 0,
        deleted: c?.rows_deleted ?? 0,
        // Rows of the day cleanup found in the run's ranges but not in its archive (a later run takes them).
        leftNotArchived: c?.rows_left ?? 0,
        d1RowsReadPlanning: run.plan_rows_read,
        d1RowsReadArchiving: c?.rows_read ?? 0,
        d1RowsWrittenByCleanup: c?.cleanup_rows_written ?? 0,
      },
      bytes: {
        raw: run.raw_bytes,
        compressed: c?.gz_bytes ?? 0,
        padding: c?.padding_bytes ?? 0,
        object: run.object_bytes,
        peakBuffered: c?.peak_buffered_bytes ?? 0,
      },
      /** Ranges sent to be restored into D1 (POST /admin/restore), restored, or stopped; rows inserted. */
      restore: {
        pending: c?.restore_pending ?? 0,
        restored: c?.restored ?? 0,
        failed: c?.restore_failed ?? 0,
        rowsRestored: c?.rows_restored ?? 0,
      },
      /** The last read-back of the archive from R2 (POST /admin/verify, or the cron's scrub). */
      verify: {
        state: (c?.verify_pending ? "pending" : run.verify_error ? "failed" : run.verified_at ? "ok" : "never") as
          | "pending"
          | "failed"
          | "ok"
          | "never",
        verifiedAt: run.verified_at,
        error: run.verify_error,
      },
      parts: run.part_count,
      deleteStatements: c?.delete_statements ?? 0,
      errors: {
        run: run.error,
        lastChunk: c?.last_archive_error ?? null,
        cleanup: run.cleanup_error ?? c?.last_cleanup_error ?? null,
        restore: c?.last_restore_error ?? null,
      },
      timings: {
        createdAt: run.created_at,
        archivedAt: run.archived_at,
        failedAt: run.failed_at,
        cleanedAt: run.cleaned_at,
      },
    };
  });

  const archivedRuns = runViews.filter((r) => r.status === "archived");
  return {
    table: table.name,
    date,
    status: dayState(runViews, meta?.d1_cleaned === 1, refusal !== null),
    /** Why planning last refused to archive the day (the row id it could not read exactly), or null. */
    refusal: refusal ? { reason: refusal.reason, refusedAt: refusal.refused_at } : null,
    /** The day's rows in D1, counted live; null unless asked for with ?count=live. */
    d1Remaining,
    /** Rows of committed archives not deleted from D1 yet, from the recorded counts (no row is read). */
    d1ArchivedNotDeleted: archivedRuns.reduce((sum, r) => sum + r.rows.archived - r.rows.deleted, 0),
    /** Rows cleanup found in archived ranges that the archive does not hold; a later run takes them. */
    d1LeftNotArchived: runViews.reduce((sum, r) => sum + r.rows.leftNotArchived, 0),
    d1Cleaned: meta?.d1_cleaned === 1,
    cleanedAt: meta?.cleaned_at ?? null,
    metadata: metadata?.results[0] ?? null,
    runs: runViews,
    cost: { d1RowsRead },
  };
}

/** A day's state from its runs, its cleaned flag, and whether planning last refused it (archive_refusals). */
export function dayState(
  runs: { status: RunRow["status"]; chunks: { cleanupPending: number; cleanupFailed: number } }[],
  d1Cleaned: boolean,
  refused = false,
): DayState {
  if (runs.some((r) => r.status === "archiving" || r.status === "finalizing")) return "archiving";
  if (refused) return "refused";
  if (runs.length === 0) return "none";
  if (runs.at(-1)?.status === "failed" || runs.some((r) => r.chunks.cleanupFailed > 0)) return "failed";
  if (d1Cleaned) return "cleaned";
  if (runs.some((r) => r.chunks.cleanupPending > 0)) return "cleaning";
  return "archived";
}
