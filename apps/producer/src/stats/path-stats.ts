import {
  type ArchivedTable,
  addDays,
  answerRow,
  type Config,
  DayRollup,
  daySql,
  emptyRow,
  idSql,
  mergeRow,
  type PathRollupRow,
  type PathStatsDayRecord,
  type PathStatsRecord,
  quoteIdentifier,
  rowOfRecord,
  type StatsAnswerRow,
  type StatsColumns,
  statsColumnNames,
  tableSql,
  trackedPairs,
  valuesOfRow,
} from "@path-stats/shared";

/**
 * GET /admin/stats: path statistics per day and path, the same fields and
 * numbers whether a day is archived (its rollups, path_stats) or still only
 * in D1 (its rows, counted the way the archive consumer counts them).
 */

/** Where a day's statistics came from. */
export type DaySource =
  /** Its rollups: the rows of its committed archives. */
  | "rollups"
  /** Its rows in D1, read once by this call: a day not archived, or whose rollups cannot say it while D1 still holds it whole. */
  | "d1"
  /** Neither: a day archived before statistics were kept, or whose rollups are stale, and cleaned since. */
  | "unavailable";

export interface StatsDay {
  date: string;
  source: DaySource;
  requests: number;
  /** Each named row holds every row of its (path, method); see path-rollup.ts. */
  pathsExact: boolean;
  /** For "unavailable" (and rollups marked stale that D1 stood in for): why. */
  reason?: string;
}

export type StatsGroup = "day" | "path";

export interface StatsAnswer {
  table: string;
  from: string;
  to: string;
  /** Rows per day and path (none), per day over all paths ("day"), or per path over all days ("path"). */
  group: StatsGroup | null;
  path: string | null;
  days: StatsDay[];
  rows: (Partial<StatsAnswerRow> & { date?: string })[];
  cost: {
    /** Rows D1 read for this answer: rollup rows and bookkeeping for archived days, every row of a D1 day. */
    d1RowsRead: number;
    queries: number;
    /** Days read from their rows in D1. */
    d1Days: number;
  };
}

/** A stats request that cannot be answered as asked: nothing was changed, and it says why. */
export class StatsRequestError extends Error {
  override name = "StatsRequestError";
  constructor(
    readonly code: "no_stats" | "too_many_rows",
    message: string,
  ) {
    super(message);
  }
}

/** Counts D1's reads and queries for the answer's cost. */
class Cost {
  rowsRead = 0;
  queries = 0;
  d1Days = 0;
  async all<T>(statement: D1PreparedStatement): Promise<T[]> {
    const { results, meta } = await statement.all<T>();
    this.queries++;
    this.rowsRead += meta.rows_read;
    return results;
  }
  async first<T>(statement: D1PreparedStatement): Promise<T | null> {
    return (await this.all<T>(statement))[0] ?? null;
  }
}

export async function pathStats(
  env: Env,
  config: Config,
  table: ArchivedTable,
  request: { from: string; to: string; path?: string | undefined; group?: StatsGroup | undefined },
): Promise<StatsAnswer> {
  const stats = table.stats;
  if (!stats) {
    throw new StatsRequestError(
      "no_stats",
      `${table.name} keeps no path statistics: give its stats columns in its configuration (docs/adopting.md)`,
    );
  }
  const db = env.D1;
  const cost = new Cost();
  const dayRecords = await cost.all<PathStatsDayRecord>(
    db
      .prepare("SELECT * FROM path_stats_days WHERE table_name = ?1 AND date BETWEEN ?2 AND ?3")
      .bind(table.name, request.from, request.to),
  );
  // Per archived day: whether any of its ranges has been cleaned (or is being), so D1 no longer holds it whole.
  const archived = await cost.all<{ date: string; cleaned: number }>(
    db
      .prepare(
        `SELECT r.date AS date, max(c.cleanup_state <> 'none') AS cleaned
         FROM archive_runs r JOIN archive_chunks c ON c.run_id = r.run_id
         WHERE r.table_name = ?1 AND r.date BETWEEN ?2 AND ?3 AND r.status = 'archived' GROUP BY r.date`,
      )
      .bind(table.name, request.from, request.to),
  );
  const recordOf = new Map(dayRecords.map((d) => [d.date, d]));
  const cleanedOf = new Map(archived.map((a) => [a.date, a.cleaned === 1]));
  const tracked = trackedPairs(config.STATS_MAX_PATHS);

  const days: StatsDay[] = [];
  const perDay: { date: string; rollup: DayRollup }[] = [];
  for (let date = request.from; date <= request.to; date = addDays(date, 1)) {
    const record = recordOf.get(date);
    const cleaned = cleanedOf.get(date);
    let rollup: DayRollup;
    let source: DaySource;
    let reason: string | undefined;
    if (record?.state === "current") {
      const rows = await cost.all<PathStatsRecord>(
        db.prepare("SELECT * FROM path_stats WHERE table_name = ?1 AND date = ?2").bind(table.name, date),
      );
      rollup = DayRollup.of(tracked, rows.map(rowOfRecord), record.paths_exact === 1);
      source = "rollups";
    } else if (cleaned === undefined || cleaned === false) {
      // Not archived, or archived with no range cleaned: D1 holds every row of the day.
      rollup = await countFromD1(db, table, stats, date, tracked, cost, config);
      source = "d1";
      if (record?.state === "stale") reason = `its rollups are stale: ${record.stale_reason ?? ""}`;
    } else {
      days.push({
        date,
        source: "unavailable",
        requests: 0,
        pathsExact: false,
        reason:
          record?.state === "stale"
            ? `its rollups are stale (${record.stale_reason ?? ""}) and D1 no longer holds the day`
            : "archived before path statistics were kept, and cleaned since",
      });
      continue;
    }
    days.push({
      date,
      source,
      requests: rollup.requests,
      pathsExact: rollup.pathsExact,
      ...(reason ? { reason } : {}),
    });
    perDay.push({ date, rollup });
  }

  const pick = (rows: PathRollupRow[]) =>
    request.path === undefined ? rows : rows.filter((r) => r.path === request.path);
  let rows: StatsAnswer["rows"];
  if (request.group === "day") {
    rows = perDay.map(({ date, rollup }) => {
      const all = emptyRow("", "");
      for (const row of pick(rollup.top(config.STATS_MAX_PATHS).rows)) mergeRow(all, row);
      const { path: _path, method: _method, ...totals } = answerRow(all);
      return { date, ...totals };
    });
  } else if (request.group === "path") {
    const range = new DayRollup(tracked);
    for (const { rollup } of perDay) range.merge(rollup);
    rows = pick(range.top(config.STATS_MAX_PATHS).rows).map(answerRow);
  } else {
    rows = perDay.flatMap(({ date, rollup }) =>
      pick(rollup.top(config.STATS_MAX_PATHS).rows).map((row) => ({ date, ...answerRow(row) })),
    );
  }
  return {
    table: table.name,
    from: request.from,
    to: request.to,
    group: request.group ?? null,
    path: request.path ?? null,
    days,
    rows,
    cost: { d1RowsRead: cost.rowsRead, queries: cost.queries, d1Days: cost.d1Days },
  };
}

/**
 * A day counted from its rows in D1, page by page in id order: the values
 * the archive consumer counts (stats-columns.ts), read as rows, so numbers
 * come as D1 holds them. One query per PAGE_ROWS rows; a day with more rows
 * than half the invocation's queries read is refused before its rows are
 * read (reading 5M rows to refuse them took the local runtime down).
 */
async function countFromD1(
  db: D1Database,
  table: ArchivedTable,
  stats: StatsColumns,
  date: string,
  tracked: number,
  cost: Cost,
  config: Config,
): Promise<DayRollup> {
  cost.d1Days++;
  const names = statsColumnNames(stats);
  const id = idSql(table);
  const statement = db.prepare(
    `SELECT ${id} AS __id, ${[...new Set(names)].map(quoteIdentifier).join(", ")} FROM ${tableSql(table)}
     WHERE ${daySql(table)} = ?1 AND ${id} > ?2 ORDER BY ${id} LIMIT ?3`,
  );
  const rollup = new DayRollup(tracked);
  const maxQueries = Math.floor(config.D1_QUERIES_PER_INVOCATION / 2);
  const pageRows = config.PAGE_ROWS;
  // Whether the day fits what this call may still read, before any of its rows is read: its first and
  // last id (two index seeks) bound its rows; past that bound, its rows are counted on the index.
  const span = await cost.first<{ lo: number | null; hi: number | null }>(
    db
      .prepare(
        `SELECT (SELECT ${id} FROM ${tableSql(table)} WHERE ${daySql(table)} = ?1 ORDER BY ${id} LIMIT 1) AS lo,
                (SELECT ${id} FROM ${tableSql(table)} WHERE ${daySql(table)} = ?1 ORDER BY ${id} DESC LIMIT 1) AS hi`,
      )
      .bind(date),
  );
  if (!span || span.lo === null || span.hi === null) return rollup;
  const readable = (maxQueries - cost.queries - 1) * pageRows;
  if (span.hi - span.lo + 1 > readable) {
    const counted = await cost.first<{ n: number }>(
      db.prepare(`SELECT count(*) AS n FROM ${tableSql(table)} WHERE ${daySql(table)} = ?1`).bind(date),
    );
    if ((counted?.n ?? 0) > readable) {
      throw new StatsRequestError(
        "too_many_rows",
        `${table.name} ${date} has ${counted?.n} rows in D1, more than this call reads (${readable}: PAGE_ROWS per query, within half of D1_QUERIES_PER_INVOCATION); ask for fewer hot days, or for the day once it is archived`,
      );
    }
  }
  for (let after = span.lo - 1; ; ) {
    if (cost.queries >= maxQueries) {
      throw new StatsRequestError(
        "too_many_rows",
        `${table.name} ${date} has more rows in D1 than one call reads (${maxQueries} pages of ${pageRows}); ask for fewer days`,
      );
    }
    const rows = await cost.all<Record<string, unknown>>(statement.bind(date, after, pageRows));
    for (const row of rows) rollup.add(valuesOfRow(stats, row));
    if (rows.length < pageRows) return rollup;
    after = rows.at(-1)?.__id as number;
  }
}

/** One day's bar of the operator page's chart: its requests from its rollups, or why there are none. */
export interface DayRequests {
  date: string;
  /** From the day's rollups; null when it has none that are current. */
  requests: number | null;
  state: "current" | "stale" | "none";
}

/** Requests per day from the rollups, for each day from `from` to `to`: one query, no row of the table read. */
export async function requestsPerDay(
  db: D1Database,
  table: ArchivedTable,
  from: string,
  to: string,
): Promise<DayRequests[]> {
  const { results } = await db
    .prepare(
      "SELECT date, requests, state FROM path_stats_days WHERE table_name = ?1 AND date BETWEEN ?2 AND ?3 ORDER BY date",
    )
    .bind(table.name, from, to)
    .all<{ date: string; requests: number; state: "current" | "stale" }>();
  const byDate = new Map(results.map((r) => [r.date, r]));
  const days: DayRequests[] = [];
  for (let date = from; date <= to; date = addDays(date, 1)) {
    const day = byDate.get(date);
    days.push({ date, requests: day?.state === "current" ? day.requests : null, state: day?.state ?? "none" });
  }
  return days;
}

/** A day's busiest paths from its rollups (most requests first, `(other)` last), or null if it has none current. */
export async function dayTopPaths(
  db: D1Database,
  table: ArchivedTable,
  date: string,
  limit: number,
): Promise<{ rows: StatsAnswerRow[]; requests: number; pathsExact: boolean; kept: number } | null> {
  const day = await db
    .prepare("SELECT * FROM path_stats_days WHERE table_name = ?1 AND date = ?2")
    .bind(table.name, date)
    .first<PathStatsDayRecord>();
  if (day?.state !== "current") return null;
  const { results } = await db
    .prepare(
      `SELECT * FROM path_stats WHERE table_name = ?1 AND date = ?2
       ORDER BY path = '(other)' AND method = '*', requests DESC, path, method LIMIT ?3`,
    )
    .bind(table.name, date, limit)
    .all<PathStatsRecord>();
  return {
    rows: results.map((r) => answerRow(rowOfRecord(r))),
    requests: day.requests,
    pathsExact: day.paths_exact === 1,
    kept: day.paths,
  };
}
