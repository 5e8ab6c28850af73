import {
  type ArchiveChunkMessage,
  type Config,
  encodeRows,
  firstPartOf,
  gzipSize,
  logEvent,
  manifestKey,
  objectKey,
  parseClosedDate,
  partsPerChunkReserved,
  type RunRow,
  readConfig,
  rowsPerChunk,
} from "@path-stats/shared";
import { nanoid } from "nanoid";
import { enqueueArchiveChunks, resumeStalledRun } from "./enqueue.ts";
import { findInFlightRun } from "./runs.ts";

export type PlanOutcome =
  | { outcome: "planned"; run: RunRow; message: string }
  | { outcome: "in_flight"; run: RunRow; resentChunks: number; message: string }
  | { outcome: "up_to_date"; run: RunRow | null; message: string }
  | { outcome: "empty"; run: null; message: string };

interface PlannedChunk {
  rowidLo: number;
  rowidHi: number;
  rows: number;
}

/** Rows sampled to measure gzip bytes per row; a small share of a day's reads. */
const MAX_SAMPLE_ROWS = 3000;
const MIN_SAMPLE_ROWS = 300;
const SAMPLE_WINDOWS = 3;

/**
 * Plans an archive run of a closed date and enqueues its chunks.
 *
 * Idempotent per date: while a run is in flight, planning returns it (and
 * re-sends chunks that have stalled); once the date is archived and no row
 * arrived since, it is a no-op; a date without rows creates nothing.
 */
export async function planArchive(env: Env, dateInput: string, now = new Date()): Promise<PlanOutcome> {
  const date = parseClosedDate(dateInput, now);
  const config = readConfig(env);
  const db = env.D1;

  const inFlight = await findInFlightRun(db, date);
  if (inFlight) return resumeInFlight(env, config, inFlight, now);

  // Rows above the last archived run's range are the only ones not yet in an
  // archive: ids only grow (AUTOINCREMENT), so late rows always land there.
  const previous = await db
    .prepare("SELECT * FROM archive_runs WHERE date = ?1 AND status = 'archived' ORDER BY rowid_hi DESC LIMIT 1")
    .bind(date)
    .first<RunRow>();
  const after = previous?.rowid_hi ?? 0;
  const bounds = await db
    .prepare("SELECT MIN(id) AS lo, MAX(id) AS hi FROM traffic_events WHERE event_date = ?1 AND id > ?2")
    .bind(date, after)
    .first<{ lo: number | null; hi: number | null }>();
  if (bounds?.lo == null || bounds.hi == null) {
    return previous
      ? { outcome: "up_to_date", run: previous, message: `${date} is already archived and has no new rows` }
      : { outcome: "empty", run: null, message: `${date} has no rows to archive; nothing was created` };
  }
  const { lo, hi } = bounds;

  const sample = await sampleGzBytesPerRow(db, date, lo, hi);
  const perChunk = rowsPerChunk({
    partSize: config.PART_SIZE_BYTES,
    partsPerChunk: config.PARTS_PER_CHUNK,
    gzBytesPerRow: sample.gzBytesPerRow,
  });
  const cut = await cutRange(db, date, lo, hi, perChunk);
  const reserved = partsPerChunkReserved(cut.chunks.length);
  if (reserved < config.PARTS_PER_CHUNK + 1) {
    throw new Error(
      `${date} needs ${cut.chunks.length} chunks, more than one upload's 10 000 parts allow; raise PART_SIZE_BYTES or PARTS_PER_CHUNK`,
    );
  }

  const runId = nanoid();
  const key = objectKey(date, runId);
  const upload = await env.R2_ARCHIVE.createMultipartUpload(key, {
    httpMetadata: { contentType: "application/gzip" },
    customMetadata: { date, runId, format: "jsonl+gzip" },
  });
  const createdAt = now.toISOString();
  const plannedRows = cut.chunks.reduce((sum, c) => sum + c.rows, 0);
  try {
    await db.batch([
      db
        .prepare(
          `INSERT INTO archive_runs (run_id, date, status, object_key, manifest_key, upload_id, part_size,
             rowid_lo, rowid_hi, planned_rows, chunk_count, est_gz_bytes_per_row, plan_rows_read, created_at)
           VALUES (?1, ?2, 'archiving', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)`,
        )
        .bind(
          runId,
          date,
          key,
          manifestKey(date, runId),
          upload.uploadId,
          config.PART_SIZE_BYTES,
          lo,
          hi,
          plannedRows,
          cut.chunks.length,
          sample.gzBytesPerRow,
          sample.rowsRead + cut.rowsRead,
          createdAt,
        ),
      ...cut.chunks.map((chunk, index) =>
        db
          .prepare(
            `INSERT INTO archive_chunks (run_id, chunk_index, rowid_lo, rowid_hi, planned_rows, first_part, max_parts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)`,
          )
          .bind(runId, index, chunk.rowidLo, chunk.rowidHi, chunk.rows, firstPartOf(index, reserved), reserved),
      ),
    ]);
  } catch (error) {
    await upload.abort();
    // Two triggers raced: the unique index on in-flight runs let only one in.
    const winner = await findInFlightRun(db, date);
    if (winner)
      return {
        outcome: "in_flight",
        run: winner,
        resentChunks: 0,
        message: `${date} is being archived by run ${winner.run_id}`,
      };
    throw error;
  }

  const messages: ArchiveChunkMessage[] = cut.chunks.map((_, chunkIndex) => ({ version: 1, runId, date, chunkIndex }));
  await enqueueArchiveChunks(env, messages, now);
  const run = (await db.prepare("SELECT * FROM archive_runs WHERE run_id = ?1").bind(runId).first<RunRow>()) as RunRow;
  logEvent("archive.planned", {
    runId,
    date,
    rowidLo: lo,
    rowidHi: hi,
    rows: plannedRows,
    chunks: cut.chunks.length,
    rowsPerChunk: perChunk,
    gzBytesPerRow: Math.round(sample.gzBytesPerRow * 10) / 10,
    planRowsRead: run.plan_rows_read,
  });
  return {
    outcome: "planned",
    run,
    message: `planned run ${runId} of ${date}: ${plannedRows} rows in ${cut.chunks.length} chunks`,
  };
}

async function resumeInFlight(env: Env, config: Config, run: RunRow, now: Date): Promise<PlanOutcome> {
  const resentChunks = await resumeStalledRun(env, run, now, config.LEASE_SECONDS);
  return {
    outcome: "in_flight",
    run,
    resentChunks,
    message: `${run.date} is being archived by run ${run.run_id}${resentChunks ? `; re-sent ${resentChunks} stalled chunk(s)` : ""}`,
  };
}

/**
 * Measures gzip bytes per row on a few windows of the day, compressed as one
 * stream like a chunk is, so chunks can be sized to fill their parts.
 */
async function sampleGzBytesPerRow(
  db: D1Database,
  date: string,
  lo: number,
  hi: number,
): Promise<{ gzBytesPerRow: number; rowsRead: number }> {
  const sampleRows = Math.min(MAX_SAMPLE_ROWS, Math.max(MIN_SAMPLE_ROWS, Math.ceil((hi - lo + 1) / 100)));
  const perWindow = Math.ceil(sampleRows / SAMPLE_WINDOWS);
  const statement = db.prepare(
    "SELECT * FROM traffic_events WHERE event_date = ?1 AND id >= ?2 AND id <= ?3 ORDER BY id LIMIT ?4",
  );
  const starts = new Set<number>();
  for (let w = 0; w < SAMPLE_WINDOWS; w++) starts.add(lo + Math.floor((w * (hi - lo + 1)) / SAMPLE_WINDOWS));
  const pages = await db.batch<Record<string, unknown>>(
    [...starts].map((start) => statement.bind(date, start, hi, perWindow)),
  );
  const rows = pages.flatMap((page) => page.results);
  const rowsRead = pages.reduce((sum, page) => sum + page.meta.rows_read, 0);
  const gz = await gzipSize(encodeRows(rows));
  return { gzBytesPerRow: gz / Math.max(rows.length, 1), rowsRead };
}

/**
 * Cuts [lo, hi] into contiguous rowid ranges of exactly `perChunk` rows of
 * the date (the last may hold fewer), walking the (event_date, id) index.
 * Rows of other dates inside the range are skipped by every reader, so they
 * count for nothing here.
 */
async function cutRange(
  db: D1Database,
  date: string,
  lo: number,
  hi: number,
  perChunk: number,
): Promise<{ chunks: PlannedChunk[]; rowsRead: number }> {
  // One pass per chunk over the index: how many of the next `perChunk` rows
  // exist, and the last one's id. Fewer than `perChunk` means the range ends.
  const next = db.prepare(
    `SELECT COUNT(*) AS n, MAX(id) AS last FROM (
       SELECT id FROM traffic_events WHERE event_date = ?1 AND id > ?2 AND id <= ?3 ORDER BY id LIMIT ?4)`,
  );
  const chunks: PlannedChunk[] = [];
  let rowsRead = 0;
  let cursor = lo - 1;
  while (cursor < hi) {
    const found = await next.bind(date, cursor, hi, perChunk).all<{ n: number; last: number | null }>();
    rowsRead += found.meta.rows_read;
    const { n = 0, last = null } = found.results[0] ?? {};
    if (n === 0 || last === null) break;
    // The last chunk reaches up to hi, so the run's chunks tile [lo, hi] with no gap.
    const rowidHi = n < perChunk ? hi : last;
    chunks.push({ rowidLo: cursor + 1, rowidHi, rows: n });
    cursor = rowidHi;
  }
  return { chunks, rowsRead };
}
