import { recordPoint } from "./analytics.ts";
import { type ArchivedTable, daySql, tableSql } from "./archived-table/archived-table.ts";
import type { SqlDatabase } from "./d1.ts";
import { errorMessage, logEvent } from "./log.ts";
import type { RunRow } from "./rows.ts";

/** The part of R2's API that failing a run needs; an R2Bucket is one. */
export interface UploadAborter {
  resumeMultipartUpload(key: string, uploadId: string): { abort(): Promise<void> };
}

/**
 * Fails a run for good: records why, then aborts its multipart upload so R2
 * keeps nothing of it. Its rows stay in D1, in no archive, and the next plan
 * of the date covers them again.
 *
 * Only a run that is archiving can be failed, or a finalizing one by its own
 * finalizer (`finalizeToken`): a finalizer may be writing the manifest, the
 * commit point, and a run with a manifest must never be failed. Returns the
 * failed run, or null when the run was not in a state to fail.
 */
export async function failRun(
  env: { D1: SqlDatabase; R2_ARCHIVE: UploadAborter },
  runId: string,
  reason: string,
  now: Date,
  finalizeToken: string | null = null,
): Promise<RunRow | null> {
  const run = await env.D1.prepare(
    `UPDATE archive_runs SET status = 'failed', error = ?1, failed_at = ?2, finalize_token = NULL
       WHERE run_id = ?3 AND (status = 'archiving' OR (status = 'finalizing' AND finalize_token = ?4))
       RETURNING *`,
  )
    .bind(reason, now.toISOString(), runId, finalizeToken)
    .first<RunRow>();
  if (!run) return null;
  // Its chunks' path statistics are never counted: a failed run adds nothing.
  await env.D1.prepare("DELETE FROM path_stats_chunks WHERE run_id = ?1").bind(runId).run();
  logEvent("archive.run_failed", { runId, table: run.table_name, date: run.date, error: reason });
  recordPoint(env, {
    kind: "run",
    outcome: "failed",
    date: run.date,
    runId,
    rows: 0,
    objectBytes: 0,
    parts: 0,
    at: now,
  });
  try {
    await env.R2_ARCHIVE.resumeMultipartUpload(run.object_key, run.upload_id).abort();
  } catch (error) {
    // Already gone (aborted before, or by R2 after its lifetime): nothing is left to remove.
    logEvent("archive.abort_failed", { runId, date: run.date, error: errorMessage(error) });
  }
  return run;
}

/**
 * Marks a date cleaned when nothing of it is left to delete: no run in
 * flight, every range of every committed run cleaned, and no row of the date
 * in D1 (one index seek). Called after each range and by planning, so a day
 * whose rows all left D1 is never left at 0. Triggers on the archived table reset
 * the flag the moment a row of the date arrives again.
 */
export async function markDayCleanedIfDone(
  db: SqlDatabase,
  table: ArchivedTable,
  date: string,
  now: Date,
): Promise<boolean> {
  const result = await db
    .prepare(
      `UPDATE archive_metadata SET d1_cleaned = 1, cleaned_at = ?1
       WHERE table_name = ?3 AND date = ?2 AND d1_cleaned = 0
         AND NOT EXISTS (
           SELECT 1 FROM archive_runs WHERE table_name = ?3 AND date = ?2 AND status IN ('archiving', 'finalizing'))
         AND NOT EXISTS (
           SELECT 1 FROM archive_chunks c JOIN archive_runs r ON r.run_id = c.run_id
           WHERE r.table_name = ?3 AND r.date = ?2 AND r.status = 'archived' AND c.cleanup_state <> 'cleaned')
         AND NOT EXISTS (SELECT 1 FROM ${tableSql(table)} WHERE ${daySql(table)} = ?2)`,
    )
    .bind(now.toISOString(), date, table.name)
    .run();
  if (result.meta.changes) logEvent("cleanup.date_cleaned", { table: table.name, date });
  return result.meta.changes > 0;
}
