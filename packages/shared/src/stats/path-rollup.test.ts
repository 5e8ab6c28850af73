import { describe, expect, it } from "vitest";
import { seededRandom } from "../seeded-random.ts";
import { DayRollup, OTHER_PATH, type PathRollupRow, type RequestValues, watchedCode } from "./path-rollup.ts";
import { RELATIVE_ACCURACY } from "./quantile-sketch.ts";

const STATUSES = [200, 200, 200, 201, 204, 301, 304, 400, 404, 404, 429, 500, 502, 503, 99, 600];

/** Requests of a day: 200 paths of very different weights, mixed methods, statuses, latencies and bytes, some NULLs. */
function requests(n: number, seed = 1): RequestValues[] {
  const next = seededRandom(seed);
  return Array.from({ length: n }, (_, i) => {
    const path = `/p/${Math.floor(200 * next() ** 3)}`; // skewed: low numbers are busy
    return {
      path,
      method: next() < 0.8 ? "GET" : "POST",
      status: next() < 0.02 ? null : (STATUSES[Math.floor(next() * STATUSES.length)] as number),
      latencyMs: next() < 0.05 ? null : Math.exp(next() * 8) * (next() < 0.01 ? 100 : 1), // 1 ms … 3 s, a heavy tail
      bytes: next() < 0.05 ? null : Math.floor(next() * 50_000),
      at: 1_764_547_200_000 + i * 17,
    };
  });
}

/** What a rollup row must say, computed the plain way from the rows of one pair. */
function exactRow(rows: RequestValues[]) {
  const statuses = rows.map((r) => r.status).filter((s): s is number => s !== null && s >= 100 && s <= 599);
  const latencies = rows.map((r) => r.latencyMs).filter((v): v is number => v !== null);
  const bytes = rows.map((r) => r.bytes).filter((v): v is number => v !== null);
  const codes: Record<string, number> = {};
  for (const s of statuses) if (watchedCode(s)) codes[s] = (codes[s] ?? 0) + 1;
  const ats = rows.map((r) => r.at as number);
  return {
    requests: rows.length,
    statusClasses: [1, 2, 3, 4, 5].map((c) => statuses.filter((s) => Math.floor(s / 100) === c).length),
    codes,
    bytesSum: bytes.reduce((a, b) => a + b, 0),
    bytesMax: bytes.length ? Math.max(...bytes) : null,
    latencies: latencies.sort((a, b) => a - b),
    firstAt: Math.min(...ats),
    lastAt: Math.max(...ats),
  };
}

function byPair(rows: RequestValues[]): Map<string, RequestValues[]> {
  const pairs = new Map<string, RequestValues[]>();
  for (const r of rows) {
    const key = `${r.path} ${r.method}`;
    pairs.set(key, [...(pairs.get(key) ?? []), r]);
  }
  return pairs;
}

/** A row as plain data, its sketch as its JSON: equal rollups give equal values. */
function plain(row: PathRollupRow) {
  return { ...row, latency: { ...row.latency, sketch: row.latency.sketch.toJSON() } };
}

function rollupOf(rows: RequestValues[], maxTracked = 10_000): DayRollup {
  const rollup = new DayRollup(maxTracked);
  for (const r of rows) rollup.add(r);
  return rollup;
}

describe("DayRollup", () => {
  const day = requests(30_000);

  it("counts each (path, method) exactly, with p50/p95/p99 within the sketch's 1%", () => {
    const { rows, pathsExact } = rollupOf(day).top(1000);
    expect(pathsExact).toBe(true);
    const pairs = byPair(day);
    expect(rows.map((r) => `${r.path} ${r.method}`).sort()).toEqual([...pairs.keys()].sort());
    for (const row of rows) {
      const exact = exactRow(pairs.get(`${row.path} ${row.method}`) as RequestValues[]);
      expect(row).toMatchObject({
        requests: exact.requests,
        statusClasses: exact.statusClasses,
        codes: exact.codes,
        bytesSum: exact.bytesSum,
        bytesMax: exact.bytesMax,
        firstAt: exact.firstAt,
        lastAt: exact.lastAt,
      });
      expect(row.latency.count).toBe(exact.latencies.length);
      expect(row.latency.min).toBe(exact.latencies[0] ?? null);
      expect(row.latency.max).toBe(exact.latencies.at(-1) ?? null);
      expect(row.latency.sumUs).toBe(exact.latencies.reduce((a, b) => a + Math.round(b * 1000), 0));
      for (const q of [0.5, 0.95, 0.99]) {
        const truth = exact.latencies[Math.floor(q * (exact.latencies.length - 1))] as number;
        expect(Math.abs(row.latency.sketch.quantile(q) - truth)).toBeLessThanOrEqual(truth * RELATIVE_ACCURACY);
      }
    }
    // The busiest come first: the skew makes /p/0 the busiest path.
    expect(rows[0]?.path).toBe("/p/0");
  });

  it("gives the same rollup whatever the chunks and the order they are merged in", () => {
    const whole = rollupOf(day).top(1000).rows.map(plain);
    const chunks = [day.slice(0, 7000), day.slice(7000, 19_000), day.slice(19_000)].map((c) => rollupOf(c));
    for (const order of [
      [0, 1, 2],
      [2, 0, 1],
      [1, 2, 0],
    ]) {
      const merged = new DayRollup(10_000);
      for (const i of order) merged.merge(chunks[i] as DayRollup);
      expect(merged.top(1000).rows.map(plain)).toEqual(whole);
    }
  });

  it("keeps the busiest paths and one (other) row whose totals keep the day's sums exact", () => {
    const { rows } = rollupOf(day).top(10);
    expect(rows).toHaveLength(11);
    const other = rows.at(-1) as PathRollupRow;
    expect(other.path).toBe(OTHER_PATH);
    const all = rollupOf(day).top(1000).rows;
    const sum = (list: PathRollupRow[], f: (r: PathRollupRow) => number) => list.reduce((s, r) => s + f(r), 0);
    for (const f of [
      (r: PathRollupRow) => r.requests,
      (r: PathRollupRow) => r.bytesSum,
      (r: PathRollupRow) => r.latency.count,
    ]) {
      expect(sum(rows, f)).toBe(sum(all, f));
    }
    expect(other.latency.sketch.count).toBe(other.latency.count);
    // The ten kept are the ten busiest, exactly as counted over the whole day.
    expect(rows.slice(0, 10).map(plain)).toEqual(all.slice(0, 10).map(plain));
  });

  it("holds at most maxTracked pairs however many paths the day has, and says when a named row may miss rows", () => {
    // Every row a distinct path.
    const distinct = day.map((r, i) => ({ ...r, path: `/u/${i}` }));
    const rollup = rollupOf(distinct, 500);
    const { rows, pathsExact } = rollup.top(100);
    // One pass: a pair once named gets all its rows, so the named rows are exact.
    expect(pathsExact).toBe(true);
    expect(rows).toHaveLength(101);
    expect(rollup.requests).toBe(distinct.length);
    expect(rows.reduce((s, r) => s + r.requests, 0)).toBe(distinct.length);
    expect(rows.at(-1)?.requests).toBe(distinct.length - 100);
    // Merging two full rollups stays within the bound too.
    const merged = rollupOf(distinct.slice(0, 15_000), 500);
    merged.merge(rollupOf(distinct.slice(15_000), 500));
    expect(merged.requests).toBe(distinct.length);
    // The second one's (other) may hold rows of the first one's named pairs.
    expect(merged.pathsExact).toBe(false);
    expect(merged.top(10_000).rows.length).toBeLessThanOrEqual(501);
  });

  it("counts a status outside 100–599 or NULL in no class, and a row without a path under the empty path", () => {
    const rollup = new DayRollup(10);
    rollup.add({ path: null, method: null, status: 600, latencyMs: null, bytes: null, at: null });
    rollup.add({ path: null, method: null, status: null, latencyMs: 0, bytes: 0, at: "2026-11-01T00:00:00Z" });
    const [row] = rollup.top(10).rows;
    expect(row).toMatchObject({
      path: "",
      method: "",
      requests: 2,
      statusClasses: [0, 0, 0, 0, 0],
      bytesSum: 0,
      bytesMax: 0,
      firstAt: "2026-11-01T00:00:00Z",
    });
    expect(row?.latency).toMatchObject({ count: 1, min: 0, max: 0 });
  });
});

describe("DayRollup kept and merged again", () => {
  const day = requests(30_000, 5);

  it("goes to JSON and back unchanged", () => {
    const rollup = rollupOf(day, 50);
    const back = DayRollup.fromJSON(50, JSON.parse(JSON.stringify(rollup)));
    expect(back.top(1000).rows.map(plain)).toEqual(rollup.top(1000).rows.map(plain));
    expect(back.pathsExact).toBe(rollup.pathsExact);
  });

  it("holds stored rows as merging them would: a pair given twice once, rows beyond its bound in (other)", () => {
    const merged = rollupOf(day.slice(0, 15_000));
    merged.merge(rollupOf(day.slice(15_000)));
    // Rows of their own each time: DayRollup.of takes the rows it is given.
    const stored = () => [
      ...rollupOf(day.slice(0, 15_000)).top(1000).rows,
      ...rollupOf(day.slice(15_000)).top(1000).rows,
    ];
    const held = DayRollup.of(10_000, stored(), true);
    expect(held.top(1000).rows.map(plain)).toEqual(merged.top(1000).rows.map(plain));
    // Bound to 3 pairs: the first 3 given are named, every other row's counts go to (other).
    const bounded = DayRollup.of(3, stored(), true).top(1000).rows;
    expect(bounded).toHaveLength(4);
    expect(bounded.at(-1)?.path).toBe(OTHER_PATH);
    expect(bounded.reduce((n, r) => n + r.requests, 0)).toBe(day.length);
  });

  it("adds a later run to a day kept as its top rows and (other): named rows stay exact, new pairs go to (other)", () => {
    const first = day.slice(0, 20_000);
    const late = [...day.slice(20_000), { ...(day[0] as RequestValues), path: "/only-late", method: "GET" }];
    const kept = rollupOf(first).top(10);
    const again = DayRollup.of(10_000, kept.rows, kept.pathsExact);
    again.merge(rollupOf(late));
    const { rows, pathsExact } = again.top(10);
    expect(pathsExact).toBe(true);
    expect(rows.some((r) => r.path === "/only-late")).toBe(false);
    // Each named row is its pair's over the whole day, and the totals are the day's.
    const whole = byPair([...first, ...late]);
    for (const row of rows.slice(0, -1)) {
      expect(row.requests).toBe(whole.get(`${row.path} ${row.method}`)?.length);
    }
    expect(rows.reduce((s, r) => s + r.requests, 0)).toBe(first.length + late.length);
  });
});
