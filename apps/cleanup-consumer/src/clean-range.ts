import {
  type ArchivedTable,
  ArchiveReadError,
  archivedLineId,
  type ChunkRow,
  type CleanupRangeMessage,
  type Config,
  chunkWindows,
  dayRangeSql,
  exactRowsJson,
  logEvent,
  markDayCleanedIfDone,
  type RunRow,
  recordPoint,
  tableOf,
  tableSql,
} from "@path-stats/shared";
import { continueLater, windowQueries } from "./query-budget.ts";
import { exactMatchFor, loadRange, MAX_BATCH_BYTES, verifyRange } from "./verify-range.ts";

export type RangeOutcome = "cleaned" | "already_cleaned" | "refused" | "continued";

/** Passes over a range that rows kept entering before its message is retried instead. */
const MAX_PASSES = 3;

/** Windows in a row matched row by row after which a pass stops trying the one-statement delete first. */
const ROW_BY_ROW_AFTER = 2;

/**
 * Deletes from D1 the rows of one range that its committed archive holds.
 *
 * The archive's own bytes decide. Before anything is deleted, the range's
 * gzip member is read back from the R2 object named by the manifest (the
 * commit point) and must decompress to exactly the chunk's rows and SHA-256.
 * Then the member is read again (the same object, by etag) in windows of
 * lines. A window's rows go in one statement if SQLite writes the date's rows
 * between the window's first and last id as exactly its lines; otherwise a
 * second statement carries the window as one JSON parameter and removes only
 * the rows that, at that moment, restoring the archive would give back
 * exactly: every current column of the table, same type and value
 * (exact-rows.ts). A row that entered the range after it was
 * archived (an explicit id, a row moved into the date, a changed row) is left
 * in D1 and counted in `rows_left`; a later run archives it. Progress is
 * counted in each DELETE's own transaction, so a retry after a crash
 * continues without counting a row twice, and a replay, however late,
 * deletes nothing the archive does not hold.
 *
 * An invocation makes at most D1_QUERIES_PER_INVOCATION queries (D1's
 * limit). A range whose windows need more is done in several: when the
 * budget is spent, the consumer sends the range again with `resume` (the
 * pass, its epoch, the last id done) and the next invocation goes on from
 * there.
 */
export async function cleanRange(
  env: Env,
  config: Config,
  message: CleanupRangeMessage,
  now: Date,
): Promise<RangeOutcome> {
  const db = env.D1;
  const started = Date.now();
  const { run, chunk } = await loadRange(db, message);
  // A run of a table no longer configured is retried (then dead-lettered), never matched with another's SQL.
  const table = tableOf(config, run.table_name);
  const where = {
    runId: run.run_id,
    table: table.name,
    date: run.date,
    chunk: chunk.chunk_index,
    rowidLo: chunk.rowid_lo,
    rowidHi: chunk.rowid_hi,
  };
  if (chunk.cleanup_state === "cleaned") {
    await markCleanedIfDone(db, table, run, now);
    return "already_cleaned";
  }
  if (run.status !== "archived") {
    await refuse(env, run, chunk, now, `run is ${run.status}, not archived`);
    return "refused";
  }

  // Where the range's time goes (logged): the read-back check, and the deletes' D1 statements (the pacer's
  // waits after them included: D1_MS_PER_SECOND).
  const verifyStarted = Date.now();
  const verified = await verifyRange(env, run, chunk);
  const verifyMs = Date.now() - verifyStarted;
  if (typeof verified === "string") {
    await refuse(env, run, chunk, now, verified);
    return "refused";
  }
  const { manifest, etag } = verified;
  let queriesLeft = windowQueries(config);
  const match = await exactMatchFor(db, table, run, manifest);
  if (typeof match === "string") {
    await refuse(env, run, chunk, now, match);
    return "refused";
  }
  await db
    .prepare("UPDATE archive_chunks SET cleanup_verified_at = ?1 WHERE run_id = ?2 AND chunk_index = ?3")
    .bind(now.toISOString(), run.run_id, chunk.chunk_index)
    .run();

  // The usual case: the window's rows are exactly its lines, and go together. Otherwise a row goes only
  // if restoring the archive would give back exactly that row (exact-rows.ts).
  const deleteIfSame = db.prepare(match.deleteIfSameLines);
  const deleteArchived = db.prepare(match.deleteArchived);
  // changes() is the DELETE's row count: progress is recorded in the DELETE's own transaction.
  const countProgress = db.prepare(
    `UPDATE archive_chunks SET rows_deleted = rows_deleted + changes(), delete_statements = delete_statements + 1
     WHERE run_id = ?1 AND chunk_index = ?2`,
  );
  const epochOf = db.prepare("SELECT cleanup_epoch FROM archive_chunks WHERE run_id = ?1 AND chunk_index = ?2");
  let rowsWritten = 0;
  let deleteMs = 0;
  /** D1's own time for the deletes (meta.duration), and for the longest one. */
  let deleteD1Ms = 0;
  let deleteD1LongestMs = 0;
  let readMs = 0;
  let windowsMatchedByRow = 0;
  /** One transaction: the DELETE and its count. */
  const deleteAndCount = async (statement: D1PreparedStatement): Promise<number> => {
    queriesLeft--;
    const [deleted, counted] = await db.batch([statement, countProgress.bind(run.run_id, chunk.chunk_index)]);
    rowsWritten += (deleted?.meta.rows_written ?? 0) + (counted?.meta.rows_written ?? 0);
    const d1Ms = (deleted?.meta.duration ?? 0) + (counted?.meta.duration ?? 0);
    deleteD1Ms += d1Ms;
    deleteD1LongestMs = Math.max(deleteD1LongestMs, d1Ms);
    return deleted?.meta.changes ?? 0;
  };
  // A window holding a BLOB is not the same lines (its line is NULL: exact-rows.ts), and is matched row by row.
  const deleteTogether = (text: string, first: number, last: number): Promise<number> =>
    deleteAndCount(deleteIfSame.bind(text, run.date, first, last));

  /**
   * One pass over the archived member, from the first window past id
   * `after`: every row of the range that the archive holds leaves D1. Stops
   * before a window whose deletes the invocation's queries cannot pay for,
   * and returns the last id done; null when the pass is complete.
   */
  const deletePass = async (after: number): Promise<number | null> => {
    const passStarted = Date.now();
    let passDeleteMs = 0;
    const windows = chunkWindows(env.R2_ARCHIVE, manifest, chunk.chunk_index, {
      maxLines: config.DELETE_BATCH_ROWS,
      maxBytes: MAX_BATCH_BYTES,
      etag,
    });
    try {
      // A table whose rows SQLite cannot write exactly (REALs) has every window matched row by row.
      let byRowInARow = 0;
      let done = after;
      // The next window is read and decompressed while D1 deletes this one.
      let next = windows.next();
      for (let window = await next; !window.done; window = await next) {
        next = windows.next();
        next.catch(() => {}); // awaited on the next turn; a failure must not go unhandled meanwhile
        const { text, lines } = window.value;
        const last = archivedLineId(text.slice(text.lastIndexOf("\n") + 1), manifest.idColumn);
        if (last <= after) continue; // done by an earlier invocation of this pass
        if (queriesLeft < 2) return done;
        const statementStarted = Date.now();
        const firstEnd = text.indexOf("\n");
        const first = archivedLineId(firstEnd === -1 ? text : text.slice(0, firstEnd), manifest.idColumn);
        if (byRowInARow >= ROW_BY_ROW_AFTER || (await deleteTogether(text, first, last)) !== lines) {
          windowsMatchedByRow++;
          byRowInARow++;
          await deleteAndCount(deleteArchived.bind(exactRowsJson(text), run.date, chunk.rowid_lo, chunk.rowid_hi));
        } else {
          byRowInARow = 0;
        }
        done = last;
        passDeleteMs += Date.now() - statementStarted;
      }
      return null;
    } finally {
      // Stopped early (a failed statement): stop reading the member too.
      await windows.return(undefined).catch(() => {});
      deleteMs += passDeleteMs;
      // Waiting for the next window (read and decompressed ahead, while D1 deletes the one before).
      readMs += Date.now() - passStarted - passDeleteMs;
    }
  };

  // A row that enters the range while this runs (a restore, a writer that assigns ids) may equal an
  // archived row: it grows the range's epoch (a trigger), and the range is marked cleaned only after a
  // pass that no such row followed, so no identical row is left for a later run to archive again.
  let done: Pick<ChunkRow, "rows_deleted" | "delete_statements" | "cleanup_ms" | "cleanup_rows_written"> | null = null;
  let rowsLeft = 0;
  for (let pass = message.resume?.pass ?? 1; ; pass++) {
    const resumed = pass === message.resume?.pass ? message.resume : undefined;
    const epoch =
      resumed?.epoch ??
      (await epochOf.bind(run.run_id, chunk.chunk_index).first<{ cleanup_epoch: number }>())?.cleanup_epoch ??
      0;
    try {
      const stoppedAfter = await deletePass(resumed?.afterId ?? chunk.rowid_lo - 1);
      if (stoppedAfter !== null) {
        // This invocation's D1 queries are spent: the next one goes on from here.
        await continueLater(env, message, { pass, epoch, afterId: stoppedAfter });
        await db
          .prepare(
            "UPDATE archive_chunks SET cleanup_ms = cleanup_ms + ?1, cleanup_rows_written = cleanup_rows_written + ?2 WHERE run_id = ?3 AND chunk_index = ?4",
          )
          .bind(Date.now() - started, rowsWritten, run.run_id, chunk.chunk_index)
          .run();
        logEvent("cleanup.range_continued", { ...where, pass, afterId: stoppedAfter, windowsMatchedByRow });
        return "continued";
      }
    } catch (error) {
      // The object changed or vanished between the check and the deletes: what was deleted matched it.
      if (error instanceof ArchiveReadError) {
        await refuse(env, run, chunk, now, error.message);
        return "refused";
      }
      throw error;
    }

    // What is left of the date in the range is in no archive: a later run takes it.
    const left = await db
      .prepare(`SELECT COUNT(*) AS n FROM ${tableSql(table)} WHERE ${dayRangeSql(table, 1)}`)
      .bind(run.date, chunk.rowid_lo, chunk.rowid_hi)
      .first<{ n: number }>();
    rowsLeft = left?.n ?? 0;

    done = await db
      .prepare(
        `UPDATE archive_chunks SET cleanup_state = 'cleaned', cleaned_at = ?1, cleanup_ms = cleanup_ms + ?2, cleanup_error = NULL,
           cleanup_rows_written = cleanup_rows_written + ?3, rows_left = ?4
         WHERE run_id = ?5 AND chunk_index = ?6 AND cleanup_state <> 'cleaned' AND cleanup_epoch = ?7
         RETURNING rows_deleted, delete_statements, cleanup_ms, cleanup_rows_written`,
      )
      .bind(new Date().toISOString(), Date.now() - started, rowsWritten, rowsLeft, run.run_id, chunk.chunk_index, epoch)
      .first();
    if (done) break;
    const state = await db
      .prepare("SELECT cleanup_state, cleanup_epoch FROM archive_chunks WHERE run_id = ?1 AND chunk_index = ?2")
      .bind(run.run_id, chunk.chunk_index)
      .first<Pick<ChunkRow, "cleanup_state" | "cleanup_epoch">>();
    // Another delivery of the same range finished it, with no row entering since.
    if (state?.cleanup_state === "cleaned") break;
    logEvent("cleanup.range_changed", { ...where, pass, rowsLeft });
    if (pass === MAX_PASSES) {
      throw new Error(`rows kept entering range ${chunk.chunk_index} while it was cleaned (${pass} passes); retried`);
    }
  }
  if (done) {
    recordPoint(env, {
      kind: "range",
      outcome: "cleaned",
      date: run.date,
      runId: run.run_id,
      rowsDeleted: done.rows_deleted,
      rowsLeft,
      ms: done.cleanup_ms,
    });
    logEvent("cleanup.range_cleaned", {
      ...where,
      rows: chunk.rows,
      rowsDeleted: done.rows_deleted,
      rowsLeft,
      statements: done.delete_statements,
      rowsWritten: done.cleanup_rows_written,
      ms: done.cleanup_ms,
      windowsMatchedByRow,
      stagesMs: {
        verify: verifyMs,
        read: readMs,
        delete: deleteMs,
        deleteD1: deleteD1Ms,
        deleteD1Longest: deleteD1LongestMs,
      },
    });
  }
  if (rowsLeft > 0) logEvent("cleanup.rows_not_archived", { ...where, rowsLeft });
  // Cleaned when the last range finished, not when its message arrived: the run's cleaned_at times cleanup.
  await markCleanedIfDone(db, table, run, new Date());
  return "cleaned";
}

/** Records why a range was not deleted, on the range and on its run, and deletes nothing. */
async function refuse(env: Env, run: RunRow, chunk: ChunkRow, now: Date, reason: string): Promise<void> {
  const db = env.D1;
  await db.batch([
    db
      .prepare(
        `UPDATE archive_chunks SET cleanup_state = 'failed', cleanup_error = ?1, cleanup_failed_at = ?4
         WHERE run_id = ?2 AND chunk_index = ?3`,
      )
      .bind(reason, run.run_id, chunk.chunk_index, now.toISOString()),
    db
      .prepare("UPDATE archive_runs SET cleanup_error = ?1 WHERE run_id = ?2")
      .bind(`chunk ${chunk.chunk_index}: ${reason}`, run.run_id),
  ]);
  recordPoint(env, {
    kind: "range",
    outcome: "refused",
    date: run.date,
    runId: run.run_id,
    rowsDeleted: chunk.rows_deleted,
    rowsLeft: 0,
    ms: chunk.cleanup_ms,
  });
  logEvent("cleanup.range_refused", {
    runId: run.run_id,
    date: run.date,
    chunk: chunk.chunk_index,
    rowidLo: chunk.rowid_lo,
    rowidHi: chunk.rowid_hi,
    reason,
  });
}

/**
 * Closes what this range may have completed: the run, once all its ranges are
 * deleted (with its totals), and the date, once nothing of it is left in D1.
 */
async function markCleanedIfDone(db: D1Database, table: ArchivedTable, run: RunRow, now: Date): Promise<void> {
  const runDone = await db
    .prepare(
      `UPDATE archive_runs SET cleaned_at = ?1, cleanup_error = NULL,
         rows_deleted = (SELECT SUM(rows_deleted) FROM archive_chunks WHERE run_id = ?2)
       WHERE run_id = ?2 AND cleaned_at IS NULL
         AND NOT EXISTS (SELECT 1 FROM archive_chunks WHERE run_id = ?2 AND cleanup_state <> 'cleaned')`,
    )
    .bind(now.toISOString(), run.run_id)
    .run();
  if (runDone.meta.changes) logEvent("cleanup.run_cleaned", { runId: run.run_id, date: run.date });
  await markDayCleanedIfDone(db, table, run.date, now);
}
