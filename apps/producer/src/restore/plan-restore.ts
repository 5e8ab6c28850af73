import {
  batchesOf,
  type CleanupRangeMessage,
  logEvent,
  parseClosedDate,
  type RunRow,
  readConfig,
  tableOf,
} from "@path-stats/shared";

/** A restore that must not start: nothing was sent. */
export class RestoreRefusedError extends Error {
  override name = "RestoreRefusedError";
  constructor(
    readonly code: "run_in_flight" | "not_archived" | "run_not_found",
    message: string,
  ) {
    super(message);
  }
}

export interface RestoreOutcome {
  outcome: "enqueued";
  ranges: number;
  runIds: string[];
  keepUntil: string;
  message: string;
}

/**
 * Sends every range of a date's committed archives of a table (`tableName`,
 * which may be left out when one table is archived), or of one run, to be
 * restored into D1 by the cleanup-ranges consumer, one message per range.
 * Refused while a run of the date is in flight (its rows are being read) or
 * when there is no committed archive to restore. The day is kept in D1 for
 * RESTORE_KEEP_HOURS: the cron does not clean it before (an operator's
 * cleanup still does, by exact match).
 */
export async function planRestore(
  env: Env,
  dateInput: string,
  runId: string | null,
  now = new Date(),
  tableName?: string | null,
) {
  const date = parseClosedDate(dateInput, now);
  const config = readConfig(env);
  const table = tableOf(config, tableName);
  const db = env.D1;
  const { results: runs } = await db
    .prepare("SELECT * FROM archive_runs WHERE table_name = ?2 AND date = ?1 ORDER BY rowid")
    .bind(date, table.name)
    .all<RunRow>();
  const inFlight = runs.find((r) => r.status === "archiving" || r.status === "finalizing");
  if (inFlight) {
    throw new RestoreRefusedError(
      "run_in_flight",
      `${table.name} ${date} has run ${inFlight.run_id} in flight; restore once it ends`,
    );
  }
  const chosen = runId === null ? runs.filter((r) => r.status === "archived") : runs.filter((r) => r.run_id === runId);
  if (runId !== null && chosen.length === 0) {
    throw new RestoreRefusedError("run_not_found", `${table.name} ${date} has no run ${runId}`);
  }
  if (chosen.length === 0 || chosen.some((r) => r.status !== "archived")) {
    throw new RestoreRefusedError(
      "not_archived",
      runId === null
        ? `${table.name} ${date} has no committed archive`
        : `run ${runId} is ${chosen[0]?.status}, not archived`,
    );
  }
  const runIds = chosen.map((r) => r.run_id);
  const keepUntil = new Date(now.getTime() + config.RESTORE_KEEP_HOURS * 3600_000).toISOString();
  const [ranges] = await db.batch([
    db
      .prepare(
        `UPDATE archive_chunks SET restore_state = 'pending', restore_error = NULL
         WHERE run_id IN (SELECT value FROM json_each(?1)) AND rows > 0
         RETURNING run_id, chunk_index`,
      )
      .bind(JSON.stringify(runIds)),
    db
      .prepare("UPDATE archive_metadata SET keep_until = ?2 WHERE table_name = ?3 AND date = ?1")
      .bind(date, keepUntil, table.name),
  ]);
  const messages: CleanupRangeMessage[] = ((ranges?.results ?? []) as { run_id: string; chunk_index: number }[])
    .sort((a, b) => a.run_id.localeCompare(b.run_id) || a.chunk_index - b.chunk_index)
    .map((r) => ({ version: 1, runId: r.run_id, date, chunkIndex: r.chunk_index, action: "restore" }));
  for (const batch of batchesOf(messages)) {
    await env.CLEANUP_QUEUE.sendBatch(batch.map((body) => ({ body, contentType: "json" as const })));
  }
  logEvent("restore.planned", { table: table.name, date, runIds, ranges: messages.length, keepUntil });
  const outcome: RestoreOutcome = {
    outcome: "enqueued",
    ranges: messages.length,
    runIds,
    keepUntil,
    message: `enqueued ${messages.length} range(s) of ${table.name} ${date} to be restored into D1; kept there until ${keepUntil}`,
  };
  return outcome;
}
