import {
  type ArchiveChunkMessage,
  type ArchivedTable,
  CHUNK_FILL,
  type Config,
  cutSpan,
  dayRangeSql,
  estimatePieces,
  firstPartOf,
  gzipSize,
  idSql,
  jsonLine,
  logEvent,
  manifestKey,
  objectKey,
  type Piece,
  PROBE_ROWS,
  parseClosedDate,
  partsPerChunkFor,
  partsPerChunkReserved,
  probeStarts,
  type RunRow,
  readConfig,
  rowsPerChunk,
  rowsWithinQueries,
  TEXT_PAGE_BYTES,
  tableOf,
  tableSql,
} from "@path-stats/shared";
import { nanoid } from "nanoid";
import { enqueueArchiveChunks, resumeStalledRun } from "./enqueue.ts";
import { findInFlightRun } from "./runs.ts";

export type PlanOutcome =
  | { outcome: "planned"; run: RunRow; message: string }
  | { outcome: "in_flight"; run: RunRow; resentChunks: number; message: string }
  | { outcome: "up_to_date"; run: RunRow | null; message: string }
  | { outcome: "empty"; run: null; message: string };

/**
 * A range `c` of run `r` holds rows that an archive has, or is bringing back,
 * so no new run may cover it: its run is not failed, and its cleanup has not
 * finished or it is being restored.
 */
const HOLDS_ARCHIVED_ROWS = "r.status <> 'failed' AND (c.cleanup_state <> 'cleaned' OR c.restore_state = 'pending')";

/** A day that cannot be archived exactly as it is: planning refuses it, creating nothing. */
export class UnarchivableDayError extends Error {
  override name = "UnarchivableDayError";
}

/** Rows sampled to measure gzip bytes per row; a small share of a day's reads. */
const MAX_SAMPLE_ROWS = 3000;
const MIN_SAMPLE_ROWS = 300;
const SAMPLE_WINDOWS = 3;

/**
 * Plans an archive run of a closed date of a table (`tableName`, which may be
 * left out when one table is archived) and enqueues its chunks.
 *
 * Idempotent per table and date: while a run is in flight, planning returns
 * it (and re-sends chunks that have stalled); once the date is archived and
 * no row arrived since, it is a no-op; a date without rows creates nothing.
 */
export async function planArchive(
  env: Env,
  dateInput: string,
  now = new Date(),
  tableName?: string | null,
): Promise<PlanOutcome> {
  const date = parseClosedDate(dateInput, now);
  const config = readConfig(env);
  return planDay(env, config, tableOf(config, tableName), date, now, false);
}

async function planDay(
  env: Env,
  config: Config,
  table: ArchivedTable,
  date: string,
  now: Date,
  replanned: boolean,
): Promise<PlanOutcome> {
  const db = env.D1;
  const inFlight = await findInFlightRun(db, table, date);
  if (inFlight) return resumeInFlight(env, config, inFlight, now);

  const latest = await db
    .prepare(
      "SELECT * FROM archive_runs WHERE table_name = ?2 AND date = ?1 AND status = 'archived' ORDER BY rowid DESC LIMIT 1",
    )
    .bind(date, table.name)
    .first<RunRow>();
  const intervals = await unarchivedIntervals(db, table, date);
  if (intervals.length === 0) {
    await clearRefusal(db, table, date);
    return latest
      ? { outcome: "up_to_date", run: latest, message: `${table.name} ${date} is already archived and has no new rows` }
      : { outcome: "empty", run: null, message: `${table.name} ${date} has no rows to archive; nothing was created` };
  }
  const lo = intervals[0]?.lo as number;
  const hi = intervals.at(-1)?.hi as number;
  if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi)) {
    const reason = `${date} has a row with an id beyond ±2^53 (about ${Number.isSafeInteger(lo) ? hi : lo}), which D1 cannot return exactly; nothing was planned`;
    await db
      .prepare(
        `INSERT INTO archive_refusals (table_name, date, reason, refused_at) VALUES (?4, ?1, ?2, ?3)
         ON CONFLICT (table_name, date) DO UPDATE SET reason = excluded.reason`,
      )
      .bind(date, reason, now.toISOString(), table.name)
      .run();
    throw new UnarchivableDayError(reason);
  }
  await clearRefusal(db, table, date);

  const sample = await sampleGzBytesPerRow(db, table, date, lo, hi);
  const probed = await Promise.all(
    intervals.map((interval) => probeInterval(db, table, date, interval.lo, interval.hi)),
  );
  const estimatedRows = probed.reduce((sum, p) => sum + p.pieces.reduce((rows, piece) => rows + piece.rows, 0), 0);
  // A chunk is one consumer invocation: its pages must fit D1's queries per invocation. Its parts are
  // as many as those rows fill, so that a chunk bounded by queries still fills whole parts.
  const queryRows = rowsWithinQueries({
    queriesPerInvocation: config.D1_QUERIES_PER_INVOCATION,
    rawBytesPerRow: sample.rawBytesPerRow,
    pageRows: config.PAGE_ROWS,
    pageBytes: TEXT_PAGE_BYTES,
  });
  const partsPerChunk = Math.min(
    partsPerChunkFor({
      estimatedRows,
      gzBytesPerRow: sample.gzBytesPerRow,
      partSize: config.PART_SIZE_BYTES,
      maxPartsPerChunk: config.PARTS_PER_CHUNK,
      parallelChunks: config.PARALLEL_CHUNKS,
    }),
    Math.max(1, Math.floor((queryRows * sample.gzBytesPerRow) / (config.PART_SIZE_BYTES * CHUNK_FILL))),
  );
  const perChunk = Math.min(
    config.MAX_CHUNK_ROWS,
    queryRows,
    rowsPerChunk({ partSize: config.PART_SIZE_BYTES, partsPerChunk, gzBytesPerRow: sample.gzBytesPerRow }),
  );
  const chunks = intervals.flatMap((interval, i) =>
    cutSpan(interval.lo, interval.hi, perChunk, probed[i]?.pieces ?? []),
  );
  const cutRowsRead = probed.reduce((sum, p) => sum + p.rowsRead, 0);
  const reserved = partsPerChunkReserved(chunks.length);
  if (reserved < config.PARTS_PER_CHUNK + 1) {
    throw new Error(
      `${date} needs ${chunks.length} chunks, more than one upload's 10 000 parts allow; raise PART_SIZE_BYTES or PARTS_PER_CHUNK`,
    );
  }

  const runId = nanoid();
  const key = objectKey(table, date, runId);
  const upload = await env.R2_ARCHIVE.createMultipartUpload(key, {
    httpMetadata: { contentType: "application/gzip" },
    customMetadata: { table: table.name, date, runId, format: "jsonl+gzip" },
  });
  const createdAt = now.toISOString();
  const plannedRows = chunks.reduce((sum, c) => sum + c.rows, 0);
  const chunkJson = JSON.stringify(chunks.map((c, i) => [c.rowidLo, c.rowidHi, c.rows, firstPartOf(i, reserved)]));
  let inserted: boolean;
  try {
    const [runInsert] = await db.batch([
      // Inserted only if no run of the date that is not failed still holds
      // archived rows in any of the new chunks' ranges, or is having them
      // restored: a plan that stalled while another run archived the same
      // rows, or while a restore was planned, is refused here, in the same
      // statement, not by an earlier read.
      db
        .prepare(
          `INSERT INTO archive_runs (run_id, table_name, date, status, object_key, manifest_key, upload_id,
             part_size, rowid_lo, rowid_hi, planned_rows, chunk_count, est_gz_bytes_per_row, plan_rows_read, created_at)
           SELECT ?1, ?15, ?2, 'archiving', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13
           WHERE NOT EXISTS (
             SELECT 1 FROM json_each(?14) p, archive_chunks c JOIN archive_runs r ON r.run_id = c.run_id
             WHERE r.table_name = ?15 AND r.date = ?2 AND ${HOLDS_ARCHIVED_ROWS}
               AND c.rowid_lo <= p.value ->> '$[1]' AND c.rowid_hi >= p.value ->> '$[0]')`,
        )
        .bind(
          runId,
          date,
          key,
          manifestKey(table, date, runId),
          upload.uploadId,
          config.PART_SIZE_BYTES,
          lo,
          hi,
          plannedRows,
          chunks.length,
          sample.gzBytesPerRow,
          sample.rowsRead + cutRowsRead,
          createdAt,
          chunkJson,
          table.name,
        ),
      db
        .prepare(
          `INSERT INTO archive_chunks (run_id, chunk_index, rowid_lo, rowid_hi, planned_rows, first_part, max_parts)
           SELECT ?1, p.key, p.value ->> '$[0]', p.value ->> '$[1]', p.value ->> '$[2]', p.value ->> '$[3]', ?2
           FROM json_each(?3) p WHERE EXISTS (SELECT 1 FROM archive_runs WHERE run_id = ?1)`,
        )
        .bind(runId, reserved, chunkJson),
    ]);
    inserted = (runInsert?.meta.changes ?? 0) === 1;
  } catch (error) {
    // D1 can report an error for a batch that committed: the run row decides.
    const committed = await db.prepare("SELECT 1 FROM archive_runs WHERE run_id = ?1").bind(runId).first();
    if (!committed) {
      await upload.abort();
      // Two triggers raced: the unique index on in-flight runs let only one in.
      const winner = await findInFlightRun(db, table, date);
      if (winner)
        return {
          outcome: "in_flight",
          run: winner,
          resentChunks: 0,
          message: `${table.name} ${date} is being archived by run ${winner.run_id}`,
        };
      throw error;
    }
    inserted = true;
  }
  if (!inserted) {
    // Another run archived these rows after this plan read the ranges: plan again from what is there now.
    await upload.abort();
    logEvent("archive.plan_overlapped", { table: table.name, date, runId });
    if (replanned) throw new Error(`${date} of ${table.name} changed twice while it was being planned; try again`);
    return planDay(env, config, table, date, now, true);
  }

  const messages: ArchiveChunkMessage[] = chunks.map((_, chunkIndex) => ({ version: 1, runId, date, chunkIndex }));
  await enqueueArchiveChunks(env, messages, now);
  const run = (await db.prepare("SELECT * FROM archive_runs WHERE run_id = ?1").bind(runId).first<RunRow>()) as RunRow;
  logEvent("archive.planned", {
    runId,
    table: table.name,
    date,
    rowidLo: lo,
    rowidHi: hi,
    rows: plannedRows,
    chunks: chunks.length,
    rowsPerChunk: perChunk,
    gzBytesPerRow: Math.round(sample.gzBytesPerRow * 10) / 10,
    planRowsRead: run.plan_rows_read,
  });
  return {
    outcome: "planned",
    run,
    message: `planned run ${runId} of ${table.name} ${date}: ${plannedRows} rows in ${chunks.length} chunks`,
  };
}

/** The day plans again: an earlier refusal no longer holds. */
async function clearRefusal(db: D1Database, table: ArchivedTable, date: string): Promise<void> {
  await db.prepare("DELETE FROM archive_refusals WHERE table_name = ?2 AND date = ?1").bind(date, table.name).run();
}

async function resumeInFlight(env: Env, config: Config, run: RunRow, now: Date): Promise<PlanOutcome> {
  const resentChunks = await resumeStalledRun(env, run, now, config.LEASE_SECONDS);
  return {
    outcome: "in_flight",
    run,
    resentChunks,
    message: `${run.table_name} ${run.date} is being archived by run ${run.run_id}${resentChunks ? `; re-sent ${resentChunks} stalled chunk(s)` : ""}`,
  };
}

/**
 * The id intervals that hold the date's rows that are in no archive, each
 * narrowed to its first and last such row.
 *
 * A row of the date is archived and still in D1 only inside a range of a run
 * that is not failed and whose cleanup has not finished, or that is being
 * restored (its archived rows are coming back); those ranges are few (one
 * per chunk) and are skipped. Everything else of the date is not in
 * any archive: rows above the last run (new or late rows), below the first
 * (explicit ids), in a failed run's ranges, and what cleanup left in cleaned
 * ranges (rows that entered them after they were archived). Finding them
 * costs two index seeks per free interval, never a scan of archived rows.
 */
async function unarchivedIntervals(
  db: D1Database,
  table: ArchivedTable,
  date: string,
): Promise<{ lo: number; hi: number }[]> {
  const { results: held } = await db
    .prepare(
      `SELECT c.rowid_lo AS lo, c.rowid_hi AS hi FROM archive_chunks c JOIN archive_runs r ON r.run_id = c.run_id
       WHERE r.table_name = ?2 AND r.date = ?1 AND ${HOLDS_ARCHIVED_ROWS}
       ORDER BY c.rowid_lo`,
    )
    .bind(date, table.name)
    .all<{ lo: number; hi: number }>();
  const free: { lo: number; hi: number }[] = [];
  // Beyond any 64-bit id: an id past ±2^53 (which D1 cannot return exactly) is found too, and fails its chunk loudly.
  let from = -1e19;
  for (const range of held) {
    if (range.lo > from) free.push({ lo: from, hi: range.lo - 1 });
    from = Math.max(from, range.hi + 1);
  }
  free.push({ lo: from, hi: 1e19 });
  const id = idSql(table);
  const bounds = db.prepare(
    `SELECT MIN(${id}) AS lo, MAX(${id}) AS hi FROM ${tableSql(table)} WHERE ${dayRangeSql(table, 1)}`,
  );
  const found = await db.batch<{ lo: number | null; hi: number | null }>(
    free.map((f) => bounds.bind(date, f.lo, f.hi)),
  );
  return found.flatMap((r) => {
    const row = r.results[0];
    return row?.lo != null && row.hi != null ? [{ lo: row.lo, hi: row.hi }] : [];
  });
}

/**
 * Measures gzip bytes per row on a few windows of the day, compressed as one
 * stream like a chunk is, so chunks can be sized to fill their parts.
 */
async function sampleGzBytesPerRow(
  db: D1Database,
  table: ArchivedTable,
  date: string,
  lo: number,
  hi: number,
): Promise<{ gzBytesPerRow: number; rawBytesPerRow: number; rowsRead: number }> {
  const sampleRows = Math.min(MAX_SAMPLE_ROWS, Math.max(MIN_SAMPLE_ROWS, Math.ceil((hi - lo + 1) / 100)));
  const perWindow = Math.ceil(sampleRows / SAMPLE_WINDOWS);
  const statement = db.prepare(
    `SELECT * FROM ${tableSql(table)} WHERE ${dayRangeSql(table, 1)} ORDER BY ${idSql(table)} LIMIT ?4`,
  );
  const starts = new Set<number>();
  for (let w = 0; w < SAMPLE_WINDOWS; w++) starts.add(lo + Math.floor((w * (hi - lo + 1)) / SAMPLE_WINDOWS));
  const pages = await db.batch<Record<string, unknown>>(
    [...starts].map((start) => statement.bind(date, start, hi, perWindow)),
  );
  const rows = pages.flatMap((page) => page.results);
  const rowsRead = pages.reduce((sum, page) => sum + page.meta.rows_read, 0);
  // Sizing only: a row JSON cannot carry fails its chunk later, with its id, not the plan.
  const raw = new TextEncoder().encode(rows.map(jsonLine).join(""));
  const gz = await gzipSize(raw);
  const n = Math.max(rows.length, 1);
  return { gzBytesPerRow: gz / n, rawBytesPerRow: raw.byteLength / n, rowsRead };
}

/**
 * What probes of [lo, hi] say about where the date's rows lie (see
 * `estimatePieces`), read from a couple of thousand index entries instead of
 * a walk over all of them.
 */
async function probeInterval(
  db: D1Database,
  table: ArchivedTable,
  date: string,
  lo: number,
  hi: number,
): Promise<{ pieces: Piece[]; rowsRead: number }> {
  const id = idSql(table);
  const probe = db.prepare(
    `SELECT COUNT(*) AS n, MIN(k) AS first, MAX(k) AS last FROM (
       SELECT ${id} AS k FROM ${tableSql(table)} WHERE ${dayRangeSql(table, 1)} ORDER BY ${id} LIMIT ?4)`,
  );
  const starts = probeStarts(lo, hi);
  const answers = await db.batch<{ n: number; first: number | null; last: number | null }>(
    starts.map((start) => probe.bind(date, start, hi, PROBE_ROWS)),
  );
  const probes = starts.map((start, i) => {
    const { n = 0, first = null, last = null } = answers[i]?.results[0] ?? {};
    return { start, rows: n, first, last };
  });
  return {
    pieces: estimatePieces(lo, hi, probes),
    rowsRead: answers.reduce((sum, r) => sum + r.meta.rows_read, 0),
  };
}
