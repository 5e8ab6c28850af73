/**
 * `pnpm heap-profile -- [--rows 1000000] [--at 3] [--cpu-ms 0] [--alloc-ms 0] [--alloc-from S] [--wide N] [--trace-gc]`: what holds each
 * consumer's JavaScript heap. On a fresh local stack, archives and then
 * cleans one seeded day; while each consumer works it samples the isolate's
 * used heap about every 100 ms and, from `--at` seconds in, takes a few heap
 * snapshots (each collects garbage first, so its total is the live heap),
 * summed by constructor. Prints the peaks (and when in the phase they came)
 * and the largest snapshot's biggest groups; writes them to .artifacts/heap/
 * with every sample of the used heap. (workerd's inspector does not
 * answer HeapProfiler.collectGarbage, so snapshots are the way to the live
 * size.) With `--cpu-ms`, each consumer's CPU and the local D1's are first
 * sampled for that long and their busiest functions printed. Locally they all
 * run on one workerd thread: a profile's "(program)" and "(idle)" include the
 * time the thread spent in the other isolates. With `--alloc-ms`, what each
 * consumer allocates for that long, garbage included, summed by function
 * and by call path. With `--alloc-from S`, the same from S seconds into each
 * phase to its end (where a peak at the end comes from).
 *
 * With `--max-heap-mb N`, workerd runs every isolate with V8's old space
 * limited to N MiB (`--max-old-space-size`, through miniflare's
 * MINIFLARE_WORKERD_V8_FLAGS): production gives an isolate 128 MB, and the
 * local runtime none, so this is how a consumer's heap is shown to fit a
 * limit, garbage and all. An isolate over it dies (V8's "heap out of
 * memory"), and the day is not archived or cleaned.
 *
 * With `--trace-gc`, V8 prints every collection of every isolate (its
 * `--trace-gc`); the lines go to .artifacts/heap/gc-<rows>.log and each busy
 * isolate's count, span and heap before and after collections is printed
 * (gc-trace.ts). The trace names isolates by address, not worker: match them
 * by span against the phases' durations. What full collections leave is the
 * live heap; the sampled peaks above add the garbage V8 lets pile up.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { withFreshStack } from "./dev.ts";
import { parseGcTrace, summarizeGcTrace } from "./gc-trace.ts";
import { admin, archiveStatus, cliArgs, localD1File, ROOT, sleep } from "./lib.ts";
import { seedInWorker } from "./seed.ts";
import { SEEDED_COLUMNS, widen } from "./widen.ts";
import {
  type AllocationSummary,
  addIsolateV8Flags,
  allocationProfileSummary,
  cpuProfileSummary,
  findInspectorPort,
  type HeapGroup,
  heapSnapshotSummary,
  limitIsolateHeaps,
  openInspector,
  startAllocationSampling,
  stopAllocationSampling,
} from "./worker-heap.ts";
import { workerdPids } from "./workerd-processes.ts";

const DATE = "2026-01-15";
const mib = (n: number) => (n / 1024 / 1024).toFixed(1);
const SNAPSHOTS = 4;
const SNAPSHOT_EVERY_S = 4;

async function profile(
  port: number,
  worker: string,
  start: () => Promise<void>,
  done: () => Promise<boolean>,
  atSeconds: number,
  cpuMs: number,
  allocMs: number,
  allocFrom: number | null,
): Promise<{ report: string; series: string }> {
  let session = await openInspector(port, worker);
  let used = 0;
  let backing = 0;
  let largest: { at: number; usedBefore: number; total: number; groups: HeapGroup[] } | null = null;
  let snapshots = 0;
  let unanswered = 0;
  await start();
  if (cpuMs) {
    const d1 = await openInspector(port, "d1:db").catch(() => null);
    // A profile that gets no answer is reported as missing; the heap figures still come.
    const noAnswer = (error: Error) => {
      console.log(`(no CPU profile: ${error.message})`);
      return null;
    };
    const [own, database] = await Promise.all([
      cpuProfileSummary(session, Number(cpuMs)).catch(noAnswer),
      d1 ? cpuProfileSummary(d1, Number(cpuMs)).catch(noAnswer) : null,
    ]);
    d1?.close();
    for (const [name, cpu] of [
      [worker, own],
      ["d1:db", database],
    ] as const) {
      if (!cpu) continue;
      console.log(`${name}: CPU self time over ${Math.round(cpu.totalMs)} ms`);
      for (const f of cpu.functions.slice(0, 20)) console.log(`${f.ms.toFixed(0).padStart(7)} ms  ${f.name}`);
    }
  }
  if (allocMs) {
    const allocated = await allocationProfileSummary(session, allocMs).catch((error: Error) => {
      console.log(`(no allocation profile: ${error.message})`);
      return null;
    });
    if (allocated) {
      console.log(allocationReport(`${worker}: allocated over ${allocMs} ms`, allocated));
    }
  }
  const started = Date.now();
  /** Seconds into the phase and the used heap then: where the peak came, for the artifact. */
  const series: string[] = [];
  let peakAt = 0;
  /** --alloc-from: the allocation profile's state, from its start to the phase's end. */
  let sampling: "no" | "yes" | "lost" = "no";
  let samplingFrom = 0;
  while (!(await done())) {
    // Under load workerd sometimes leaves a sample unanswered, and at times a session answers nothing
    // more: the sample is counted and skipped, and the session opened again (as sampleHeaps does).
    const usage = await session
      .send<{ usedSize: number; backingStorageSize: number }>("Runtime.getHeapUsage", {}, 1_000)
      .catch(() => null);
    if (!usage) {
      unanswered++;
      session.close();
      session = await openInspector(port, worker);
      if (sampling === "yes") sampling = "lost";
      continue;
    }
    const seconds = (Date.now() - started) / 1000;
    if (allocFrom !== null && sampling === "no" && seconds >= allocFrom) {
      await startAllocationSampling(session);
      sampling = "yes";
      samplingFrom = seconds;
    }
    series.push(`${seconds.toFixed(1)} ${mib(usage.usedSize)}`);
    if (usage.usedSize > used) peakAt = seconds;
    used = Math.max(used, usage.usedSize);
    backing = Math.max(backing, usage.backingStorageSize);
    // A snapshot collects garbage first: its total is the live heap at that moment.
    if (snapshots < SNAPSHOTS && seconds >= atSeconds + snapshots * SNAPSHOT_EVERY_S) {
      snapshots++;
      const summary = await heapSnapshotSummary(session);
      if (!largest || summary.total > largest.total) {
        largest = { at: Math.round(seconds), usedBefore: usage.usedSize, ...summary };
      }
    }
    await sleep(100);
  }
  const phase = (Date.now() - started) / 1000;
  let allocatedAtEnd = "";
  if (sampling === "yes") {
    const allocated = await stopAllocationSampling(session).catch((error: Error) => {
      console.log(`(no allocation profile: ${error.message})`);
      return null;
    });
    if (allocated) {
      const label = `${worker}: allocated from ${samplingFrom.toFixed(1)} s to the phase's end (${phase.toFixed(1)} s)`;
      allocatedAtEnd = allocationReport(label, allocated);
    }
  } else if (sampling === "lost") allocatedAtEnd = "(allocation profile lost: the inspector session was reopened)";
  else if (allocFrom !== null) allocatedAtEnd = `(the phase ended before --alloc-from ${allocFrom} s)`;
  session.close();
  const lines = [
    `${worker}: peak used heap ${mib(used)} MiB (garbage included) at ${peakAt.toFixed(1)} s of ${phase.toFixed(1)} s, ` +
      `peak ArrayBuffer backing stores ${mib(backing)} MiB` +
      (unanswered ? ` (${unanswered} samples unanswered)` : ""),
  ];
  if (allocatedAtEnd) lines.push(allocatedAtEnd);
  if (!largest) lines.push("(finished before the first snapshot)");
  else {
    lines.push(
      `largest of ${snapshots} snapshots (${atSeconds} s in, then every ${SNAPSHOT_EVERY_S} s): ${largest.at} s in, ` +
        `${mib(largest.total)} MiB live, used ${mib(largest.usedBefore)} MiB just before`,
      ...largest.groups
        .slice(0, 25)
        .map((g) => `${mib(g.bytes).padStart(7)} MiB ${String(g.count).padStart(8)}  ${g.type}  ${g.name}`),
    );
  }
  return { report: lines.join("\n"), series: `${worker}: used heap over the phase (s MiB): ${series.join(", ")}` };
}

/** An allocation profile's largest functions, then its largest call paths (the allocating function first). */
function allocationReport(label: string, allocated: AllocationSummary): string {
  return [
    `${label}, garbage included: ${mib(allocated.totalBytes)} MiB`,
    ...allocated.functions.slice(0, 20).map((f) => `${mib(f.bytes).padStart(7)} MiB  ${f.name}`),
    "by call path:",
    ...allocated.paths.slice(0, 15).map((f) => `${mib(f.bytes).padStart(7)} MiB  ${f.name}`),
  ].join("\n");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: cliArgs(),
    options: {
      rows: { type: "string", default: "1000000" },
      at: { type: "string", default: "3" },
      "cpu-ms": { type: "string", default: "0" },
      "alloc-ms": { type: "string", default: "0" },
      "alloc-from": { type: "string" },
      "max-heap-mb": { type: "string" },
      wide: { type: "string" },
      "trace-gc": { type: "boolean", default: false },
    },
  });
  // --wide N: the seeded table widened to N columns (as `pnpm bench --wide N`).
  const wide = values.wide === undefined ? null : Number(values.wide);
  if (wide !== null && (!Number.isInteger(wide) || wide <= SEEDED_COLUMNS || wide > 100))
    throw new Error(`--wide must be an integer from ${SEEDED_COLUMNS + 1} to 100, got ${values.wide}`);
  const rows = Number(values.rows);
  const at = Number(values.at);
  const cpuMs = Number(values["cpu-ms"]);
  const allocMs = Number(values["alloc-ms"]);
  const allocFrom = values["alloc-from"] === undefined ? null : Number(values["alloc-from"]);
  if (allocFrom !== null && !(allocFrom >= 0))
    throw new Error(`--alloc-from must be seconds, got ${values["alloc-from"]}`);
  if (!Number.isInteger(rows) || rows < 1) throw new Error(`--rows must be a positive integer, got ${values.rows}`);
  if (!(at >= 0)) throw new Error(`--at must be seconds, got ${values.at}`);
  if (values["max-heap-mb"] !== undefined) {
    const mb = Number(values["max-heap-mb"]);
    if (!Number.isInteger(mb) || mb < 1) throw new Error(`--max-heap-mb must be a positive integer, got ${mb}`);
    limitIsolateHeaps(mb);
    console.log(`every isolate's V8 old space limited to ${mb} MiB`);
  }
  if (values["trace-gc"]) addIsolateV8Flags("--trace-gc");
  const dir = join(ROOT, ".artifacts", "heap");
  const tag = `${rows}${wide === null ? "" : `x${wide}`}`;
  let stackLog = () => "";
  await withFreshStack("heap-profile-state", async (stack, stateDir) => {
    stackLog = stack.log;
    console.log(`seeding ${rows} rows ...`);
    await seedInWorker(DATE, rows, localD1File(stateDir));
    if (wide !== null) {
      console.log(`widening to ${wide} columns ...`);
      widen(localD1File(stateDir), wide);
    }
    const port = await findInspectorPort(workerdPids(stack.pid));
    const state = async () => (await archiveStatus<{ status: string }>(DATE)).status;
    const trigger = (action: string) => async () => {
      const res = await admin("POST", `/admin/trigger-${action}?date=${DATE}`, undefined, { idempotent: true });
      if (res.status !== 202) throw new Error(`trigger-${action} answered ${res.status}: ${JSON.stringify(res.json)}`);
    };
    const reports: string[] = [];
    for (const [action, finished, worker] of [
      ["archive", "archived", "path-stats-archive-consumer"],
      ["cleanup", "cleaned", "path-stats-cleanup-consumer"],
    ] as const) {
      console.log(`${action} ...`);
      const { report, series } = await profile(
        port,
        worker,
        trigger(action),
        async () => (await state()) === finished,
        at,
        cpuMs,
        allocMs,
        allocFrom,
      );
      console.log(report);
      reports.push(report, series);
    }
    mkdirSync(dir, { recursive: true });
    const name = `heap-${tag}.txt`;
    writeFileSync(join(dir, name), `${reports.join("\n\n")}\n`);
    console.log(`written to .artifacts/heap/${name}`);
  });
  // Read once the stack has stopped: workerd's output arrives in blocks, so the last collections come late.
  if (values["trace-gc"]) {
    const collections = parseGcTrace(stackLog());
    const gcName = `gc-${tag}.log`;
    writeFileSync(join(dir, gcName), collections.map((c) => JSON.stringify(c)).join("\n"));
    console.log(
      `V8's collections per isolate (used heap MiB before any / after full ones; written to .artifacts/heap/${gcName}):`,
    );
    for (const s of summarizeGcTrace(collections).filter((s) => s.scavenges + s.full >= 20)) {
      console.log(
        `  ${s.isolate}: ${s.fromMs}-${s.toMs} ms, ${s.scavenges} scavenges, ${s.full} full; before at most ${s.maxBeforeMib}, after full at most ${s.maxAfterFullMib}`,
      );
    }
  }
}

main().catch((error) => {
  console.error(`heap-profile failed: ${error instanceof Error ? error.message : error}`);
  process.exitCode = 1;
});
