import {
  ARCHIVED_ROWS,
  ArchiveReadError,
  archivedLineId,
  type ChunkRow,
  type CleanupRangeMessage,
  type Config,
  chunkWindows,
  exactRowsJson,
  idSql,
  logEvent,
  tableOf,
  tableSql,
} from "@path-stats/shared";
import { newerContent } from "./newer-content.ts";
import { continueLater, windowQueries } from "./query-budget.ts";
import { exactMatchFor, loadRange, MAX_BATCH_BYTES, verifyRange } from "./verify-range.ts";

export type RestoreOutcome = "restored" | "refused" | "continued";

/**
 * The runs of table ?tableName in flight that read rows of date ?date with
 * id in [?lo, ?hi]: the rows a restore inserts there would be archived a
 * second time. Planning refuses ranges being restored (plan-archive.ts);
 * this closes the other order, in the INSERT itself.
 */
function runsArchivingRange(tableName: string, date: string, lo: string, hi: string): string {
  return `SELECT r.run_id FROM archive_chunks c JOIN archive_runs r ON r.run_id = c.run_id
    WHERE r.table_name = ${tableName} AND r.date = ${date} AND r.status IN ('archiving', 'finalizing')
      AND c.rowid_lo <= ${hi} AND c.rowid_hi >= ${lo}`;
}

/** How many rows that differ from the archive a refusal names. */
const CONFLICTS_NAMED = 10;

/**
 * Brings one range of a committed archive back into D1, with the original
 * ids and values, in bounded batches.
 *
 * The archive is checked first exactly as cleanup checks it (manifest, then
 * the chunk's own bytes: rows and SHA-256). Each batch is one transaction: an
 * INSERT of the archived rows whose id is not in D1, the progress count, and
 * a look for archived ids that D1 holds with other content. A row already
 * present with the same content is skipped, so a redelivered or crashed
 * restore simply continues; a row present with different content is never
 * overwritten: the range stops with an error naming it. A row that a later
 * run archived again (changed, or backfilled after ADD COLUMN) is restored
 * from that later archive only, never from this one. Rows that enter a
 * cleaned range make it not cleaned (a trigger), so no run archives them a
 * second time and a later cleanup deletes them by exact match. A range whose
 * windows need more D1 queries than one invocation may make goes on in a
 * message of its own (`resume.afterId`: the last id done).
 */
export async function restoreRange(
  env: Env,
  config: Config,
  message: CleanupRangeMessage,
  now: Date,
): Promise<RestoreOutcome> {
  const db = env.D1;
  const { run, chunk } = await loadRange(db, message);
  // A run of a table no longer configured is retried (then dead-lettered), never restored with another's SQL.
  const archived = tableOf(config, run.table_name);
  const where = { runId: run.run_id, table: archived.name, date: run.date, chunk: chunk.chunk_index };
  if (chunk.restore_state === "restored") return "restored";
  if (run.status !== "archived") {
    await refuse(db, chunk, `run is ${run.status}, not archived`);
    return "refused";
  }
  const verified = await verifyRange(env, run, chunk);
  if (typeof verified === "string") {
    await refuse(db, chunk, verified);
    return "refused";
  }
  const { manifest, etag } = verified;
  const match = await exactMatchFor(db, archived, run, manifest);
  if (typeof match === "string") {
    await refuse(db, chunk, match);
    return "refused";
  }

  // Every value exactly as archived (a REAL rebuilt from its bits, not parsed from its digits).
  const table = tableSql(archived);
  const tId = idSql(archived, "t");
  const { archivedId } = match;
  const insertMissing = db.prepare(
    `INSERT INTO ${table} (${match.insertColumns})
     SELECT ${match.insertValues} FROM ${ARCHIVED_ROWS} j
     WHERE NOT EXISTS (SELECT 1 FROM ${table} t WHERE ${tId} = ${archivedId})
       AND NOT EXISTS (${runsArchivingRange("?5", "?2", "?3", "?4")})`,
  );
  const archivingThisRange = db.prepare(`${runsArchivingRange("?4", "?1", "?2", "?3")} LIMIT 1`);
  // changes() is the INSERT's own row count (trigger writes are not counted).
  const countProgress = db.prepare(
    "UPDATE archive_chunks SET rows_restored = rows_restored + changes() WHERE run_id = ?1 AND chunk_index = ?2",
  );
  const differing = db.prepare(
    `SELECT ${tId} AS id FROM ${ARCHIVED_ROWS} j CROSS JOIN ${table} t ON ${tId} = ${archivedId}
     WHERE NOT (${match.rowIsArchived}) LIMIT ${CONFLICTS_NAMED}`,
  );
  let queriesLeft = windowQueries(config);
  const after = message.resume?.afterId ?? chunk.rowid_lo - 1;
  let doneUpTo = after;
  let newer: Awaited<ReturnType<typeof newerContent>> | null = null;
  try {
    newer = await newerContent(env, config, archived, run, chunk);
    if (typeof newer === "string") {
      await refuse(db, chunk, newer);
      return "refused";
    }
    for await (const window of chunkWindows(env.R2_ARCHIVE, manifest, chunk.chunk_index, {
      maxLines: config.DELETE_BATCH_ROWS,
      maxBytes: MAX_BATCH_BYTES,
      etag,
    })) {
      const text = await newer.withoutSuperseded(window.text);
      const last = archivedLineId(window.text.slice(window.text.lastIndexOf("\n") + 1), manifest.idColumn);
      if (last <= after) continue; // restored by an earlier invocation of this range
      if (queriesLeft < 1) {
        // This invocation's D1 queries are spent: the next one goes on from here.
        await continueLater(env, message, { pass: 1, epoch: 0, afterId: doneUpTo });
        logEvent("restore.range_continued", { ...where, afterId: doneUpTo });
        return "continued";
      }
      doneUpTo = last;
      if (text === "") continue;
      queriesLeft--;
      const json = exactRowsJson(text);
      const [, , conflicts, archiving] = await db.batch([
        insertMissing.bind(json, run.date, chunk.rowid_lo, chunk.rowid_hi, run.table_name),
        countProgress.bind(run.run_id, chunk.chunk_index),
        differing.bind(json),
        archivingThisRange.bind(run.date, chunk.rowid_lo, chunk.rowid_hi, run.table_name),
      ]);
      const archiver = (archiving?.results[0] as { run_id: string } | undefined)?.run_id;
      if (archiver) {
        await refuse(
          db,
          chunk,
          `run ${archiver} of ${run.date} is archiving rows of this range: restored rows would be archived a second time; restore again once it has ended`,
        );
        return "refused";
      }
      const ids = (conflicts?.results ?? []).map((r) => (r as { id: number }).id);
      if (ids.length > 0) {
        await refuse(
          db,
          chunk,
          `D1 holds row id(s) ${ids.join(", ")} with content other than the archive's; nothing was overwritten and the rest of the range was not restored`,
        );
        return "refused";
      }
    }
  } catch (error) {
    if (error instanceof ArchiveReadError) {
      await refuse(db, chunk, error.message);
      return "refused";
    }
    throw error;
  } finally {
    if (newer && typeof newer !== "string") await newer.close();
  }

  // The range's rows are in D1 again: it is not cleaned, and its run and day are not either.
  await db.batch([
    db
      .prepare(
        `UPDATE archive_chunks SET restore_state = 'restored', restored_at = ?1, restore_error = NULL,
           cleanup_state = 'none', cleaned_at = NULL, cleanup_verified_at = NULL, rows_deleted = 0, rows_left = NULL
         WHERE run_id = ?2 AND chunk_index = ?3`,
      )
      .bind(now.toISOString(), run.run_id, chunk.chunk_index),
    db.prepare("UPDATE archive_runs SET cleaned_at = NULL, rows_deleted = NULL WHERE run_id = ?1").bind(run.run_id),
    db
      .prepare("UPDATE archive_metadata SET d1_cleaned = 0, cleaned_at = NULL WHERE table_name = ?2 AND date = ?1")
      .bind(run.date, run.table_name),
  ]);
  const done = await db
    .prepare("SELECT rows_restored FROM archive_chunks WHERE run_id = ?1 AND chunk_index = ?2")
    .bind(run.run_id, chunk.chunk_index)
    .first<{ rows_restored: number }>();
  logEvent("restore.range_restored", { ...where, rows: chunk.rows, rowsInserted: done?.rows_restored ?? 0 });
  return "restored";
}

/** Records why a range was not (fully) restored; nothing in D1 is overwritten or deleted. */
async function refuse(db: D1Database, chunk: ChunkRow, reason: string): Promise<void> {
  await db
    .prepare(
      `UPDATE archive_chunks SET restore_state = 'failed', restore_error = ?1, restore_failed_at = ?4
       WHERE run_id = ?2 AND chunk_index = ?3`,
    )
    .bind(reason, chunk.run_id, chunk.chunk_index, new Date().toISOString())
    .run();
  logEvent("restore.range_refused", { runId: chunk.run_id, chunk: chunk.chunk_index, reason });
}
