import { describe, expect, it } from "vitest";
import { parseGcTrace, summarizeGcTrace } from "./gc-trace.ts";

// Lines as workerd printed them with --trace-gc (a 1M archive, session 20), and one that is not a collection.
const LOG = `
[31964:0x3126fe52c000]     7173 ms: Scavenge 4.9 (7.0) -> 4.2 (5.5) MB, pooled: 0.0 MB, 0.96 / 0.00 ms (average mu = 1.000, current mu = 1.000) allocation failure;
[31964:0x3126fe52c000]     7418 ms: Mark-Compact 14.5 (18.5) -> 6.4 (11.2) MB, pooled: 0.0 MB, 3.32 / 0.00 ms (average mu = 0.999, current mu = 0.980) allocation failure; scavenge might not succeed
[31964:0x3126fe52c000]    10327 ms: Mark-Compact (reduce) 10.9 (14.5) -> 5.2 (6.9) MB, pooled: 0.0 MB, 5.71 / 0.00 ms (average mu = 0.951, current mu = 0.891) heap profiler; GC in old space requested
[31964:0x3126ffb20000]     7214 ms: Scavenge 2.0 (3.2) -> 1.7 (3.0) MB, pooled: 0.0 MB, 0.77 / 0.00 ms (average mu = 1.000, current mu = 1.000) allocation failure;
env.D1 (path-stats-db)                                                        D1 Database               local
`;

describe("parseGcTrace", () => {
  it("reads each collection's isolate, time, kind and used heap before and after", () => {
    expect(parseGcTrace(LOG)).toEqual([
      { isolate: "0x3126fe52c000", atMs: 7173, full: false, beforeMib: 4.9, afterMib: 4.2 },
      { isolate: "0x3126fe52c000", atMs: 7418, full: true, beforeMib: 14.5, afterMib: 6.4 },
      { isolate: "0x3126fe52c000", atMs: 10327, full: true, beforeMib: 10.9, afterMib: 5.2 },
      { isolate: "0x3126ffb20000", atMs: 7214, full: false, beforeMib: 2.0, afterMib: 1.7 },
    ]);
  });
});

describe("summarizeGcTrace", () => {
  it("sums per isolate, busiest first, the live heap from full collections only", () => {
    expect(summarizeGcTrace(parseGcTrace(LOG))).toEqual([
      {
        isolate: "0x3126fe52c000",
        fromMs: 7173,
        toMs: 10327,
        scavenges: 1,
        full: 2,
        maxBeforeMib: 14.5,
        maxAfterFullMib: 6.4,
      },
      {
        isolate: "0x3126ffb20000",
        fromMs: 7214,
        toMs: 7214,
        scavenges: 1,
        full: 0,
        maxBeforeMib: 2.0,
        maxAfterFullMib: Number.NaN,
      },
    ]);
  });
});
