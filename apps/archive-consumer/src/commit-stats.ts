import {
  type ArchivedTable,
  type ChunkRow,
  type Config,
  DayRollup,
  dayRowsStatements,
  errorMessage,
  type PathStatsDayRecord,
  type PathStatsRecord,
  type RunRow,
  rollupOfChunkPieces,
  rowOfRecord,
  trackedPairs,
} from "@path-stats/shared";

/**
 * The statements that add a run's path statistics to its day, for the batch
 * that marks the run archived (finalize-run.ts), and what they do.
 *
 * The day's kept rows and the run's chunk rollups are merged here and
 * written in place of the day's rows. Every statement holds only if that
 * batch committed the run (its archived_at is this commit's) and no other
 * write changed the day since it was read (its version), so a run's
 * statistics are counted exactly once, when it commits; if the day changed
 * meanwhile, the last statement marks it stale instead.
 *
 * A run holding newer content of rows an earlier run archived (its manifest
 * `supersedes` them) cannot be added: the earlier content's counts would
 * have to come out, and only that archive holds it. Its day is marked
 * stale, saying so, for the day's statistics to be counted again from its
 * archives.
 */
export async function statsStatements(
  db: D1Database,
  config: Config,
  table: ArchivedTable,
  run: RunRow,
  chunks: readonly ChunkRow[],
  commit: { completedAt: string; runRows: number; supersedesRuns: number },
): Promise<{ statements: D1PreparedStatement[]; summary: Record<string, unknown> }> {
  const key = [table.name, run.date] as const;
  const day = await db
    .prepare("SELECT * FROM path_stats_days WHERE table_name = ?1 AND date = ?2")
    .bind(...key)
    .first<PathStatsDayRecord>();
  // ?4 the run, ?5 this commit's time, ?6 the day's version as read (NULL: no row yet).
  const committed = `EXISTS (SELECT 1 FROM archive_runs WHERE run_id = ?4 AND status = 'archived' AND archived_at = ?5)
    AND (SELECT version FROM path_stats_days WHERE table_name = ?1 AND date = ?2) IS ?6`;
  const bound = [...key, null, run.run_id, commit.completedAt, day?.version ?? null] as const;
  // The run's chunk rollups go once this batch committed it (a finalizer whose claim was taken over leaves them).
  const dropChunks = db
    .prepare(
      `DELETE FROM path_stats_chunks WHERE run_id = ?1
         AND EXISTS (SELECT 1 FROM archive_runs WHERE run_id = ?1 AND status = 'archived' AND archived_at = ?2)`,
    )
    .bind(run.run_id, commit.completedAt);
  // Last in the batch: if the day changed after it was read here (a recount finished), nothing above applied,
  // and the day says so rather than leave this run out. (The writer's id tells, where a version could collide.)
  const changedMeanwhile = db
    .prepare(
      `UPDATE path_stats_days SET state = 'stale', version = version + 1, written_by = ?4, updated_at = ?5,
         stale_reason = 'the day changed while run ' || ?4 || ' committed'
       WHERE table_name = ?1 AND date = ?2 AND written_by IS NOT ?4
         AND EXISTS (SELECT 1 FROM archive_runs WHERE run_id = ?4 AND status = 'archived' AND archived_at = ?5)`,
    )
    .bind(...bound.slice(0, 5));

  const stale = (reason: string) => ({
    statements: [
      db
        .prepare(
          `INSERT INTO path_stats_days (table_name, date, requests, paths, paths_exact, runs, state, stale_reason,
             version, written_by, updated_at)
           SELECT ?1, ?2, 0, 0, 1, 1, 'stale', ?7, 1, ?4, ?5 WHERE ${committed}
           ON CONFLICT (table_name, date) DO UPDATE SET runs = runs + 1, state = 'stale',
             stale_reason = excluded.stale_reason, version = version + 1, written_by = excluded.written_by,
             updated_at = excluded.updated_at`,
        )
        .bind(...bound, reason),
      changedMeanwhile,
      dropChunks,
    ],
    summary: { state: "stale", reason },
  });

  if (day?.state === "stale") return stale(day.stale_reason ?? "counted again from the archives");
  // Every earlier committed run of the day must be in its statistics: a day archived before they were kept has none.
  const earlier = await db
    .prepare(
      "SELECT count(*) AS n FROM archive_runs WHERE table_name = ?1 AND date = ?2 AND status = 'archived' AND run_id <> ?3",
    )
    .bind(...key, run.run_id)
    .first<{ n: number }>();
  if ((earlier?.n ?? 0) !== (day?.runs ?? 0)) {
    return stale(
      `${earlier?.n ?? 0} earlier run(s) of the day were committed, ${day?.runs ?? 0} counted in its statistics`,
    );
  }
  if (commit.supersedesRuns > 0) {
    return stale(`run ${run.run_id} holds newer content of rows that earlier runs archived`);
  }
  try {
    return await merged(db, config, run, chunks, day, commit, {
      key,
      committed,
      bound,
      dropChunks,
      changedMeanwhile,
      stale,
    });
  } catch (error) {
    // The statistics never hold the archive back: the run commits, and its day says why they are not counted.
    return stale(`its statistics could not be merged: ${errorMessage(error)}`);
  }
}

async function merged(
  db: D1Database,
  config: Config,
  run: RunRow,
  chunks: readonly ChunkRow[],
  day: PathStatsDayRecord | null,
  commit: { runRows: number },
  sql: {
    key: readonly [string, string];
    committed: string;
    bound: readonly unknown[];
    dropChunks: D1PreparedStatement;
    changedMeanwhile: D1PreparedStatement;
    stale: (reason: string) => { statements: D1PreparedStatement[]; summary: Record<string, unknown> };
  },
): Promise<{ statements: D1PreparedStatement[]; summary: Record<string, unknown> }> {
  const { key, committed, bound, dropChunks, changedMeanwhile, stale } = sql;
  const tracked = trackedPairs(config.STATS_MAX_PATHS);
  let rollup = new DayRollup(tracked);
  if (day) {
    const { results } = await db
      .prepare("SELECT * FROM path_stats WHERE table_name = ?1 AND date = ?2")
      .bind(...key)
      .all<PathStatsRecord>();
    rollup = DayRollup.of(tracked, results.map(rowOfRecord), day.paths_exact === 1);
  }
  const piecesOf = db.prepare(
    "SELECT rollup FROM path_stats_chunks WHERE run_id = ?1 AND chunk_index = ?2 ORDER BY piece",
  );
  for (const chunk of chunks) {
    if (!chunk.rows) continue;
    // One chunk's pieces at a time: memory holds the day's rollup and one chunk's.
    const { results } = await piecesOf.bind(run.run_id, chunk.chunk_index).all<{ rollup: string }>();
    if (results.length === 0)
      return stale(`chunk ${chunk.chunk_index} of run ${run.run_id} was archived without its statistics`);
    rollup.merge(
      rollupOfChunkPieces(
        tracked,
        results.map((r) => r.rollup),
      ),
    );
  }
  const expected = (day?.requests ?? 0) + commit.runRows;
  if (rollup.requests !== expected) {
    return stale(`the rollups count ${rollup.requests} requests where the archives hold ${expected} rows`);
  }

  const { rows, pathsExact } = rollup.top(config.STATS_MAX_PATHS);
  return {
    statements: [
      ...dayRowsStatements(db, { table: key[0], date: key[1], rows }, committed, bound.slice(3)),
      db
        .prepare(
          `INSERT INTO path_stats_days (table_name, date, requests, paths, paths_exact, runs, state, stale_reason,
             version, written_by, updated_at)
           SELECT ?1, ?2, ?7, ?8, ?9, 1, 'current', NULL, 1, ?4, ?5 WHERE ${committed}
           ON CONFLICT (table_name, date) DO UPDATE SET requests = excluded.requests, paths = excluded.paths,
             paths_exact = excluded.paths_exact, runs = runs + 1, version = version + 1,
             written_by = excluded.written_by, updated_at = excluded.updated_at`,
        )
        .bind(...bound, expected, rows.length, pathsExact ? 1 : 0),
      changedMeanwhile,
      dropChunks,
    ],
    summary: { state: "current", requests: expected, paths: rows.length, pathsExact },
  };
}
