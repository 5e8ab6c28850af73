/**
 * V8's `--trace-gc` lines, summed per isolate (`pnpm heap-profile --
 * --trace-gc`). Each line is one collection:
 *
 *   [pid:0xISOLATE]  7253 ms: Mark-Compact 9.4 (12.2) -> 5.0 (9.9) MB, ...
 *
 * the used heap (and, in brackets, the heap V8 has reserved) before and
 * after it, in MiB, and the time since the isolate started. What a full
 * collection (Mark-Compact) leaves is the live heap; what the used heap
 * reaches before a collection is the live heap plus the garbage V8 let
 * pile up, which is what an inspector's used-heap sample can catch.
 */

export interface Collection {
  isolate: string;
  atMs: number;
  full: boolean;
  beforeMib: number;
  afterMib: number;
}

const LINE =
  /\[\d+:(0x[0-9a-f]+)\]\s+(\d+) ms: (Scavenge|Mark-Compact|Mark-Sweep)[^\d]*([\d.]+) \([\d.]+\) -> ([\d.]+) \(/;

/** The collections in `log` (other lines are left out). */
export function parseGcTrace(log: string): Collection[] {
  const collections: Collection[] = [];
  for (const line of log.split("\n")) {
    const m = LINE.exec(line);
    if (!m) continue;
    collections.push({
      isolate: m[1] as string,
      atMs: Number(m[2]),
      full: m[3] !== "Scavenge",
      beforeMib: Number(m[4]),
      afterMib: Number(m[5]),
    });
  }
  return collections;
}

export interface IsolateGcSummary {
  isolate: string;
  fromMs: number;
  toMs: number;
  scavenges: number;
  full: number;
  /** The most the used heap held before a collection. */
  maxBeforeMib: number;
  /** The most a full collection left (the live heap's peak at a collection); NaN with none. */
  maxAfterFullMib: number;
}

/** Per isolate, busiest (most collections) first. */
export function summarizeGcTrace(collections: Collection[]): IsolateGcSummary[] {
  const byIsolate = new Map<string, IsolateGcSummary>();
  for (const c of collections) {
    let s = byIsolate.get(c.isolate);
    if (!s) {
      s = {
        isolate: c.isolate,
        fromMs: c.atMs,
        toMs: c.atMs,
        scavenges: 0,
        full: 0,
        maxBeforeMib: 0,
        maxAfterFullMib: Number.NaN,
      };
      byIsolate.set(c.isolate, s);
    }
    s.fromMs = Math.min(s.fromMs, c.atMs);
    s.toMs = Math.max(s.toMs, c.atMs);
    s.maxBeforeMib = Math.max(s.maxBeforeMib, c.beforeMib);
    if (c.full) {
      s.full++;
      s.maxAfterFullMib = Number.isNaN(s.maxAfterFullMib) ? c.afterMib : Math.max(s.maxAfterFullMib, c.afterMib);
    } else s.scavenges++;
  }
  return [...byIsolate.values()].sort((a, b) => b.scavenges + b.full - (a.scavenges + a.full));
}
