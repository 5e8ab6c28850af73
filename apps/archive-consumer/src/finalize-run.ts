import {
  batchesOf,
  type ChunkRow,
  type Config,
  errorMessage,
  failRun,
  logEvent,
  type Manifest,
  type RunRow,
  recordPoint,
  tableOf,
  type UploadedPart,
} from "@path-stats/shared";
import { nanoid } from "nanoid";
import { statsStatements } from "./commit-stats.ts";
import { isPartOverwritten, isUploadGone, PartsOverwrittenError, PermanentChunkError } from "./errors.ts";

export type FinalizeOutcome = "finalized" | "not_ready" | "in_progress" | "failed" | "rearchiving";

/**
 * Completes a run whose chunks are all archived: completes the multipart
 * upload, writes the manifest (the commit point), fills archive_metadata and
 * marks the run archived.
 *
 * Exactly one invocation finalizes: the move from 'archiving' to 'finalizing'
 * is one conditional UPDATE that only succeeds once every chunk is archived.
 * A finalizer that died is taken over after the lease; every step is safe to
 * repeat (a second complete() fails with NoSuchUpload, so the object is
 * checked instead). A run that can never complete (no rows, its upload gone
 * with no object) is failed at once by its finalizer.
 */
export async function finalizeRun(env: Env, config: Config, runId: string, now: Date): Promise<FinalizeOutcome> {
  const db = env.D1;
  const token = nanoid();
  const cutoff = new Date(now.getTime() - config.LEASE_SECONDS * 1000).toISOString();
  const claim = await db
    .prepare(
      `UPDATE archive_runs SET status = 'finalizing', finalize_token = ?1, finalize_started_at = ?2
       WHERE run_id = ?3
         AND (status = 'archiving' OR (status = 'finalizing' AND finalize_started_at < ?4))
         AND NOT EXISTS (SELECT 1 FROM archive_chunks WHERE run_id = ?3 AND state <> 'archived')`,
    )
    .bind(token, now.toISOString(), runId, cutoff)
    .run();
  if (claim.meta.changes !== 1) {
    const run = await db.prepare("SELECT status FROM archive_runs WHERE run_id = ?1").bind(runId).first<RunRow>();
    return run?.status === "finalizing" ? "in_progress" : "not_ready";
  }

  const progress = { manifestPut: false };
  try {
    await commitRun(env, config, runId, token, progress);
    return "finalized";
  } catch (error) {
    if (error instanceof PermanentChunkError) {
      await failRun(env, runId, `finalize: ${error.message}`, new Date(), token);
      return "failed";
    }
    if (error instanceof PartsOverwrittenError) {
      await archiveAgain(env, runId, token, now, error.message);
      return "rearchiving";
    }
    // Hand the run back so the retried message can finalize it again at once. Once the manifest may be
    // in R2 the run is committed: it stays 'finalizing', which nothing but its finalizer can fail, and
    // is left claimable now (finalize_started_at '' is before any cutoff) instead of after the lease.
    await db
      .prepare(
        `UPDATE archive_runs SET status = CASE WHEN ?4 THEN 'finalizing' ELSE 'archiving' END,
           finalize_started_at = CASE WHEN ?4 THEN '' ELSE finalize_started_at END, finalize_token = NULL, error = ?1
         WHERE run_id = ?2 AND finalize_token = ?3`,
      )
      .bind(`finalize: ${errorMessage(error)}`, runId, token, progress.manifestPut ? 1 : 0)
      .run();
    throw error;
  }
}

/**
 * A part R2 keeps is not the one recorded (a late writer): the chunks whose
 * claim was ever taken over (all of them, if none was) are archived again,
 * uploading their parts anew, and the run goes back to archiving. Nothing
 * was committed: complete() failed before any manifest.
 */
async function archiveAgain(env: Env, runId: string, token: string, now: Date, reason: string): Promise<void> {
  const db = env.D1;
  const [reset] = await db.batch([
    db
      .prepare(
        `UPDATE archive_chunks SET state = 'pending', parts = NULL, claim_token = NULL, enqueued_at = ?3,
           last_error = ?4
         WHERE run_id = ?1
           AND EXISTS (SELECT 1 FROM archive_runs WHERE run_id = ?1 AND finalize_token = ?2)
           AND (takeovers > 0 OR NOT EXISTS (SELECT 1 FROM archive_chunks WHERE run_id = ?1 AND takeovers > 0))
         RETURNING chunk_index`,
      )
      .bind(runId, token, now.toISOString(), `archived again: ${reason}`),
    db
      .prepare(
        "UPDATE archive_runs SET status = 'archiving', finalize_token = NULL, error = ?3 WHERE run_id = ?1 AND finalize_token = ?2",
      )
      .bind(runId, token, `finalize: ${reason}; archiving the overwritten chunks again`),
  ]);
  const run = (await db
    .prepare("SELECT date FROM archive_runs WHERE run_id = ?1")
    .bind(runId)
    .first<RunRow>()) as RunRow;
  const chunks = ((reset?.results ?? []) as { chunk_index: number }[]).map((r) => r.chunk_index);
  const messages = chunks.map((chunkIndex) => ({ version: 1 as const, runId, date: run.date, chunkIndex }));
  for (const batch of batchesOf(messages)) {
    await env.ARCHIVE_QUEUE.sendBatch(batch.map((body) => ({ body, contentType: "json" as const })));
  }
  logEvent("archive.parts_overwritten", { runId, date: run.date, chunks, reason });
}

async function commitRun(
  env: Env,
  config: Config,
  runId: string,
  token: string,
  progress: { manifestPut: boolean },
): Promise<void> {
  const db = env.D1;
  const bucket = env.R2_ARCHIVE;
  const run = (await db.prepare("SELECT * FROM archive_runs WHERE run_id = ?1").bind(runId).first<RunRow>()) as RunRow;
  const table = tableOf(config, run.table_name);
  const { results: chunks } = await db
    .prepare("SELECT * FROM archive_chunks WHERE run_id = ?1 ORDER BY chunk_index")
    .bind(runId)
    .all<ChunkRow>();

  const manifestChunks = chunks.map((c) => {
    const parts = JSON.parse(c.parts ?? "[]") as UploadedPart[];
    return {
      index: c.chunk_index,
      rowidLo: c.rowid_lo,
      rowidHi: c.rowid_hi,
      rows: c.rows ?? 0,
      rawBytes: c.raw_bytes ?? 0,
      gzBytes: c.gz_bytes ?? 0,
      paddingBytes: c.padding_bytes ?? 0,
      partNumbers: parts.map((p) => p.partNumber),
      parts,
      sha256: c.sha256 ?? "",
    };
  });
  const parts = manifestChunks.flatMap((c) => c.parts).sort((a, b) => a.partNumber - b.partNumber);
  const objectBytes = parts.reduce((sum, p) => sum + p.size, 0);
  const rows = manifestChunks.reduce((sum, c) => sum + c.rows, 0);
  const rawBytes = manifestChunks.reduce((sum, c) => sum + c.rawBytes, 0);
  const rowsRead = chunks.reduce((sum, c) => sum + (c.rows_read ?? 0), 0);
  if (parts.length === 0) {
    throw new PermanentChunkError(`run ${runId} archived no rows: its rows left D1 after planning`);
  }

  const upload = bucket.resumeMultipartUpload(run.object_key, run.upload_id);
  try {
    await upload.complete(parts.map(({ partNumber, etag }) => ({ partNumber, etag })));
  } catch (error) {
    // A finalization retried after complete() succeeded: the upload is gone, the object is there.
    const head = await bucket.head(run.object_key);
    if (head?.size !== objectBytes) {
      if (isUploadGone(error) && !head) throw new PermanentChunkError(`the upload is gone: ${errorMessage(error)}`);
      if (isPartOverwritten(error)) throw new PartsOverwrittenError(errorMessage(error));
      throw error;
    }
  }

  // Earlier committed runs whose ranges this one overlaps: for the ids it holds there, it has the newer content.
  const { results: supersedes } = await db
    .prepare(
      `SELECT o.run_id AS runId, MAX(o.rowid_lo, n.rowid_lo) AS rowidLo, MIN(o.rowid_hi, n.rowid_hi) AS rowidHi
       FROM archive_chunks n JOIN archive_chunks o ON o.rowid_lo <= n.rowid_hi AND o.rowid_hi >= n.rowid_lo
         JOIN archive_runs r ON r.run_id = o.run_id
       WHERE n.run_id = ?1 AND n.rows > 0 AND o.rows > 0 AND r.table_name = ?3 AND r.date = ?2
         AND r.status = 'archived' AND o.run_id <> ?1
       ORDER BY r.rowid, rowidLo`,
    )
    .bind(runId, run.date, run.table_name)
    .all<{ runId: string; rowidLo: number; rowidHi: number }>();
  const completedAt = new Date().toISOString();
  const manifest: Manifest = {
    version: 1,
    table: table.name,
    idColumn: table.id,
    day: { column: table.dayColumn, form: table.dayForm },
    date: run.date,
    runId,
    objectKey: run.object_key,
    format: "jsonl+gzip",
    partSize: run.part_size,
    rows,
    rawBytes,
    objectBytes,
    rowidLo: run.rowid_lo,
    rowidHi: run.rowid_hi,
    columns: JSON.parse(chunks.find((c) => c.rows)?.columns ?? "[]") as string[],
    createdAt: run.created_at,
    completedAt,
    chunks: manifestChunks,
    supersedes,
  };
  progress.manifestPut = true;
  await bucket.put(run.manifest_key, JSON.stringify(manifest, null, 2), {
    httpMetadata: { contentType: "application/json" },
  });

  const stats = table.stats
    ? await statsStatements(db, config, table, run, chunks, {
        completedAt,
        runRows: rows,
        supersedesRuns: supersedes.length,
      })
    : null;
  await db.batch([
    db
      .prepare(
        `UPDATE archive_runs SET status = 'archived', finalize_token = NULL, error = NULL, archived_rows = ?1,
           raw_bytes = ?2, object_bytes = ?3, part_count = ?4, rows_read = ?5, archived_at = ?6
         WHERE run_id = ?7 AND finalize_token = ?8`,
      )
      .bind(rows, rawBytes, objectBytes, parts.length, rowsRead, completedAt, runId, token),
    // One row per table and date over all its committed runs; a new archive means D1 holds rows again to clean.
    db
      .prepare(
        `INSERT INTO archive_metadata
           (table_name, date, r2_path, event_count, file_size, archived_at, d1_cleaned, cleaned_at)
         SELECT ?4, ?1, ?2, SUM(archived_rows), SUM(object_bytes), ?3, 0, NULL
           FROM archive_runs WHERE table_name = ?4 AND date = ?1 AND status = 'archived'
         ON CONFLICT (table_name, date) DO UPDATE SET r2_path = excluded.r2_path, event_count = excluded.event_count,
           file_size = excluded.file_size, archived_at = excluded.archived_at, d1_cleaned = 0, cleaned_at = NULL`,
      )
      .bind(run.date, run.object_key, completedAt, run.table_name),
    // The run's path statistics, added to its day in this same transaction (commit-stats.ts).
    ...(stats?.statements ?? []),
  ]);
  if (rows !== run.planned_rows) {
    logEvent("archive.rows_differ_from_plan", { runId, date: run.date, planned: run.planned_rows, archived: rows });
  }
  recordPoint(env, {
    kind: "run",
    outcome: "archived",
    date: run.date,
    runId,
    rows,
    objectBytes,
    parts: parts.length,
    at: new Date(completedAt),
  });
  logEvent("archive.finalized", {
    runId,
    table: table.name,
    date: run.date,
    rows,
    rawBytes,
    objectBytes,
    parts: parts.length,
    rowsRead,
    objectKey: run.object_key,
    ...(stats ? { stats: stats.summary } : {}),
  });
}
