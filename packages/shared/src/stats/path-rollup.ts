import { QuantileSketch } from "./quantile-sketch.ts";

/**
 * A day's path statistics (issue "Path statistics that outlive the rows"),
 * counted from the rows an archive run reads: per (path, method) the
 * requests, the status mix, bytes and latencies with a mergeable quantile
 * sketch, and the first and last time seen. A second piece of the rollups,
 * beside the sketch; not wired into archiving yet.
 *
 * Memory is bounded by `maxTracked` (path, method) pairs: a row of a pair
 * first seen when that many are tracked is counted in the `(other)` row, and
 * so is every pair `top()` leaves out. The totals of all rows stay exact
 * whatever the bound. Each named row is exact while `pathsComplete` holds (no
 * row was ever counted in `(other)` for want of room); after that, a named
 * row may miss rows of its pair that came after the bound was reached.
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

export interface PathRollupRow {
  path: string;
  method: string;
  requests: number;
  /** Requests per status class 1xx … 5xx; a status outside 100–599 or NULL is in none. */
  statusClasses: [number, number, number, number, number];
  /** Requests per watched code (404, 429, each 5xx), only codes seen. */
  codes: Record<string, number>;
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

function emptyRow(path: string, method: string): PathRollupRow {
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

const earlier = (a: number | string | null, b: number | string | null) => (a === null || (b !== null && b < a) ? b : a);
const later = (a: number | string | null, b: number | string | null) => (a === null || (b !== null && b > a) ? b : a);
const least = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.min(a, b));
const most = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.max(a, b));

/** Adds `from`'s counts to `into`'s: sums, extremes and sketches merge exactly, in any order. */
function mergeRow(into: PathRollupRow, from: PathRollupRow): void {
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

export class DayRollup {
  private readonly rows = new Map<string, PathRollupRow>();
  private readonly other = emptyRow(OTHER_PATH, "");
  private complete = true;

  constructor(readonly maxTracked: number) {
    if (!Number.isInteger(maxTracked) || maxTracked < 1) {
      throw new RangeError(`maxTracked must be a positive integer, got ${maxTracked}`);
    }
  }

  /** Whether every named row holds all its pair's rows (none was counted in `(other)` for want of room). */
  get pathsComplete(): boolean {
    return this.complete;
  }

  /** Rows counted, over all pairs and `(other)`. */
  get requests(): number {
    let n = this.other.requests;
    for (const row of this.rows.values()) n += row.requests;
    return n;
  }

  add(values: RequestValues): void {
    const path = values.path ?? "";
    const method = values.method ?? "";
    const key = JSON.stringify([path, method]);
    let row = this.rows.get(key);
    if (!row) {
      if (this.rows.size < this.maxTracked) {
        row = emptyRow(path, method);
        this.rows.set(key, row);
      } else {
        this.complete = false;
        row = this.other;
      }
    }
    row.requests++;
    const status = values.status;
    if (status !== null && Number.isInteger(status) && status >= 100 && status <= 599) {
      const i = Math.floor(status / 100) - 1;
      row.statusClasses[i] = (row.statusClasses[i] as number) + 1;
      if (watchedCode(status)) row.codes[status] = (row.codes[status] ?? 0) + 1;
    }
    if (values.bytes !== null && Number.isFinite(values.bytes)) {
      row.bytesSum += Math.round(values.bytes); // whole bytes: integers add up exactly in any order
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
    row.firstAt = earlier(row.firstAt, values.at);
    row.lastAt = later(row.lastAt, values.at);
  }

  /** Adds another rollup (of another chunk or run of the day) to this one, within this one's bound. */
  merge(other: DayRollup): void {
    if (!other.complete) this.complete = false;
    mergeRow(this.other, other.other);
    for (const [key, row] of other.rows) {
      const mine = this.rows.get(key);
      if (mine) mergeRow(mine, row);
      else if (this.rows.size < this.maxTracked) {
        const copy = emptyRow(row.path, row.method);
        mergeRow(copy, row);
        this.rows.set(key, copy);
      } else {
        this.complete = false;
        mergeRow(this.other, row);
      }
    }
  }

  /**
   * The rows to keep: the `maxPaths` busiest pairs (most requests; ties by
   * path, then method), then one `(other)` row with everything else, when
   * there is anything else. Their requests, bytes and latency counts add up
   * to the day's.
   */
  top(maxPaths: number): { rows: PathRollupRow[]; pathsComplete: boolean } {
    const named = [...this.rows.values()].sort(
      (a, b) => b.requests - a.requests || (a.path < b.path ? -1 : a.path > b.path ? 1 : a.method < b.method ? -1 : 1),
    );
    const kept = named.slice(0, maxPaths);
    const other = emptyRow(OTHER_PATH, "");
    mergeRow(other, this.other);
    for (const row of named.slice(maxPaths)) mergeRow(other, row);
    return { rows: other.requests > 0 ? [...kept, other] : kept, pathsComplete: this.complete };
  }
}
