import {
  type ArchiveChunkMessage,
  type ChunkRow,
  type Config,
  chunkStatsPieces,
  DayRollup,
  errorMessage,
  logEvent,
  PartsExhaustedError,
  type RunRow,
  recordPoint,
  StatsColumnsError,
  tableOf,
  trackedPairs,
  UnencodableValueError,
} from "@path-stats/shared";
import { nanoid } from "nanoid";
import { ClaimLostError, isUploadGone, PermanentChunkError, UndeliverableMessageError } from "./errors.ts";
import { finalizeRun } from "./finalize-run.ts";
import { streamChunkToParts } from "./stream-chunk.ts";

export type ChunkOutcome =
  | { kind: "archived" }
  | { kind: "already_archived" }
  | { kind: "run_closed"; status: string }
  | { kind: "claim_lost" }
  | { kind: "busy"; retryAfterSeconds: number };

/**
 * Archives one chunk: claims it, streams its rows into its parts, records the
 * result, then tries to finalize the run.
 *
 * The claim (a token with a lease) keeps two deliveries of one chunk from
 * uploading the same part numbers at once, where the part left in R2 could
 * differ from the etag recorded. The claim is renewed while the chunk is
 * worked on (a heartbeat at pages and before every part upload), so a claim
 * older than the lease belongs to a consumer that died and is taken over
 * after one lease, not after a whole invocation's lifetime.
 */
export async function archiveChunk(
  env: Env,
  config: Config,
  message: ArchiveChunkMessage,
  now: Date,
): Promise<ChunkOutcome> {
  const db = env.D1;
  const token = nanoid();
  const cutoff = new Date(now.getTime() - config.LEASE_SECONDS * 1000).toISOString();
  const run = await db.prepare("SELECT * FROM archive_runs WHERE run_id = ?1").bind(message.runId).first<RunRow>();
  if (!run) throw new UndeliverableMessageError(`run ${message.runId} does not exist`);
  if (run.date !== message.date) {
    throw new UndeliverableMessageError(`run ${message.runId} archives ${run.date}, not ${message.date}`);
  }
  // A run of a table no longer configured is retried, never archived with another table's SQL.
  const table = tableOf(config, run.table_name);
  // The message is checked against its run before the claim, so a message
  // naming the wrong date cannot hold the chunk away from the right one.
  const claimed = await db
    .prepare(
      `UPDATE archive_chunks SET claim_token = ?1, claimed_at = ?2, attempts = attempts + 1,
         takeovers = takeovers + (claim_token IS NOT NULL)
       WHERE run_id = ?3 AND chunk_index = ?4 AND state = 'pending'
         AND (claim_token IS NULL OR claimed_at < ?5)
         AND EXISTS (SELECT 1 FROM archive_runs WHERE run_id = ?3 AND status = 'archiving')
       RETURNING *`,
    )
    .bind(token, now.toISOString(), message.runId, message.chunkIndex, cutoff)
    .first<ChunkRow>();

  if (!claimed) {
    const chunk = await db
      .prepare("SELECT state, claimed_at FROM archive_chunks WHERE run_id = ?1 AND chunk_index = ?2")
      .bind(message.runId, message.chunkIndex)
      .first<Pick<ChunkRow, "state" | "claimed_at">>();
    if (!chunk) throw new UndeliverableMessageError(`run ${message.runId} has no chunk ${message.chunkIndex}`);
    if (run.status === "failed" || run.status === "archived") return { kind: "run_closed", status: run.status };
    if (chunk.state === "archived") {
      // A redelivery, or the retry of a finalization that failed: finish the run if it can be.
      await finalizeRun(env, config, run.run_id, now);
      return { kind: "already_archived" };
    }
    const heldFor = (now.getTime() - Date.parse(chunk.claimed_at ?? now.toISOString())) / 1000;
    return { kind: "busy", retryAfterSeconds: Math.max(5, Math.ceil(config.LEASE_SECONDS - heldFor)) };
  }

  const started = Date.now();
  const isLastChunk = claimed.chunk_index === run.chunk_count - 1;
  const renewClaim = db.prepare(
    `UPDATE archive_chunks SET claimed_at = ?1 WHERE run_id = ?2 AND chunk_index = ?3 AND claim_token = ?4
       AND EXISTS (SELECT 1 FROM archive_runs WHERE run_id = ?2 AND status = 'archiving')`,
  );
  let renewedAt = Date.now();
  /**
   * Renews the claim once a quarter of the lease has passed: at every call at
   * least three quarters of a lease remain, more than one page read or one
   * part upload takes. A claim that is gone (taken over, or the run failed)
   * stops the chunk before its next upload.
   */
  const heartbeat = async () => {
    if (Date.now() - renewedAt < (config.LEASE_SECONDS * 1000) / 4) return;
    const at = new Date();
    const renewed = await renewClaim.bind(at.toISOString(), run.run_id, claimed.chunk_index, token).run();
    if (renewed.meta.changes !== 1) {
      throw new ClaimLostError(
        `chunk ${claimed.chunk_index} of run ${run.run_id} is no longer claimed by this delivery`,
      );
    }
    renewedAt = at.getTime();
  };
  let result: Awaited<ReturnType<typeof streamChunkToParts>>;
  const rollup = table.stats ? new DayRollup(trackedPairs(config.STATS_MAX_PATHS)) : null;
  try {
    result = await streamChunkToParts({
      db,
      upload: env.R2_ARCHIVE.resumeMultipartUpload(run.object_key, run.upload_id),
      table,
      date: run.date,
      chunk: claimed,
      partSize: run.part_size,
      pageRows: config.PAGE_ROWS,
      isLastChunk,
      heartbeat,
      ...(table.stats && rollup ? { stats: { columns: table.stats, rollup } } : {}),
    });
  } catch (error) {
    // Release the claim so the retry can start at once, and keep the error for operators.
    await db
      .prepare(
        "UPDATE archive_chunks SET claim_token = NULL, last_error = ?1 WHERE run_id = ?2 AND chunk_index = ?3 AND claim_token = ?4",
      )
      .bind(errorMessage(error), run.run_id, claimed.chunk_index, token)
      .run();
    if (error instanceof ClaimLostError) {
      logEvent("archive.claim_lost", { runId: run.run_id, date: run.date, chunk: claimed.chunk_index });
      return { kind: "claim_lost" };
    }
    if (
      error instanceof PartsExhaustedError ||
      error instanceof UnencodableValueError ||
      error instanceof StatsColumnsError ||
      isUploadGone(error)
    ) {
      throw new PermanentChunkError(errorMessage(error));
    }
    throw error;
  }

  // The chunk's rollup goes in with its result, in one batch, while this delivery still holds the claim:
  // a chunk archived twice (a takeover) keeps the rollup of the delivery whose result it keeps.
  const stillClaimed = `EXISTS (SELECT 1 FROM archive_chunks
    WHERE run_id = ?1 AND chunk_index = ?2 AND claim_token = ?3 AND state = 'pending')`;
  const statsStatements = rollup
    ? [
        db
          .prepare(`DELETE FROM path_stats_chunks WHERE run_id = ?1 AND chunk_index = ?2 AND ${stillClaimed}`)
          .bind(run.run_id, claimed.chunk_index, token),
        ...chunkStatsPieces(rollup).map((piece, i) =>
          db
            .prepare(
              `INSERT INTO path_stats_chunks (run_id, chunk_index, piece, rollup)
               SELECT ?1, ?2, ?4, ?5 WHERE ${stillClaimed}`,
            )
            .bind(run.run_id, claimed.chunk_index, token, i, piece),
        ),
      ]
    : [];
  const results = await db.batch([
    ...statsStatements,
    db
      .prepare(
        `UPDATE archive_chunks SET state = 'archived', claim_token = NULL, last_error = NULL,
           rows = ?1, raw_bytes = ?2, gz_bytes = ?3, padding_bytes = ?4, parts = ?5, columns = ?6, sha256 = ?7,
           rows_read = ?8, peak_buffered_bytes = ?9, duration_ms = ?10, archived_at = ?11
         WHERE run_id = ?12 AND chunk_index = ?13 AND claim_token = ?14 AND state = 'pending'`,
      )
      .bind(
        result.rows,
        result.rawBytes,
        result.gzBytes,
        result.paddingBytes,
        JSON.stringify(result.parts),
        JSON.stringify(result.columns),
        result.sha256,
        result.rowsRead,
        result.peakBufferedBytes,
        Date.now() - started,
        new Date().toISOString(),
        run.run_id,
        claimed.chunk_index,
        token,
      ),
  ]);
  const recorded = results.at(-1) as D1Result;
  if (recorded.meta.changes !== 1) {
    // Our lease ran out and another delivery took the chunk over; it records its own result.
    logEvent("archive.claim_lost", { runId: run.run_id, date: run.date, chunk: claimed.chunk_index });
    return { kind: "already_archived" };
  }
  logEvent("archive.chunk_archived", {
    runId: run.run_id,
    date: run.date,
    chunk: claimed.chunk_index,
    rowidLo: claimed.rowid_lo,
    rowidHi: claimed.rowid_hi,
    rows: result.rows,
    plannedRows: claimed.planned_rows,
    parts: result.parts.map((p) => p.partNumber),
    gzBytes: result.gzBytes,
    paddingBytes: result.paddingBytes,
    rowsRead: result.rowsRead,
    textRows: result.textRows,
    peakBufferedBytes: result.peakBufferedBytes,
    stagesMs: result.stages,
    ms: Date.now() - started,
  });
  recordPoint(env, {
    kind: "chunk",
    outcome: "archived",
    date: run.date,
    runId: run.run_id,
    rows: result.rows,
    gzBytes: result.gzBytes,
    paddingBytes: result.paddingBytes,
    ms: Date.now() - started,
  });
  await finalizeRun(env, config, run.run_id, new Date());
  return { kind: "archived" };
}
