import {
  batchesOf,
  type CleanupRangeMessage,
  logEvent,
  parseClosedDate,
  type RunRow,
  readConfig,
  tableOf,
} from "@path-stats/shared";

/** A scrub that must not start: nothing was sent. */
export class ScrubRefusedError extends Error {
  override name = "ScrubRefusedError";
  readonly code = "not_archived";
}

/**
 * Sends every range of a date's committed archives of a table (`tableName`,
 * which may be left out when one table is archived) to be read back from R2
 * and checked against its manifest by the cleanup-ranges consumer
 * (`action: "verify"`). Reads only: nothing in D1's events or R2 changes.
 */
export async function planScrub(env: Env, dateInput: string, now = new Date(), tableName?: string | null) {
  const date = parseClosedDate(dateInput, now);
  const table = tableOf(readConfig(env), tableName);
  const db = env.D1;
  const { results: runs } = await db
    .prepare(
      "SELECT run_id FROM archive_runs WHERE table_name = ?2 AND date = ?1 AND status = 'archived' ORDER BY rowid",
    )
    .bind(date, table.name)
    .all<Pick<RunRow, "run_id">>();
  if (runs.length === 0) throw new ScrubRefusedError(`${table.name} ${date} has no committed archive to verify`);
  const runIds = runs.map((r) => r.run_id);
  const [ranges] = await db.batch([
    db
      .prepare(
        `UPDATE archive_chunks SET verify_state = 'pending'
         WHERE run_id IN (SELECT value FROM json_each(?1)) RETURNING run_id, chunk_index`,
      )
      .bind(JSON.stringify(runIds)),
    db
      .prepare("UPDATE archive_runs SET verify_requested_at = ?2 WHERE run_id IN (SELECT value FROM json_each(?1))")
      .bind(JSON.stringify(runIds), now.toISOString()),
  ]);
  const messages: CleanupRangeMessage[] = ((ranges?.results ?? []) as { run_id: string; chunk_index: number }[])
    .sort((a, b) => a.run_id.localeCompare(b.run_id) || a.chunk_index - b.chunk_index)
    .map((r) => ({ version: 1, runId: r.run_id, date, chunkIndex: r.chunk_index, action: "verify" }));
  for (const batch of batchesOf(messages)) {
    await env.CLEANUP_QUEUE.sendBatch(batch.map((body) => ({ body, contentType: "json" as const })));
  }
  logEvent("scrub.planned", { table: table.name, date, runIds, ranges: messages.length });
  return {
    outcome: "enqueued" as const,
    ranges: messages.length,
    runIds,
    message: `enqueued ${messages.length} range(s) of ${table.name} ${date} to be read back from R2 and checked`,
  };
}

/** Re-send a scrub that has not finished after this long (its messages may be lost). */
const RESEND_AFTER_MS = 30 * 60 * 1000;

/**
 * The days (table and date) the cron scrubs now: those whose committed
 * archives were never checked or were checked longest ago (over `everyDays`
 * days), oldest first, at most `maxDays` over all tables, skipping a scrub
 * sent less than 30 minutes ago.
 */
export async function daysDueForScrub(db: D1Database, now: Date, everyDays: number, maxDays: number) {
  const { results } = await db
    .prepare(
      `SELECT table_name AS tableName, date FROM archive_runs
       WHERE status = 'archived' AND (verified_at IS NULL OR verified_at < ?1)
         AND (verify_requested_at IS NULL OR verify_requested_at < ?2)
       GROUP BY table_name, date ORDER BY MIN(IFNULL(verified_at, '')), date, table_name LIMIT ?3`,
    )
    .bind(
      new Date(now.getTime() - everyDays * 86_400_000).toISOString(),
      new Date(now.getTime() - RESEND_AFTER_MS).toISOString(),
      maxDays,
    )
    .all<{ tableName: string; date: string }>();
  return results;
}
