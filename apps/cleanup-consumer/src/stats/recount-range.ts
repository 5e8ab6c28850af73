import {
  type CleanupRangeMessage,
  type Config,
  chunkStatsPieces,
  chunkWindows,
  DayRollup,
  dayRowsStatements,
  logEvent,
  rollupOfChunkPieces,
  tableOf,
  trackedPairs,
  valuesOfRow,
} from "@path-stats/shared";
import { newerContent } from "../newer-content.ts";
import { loadRange, MAX_BATCH_BYTES, UndeliverableMessageError, verifyRange } from "../verify-range.ts";

export type RecountOutcome = "counted" | "finished" | "abandoned" | "closed";

interface RecountRow {
  recount_id: string;
  table_name: string;
  date: string;
  day_version: number | null;
  ranges: number;
  runs: number;
  state: "counting" | "done" | "abandoned";
}

/**
 * Counts one archived range's rows into its recount (planRecount, in the
 * producer), read back from R2 and checked against its manifest first; a
 * row that a later committed run holds is counted there, with its newer
 * content. The range's rollup is kept under its place in the recount; the
 * range counted last merges them all and writes the day's statistics, if
 * the day did not change since the recount was planned (else it is
 * abandoned, and the cron plans another). Memory: one window of lines and
 * the rollups, whatever the range's size.
 */
export async function recountRange(
  env: Env,
  config: Config,
  message: CleanupRangeMessage,
  now: Date,
): Promise<RecountOutcome> {
  const db = env.D1;
  if (!message.recount) throw new UndeliverableMessageError("a recount message names no recount");
  const { id, seq } = message.recount;
  const recount = await db
    .prepare("SELECT * FROM path_stats_recounts WHERE recount_id = ?1")
    .bind(id)
    .first<RecountRow>();
  if (!recount || recount.date !== message.date || seq >= recount.ranges) {
    throw new UndeliverableMessageError(`no range ${seq} of recount ${id} for ${message.date}`);
  }
  if (recount.state !== "counting") return "closed";
  const { run, chunk } = await loadRange(db, message);
  const table = tableOf(config, run.table_name);
  if (!table.stats || table.name !== recount.table_name) {
    throw new UndeliverableMessageError(`recount ${id} counts ${recount.table_name}, which keeps no statistics here`);
  }
  const stats = table.stats;
  const verified = await verifyRange(env, run, chunk);
  // A range that fails its check is the scrub's to report; counting it would say what the archive does not hold.
  if (typeof verified === "string") throw new Error(`range ${chunk.chunk_index} of run ${run.run_id}: ${verified}`);
  const newer = await newerContent(env, config, table, run, chunk);
  if (typeof newer === "string") throw new Error(newer);

  const tracked = trackedPairs(config.STATS_MAX_PATHS);
  const rollup = new DayRollup(tracked);
  let lines = 0;
  try {
    for await (const window of chunkWindows(env.R2_ARCHIVE, verified.manifest, chunk.chunk_index, {
      maxLines: config.DELETE_BATCH_ROWS,
      maxBytes: MAX_BATCH_BYTES,
      etag: verified.etag,
    })) {
      lines += window.lines;
      const text = await newer.withoutSuperseded(window.text);
      if (text === "") continue;
      for (const line of text.split("\n")) rollup.add(valuesOfRow(stats, JSON.parse(line) as Record<string, unknown>));
    }
  } finally {
    await newer.close();
  }
  if (lines !== chunk.rows)
    throw new Error(`range ${chunk.chunk_index} of run ${run.run_id}: read ${lines} lines, not ${chunk.rows}`);

  // This range's rollup, in place of a duplicate delivery's, while the recount counts.
  const counting = "EXISTS (SELECT 1 FROM path_stats_recounts WHERE recount_id = ?1 AND state = 'counting')";
  await db.batch([
    db.prepare(`DELETE FROM path_stats_chunks WHERE run_id = ?1 AND chunk_index = ?2 AND ${counting}`).bind(id, seq),
    ...chunkStatsPieces(rollup).map((piece, i) =>
      db
        .prepare(
          `INSERT INTO path_stats_chunks (run_id, chunk_index, piece, rollup) SELECT ?1, ?2, ?3, ?4 WHERE ${counting}`,
        )
        .bind(id, seq, i, piece),
    ),
  ]);
  logEvent("stats.range_recounted", {
    recountId: id,
    seq,
    runId: run.run_id,
    chunk: chunk.chunk_index,
    requests: rollup.requests,
  });
  return finishRecount(db, config, recount, now);
}

/** Writes the day's statistics once every range of the recount is counted; any delivery may, once. */
async function finishRecount(db: D1Database, config: Config, recount: RecountRow, now: Date): Promise<RecountOutcome> {
  const counted = await db
    .prepare("SELECT count(DISTINCT chunk_index) AS n FROM path_stats_chunks WHERE run_id = ?1")
    .bind(recount.recount_id)
    .first<{ n: number }>();
  if ((counted?.n ?? 0) < recount.ranges) return "counted";

  const tracked = trackedPairs(config.STATS_MAX_PATHS);
  const day = new DayRollup(tracked);
  const piecesOf = db.prepare(
    "SELECT rollup FROM path_stats_chunks WHERE run_id = ?1 AND chunk_index = ?2 ORDER BY piece",
  );
  for (let seq = 0; seq < recount.ranges; seq++) {
    const { results } = await piecesOf.bind(recount.recount_id, seq).all<{ rollup: string }>();
    day.merge(
      rollupOfChunkPieces(
        tracked,
        results.map((r) => r.rollup),
      ),
    );
  }
  const { rows, pathsExact } = day.top(config.STATS_MAX_PATHS);
  // ?1 table, ?2 day, ?4 the recount, ?5 the day's version when it was planned.
  const unchanged = `EXISTS (SELECT 1 FROM path_stats_recounts WHERE recount_id = ?4 AND state = 'counting')
    AND (SELECT version FROM path_stats_days WHERE table_name = ?1 AND date = ?2) IS ?5`;
  const params = [recount.recount_id, recount.day_version] as const;
  const at = now.toISOString();
  const results = await db.batch([
    ...dayRowsStatements(db, { table: recount.table_name, date: recount.date, rows }, unchanged, params),
    db
      .prepare(
        `INSERT INTO path_stats_days (table_name, date, requests, paths, paths_exact, runs, state, stale_reason,
           version, written_by, updated_at)
         SELECT ?1, ?2, ?6, ?7, ?8, ?9, 'current', NULL, 1, ?4, ?10 WHERE ${unchanged}
         ON CONFLICT (table_name, date) DO UPDATE SET requests = excluded.requests, paths = excluded.paths,
           paths_exact = excluded.paths_exact, runs = excluded.runs, state = 'current', stale_reason = NULL,
           version = version + 1, written_by = excluded.written_by, updated_at = excluded.updated_at`,
      )
      .bind(
        recount.table_name,
        recount.date,
        null,
        ...params,
        day.requests,
        rows.length,
        pathsExact ? 1 : 0,
        recount.runs,
        at,
      ),
    // Done if the day's record is the one just written (by this recount), else abandoned: it changed meanwhile.
    db
      .prepare(
        `UPDATE path_stats_recounts SET finished_at = ?2,
           state = CASE WHEN (SELECT written_by FROM path_stats_days WHERE table_name = ?3 AND date = ?4) = ?1
                   THEN 'done' ELSE 'abandoned' END
         WHERE recount_id = ?1 AND state = 'counting' RETURNING state`,
      )
      .bind(recount.recount_id, at, recount.table_name, recount.date),
    db.prepare("DELETE FROM path_stats_chunks WHERE run_id = ?1").bind(recount.recount_id),
  ]);
  // The recount's own UPDATE, second to last: 'done' or 'abandoned', or nothing if another delivery finished it.
  const state = (results.at(-2)?.results[0] as { state?: string } | undefined)?.state;
  logEvent("stats.recount_finished", {
    recountId: recount.recount_id,
    table: recount.table_name,
    date: recount.date,
    state: state ?? "closed",
    requests: day.requests,
    paths: rows.length,
  });
  return state === "done" ? "finished" : state === "abandoned" ? "abandoned" : "closed";
}
