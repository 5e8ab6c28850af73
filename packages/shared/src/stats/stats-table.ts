import { DayRollup, type PathRollupJson, type PathRollupRow, rowFromJson } from "./path-rollup.ts";
import { QuantileSketch } from "./quantile-sketch.ts";

/**
 * The rollups in D1 (migrations/0008_path_stats.sql): `path_stats`, one row
 * per table, day and (path, method), the stable interface an operator's own
 * SQL may read; `path_stats_days`, one row per table and day saying what
 * the rows hold; `path_stats_chunks`, a chunk's rollup between its archive
 * and its run's commit.
 */

/** A `path_stats` row as D1 returns it. */
export interface PathStatsRecord {
  table_name: string;
  date: string;
  path: string;
  method: string;
  requests: number;
  status_1xx: number;
  status_2xx: number;
  status_3xx: number;
  status_4xx: number;
  status_5xx: number;
  /** JSON: requests per watched code seen (404, 429, each 5xx). */
  codes: string;
  bytes_sum: number;
  bytes_max: number | null;
  latency_count: number;
  latency_sum_us: number;
  latency_min_ms: number | null;
  latency_max_ms: number | null;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
  /** JSON: the mergeable quantile sketch (quantile-sketch.ts). */
  latency_sketch: string;
  first_at: number | string | null;
  last_at: number | string | null;
}

/** A `path_stats_days` row. */
export interface PathStatsDayRecord {
  table_name: string;
  date: string;
  /** Requests counted: the rows of the day's committed archives that the rollups hold. */
  requests: number;
  /** path_stats rows kept, `(other)` included. */
  paths: number;
  /** 1 when each named row holds every row of its pair (path-rollup.ts). */
  paths_exact: number;
  /** Committed archive runs counted. */
  runs: number;
  /** 'current', or 'stale': a run holding newer content of archived rows committed, and the rows say the old. */
  state: "current" | "stale";
  stale_reason: string | null;
  /** Raised by every write: a write conditional on the version it read cannot undo another's. */
  version: number;
  /** The run or recount that wrote the record last: a writer tells its own write from another's. */
  written_by: string;
  updated_at: string;
}

const finiteOrNull = (x: number) => (Number.isFinite(x) ? x : null);

/** A row's values in the order STATS_INSERT_SQL reads them, the quantiles computed once here. */
function statsTuple(row: PathRollupRow): unknown[] {
  const sketch = row.latency.sketch;
  return [
    row.path,
    row.method,
    row.requests,
    ...row.statusClasses,
    row.codes,
    row.bytesSum,
    row.bytesMax,
    row.latency.count,
    row.latency.sumUs,
    row.latency.min,
    row.latency.max,
    finiteOrNull(sketch.quantile(0.5)),
    finiteOrNull(sketch.quantile(0.95)),
    finiteOrNull(sketch.quantile(0.99)),
    sketch.toJSON(),
    row.firstAt,
    row.lastAt,
  ];
}

/**
 * Inserts the rows of ?3 (a JSON array of statsTuple) for table ?1 and day
 * ?2, when `condition` holds (SQL, numbered from ?4 on).
 */
function statsInsertSql(condition: string): string {
  const at = (i: number) => `r.value ->> '$[${i}]'`;
  return `INSERT INTO path_stats (table_name, date, path, method, requests, status_1xx, status_2xx, status_3xx,
      status_4xx, status_5xx, codes, bytes_sum, bytes_max, latency_count, latency_sum_us, latency_min_ms,
      latency_max_ms, p50_ms, p95_ms, p99_ms, latency_sketch, first_at, last_at)
    SELECT ?1, ?2, ${at(0)}, ${at(1)}, ${at(2)}, ${at(3)}, ${at(4)}, ${at(5)}, ${at(6)}, ${at(7)},
      r.value -> '$[8]', ${at(9)}, ${at(10)}, ${at(11)}, ${at(12)}, ${at(13)}, ${at(14)}, ${at(15)}, ${at(16)},
      ${at(17)}, r.value -> '$[18]', ${at(19)}, ${at(20)}
    FROM json_each(?3) r WHERE ${condition}`;
}

/** Most characters of JSON bound to one statement: far inside D1's 2 MB for a value. */
const PIECE_CHARS = 500_000;

/** JSON arrays of at most about PIECE_CHARS each, holding `items` in order. */
function pieces(items: readonly unknown[]): string[] {
  const out: string[] = [];
  let current: string[] = [];
  let chars = 2;
  for (const item of items) {
    const json = JSON.stringify(item);
    if (current.length > 0 && chars + json.length + 1 > PIECE_CHARS) {
      out.push(`[${current.join(",")}]`);
      current = [];
      chars = 2;
    }
    current.push(json);
    chars += json.length + 1;
  }
  if (current.length > 0) out.push(`[${current.join(",")}]`);
  return out;
}

/** The kept rows as JSON arrays for statsInsertSql, each piece bounded. */
function statsInsertPieces(rows: readonly PathRollupRow[]): string[] {
  return pieces(rows.map(statsTuple));
}

/**
 * The statements that put `rows` in place of a day's path_stats rows, each
 * holding only if `condition` does (SQL over ?1 the table, ?2 the day and
 * `params` from ?4 on), for a batch that also writes the day's record.
 */
export function dayRowsStatements<Statement>(
  db: { prepare(query: string): { bind(...values: unknown[]): Statement } },
  day: { table: string; date: string; rows: readonly PathRollupRow[] },
  condition: string,
  params: readonly unknown[],
): Statement[] {
  return [
    db
      .prepare(`DELETE FROM path_stats WHERE table_name = ?1 AND date = ?2 AND ${condition}`)
      .bind(day.table, day.date, null, ...params),
    ...statsInsertPieces(day.rows).map((piece) =>
      db.prepare(statsInsertSql(condition)).bind(day.table, day.date, piece, ...params),
    ),
  ];
}

/** A kept row back as a rollup row, to merge into or to answer with. */
export function rowOfRecord(record: PathStatsRecord): PathRollupRow {
  return {
    path: record.path,
    method: record.method,
    requests: record.requests,
    statusClasses: [record.status_1xx, record.status_2xx, record.status_3xx, record.status_4xx, record.status_5xx],
    codes: JSON.parse(record.codes) as Record<string, number>,
    bytesSum: record.bytes_sum,
    bytesMax: record.bytes_max,
    latency: {
      count: record.latency_count,
      sumUs: record.latency_sum_us,
      min: record.latency_min_ms,
      max: record.latency_max_ms,
      sketch: QuantileSketch.fromJSON(JSON.parse(record.latency_sketch)),
    },
    firstAt: record.first_at,
    lastAt: record.last_at,
  };
}

/** A chunk's rollup as path_stats_chunks pieces: each `{pathsExact, rows}`, `(other)` among the rows. */
export function chunkStatsPieces(rollup: DayRollup): string[] {
  const json = rollup.toJSON();
  return pieces([...json.rows, json.other]).map((rows) => `{"pathsExact":${json.pathsExact},"rows":${rows}}`);
}

/** A chunk's rollup from its pieces. */
export function rollupOfChunkPieces(maxTracked: number, stored: readonly string[]): DayRollup {
  const rows: PathRollupRow[] = [];
  let pathsExact = true;
  for (const piece of stored) {
    const json = JSON.parse(piece) as { pathsExact: boolean; rows: PathRollupJson[] };
    if (!json.pathsExact) pathsExact = false;
    for (const row of json.rows) rows.push(rowFromJson(row));
  }
  return DayRollup.of(maxTracked, rows, pathsExact);
}

/**
 * Pairs a rollup counts by name before the rest go to its `(other)`: ten
 * times what a day keeps, up to 2000 (and twice, at least), so that a
 * day's long tail rarely pushes a pair one chunk names into another
 * chunk's `(other)`. A pair's sketch is a few hundred small integers at
 * most, so 2000 pairs stay within a few MiB of a consumer's heap.
 */
export function trackedPairs(maxPaths: number): number {
  return Math.max(2 * maxPaths, Math.min(10 * maxPaths, 2000));
}

/** What /admin/stats answers for one row: counts exact, quantiles within the sketch's stated error. */
export interface StatsAnswerRow {
  path: string;
  method: string;
  requests: number;
  status: { "1xx": number; "2xx": number; "3xx": number; "4xx": number; "5xx": number };
  codes: Record<string, number>;
  bytes: { sum: number; max: number | null };
  latency: {
    count: number;
    meanMs: number | null;
    minMs: number | null;
    maxMs: number | null;
    p50Ms: number | null;
    p95Ms: number | null;
    p99Ms: number | null;
  };
  firstAt: number | string | null;
  lastAt: number | string | null;
}

export function answerRow(row: PathRollupRow): StatsAnswerRow {
  const [s1, s2, s3, s4, s5] = row.statusClasses;
  const sketch = row.latency.sketch;
  return {
    path: row.path,
    method: row.method,
    requests: row.requests,
    status: { "1xx": s1, "2xx": s2, "3xx": s3, "4xx": s4, "5xx": s5 },
    codes: row.codes,
    bytes: { sum: row.bytesSum, max: row.bytesMax },
    latency: {
      count: row.latency.count,
      meanMs: row.latency.count > 0 ? row.latency.sumUs / 1000 / row.latency.count : null,
      minMs: row.latency.min,
      maxMs: row.latency.max,
      p50Ms: finiteOrNull(sketch.quantile(0.5)),
      p95Ms: finiteOrNull(sketch.quantile(0.95)),
      p99Ms: finiteOrNull(sketch.quantile(0.99)),
    },
    firstAt: row.firstAt,
    lastAt: row.lastAt,
  };
}
