import {
  batchesOf,
  type CleanupRangeMessage,
  logEvent,
  markDayCleanedIfDone,
  parseClosedDate,
  type RunRow,
  readConfig,
  tableOf,
} from "@path-stats/shared";

/** Cleanup that must not start: nothing was deleted. */
export class CleanupRefusedError extends Error {
  override name = "CleanupRefusedError";
  constructor(
    readonly code: "not_archived" | "run_in_flight" | "run_failed",
    message: string,
  ) {
    super(message);
  }
}

export type CleanupOutcome =
  | { outcome: "enqueued"; ranges: number; runIds: string[]; message: string }
  | { outcome: "nothing_to_clean"; ranges: 0; runIds: string[]; message: string };

/**
 * Enqueues the deletion of every committed range of a date of a table
 * (`tableName`, which may be left out when one table is archived) that is
 * not deleted yet. Refuses, deleting nothing, when the date has no committed
 * archive, when a run of it is in flight, or when its latest run failed (its
 * rows are in no archive). Rows outside committed runs (late rows) are never
 * in a range, so they stay until a later run archives them.
 */
export async function planCleanup(
  env: Env,
  dateInput: string,
  now = new Date(),
  options: {
    /**
     * Leave alone a range sent less than this long ago and not finished: its
     * message is in the queue or being worked (the cron passes this; an
     * operator's trigger re-sends every range not cleaned, refused ones too).
     */
    resendAfterMs?: number;
  } = {},
  tableName?: string | null,
): Promise<CleanupOutcome> {
  const table = tableOf(readConfig(env), tableName);
  const date = parseClosedDate(dateInput, now);
  const db = env.D1;
  // In insertion order (rowid), so the last is the latest run even when two share a timestamp.
  const { results: runs } = await db
    .prepare("SELECT * FROM archive_runs WHERE table_name = ?2 AND date = ?1 ORDER BY rowid")
    .bind(date, table.name)
    .all<RunRow>();
  const inFlight = runs.find((r) => r.status === "archiving" || r.status === "finalizing");
  if (inFlight) {
    throw new CleanupRefusedError(
      "run_in_flight",
      `${table.name} ${date} has run ${inFlight.run_id} in flight; clean up once it is archived`,
    );
  }
  const latest = runs.at(-1);
  if (latest?.status === "failed") {
    throw new CleanupRefusedError(
      "run_failed",
      `the latest run of ${table.name} ${date} (${latest.run_id}) failed: ${latest.error ?? "no reason recorded"}; archive the day again first`,
    );
  }
  const archived = runs.filter((r) => r.status === "archived").map((r) => r.run_id);
  if (archived.length === 0)
    throw new CleanupRefusedError("not_archived", `${table.name} ${date} has no committed archive`);

  const { results: ranges } = await db
    .prepare(
      `UPDATE archive_chunks SET cleanup_state = 'pending', cleanup_error = NULL, cleanup_enqueued_at = ?2
       WHERE run_id IN (SELECT run_id FROM archive_runs WHERE table_name = ?4 AND date = ?1 AND status = 'archived')
         AND CASE WHEN ?3 IS NULL THEN cleanup_state <> 'cleaned'
           ELSE cleanup_state = 'none' OR (cleanup_state = 'pending' AND IFNULL(cleanup_enqueued_at, '') < ?3) END
       RETURNING run_id, chunk_index`,
    )
    .bind(
      date,
      now.toISOString(),
      options.resendAfterMs === undefined ? null : new Date(now.getTime() - options.resendAfterMs).toISOString(),
      table.name,
    )
    .all<{ run_id: string; chunk_index: number }>();
  if (ranges.length === 0) {
    // Every range is done: the day may still need its flag (its last rows left by another way).
    await markDayCleanedIfDone(db, table, date, now);
    return {
      outcome: "nothing_to_clean",
      ranges: 0,
      runIds: archived,
      message: `every committed range of ${table.name} ${date} is already deleted`,
    };
  }
  const messages: CleanupRangeMessage[] = ranges
    .sort((a, b) => a.run_id.localeCompare(b.run_id) || a.chunk_index - b.chunk_index)
    .map((r) => ({ version: 1, runId: r.run_id, date, chunkIndex: r.chunk_index }));
  for (const batch of batchesOf(messages)) {
    await env.CLEANUP_QUEUE.sendBatch(batch.map((body) => ({ body, contentType: "json" as const })));
  }
  logEvent("cleanup.planned", {
    table: table.name,
    date,
    ranges: messages.length,
    runs: archived.length,
    at: now.toISOString(),
  });
  return {
    outcome: "enqueued",
    ranges: messages.length,
    runIds: archived,
    message: `enqueued ${messages.length} range(s) of ${table.name} ${date} for verified deletion`,
  };
}
