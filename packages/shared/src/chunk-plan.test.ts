import { describe, expect, it } from "vitest";
import {
  cutSpan,
  type DensityProbe,
  estimatePieces,
  PROBE_ROWS,
  partsPerChunkFor,
  probeStarts,
  rowsWithinQueries,
  type SpanChunk,
} from "./chunk-plan.ts";

/** What D1 answers to the planner's probes over a date whose rows have these ids (ascending). */
function probe(ids: readonly number[], lo: number, hi: number): DensityProbe[] {
  return probeStarts(lo, hi).map((start) => {
    let a = 0;
    let b = ids.length;
    while (a < b) {
      const m = (a + b) >> 1;
      if ((ids[m] as number) < start) a = m + 1;
      else b = m;
    }
    const seen = ids.slice(a, a + PROBE_ROWS).filter((id) => id <= hi);
    return { start, rows: seen.length, first: seen[0] ?? null, last: seen.at(-1) ?? null };
  });
}

/** Plans ids like the producer does; each chunk with the rows it really holds. */
function plan(ids: readonly number[], perChunk: number): { chunks: SpanChunk[]; actual: number[] } {
  const lo = ids[0] as number;
  const hi = ids.at(-1) as number;
  const chunks = cutSpan(lo, hi, perChunk, estimatePieces(lo, hi, probe(ids, lo, hi)));
  let i = 0;
  const actual = chunks.map((c) => {
    let n = 0;
    for (; i < ids.length && (ids[i] as number) <= c.rowidHi; i++) n++;
    return n;
  });
  return { chunks, actual };
}

function expectTiling(chunks: SpanChunk[], lo: number, hi: number): void {
  expect(chunks[0]?.rowidLo).toBe(lo);
  expect(chunks.at(-1)?.rowidHi).toBe(hi);
  for (const [i, c] of chunks.entries()) {
    expect(c.rowidHi).toBeGreaterThanOrEqual(c.rowidLo);
    if (i > 0) expect(c.rowidLo).toBe((chunks[i - 1] as SpanChunk).rowidHi + 1);
  }
}

const ids = (from: number, to: number, step = 1) =>
  Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step);

/** A repeatable pseudo-random sequence (mulberry32). */
function random(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x + 0x6d2b79f5) | 0;
    let t = Math.imul(x ^ (x >>> 15), 1 | x);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PER_CHUNK = 100_000;

describe("cutting a day's id span from probes", () => {
  it.each([
    ["contiguous ids", ids(1, 1_000_000)],
    ["interleaved 1:1 with another date", ids(2, 2_000_000, 2)],
    ["late rows far beyond the day", [...ids(1, 1_000_000), ...ids(4_000_000, 4_010_000)]],
  ])("%s: chunks tile the span and hold the planned rows", (_name, day) => {
    const { chunks, actual } = plan(day, PER_CHUNK);
    expectTiling(chunks, day[0] as number, day.at(-1) as number);
    expect(actual.reduce((a, b) => a + b, 0)).toBe(day.length);
    // Every chunk but the last within 2% of the target; the last takes the rest.
    for (const rows of actual.slice(0, -1)) expect(Math.abs(rows - PER_CHUNK)).toBeLessThanOrEqual(0.02 * PER_CHUNK);
    expect(actual.at(-1)).toBeLessThanOrEqual(1.02 * PER_CHUNK);
    expect(chunks.length).toBeLessThanOrEqual(Math.ceil(day.length / PER_CHUNK) + 1);
  });

  it("a day ending between two probes: the stretch after it is counted at the density before it", () => {
    const day = [...ids(1, 950_000), ...ids(3_000_000, 3_000_100)];
    const { chunks, actual } = plan(day, PER_CHUNK);
    expectTiling(chunks, 1, 3_000_100);
    // No chunk larger than planned; the one over the day's end comes out about half full.
    for (const rows of actual) expect(rows).toBeLessThanOrEqual(1.02 * PER_CHUNK);
    expect(actual.filter((rows) => rows < 0.98 * PER_CHUNK).length).toBeLessThanOrEqual(2);
  });

  it("a density that changes every 100 000 rows: sizes stay near the target", () => {
    const day: number[] = [];
    let id = 1;
    for (let block = 0; block < 10; block++) {
      for (let j = 0; j < 100_000; j++, id += block % 2 ? 1 : 5) day.push(id);
    }
    const { chunks, actual } = plan(day, PER_CHUNK);
    expectTiling(chunks, 1, day.at(-1) as number);
    for (const rows of actual) expect(rows).toBeLessThanOrEqual(1.35 * PER_CHUNK);
    expect(chunks.length).toBeLessThanOrEqual(12);
  });

  it("random gaps of up to 2 000 ids: chunks tile the span, sizes vary within bounds", () => {
    const next = random(7);
    const day: number[] = [];
    let id = 1;
    while (day.length < 1_000_000) {
      if (next() < 0.02) id += Math.floor(next() * 2000);
      day.push(id++);
    }
    const { chunks, actual } = plan(day, PER_CHUNK);
    expectTiling(chunks, day[0] as number, day.at(-1) as number);
    expect(actual.reduce((a, b) => a + b, 0)).toBe(day.length);
    // One probe per 1/32 of the span sees too little of such a day to cut it evenly: chunks come out
    // between a few percent and about twice the target (their reserved parts hold far more).
    for (const rows of actual) expect(rows).toBeLessThanOrEqual(2.5 * PER_CHUNK);
    expect(chunks.length).toBeLessThanOrEqual(3 * Math.ceil(day.length / PER_CHUNK));
  });

  it("a small or empty span", () => {
    expect(plan([5], PER_CHUNK).chunks).toEqual([{ rowidLo: 5, rowidHi: 5, rows: 1 }]);
    const { chunks, actual } = plan(ids(10, 300), 100);
    expectTiling(chunks, 10, 300);
    expect(actual).toEqual([100, 100, 91]);
    expect(cutSpan(1, 10, 5, estimatePieces(1, 10, [{ start: 1, rows: 0, first: null, last: null }]))).toEqual([
      { rowidLo: 1, rowidHi: 10, rows: 0 },
    ]);
  });
});

describe("parts per chunk", () => {
  const MiB = 1024 * 1024;
  const base = { gzBytesPerRow: 25.5, partSize: 5 * MiB, maxPartsPerChunk: 4, parallelChunks: 2 };
  it("splits a day of a few parts between the parallel consumers, in whole parts", () => {
    // 1M rows of 25.5 gzip bytes: about 5 parts. Two chunks of 3 parts (3 + 2), not 4 + 1.
    expect(partsPerChunkFor({ ...base, estimatedRows: 1_000_000 })).toBe(3);
    expect(partsPerChunkFor({ ...base, estimatedRows: 1_000_000, parallelChunks: 1 })).toBe(4);
  });
  it("keeps the configured size for big days, and at least one part for small ones", () => {
    expect(partsPerChunkFor({ ...base, estimatedRows: 5_000_000 })).toBe(4);
    expect(partsPerChunkFor({ ...base, estimatedRows: 1000 })).toBe(1);
    expect(partsPerChunkFor({ ...base, estimatedRows: 0 })).toBe(1);
  });
});

describe("rowsWithinQueries", () => {
  it("gives pages half of the invocation's queries, a page being PAGE_ROWS rows or its bytes, whichever is less", () => {
    const page = { pageRows: 5000, pageBytes: 1_200_000 };
    // 300-byte rows: 4000 to a page, 500 pages of 1000 queries.
    expect(rowsWithinQueries({ queriesPerInvocation: 1000, rawBytesPerRow: 300, ...page })).toBe(2_000_000);
    // Tiny rows: PAGE_ROWS bounds the page; Workers Free's 50 queries give 25 pages.
    expect(rowsWithinQueries({ queriesPerInvocation: 50, rawBytesPerRow: 10, ...page })).toBe(125_000);
    // A row wider than a page still makes progress: a page of one row.
    expect(rowsWithinQueries({ queriesPerInvocation: 50, rawBytesPerRow: 3_000_000, ...page })).toBe(25);
  });
});
