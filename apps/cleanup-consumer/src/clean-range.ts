import {
  ArchiveReadError,
  type ChunkRow,
  type CleanupRangeMessage,
  type Config,
  chunkWindows,
  logEvent,
  markDayCleanedIfDone,
  type RunRow,
  recordPoint,
} from "@path-stats/shared";
import {
  ARCHIVED_ROWS,
  asJsonArray,
  deleteIfSameLinesSql,
  loadRange,
  MAX_BATCH_BYTES,
  matchArchivedRow,
  verifyRange,
} from "./verify-range.ts";

export type RangeOutcome = "cleaned" | "already_cleaned" | "refused";

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
 * the rows that, at that moment, have the same id and every column equal to
 * an archived row. A row that entered the range after it was
 * archived (an explicit id, a row moved into the date, a changed row) is left
 * in D1 and counted in `rows_left`; a later run archives it. Progress is
 * counted in each DELETE's own transaction, so a retry after a crash
 * continues without counting a row twice, and a replay, however late,
 * deletes nothing the archive does not hold.
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
  const where = {
    runId: run.run_id,
    date: run.date,
    chunk: chunk.chunk_index,
    rowidLo: chunk.rowid_lo,
    rowidHi: chunk.rowid_hi,
  };
  if (chunk.cleanup_state === "cleaned") {
    await markCleanedIfDone(db, run, now);
    return "already_cleaned";
  }
  if (run.status !== "archived") {
    await refuse(env, run, chunk, now, `run is ${run.status}, not archived`);
    return "refused";
  }

  // Where the range's time goes (logged): the read-back check, and the deletes' D1 statements.
  const verifyStarted = Date.now();
  const verified = await verifyRange(env, run, chunk);
  const verifyMs = Date.now() - verifyStarted;
  if (typeof verified === "string") {
    await refuse(env, run, chunk, now, verified);
    return "refused";
  }
  const { manifest, etag, columns } = verified;
  await db
    .prepare("UPDATE archive_chunks SET cleanup_verified_at = ?1 WHERE run_id = ?2 AND chunk_index = ?3")
    .bind(now.toISOString(), run.run_id, chunk.chunk_index)
    .run();

  // The usual case: the window's rows are exactly its lines, and go together.
  const deleteIfSame = db.prepare(deleteIfSameLinesSql(columns));
  // Otherwise a row goes only if every column equals the archived value: `IS` matches NULLs too. CROSS
  // JOIN keeps the archived rows as the outer loop, one primary-key lookup each: left to itself, SQLite
  // walks the whole range by the date index and scans the JSON for every row (quadratic).
  const matches = matchArchivedRow(columns);
  const deleteArchived = db.prepare(
    `DELETE FROM traffic_events WHERE id IN (
       SELECT t.id FROM ${ARCHIVED_ROWS} j CROSS JOIN traffic_events t ON t.id = j.value ->> '$.id'
       WHERE t.event_date = ?2 AND t.id >= ?3 AND t.id <= ?4 AND ${matches})`,
  );
  // changes() is the DELETE's row count: progress is recorded in the DELETE's own transaction.
  const countProgress = db.prepare(
    `UPDATE archive_chunks SET rows_deleted = rows_deleted + changes(), delete_statements = delete_statements + 1
     WHERE run_id = ?1 AND chunk_index = ?2`,
  );
  let rowsWritten = 0;
  let deleteMs = 0;
  let windowsMatchedByRow = 0;
  /** One transaction: the DELETE and its count. */
  const deleteAndCount = async (statement: D1PreparedStatement): Promise<number> => {
    const [deleted, counted] = await db.batch([statement, countProgress.bind(run.run_id, chunk.chunk_index)]);
    rowsWritten += (deleted?.meta.rows_written ?? 0) + (counted?.meta.rows_written ?? 0);
    return deleted?.meta.changes ?? 0;
  };
  const deletesStarted = Date.now();
  const windows = chunkWindows(env.R2_ARCHIVE, manifest, chunk.chunk_index, {
    maxLines: config.DELETE_BATCH_ROWS,
    maxBytes: MAX_BATCH_BYTES,
    etag,
  });
  try {
    // The next window is read and decompressed while D1 deletes this one.
    let next = windows.next();
    for (let window = await next; !window.done; window = await next) {
      next = windows.next();
      next.catch(() => {}); // awaited on the next turn; a failure must not go unhandled meanwhile
      const { text, lines } = window.value;
      const statementStarted = Date.now();
      const firstEnd = text.indexOf("\n");
      const first = lineId(firstEnd === -1 ? text : text.slice(0, firstEnd));
      const last = lineId(text.slice(text.lastIndexOf("\n") + 1));
      const together = await deleteAndCount(deleteIfSame.bind(text, run.date, first, last));
      if (together !== lines) {
        windowsMatchedByRow++;
        await deleteAndCount(deleteArchived.bind(asJsonArray(text), run.date, chunk.rowid_lo, chunk.rowid_hi));
      }
      deleteMs += Date.now() - statementStarted;
    }
  } catch (error) {
    // The object changed or vanished between the check and the deletes: what was deleted matched it.
    if (error instanceof ArchiveReadError) {
      await refuse(env, run, chunk, now, error.message);
      return "refused";
    }
    throw error;
  } finally {
    // Stopped early (a failed statement): stop reading the member too.
    await windows.return(undefined).catch(() => {});
  }
  // Waiting for the next window (read and decompressed ahead, while D1 deletes the one before).
  const readMs = Date.now() - deletesStarted - deleteMs;

  // What is left of the date in the range is in no archive: a later run takes it.
  const left = await db
    .prepare("SELECT COUNT(*) AS n FROM traffic_events WHERE event_date = ?1 AND id >= ?2 AND id <= ?3")
    .bind(run.date, chunk.rowid_lo, chunk.rowid_hi)
    .first<{ n: number }>();
  const rowsLeft = left?.n ?? 0;

  const done = await db
    .prepare(
      `UPDATE archive_chunks SET cleanup_state = 'cleaned', cleaned_at = ?1, cleanup_ms = cleanup_ms + ?2, cleanup_error = NULL,
         cleanup_rows_written = cleanup_rows_written + ?3, rows_left = ?4
       WHERE run_id = ?5 AND chunk_index = ?6 AND cleanup_state <> 'cleaned'
       RETURNING rows_deleted, delete_statements, cleanup_ms, cleanup_rows_written`,
    )
    .bind(new Date().toISOString(), Date.now() - started, rowsWritten, rowsLeft, run.run_id, chunk.chunk_index)
    .first<Pick<ChunkRow, "rows_deleted" | "delete_statements" | "cleanup_ms" | "cleanup_rows_written">>();
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
      stagesMs: { verify: verifyMs, read: readMs, delete: deleteMs },
    });
  }
  if (rowsLeft > 0) logEvent("cleanup.rows_not_archived", { ...where, rowsLeft });
  // Cleaned when the last range finished, not when its message arrived: the run's cleaned_at times cleanup.
  await markCleanedIfDone(db, run, new Date());
  return "cleaned";
}

/** The id of an archived line (checked by the read-back before any delete). */
function lineId(line: string): number {
  let id: unknown;
  try {
    id = (JSON.parse(line) as { id?: unknown } | null)?.id;
  } catch {}
  if (typeof id !== "number") throw new ArchiveReadError(`an archived line has no numeric id: ${line.slice(0, 80)}`);
  return id;
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
async function markCleanedIfDone(db: D1Database, run: RunRow, now: Date): Promise<void> {
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
  await markDayCleanedIfDone(db, run.date, now);
}
