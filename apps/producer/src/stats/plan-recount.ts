import {
  type ArchivedTable,
  batchesOf,
  type CleanupRangeMessage,
  type Config,
  logEvent,
  type PathStatsDayRecord,
  parseClosedDate,
  readConfig,
  tableOf,
} from "@path-stats/shared";
import { nanoid } from "nanoid";

/** A recount that must not start: nothing was sent. */
export class RecountRefusedError extends Error {
  override name = "RecountRefusedError";
  constructor(
    readonly code: "no_stats" | "not_archived" | "run_in_flight",
    message: string,
  ) {
    super(message);
  }
}

/** A recount still counting after this long is taken as lost (its messages dead-lettered) and planned anew. */
const RECOUNT_LEASE_MS = 60 * 60 * 1000;

export interface RecountPlan {
  outcome: "planned" | "in_progress";
  recountId: string;
  table: string;
  date: string;
  ranges: number;
}

/**
 * Counts a day's path statistics again from its committed archives in R2:
 * one message per archived range to the cleanup-ranges consumer
 * (`action: "recount"`), which reads the range back (checked against its
 * manifest), counts each row's latest content (a row a later run archived
 * again counts once, as that run holds it) and, for the range counted last,
 * writes the day's rows in place of what it had. For a day archived before
 * statistics were kept, and a day whose statistics are stale. Reads R2 and
 * writes only the statistics: the day's events in D1 are not touched.
 */
export async function planRecount(
  env: Env,
  dateInput: string,
  now = new Date(),
  tableName?: string | null,
): Promise<RecountPlan> {
  const date = parseClosedDate(dateInput, now);
  return planRecountOf(env, tableOf(readConfig(env), tableName), date, now);
}

async function planRecountOf(env: Env, table: ArchivedTable, date: string, now: Date): Promise<RecountPlan> {
  if (!table.stats) {
    throw new RecountRefusedError("no_stats", `${table.name} keeps no path statistics: nothing to count`);
  }
  const db = env.D1;
  const { results: runs } = await db
    .prepare("SELECT run_id, status FROM archive_runs WHERE table_name = ?1 AND date = ?2 ORDER BY rowid")
    .bind(table.name, date)
    .all<{ run_id: string; status: string }>();
  const inFlight = runs.find((r) => r.status === "archiving" || r.status === "finalizing");
  if (inFlight) {
    throw new RecountRefusedError(
      "run_in_flight",
      `${table.name} ${date} is being archived by run ${inFlight.run_id}; its commit counts its rows`,
    );
  }
  const committed = runs.filter((r) => r.status === "archived").map((r) => r.run_id);
  if (committed.length === 0) {
    throw new RecountRefusedError("not_archived", `${table.name} ${date} has no committed archive to count`);
  }

  const counting = await db
    .prepare(
      `SELECT recount_id, ranges FROM path_stats_recounts
       WHERE table_name = ?1 AND date = ?2 AND state = 'counting' AND created_at >= ?3`,
    )
    .bind(table.name, date, new Date(now.getTime() - RECOUNT_LEASE_MS).toISOString())
    .first<{ recount_id: string; ranges: number }>();
  if (counting) {
    return { outcome: "in_progress", recountId: counting.recount_id, table: table.name, date, ranges: counting.ranges };
  }

  // Every range of every committed run, in run order: its place is where its rollup is kept.
  const { results: ranges } = await db
    .prepare(
      `SELECT c.run_id AS runId, c.chunk_index AS chunkIndex FROM archive_chunks c JOIN archive_runs r ON r.run_id = c.run_id
       WHERE r.table_name = ?1 AND r.date = ?2 AND r.status = 'archived' AND c.rows > 0
       ORDER BY r.rowid, c.chunk_index`,
    )
    .bind(table.name, date)
    .all<{ runId: string; chunkIndex: number }>();
  const day = await db
    .prepare("SELECT version FROM path_stats_days WHERE table_name = ?1 AND date = ?2")
    .bind(table.name, date)
    .first<Pick<PathStatsDayRecord, "version">>();
  const recountId = nanoid();
  await db.batch([
    // Any older recount of the day, still counting, is lost: it can no longer finish.
    db
      .prepare(
        "UPDATE path_stats_recounts SET state = 'abandoned', finished_at = ?3 WHERE table_name = ?1 AND date = ?2 AND state = 'counting'",
      )
      .bind(table.name, date, now.toISOString()),
    db
      .prepare(
        `INSERT INTO path_stats_recounts (recount_id, table_name, date, day_version, ranges, runs, state, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'counting', ?7)`,
      )
      .bind(recountId, table.name, date, day?.version ?? null, ranges.length, committed.length, now.toISOString()),
  ]);
  const messages: CleanupRangeMessage[] = ranges.map((range, seq) => ({
    version: 1,
    date,
    runId: range.runId,
    chunkIndex: range.chunkIndex,
    action: "recount",
    recount: { id: recountId, seq },
  }));
  for (const batch of batchesOf(messages)) {
    await env.CLEANUP_QUEUE.sendBatch(batch.map((body) => ({ body, contentType: "json" as const })));
  }
  logEvent("stats.recount_planned", { table: table.name, date, recountId, ranges: ranges.length });
  return { outcome: "planned", recountId, table: table.name, date, ranges: ranges.length };
}

/**
 * Days of tables with statistics that need them counted from their archives,
 * oldest first, at most `maxDays`: stale days, and archived days with none
 * (archived before statistics were kept), that no live recount is counting.
 */
export async function daysDueForRecount(
  db: D1Database,
  config: Config,
  now: Date,
  maxDays: number,
): Promise<{ tableName: string; date: string }[]> {
  const names = config.tables.filter((t) => t.stats).map((t) => t.name);
  if (names.length === 0 || maxDays === 0) return [];
  const { results } = await db
    .prepare(
      `SELECT m.table_name AS tableName, m.date AS date FROM archive_metadata m
       LEFT JOIN path_stats_days s ON s.table_name = m.table_name AND s.date = m.date
       WHERE m.table_name IN (SELECT value FROM json_each(?1)) AND (s.date IS NULL OR s.state = 'stale')
         AND NOT EXISTS (SELECT 1 FROM archive_runs r WHERE r.table_name = m.table_name AND r.date = m.date
                         AND r.status IN ('archiving', 'finalizing'))
         AND NOT EXISTS (SELECT 1 FROM path_stats_recounts c WHERE c.table_name = m.table_name AND c.date = m.date
                         AND c.state = 'counting' AND c.created_at >= ?2)
       ORDER BY m.date, m.table_name LIMIT ?3`,
    )
    .bind(JSON.stringify(names), new Date(now.getTime() - RECOUNT_LEASE_MS).toISOString(), maxDays)
    .all<{ tableName: string; date: string }>();
  return results;
}
