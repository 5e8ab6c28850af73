import { QuantileSketch, type SketchJson } from "./quantile-sketch.ts";

/**
 * A day's path statistics (issue "Path statistics that outlive the rows"),
 * counted from the rows an archive run reads: per (path, method) the
 * requests, the status mix, bytes and latencies with a mergeable quantile
 * sketch, and the first and last time seen.
 *
 * Memory is bounded by `maxTracked` (path, method) pairs: a row of a pair
 * first seen when that many are tracked is counted in the `(other)` row, and
 * so is every pair `top()` leaves out. The totals of all rows stay exact
 * whatever the bound.
 *
 * `pathsExact` says each named row holds every row of its pair. A rollup
 * counted in one pass keeps it (a pair once named gets all its rows); it is
 * lost when a rollup whose `(other)` holds rows is merged into one with named
 * rows, since those rows may be of the named pairs. A rollup whose own
 * `(other)` holds rows takes no new named pair in a merge: that pair's
 * earlier rows may be in its `(other)`.
 */

/** One row's values, as the table's stats columns give them (null where the row has none). */
export interface RequestValues {
  path: string | null;
  method: string | null;
  status: number | null;
  latencyMs: number | null;
  bytes: number | null;
  /** The row's time, as its table writes it (any sortable number or text). */
  at: number | string | null;
}

/** The status codes counted one by one besides the classes. */
export function watchedCode(status: number): boolean {
  return status === 404 || status === 429 || (status >= 500 && status <= 599);
}

/** The path of the row that holds what is not counted under a path of its own. */
export const OTHER_PATH = "(other)";
/** Its method: a row of a pair is never counted under it (a NULL method is ""). */
export const OTHER_METHOD = "*";

export interface PathRollupRow {
  path: string;
  method: string;
  requests: number;
  /** Requests per status class 1xx … 5xx; a status outside 100–599, not an integer, or NULL is in none. */
  statusClasses: [number, number, number, number, number];
  /** Requests per watched code (404, 429, each 5xx), only codes seen. */
  codes: Record<string, number>;
  /** Whole bytes: integers add up exactly in any order. */
  bytesSum: number;
  bytesMax: number | null;
  /**
   * `sumUs` is the sum in whole microseconds: integers add up exactly in any
   * order, where a sum of fractional milliseconds would depend on the order
   * of the merges in its last bits.
   */
  latency: { count: number; sumUs: number; min: number | null; max: number | null; sketch: QuantileSketch };
  firstAt: number | string | null;
  lastAt: number | string | null;
}

/** A row as JSON (its sketch as SketchJson), for D1 between a chunk and its run's commit. */
export type PathRollupJson = Omit<PathRollupRow, "latency"> & {
  latency: Omit<PathRollupRow["latency"], "sketch"> & { sketch: SketchJson };
};

export function emptyRow(path: string, method: string): PathRollupRow {
  return {
    path,
    method,
    requests: 0,
    statusClasses: [0, 0, 0, 0, 0],
    codes: {},
    bytesSum: 0,
    bytesMax: null,
    latency: { count: 0, sumUs: 0, min: null, max: null, sketch: new QuantileSketch() },
    firstAt: null,
    lastAt: null,
  };
}

export function rowToJson(row: PathRollupRow): PathRollupJson {
  return { ...row, latency: { ...row.latency, sketch: row.latency.sketch.toJSON() } };
}

export function rowFromJson(json: PathRollupJson): PathRollupRow {
  return { ...json, latency: { ...json.latency, sketch: QuantileSketch.fromJSON(json.latency.sketch) } };
}

/**
 * A copy of `text` that keeps no other string alive. V8 makes a slice of a
 * long string a view into it, so a path cut from a page's text
 * (line-scanner.ts) and kept as a key would keep the whole page: the
 * rollup keeps copies of the strings it keeps.
 */
function ownCopy<T>(value: T): T {
  return typeof value === "string" ? (JSON.parse(JSON.stringify(value)) as T) : value;
}

const earlier = (a: number | string | null, b: number | string | null) => (a === null || (b !== null && b < a) ? b : a);
const later = (a: number | string | null, b: number | string | null) => (a === null || (b !== null && b > a) ? b : a);
const least = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.min(a, b));
const most = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.max(a, b));

/** Adds `from`'s counts to `into`'s: sums, extremes and sketches merge exactly, in any order. */
export function mergeRow(into: PathRollupRow, from: PathRollupRow): void {
  into.requests += from.requests;
  from.statusClasses.forEach((n, i) => {
    into.statusClasses[i] = (into.statusClasses[i] as number) + n;
  });
  for (const [code, n] of Object.entries(from.codes)) into.codes[code] = (into.codes[code] ?? 0) + n;
  into.bytesSum += from.bytesSum;
  into.bytesMax = most(into.bytesMax, from.bytesMax);
  into.latency.count += from.latency.count;
  into.latency.sumUs += from.latency.sumUs;
  into.latency.min = least(into.latency.min, from.latency.min);
  into.latency.max = most(into.latency.max, from.latency.max);
  into.latency.sketch.merge(from.latency.sketch);
  into.firstAt = earlier(into.firstAt, from.firstAt);
  into.lastAt = later(into.lastAt, from.lastAt);
}

/** A rollup as JSON: its named rows, its `(other)` row and whether the named rows are exact. */
export interface DayRollupJson {
  pathsExact: boolean;
  rows: PathRollupJson[];
  other: PathRollupJson;
}

export class DayRollup {
  /** Named rows by method, then path: no key string is built per row. */
  private readonly rows = new Map<string, Map<string, PathRollupRow>>();
  private named = 0;
  private readonly other = emptyRow(OTHER_PATH, OTHER_METHOD);
  private exact = true;

  constructor(readonly maxTracked: number) {
    if (!Number.isInteger(maxTracked) || maxTracked < 1) {
      throw new RangeError(`maxTracked must be a positive integer, got ${maxTracked}`);
    }
  }

  /** Whether every named row holds all its pair's rows (see above). */
  get pathsExact(): boolean {
    return this.exact;
  }

  /** Rows counted, over all pairs and `(other)`. */
  get requests(): number {
    let n = this.other.requests;
    for (const byPath of this.rows.values()) for (const row of byPath.values()) n += row.requests;
    return n;
  }

  /** The named row of a pair, created if there is room and nothing in `(other)` may be of it. */
  private rowOf(path: string, method: string, newPairsAllowed: boolean): PathRollupRow {
    const row = this.rows.get(method)?.get(path);
    if (row) return row;
    if (!newPairsAllowed || this.named >= this.maxTracked) return this.other;
    return this.insert(emptyRow(ownCopy(path), ownCopy(method)));
  }

  /** `row` as its pair's named row (the pair has none). */
  private insert(row: PathRollupRow): PathRollupRow {
    let byPath = this.rows.get(row.method);
    if (!byPath) {
      byPath = new Map();
      this.rows.set(row.method, byPath);
    }
    byPath.set(row.path, row);
    this.named++;
    return row;
  }

  /** `row` itself as its pair's named row, if the pair has none yet and there is room; else merged where rowOf says. */
  private adopt(row: PathRollupRow): void {
    if (this.named < this.maxTracked && !this.rows.get(row.method)?.has(row.path)) this.insert(row);
    else mergeRow(this.rowOf(row.path, row.method, true), row);
  }

  add(values: RequestValues): void {
    // In one pass a pair's rows go to (other) only when it was first seen with no room left: it is never named after.
    const row = this.rowOf(values.path ?? "", values.method ?? "", true);
    row.requests++;
    const status = values.status;
    if (status !== null && Number.isInteger(status) && status >= 100 && status <= 599) {
      const i = Math.floor(status / 100) - 1;
      row.statusClasses[i] = (row.statusClasses[i] as number) + 1;
      if (watchedCode(status)) row.codes[status] = (row.codes[status] ?? 0) + 1;
    }
    if (values.bytes !== null && Number.isFinite(values.bytes)) {
      row.bytesSum += Math.round(values.bytes);
      row.bytesMax = most(row.bytesMax, values.bytes);
    }
    const ms = values.latencyMs;
    if (ms !== null && Number.isFinite(ms)) {
      row.latency.count++;
      row.latency.sumUs += Math.round(ms * 1000);
      row.latency.min = least(row.latency.min, ms);
      row.latency.max = most(row.latency.max, ms);
      row.latency.sketch.add(ms);
    }
    const at = values.at;
    if (earlier(row.firstAt, at) !== row.firstAt) row.firstAt = ownCopy(at);
    if (later(row.lastAt, at) !== row.lastAt) row.lastAt = ownCopy(at);
  }

  /** Adds another rollup (of another chunk or run of the day) to this one, within this one's bound. */
  merge(from: DayRollup): void {
    this.mergeRows(from.namedRows(), from.other, from.exact);
  }

  private mergeRows(rows: Iterable<PathRollupRow>, other: PathRollupRow, exact: boolean): void {
    // Rows in `other` may be of pairs named here, which then miss them; rows in this (other) may be of
    // any pair not named here, so none is named now. A pair named there holds all its rows there.
    if (!exact || (other.requests > 0 && this.named > 0)) this.exact = false;
    const newPairsAllowed = this.other.requests === 0;
    for (const row of rows) mergeRow(this.rowOf(row.path, row.method, newPairsAllowed), row);
    mergeRow(this.other, other);
  }

  private *namedRows(): Iterable<PathRollupRow> {
    for (const byPath of this.rows.values()) yield* byPath.values();
  }

  /**
   * The rows to keep: the `maxPaths` busiest pairs (most requests; ties by
   * path, then method), then one `(other)` row with everything else, when
   * there is anything else. Their requests, bytes and latency counts add up
   * to the day's.
   */
  top(maxPaths: number): { rows: PathRollupRow[]; pathsExact: boolean } {
    const named = [...this.namedRows()].sort(
      (a, b) => b.requests - a.requests || (a.path < b.path ? -1 : a.path > b.path ? 1 : a.method < b.method ? -1 : 1),
    );
    const kept = named.slice(0, maxPaths);
    const other = emptyRow(OTHER_PATH, OTHER_METHOD);
    mergeRow(other, this.other);
    for (const row of named.slice(maxPaths)) mergeRow(other, row);
    return { rows: other.requests > 0 ? [...kept, other] : kept, pathsExact: this.exact };
  }

  toJSON(): DayRollupJson {
    return { pathsExact: this.exact, rows: [...this.namedRows()].map(rowToJson), other: rowToJson(this.other) };
  }

  /**
   * A rollup holding stored rows (a chunk's, or a day's as kept: its named
   * rows and its `(other)` row), to merge more into. The named rows become
   * its own, not copies: give it rows nothing else holds (rows just read
   * back). Copying them made a run's commit, which reads every chunk's
   * rollup, copy every sketch once more per chunk, grown bucket by bucket:
   * the burst of garbage at the archive consumer's heap peak
   * (docs/benchmark.md).
   */
  static of(maxTracked: number, rows: Iterable<PathRollupRow>, pathsExact: boolean): DayRollup {
    const rollup = new DayRollup(maxTracked);
    for (const row of rows) {
      if (row.path === OTHER_PATH && row.method === OTHER_METHOD) mergeRow(rollup.other, row);
      else rollup.adopt(row);
    }
    rollup.exact = pathsExact;
    return rollup;
  }

  static fromJSON(maxTracked: number, json: DayRollupJson): DayRollup {
    return DayRollup.of(maxTracked, [...json.rows.map(rowFromJson), rowFromJson(json.other)], json.pathsExact);
  }
}
