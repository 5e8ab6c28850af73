import {
  type ChunkRow,
  type CleanupRangeMessage,
  type Config,
  logEvent,
  Manifest,
  type RunRow,
  rangePages,
  toHex,
} from "@path-stats/shared";

/** A message that names no range of a committed run: it goes to the dead letters. */
export class UndeliverableMessageError extends Error {
  override name = "UndeliverableMessageError";
}

export type RangeOutcome = "cleaned" | "already_cleaned" | "refused";

/**
 * Deletes one archived range from D1, completely, or not at all.
 *
 * Before the first delete, the range is verified against what was committed:
 * the manifest in R2 (not D1 alone) must list this exact range, the object
 * must be there at its committed size, and D1's rows in the range must still
 * hash to the archived content. Then rows go in bounded DELETE statements,
 * each in one transaction with its progress count, so a retry after a crash
 * continues where it stopped and nothing is counted twice. The range is
 * marked cleaned only when a count says no row of the date is left in it.
 */
export async function cleanRange(
  env: Env,
  config: Config,
  message: CleanupRangeMessage,
  now: Date,
): Promise<RangeOutcome> {
  const db = env.D1;
  const started = Date.now();
  const run = await db.prepare("SELECT * FROM archive_runs WHERE run_id = ?1").bind(message.runId).first<RunRow>();
  const chunk = await db
    .prepare("SELECT * FROM archive_chunks WHERE run_id = ?1 AND chunk_index = ?2")
    .bind(message.runId, message.chunkIndex)
    .first<ChunkRow>();
  if (!run || !chunk || run.date !== message.date) {
    throw new UndeliverableMessageError(`no range ${message.chunkIndex} of run ${message.runId} for ${message.date}`);
  }
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
    await refuse(db, run, chunk, `run is ${run.status}, not archived`);
    return "refused";
  }

  if (!chunk.cleanup_verified_at) {
    const problem = await verifyRange(env, config, run, chunk);
    if (problem) {
      await refuse(db, run, chunk, problem);
      return "refused";
    }
    await db
      .prepare("UPDATE archive_chunks SET cleanup_verified_at = ?1 WHERE run_id = ?2 AND chunk_index = ?3")
      .bind(now.toISOString(), run.run_id, chunk.chunk_index)
      .run();
  }

  // Bounded deletes until one removes fewer rows than its bound: the range is empty.
  const deleteSome = db.prepare(
    `DELETE FROM traffic_events WHERE id IN (
       SELECT id FROM traffic_events WHERE event_date = ?1 AND id >= ?2 AND id <= ?3 ORDER BY id LIMIT ?4)`,
  );
  // changes() is the DELETE's row count: progress is recorded in the DELETE's own transaction.
  const countProgress = db.prepare(
    `UPDATE archive_chunks SET rows_deleted = rows_deleted + changes(), delete_statements = delete_statements + 1
     WHERE run_id = ?1 AND chunk_index = ?2`,
  );
  let rowsWritten = 0;
  for (;;) {
    const [deleted, counted] = await db.batch([
      deleteSome.bind(run.date, chunk.rowid_lo, chunk.rowid_hi, config.DELETE_BATCH_ROWS),
      countProgress.bind(run.run_id, chunk.chunk_index),
    ]);
    rowsWritten += (deleted?.meta.rows_written ?? 0) + (counted?.meta.rows_written ?? 0);
    if ((deleted?.meta.changes ?? 0) < config.DELETE_BATCH_ROWS) break;
  }

  const left = await db
    .prepare("SELECT COUNT(*) AS n FROM traffic_events WHERE event_date = ?1 AND id >= ?2 AND id <= ?3")
    .bind(run.date, chunk.rowid_lo, chunk.rowid_hi)
    .first<{ n: number }>();
  if ((left?.n ?? 0) !== 0) throw new Error(`${left?.n} rows of the range are still in D1 after deleting`);

  const done = await db
    .prepare(
      `UPDATE archive_chunks SET cleanup_state = 'cleaned', cleaned_at = ?1, cleanup_ms = cleanup_ms + ?2, cleanup_error = NULL,
         cleanup_rows_written = cleanup_rows_written + ?3
       WHERE run_id = ?4 AND chunk_index = ?5 AND cleanup_state <> 'cleaned'
       RETURNING rows_deleted, delete_statements, cleanup_ms, cleanup_rows_written`,
    )
    .bind(new Date().toISOString(), Date.now() - started, rowsWritten, run.run_id, chunk.chunk_index)
    .first<Pick<ChunkRow, "rows_deleted" | "delete_statements" | "cleanup_ms" | "cleanup_rows_written">>();
  if (done) {
    logEvent("cleanup.range_cleaned", {
      ...where,
      rows: chunk.rows,
      rowsDeleted: done.rows_deleted,
      statements: done.delete_statements,
      rowsWritten: done.cleanup_rows_written,
      ms: done.cleanup_ms,
    });
  }
  await markCleanedIfDone(db, run, now);
  return "cleaned";
}

/** Why the range must not be deleted, or null when it matches what was committed. */
async function verifyRange(env: Env, config: Config, run: RunRow, chunk: ChunkRow): Promise<string | null> {
  const object = await env.R2_ARCHIVE.get(run.manifest_key);
  if (!object) return `manifest ${run.manifest_key} is missing`;
  const parsed = Manifest.safeParse(await object.json().catch(() => null));
  if (!parsed.success) return `manifest ${run.manifest_key} is not a valid manifest`;
  const manifest = parsed.data;
  if (manifest.runId !== run.run_id || manifest.date !== run.date || manifest.objectKey !== run.object_key) {
    return `manifest ${run.manifest_key} describes another run`;
  }
  const listed = manifest.chunks.find((c) => c.index === chunk.chunk_index);
  if (!listed || listed.rowidLo !== chunk.rowid_lo || listed.rowidHi !== chunk.rowid_hi) {
    return `manifest does not list range ${chunk.rowid_lo}..${chunk.rowid_hi} as chunk ${chunk.chunk_index}`;
  }
  if (listed.rows !== chunk.rows || listed.sha256 !== chunk.sha256) {
    return `manifest and D1 disagree on chunk ${chunk.chunk_index} (rows or checksum)`;
  }
  const head = await env.R2_ARCHIVE.head(manifest.objectKey);
  if (head?.size !== manifest.objectBytes) {
    return `archive object ${manifest.objectKey} is ${head ? `${head.size} bytes, not ${manifest.objectBytes}` : "missing"}`;
  }

  const digest = new crypto.DigestStream("SHA-256");
  const writer = digest.getWriter();
  let rows = 0;
  for await (const page of rangePages(env.D1, {
    date: run.date,
    rowidLo: chunk.rowid_lo,
    rowidHi: chunk.rowid_hi,
    maxPageRows: config.PAGE_ROWS,
  })) {
    rows += page.rows;
    if (page.rows > 0) await writer.write(page.bytes);
  }
  await writer.close();
  const sha256 = toHex(await digest.digest);
  if (rows !== listed.rows || sha256 !== listed.sha256) {
    return `D1 rows of the range no longer match the archive (${rows} rows in D1, ${listed.rows} archived; checksum ${sha256 === listed.sha256 ? "equal" : "differs"})`;
  }
  return null;
}

/** Records why a range was not deleted, on the range and on its run, and deletes nothing. */
async function refuse(db: D1Database, run: RunRow, chunk: ChunkRow, reason: string): Promise<void> {
  await db.batch([
    db
      .prepare(
        "UPDATE archive_chunks SET cleanup_state = 'failed', cleanup_error = ?1 WHERE run_id = ?2 AND chunk_index = ?3",
      )
      .bind(reason, run.run_id, chunk.chunk_index),
    db
      .prepare("UPDATE archive_runs SET cleanup_error = ?1 WHERE run_id = ?2")
      .bind(`chunk ${chunk.chunk_index}: ${reason}`, run.run_id),
  ]);
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
 * deleted (with its totals), and the date, once every range of every
 * committed run is deleted and no row of the date is left in D1 (late rows
 * keep a day from being "cleaned" until a later run archives and removes them).
 */
async function markCleanedIfDone(db: D1Database, run: RunRow, now: Date): Promise<void> {
  const at = now.toISOString();
  const [runDone, dateDone] = await db.batch([
    db
      .prepare(
        `UPDATE archive_runs SET cleaned_at = ?1, cleanup_error = NULL,
           rows_deleted = (SELECT SUM(rows_deleted) FROM archive_chunks WHERE run_id = ?2)
         WHERE run_id = ?2 AND cleaned_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM archive_chunks WHERE run_id = ?2 AND cleanup_state <> 'cleaned')`,
      )
      .bind(at, run.run_id),
    db
      .prepare(
        `UPDATE archive_metadata SET d1_cleaned = 1, cleaned_at = ?1
         WHERE date = ?2 AND d1_cleaned = 0
           AND NOT EXISTS (SELECT 1 FROM archive_runs WHERE date = ?2 AND status IN ('archiving', 'finalizing'))
           AND NOT EXISTS (
             SELECT 1 FROM archive_chunks c JOIN archive_runs r ON r.run_id = c.run_id
             WHERE r.date = ?2 AND r.status = 'archived' AND c.cleanup_state <> 'cleaned')
           AND NOT EXISTS (SELECT 1 FROM traffic_events WHERE event_date = ?2)`,
      )
      .bind(at, run.date),
  ]);
  if (runDone?.meta.changes) logEvent("cleanup.run_cleaned", { runId: run.run_id, date: run.date });
  if (dateDone?.meta.changes) logEvent("cleanup.date_cleaned", { date: run.date });
}
