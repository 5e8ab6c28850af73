/**
 * `pnpm bench -- [--sizes 1000000,5000000]`: for each size, on a fresh local
 * stack and state, measures in one run:
 * - end-to-end archive time (trigger → archived) against a baseline on the
 *   same rows: the day as JSON Lines, gzip level 6, by a plain Node stream
 *   (node:sqlite → JSON.stringify → zlib), and `sqlite3 -json | gzip -6`
 *   when sqlite3 is installed;
 * - peak anonymous memory (RssAnon) of the local runtime (workerd) while
 *   archiving, and the archive consumer's own peak buffered bytes;
 * - CPU time of the local runtime while archiving, and of the baseline;
 * - in a second pass with every isolate's V8 heap limited to the target,
 *   each consumer's peak used JS heap (through workerd's inspector);
 * - D1 rows read per archived row; object size against gzip -6;
 * - cleanup time and D1 rows written per row deleted;
 * - for the smallest size, the archive with the status polled at 1 Hz (as the
 *   demo does) against the same archive not polled;
 * - the archive with path statistics against without, on the same day, in
 *   three pairs per size (`--stats-pairs N`), and a day where every row has
 *   a path of its own (timed, and under the heap limit).
 * Prints a table and writes bench/RESULTS.md.
 */
import { execSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import { createGzip } from "node:zlib";
import { type BackgroundStack, portIsFree, startBackgroundStack, withFreshStack } from "./dev.ts";
import { httpRequest } from "./http.ts";
import { admin, archiveStatus, BASE_URL, CONFIGS, cliArgs, isUp, localD1File, PORT, ROOT, sleep } from "./lib.ts";
import { seedInWorker } from "./seed.ts";
import { SEEDED_COLUMNS, widen } from "./widen.ts";
import { findInspectorPort, limitIsolateHeaps, sampleHeaps } from "./worker-heap.ts";
import { workerdPids } from "./workerd-processes.ts";

const DATE = "2026-01-15";

type RunView = {
  parts: number;
  chunks: { total: number };
  rows: {
    archived: number;
    deleted: number;
    d1RowsReadPlanning: number;
    d1RowsReadArchiving: number;
    d1RowsWrittenByCleanup: number;
  };
  bytes: { raw: number; object: number; padding: number; peakBuffered: number };
  timings: { createdAt: string; archivedAt: string | null; cleanedAt: string | null };
};
type Status = { status: string; runs: RunView[] };

/** The largest RssAnon (bytes) among the stack's workerd processes. */
function workerdRssAnon(root: number): number {
  let max = 0;
  for (const pid of workerdPids(root)) {
    try {
      const match = /RssAnon:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (match) max = Math.max(max, Number(match[1]) * 1024);
    } catch {}
  }
  return max;
}

/** Clock ticks per second of /proc's CPU times. */
const CLOCK_TICKS = Number(execSync("getconf CLK_TCK").toString().trim()) || 100;

/** Fields of a /proc stat line after the command name, from field 3 (state) on. */
function statFields(path: string): string[] {
  const stat = readFileSync(path, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** CPU time (user + system, ms) of each thread of the stack's workerd processes, by "pid/tid". */
function workerdThreadCpu(root: number): Map<string, number> {
  const cpu = new Map<string, number>();
  for (const pid of workerdPids(root)) {
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        const f = statFields(`/proc/${pid}/task/${tid}/stat`);
        cpu.set(`${pid}/${tid}`, ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS);
      }
    } catch {}
  }
  return cpu;
}

/** CPU the stack's workerd threads spent between two readings: in all, and in the busiest thread. */
function cpuBetween(before: Map<string, number>, after: Map<string, number>): { totalMs: number; busiestMs: number } {
  let totalMs = 0;
  let busiestMs = 0;
  for (const [thread, ms] of after) {
    const spent = ms - (before.get(thread) ?? 0);
    totalMs += spent;
    busiestMs = Math.max(busiestMs, spent);
  }
  return { totalMs, busiestMs };
}

/** CPU time (ms) of this process's finished children: a pipeline it ran and waited for. */
function childrenCpuMs(): number {
  const f = statFields("/proc/self/stat");
  return ((Number(f[13]) + Number(f[14])) * 1000) / CLOCK_TICKS;
}

function status(): Promise<Status> {
  return archiveStatus<Status>(DATE);
}

/**
 * Waits for the day's state through the admin API, once a second: the
 * durations come from the run's own timestamps (planned, archived, cleaned),
 * so a slow poll costs no precision and adds little load. (Reading D1's
 * SQLite file from a second process while the runtime deletes millions of
 * rows was seen to take the local runtime down.)
 */
async function until(state: string, timeoutMs = 15 * 60_000): Promise<RunView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await status();
    if (s.status === state) return s.runs.at(-1) as RunView;
    if (s.status === "failed") throw new Error(`the day failed: ${JSON.stringify(s.runs.at(-1))}`);
    if (Date.now() > deadline) throw new Error(`still ${s.status} after ${timeoutMs / 60_000} minutes`);
    await sleep(1000);
  }
}

/** The plain pipeline: the same rows as JSON Lines through zlib at level 6. */
async function nodeBaseline(file: string): Promise<{ ms: number; raw: number; gz: number }> {
  const started = Date.now();
  const db = new DatabaseSync(file, { readOnly: true });
  let raw = 0;
  let gz = 0;
  const rows = db.prepare("SELECT * FROM traffic_events WHERE event_date = ? ORDER BY id").iterate(DATE);
  async function* lines() {
    let batch = "";
    for (const row of rows) {
      batch += `${JSON.stringify(row)}\n`;
      if (batch.length > 1 << 20) {
        raw += Buffer.byteLength(batch);
        yield batch;
        batch = "";
      }
    }
    raw += Buffer.byteLength(batch);
    yield batch;
  }
  const gzip = createGzip({ level: 6 });
  gzip.on("data", (d: Buffer) => {
    gz += d.byteLength;
  });
  await pipeline(lines, gzip);
  db.close();
  return { ms: Date.now() - started, raw, gz };
}

/** `sqlite3 -json | gzip -6` of the day: wall time and the CPU time of both processes. */
function sqlite3Baseline(file: string): { ms: number; cpuMs: number } | null {
  try {
    execSync("command -v sqlite3", { stdio: "ignore" });
  } catch {
    return null;
  }
  const started = Date.now();
  const cpuBefore = childrenCpuMs();
  execSync(
    `sqlite3 -readonly -json "${file}" "SELECT * FROM traffic_events WHERE event_date = '${DATE}' ORDER BY id" | gzip -6 > /dev/null`,
    {
      shell: "/bin/bash",
    },
  );
  return { ms: Date.now() - started, cpuMs: childrenCpuMs() - cpuBefore };
}

/**
 * The physical reference for cleanup's D1 time: the same rows deleted by id
 * range in SQLite itself (node:sqlite, on a copy of the day's database), at
 * once and in committed windows of DELETE_BATCH_ROWS as cleanup's deletes are.
 */
function rangeDeleteBaseline(file: string): { onceMs: number; windowsMs: number } {
  const copies = [0, 1].map((i) => join(ROOT, ".wrangler", `bench-delete-copy-${i}.sqlite`));
  try {
    const source = new DatabaseSync(file, { readOnly: true });
    for (const copy of copies) {
      rmSync(copy, { force: true });
      source.exec(`VACUUM INTO '${copy}'`);
    }
    source.close();
    const time = (copy: string, work: (db: DatabaseSync, lo: number, hi: number) => void) => {
      const db = new DatabaseSync(copy);
      const { lo, hi } = db
        .prepare("SELECT MIN(id) AS lo, MAX(id) AS hi FROM traffic_events WHERE event_date = ?1")
        .get(DATE) as { lo: number; hi: number };
      const started = performance.now();
      work(db, lo, hi);
      const ms = performance.now() - started;
      db.close();
      return ms;
    };
    const onceMs = time(copies[0] as string, (db, lo, hi) => {
      db.prepare("DELETE FROM traffic_events WHERE event_date = ?1 AND id >= ?2 AND id <= ?3").run(DATE, lo, hi);
    });
    const windowsMs = time(copies[1] as string, (db, lo, hi) => {
      const remove = db.prepare("DELETE FROM traffic_events WHERE event_date = ?1 AND id >= ?2 AND id <= ?3");
      const rows = deleteBatchRows();
      for (let from = lo; from <= hi; from += rows) remove.run(DATE, from, Math.min(hi, from + rows - 1));
    });
    return { onceMs, windowsMs };
  } finally {
    for (const copy of copies) rmSync(copy, { force: true });
  }
}

interface TimedResult {
  rows: number;
  /** The table's columns: as seeded, or widened (--wide). */
  columns: number;
  baselineMs: number;
  sqlite3Ms: number | null;
  sqlite3CpuMs: number | null;
  rangeDelete: { onceMs: number; windowsMs: number };
  archiveMs: number;
  /** CPU of the local runtime while archiving: all its threads, and the busiest one. */
  archiveCpu: { totalMs: number; busiestMs: number };
  rssBefore: number;
  rssPeak: number;
  peakBuffered: number;
  readsArchiving: number;
  readsPlanning: number;
  objectBytes: number;
  paddingBytes: number;
  gzip6Bytes: number;
  rawBytes: number;
  baselineRawBytes: number;
  parts: number;
  chunks: number;
  cleanupMs: number;
  rowsDeleted: number;
  rowsWritten: number;
  /** Summed over the chunks (archive) and ranges (cleanup), from the stack's log. */
  archiveStages: Record<string, number>;
  cleanupStages: Record<string, number>;
}

/** The `stagesMs` of every `event` line in the log, summed by stage (a stage named …Longest: its largest). */
function summedStages(log: string, event: string): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const line of log.split("\n")) {
    const start = line.indexOf(`{"event":"${event}"`);
    if (start === -1) continue;
    try {
      const stages = (JSON.parse(line.slice(start)) as { stagesMs?: Record<string, number> }).stagesMs ?? {};
      for (const [stage, ms] of Object.entries(stages)) {
        sums[stage] = stage.endsWith("Longest") ? Math.max(sums[stage] ?? 0, ms) : (sums[stage] ?? 0) + ms;
      }
    } catch {}
  }
  return sums;
}

async function benchOne(rows: number, columns = SEEDED_COLUMNS): Promise<TimedResult> {
  return withFreshStack(`bench-state-${rows}`, async (stack, stateDir) => {
    const file = localD1File(stateDir);
    console.log(`[${rows}] seeding ...`);
    await seedInWorker(DATE, rows, file);
    if (columns > SEEDED_COLUMNS) {
      console.log(`[${rows}] widening to ${columns} columns ...`);
      widen(file, columns);
    }
    console.log(`[${rows}] baselines ...`);
    const baseline = await nodeBaseline(file);
    const sqlite3 = sqlite3Baseline(file);
    const rangeDelete = rangeDeleteBaseline(file);

    console.log(`[${rows}] archiving ...`);
    const root = stack.pid;
    const rssBefore = workerdRssAnon(root);
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, workerdRssAnon(root));
    }, 100);
    const cpuBefore = workerdThreadCpu(root);
    const triggered = await admin("POST", `/admin/trigger-archive?date=${DATE}`, undefined, { idempotent: true });
    if (triggered.status !== 202)
      throw new Error(`trigger-archive answered ${triggered.status}: ${JSON.stringify(triggered.json)}`);
    const archivedRun = await until("archived");
    const archiveCpu = cpuBetween(cpuBefore, workerdThreadCpu(root));
    const archiveMs = Date.parse(archivedRun.timings.archivedAt ?? "") - Date.parse(archivedRun.timings.createdAt);
    clearInterval(sampler);
    rssPeak = Math.max(rssPeak, workerdRssAnon(root));

    console.log(`[${rows}] cleaning up ...`);
    const cleanupStarted = Date.now();
    const cleanup = await admin("POST", `/admin/trigger-cleanup?date=${DATE}`, undefined, { idempotent: true });
    if (cleanup.status !== 202) throw new Error(`trigger-cleanup answered ${cleanup.status}`);
    const run = await until("cleaned");
    const cleanupMs = Date.parse(run.timings.cleanedAt ?? "") - cleanupStarted;

    return {
      rows,
      columns,
      baselineMs: baseline.ms,
      sqlite3Ms: sqlite3?.ms ?? null,
      sqlite3CpuMs: sqlite3?.cpuMs ?? null,
      rangeDelete,
      archiveMs,
      archiveCpu,
      rssBefore,
      rssPeak,
      peakBuffered: run.bytes.peakBuffered,
      readsArchiving: run.rows.d1RowsReadArchiving,
      readsPlanning: run.rows.d1RowsReadPlanning,
      objectBytes: run.bytes.object,
      paddingBytes: run.bytes.padding,
      gzip6Bytes: baseline.gz,
      rawBytes: run.bytes.raw,
      baselineRawBytes: baseline.raw,
      parts: run.parts,
      chunks: run.chunks.total,
      cleanupMs,
      rowsDeleted: run.rows.deleted,
      rowsWritten: run.rows.d1RowsWrittenByCleanup,
      archiveStages: summedStages(stack.log(), "archive.chunk_archived"),
      cleanupStages: summedStages(stack.log(), "cleanup.range_cleaned"),
    };
  });
}

/**
 * The heap pass's limit: each isolate's V8 old space, in MiB. Production
 * gives an isolate 128 MB and the local runtime none, so without a limit V8
 * lets garbage pile up (a consumer's used heap reached 85 MiB at 1M and 198
 * MiB at 5M that way) and the peak says little. The limit is on old space
 * only; the used heap also counts the young generation (seen: up to 1 MiB
 * over the limit), so old space is held to 16 MiB for the whole used heap to
 * stay under the consumers' 24 MiB target. A day that finishes under it
 * shows they fit, garbage and all.
 */
const HEAP_LIMIT_MIB = 16;

/** Each consumer's peak used heap (bytes) under HEAP_LIMIT_MIB, or why the day did not finish under it. */
interface HeapResult {
  archive: number;
  cleanup: number;
  error?: string;
}

/**
 * Archives and cleans a day of `rows` again, on a fresh stack whose isolates
 * V8 holds to HEAP_LIMIT_MIB (limitIsolateHeaps), sampling each consumer's used heap every 100
 * ms through workerd's inspector. Timed apart from the main pass: garbage
 * collection under a small limit costs time that production's 128 MB does not.
 * Each step may take `timeoutMs` (a consumer that dies of the limit is retried
 * by the queue until its run fails, which can take long).
 */
async function benchHeap(
  rows: number,
  timeoutMs: number,
  {
    columns = SEEDED_COLUMNS,
    prepare = null,
    semiSpaceMib,
    configs = CONFIGS,
  }: {
    columns?: number;
    /** SQL run on the seeded day before archiving (DISTINCT_PATHS). */
    prepare?: string | null;
    /** V8's semi-space for the young generation, MiB; V8's own sizing when not given. */
    semiSpaceMib?: number;
    configs?: string[];
  } = {},
): Promise<HeapResult> {
  const unlimit = limitIsolateHeaps(HEAP_LIMIT_MIB, semiSpaceMib);
  const peaks: HeapResult = { archive: Number.NaN, cleanup: Number.NaN };
  try {
    return await withFreshStack(
      `bench-state-heap-${rows}`,
      async (stack, stateDir) => {
        console.log(`[${rows}, heap under ${HEAP_LIMIT_MIB} MiB] seeding ...`);
        await seedInWorker(DATE, rows, localD1File(stateDir));
        if (columns > SEEDED_COLUMNS) widen(localD1File(stateDir), columns);
        if (prepare) runSql(localD1File(stateDir), prepare);
        const inspector = await findInspectorPort(workerdPids(stack.pid));
        for (const [action, state, worker, key] of [
          ["archive", "archived", "path-stats-archive-consumer", "archive"],
          ["cleanup", "cleaned", "path-stats-cleanup-consumer", "cleanup"],
        ] as const) {
          console.log(`[${rows}, heap under ${HEAP_LIMIT_MIB} MiB] ${action} ...`);
          const sampler = await sampleHeaps(inspector, [worker]);
          const triggered = await admin("POST", `/admin/trigger-${action}?date=${DATE}`, undefined, {
            idempotent: true,
          });
          if (triggered.status !== 202) throw new Error(`trigger-${action} answered ${triggered.status}`);
          try {
            await until(state, timeoutMs);
          } finally {
            peaks[key] = (await sampler.stop())[worker] ?? Number.NaN;
          }
        }
        return peaks;
      },
      configs,
    );
  } catch (error) {
    return { ...peaks, error: error instanceof Error ? error.message : String(error) };
  } finally {
    unlimit();
  }
}

type Result = TimedResult & { heap: HeapResult };

/** What the seed design (bench/seed-design) did with a day, or how it failed. */
interface SeedDesignResult {
  rows: number;
  ms: number;
  rowsRead: number;
  /** The day as one JSON Lines string, held at once. */
  jsonlChars: number;
  objectBytes: number;
  error?: string;
}

/**
 * The design this product replaced, on the same rows and machine: one
 * request reads the day by LIMIT/OFFSET pages into memory and puts one
 * object. The local runtime does not stop it at 128 MB of heap; what it
 * holds at once is the day as one string (and the row objects before it).
 */
async function benchSeedDesign(rows: number): Promise<SeedDesignResult> {
  const configs = [join(ROOT, "bench", "seed-design", "wrangler.jsonc")];
  return withFreshStack(
    "bench-state-seed-design",
    async (_stack, stateDir) => {
      console.log(`[seed design, ${rows}] seeding ...`);
      await seedInWorker(DATE, rows, localD1File(stateDir));
      console.log(`[seed design, ${rows}] archiving in one request ...`);
      const started = Date.now();
      const response = await httpRequest(`${BASE_URL}/run?date=${DATE}`, {
        method: "POST",
        attempts: 1,
        timeoutMs: 30 * 60_000,
      }).catch((error: Error) => ({ status: 0, body: error.message }));
      if (response.status !== 200) {
        const error = response.body.split("\n")[0]?.slice(0, 160) ?? "";
        return { rows, ms: Date.now() - started, rowsRead: 0, jsonlChars: 0, objectBytes: 0, error };
      }
      return { rows, ...(JSON.parse(response.body) as Omit<SeedDesignResult, "rows" | "error">) };
    },
    configs,
  );
}

/**
 * What an operator polling the status costs the archive: three days of the
 * same size on one stack, archived one after another — the first and third
 * not polled (the end is read from the stack's own log, which costs the
 * runtime nothing), the second polled at 1 Hz as the demo does. The ratio is
 * the polled time over the mean of the two others, so a drift in the
 * machine's speed through the run shows as a difference between those two.
 */
async function benchPolling(rows: number): Promise<{ unpolledMs: [number, number]; polledMs: number }> {
  const dates = ["2026-01-16", "2026-01-17", "2026-01-18"] as const;
  return withFreshStack("bench-state-polling", async (stack, stateDir) => {
    const file = localD1File(stateDir);
    for (const date of dates) {
      console.log(`[polling] seeding ${rows} rows for ${date} ...`);
      await seedInWorker(date, rows, file);
    }
    const archiveMs: number[] = [];
    for (const [i, date] of dates.entries()) {
      const polled = i === 1;
      console.log(`[polling] archiving ${date}, ${polled ? "status polled at 1 Hz" : "not polled"} ...`);
      const triggered = await admin("POST", `/admin/trigger-archive?date=${date}`, undefined, { idempotent: true });
      const runId = (triggered.json as { runId?: string }).runId;
      if (triggered.status !== 202 || !runId) throw new Error(`trigger-archive answered ${triggered.status}`);
      for (;;) {
        if (polled) await archiveStatus<Status>(date);
        if (stack.log().includes(`"event":"archive.finalized","runId":"${runId}"`)) break;
        if (stack.log().includes(`"event":"archive.run_failed","runId":"${runId}"`)) throw new Error(`${date} failed`);
        await sleep(polled ? 1000 : 200);
      }
      const run = (await archiveStatus<Status>(date)).runs.at(-1) as RunView;
      archiveMs.push(Date.parse(run.timings.archivedAt ?? "") - Date.parse(run.timings.createdAt));
    }
    return { unpolledMs: [archiveMs[0] as number, archiveMs[2] as number], polledMs: archiveMs[1] as number };
  });
}

/** The workerd that wrangler runs: miniflare's dependency (there is no workerd on PATH). */
function workerdVersion(): string {
  try {
    const wrangler = createRequire(join(ROOT, "package.json")).resolve("wrangler/package.json");
    const miniflare = createRequire(wrangler).resolve("miniflare/package.json");
    return `workerd ${(createRequire(miniflare)("workerd/package.json") as { version: string }).version}`;
  } catch {
    return "workerd ?";
  }
}

function version(command: string): string {
  try {
    return execSync(command, { cwd: ROOT, encoding: "utf8" }).trim().split("\n").at(-1) ?? "?";
  } catch {
    return "?";
  }
}

/** The API's writes in one phase of the run: each INSERT's time as the API's client saw it, and as D1 did. */
interface WritePhase {
  inserts: number;
  failed: number;
  /** Round trip of POST /insert (client to the API Worker and back), ms. */
  p50: number;
  p99: number;
  max: number;
  /** D1's own time for the INSERT (meta.duration), ms. */
  d1P99: number;
  d1Max: number;
  /** The API Worker's wait for D1's answer, ms (D1's time, and its queue, and the runtime's thread). */
  waitP99: number;
}
type WritePhases = Record<"idle" | "archive" | "cleanup", WritePhase>;

/** What one archiver phase took: its wall time (trigger to done), and its consumers' D1 time and pacing waits. */
interface ArchiverPhase {
  wallMs: number;
  /** D1_MS_PER_SECOND as the consumers read it. */
  msPerSecond: number;
  d1Ms: number;
  waitMs: number;
  longestWaitMs: number;
}

/** The pacing totals the consumers logged (`<consumer>.d1_paced`, one line per invocation), summed. */
function pacingTotals(log: string, event: string, wallMs: number): ArchiverPhase {
  const sum: ArchiverPhase = { wallMs, msPerSecond: Number.NaN, d1Ms: 0, waitMs: 0, longestWaitMs: 0 };
  for (const line of log.split("\n")) {
    const start = line.indexOf(`{"event":"${event}"`);
    if (start === -1) continue;
    try {
      const paced = JSON.parse(line.slice(start)) as Omit<ArchiverPhase, "wallMs">;
      sum.msPerSecond = paced.msPerSecond;
      sum.d1Ms += paced.d1Ms;
      sum.waitMs += paced.waitMs;
      sum.longestWaitMs = Math.max(sum.longestWaitMs, paced.longestWaitMs);
    } catch {}
  }
  return sum;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted.length === 0
    ? Number.NaN
    : (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number);
}

/** The consumers' configs (archive, cleanup): D1_MS_PER_SECOND is theirs. */
const CONSUMER_CONFIGS = CONFIGS.slice(1);

/** A wrangler config as JSON, the parts the bench changes typed: the configs carry only whole-line comments. */
interface WranglerConfig {
  main: string;
  vars: Record<string, unknown>;
  d1_databases?: unknown[];
  services?: { binding: string; service: string; entrypoint?: string }[];
  env?: Record<string, { vars?: Record<string, unknown> }>;
}
function readConfigJson(path: string): WranglerConfig {
  const json = readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => !line.trim().startsWith("//"))
    .join("\n");
  return JSON.parse(json);
}

/** The rows of one cleanup window (DELETE_BATCH_ROWS), as the cleanup consumer's local config sets it. */
function deleteBatchRows(): number {
  return Number(readConfigJson(CONSUMER_CONFIGS[1] as string).vars.DELETE_BATCH_ROWS);
}

/** The pacing budget deployed to production (the archive consumer's, which configs.test.ts holds equal to cleanup's). */
function productionPacing(): number {
  return Number(readConfigJson(CONSUMER_CONFIGS[0] as string).env?.production?.vars?.D1_MS_PER_SECOND);
}

/**
 * The three Workers' configs with `change` made to the top level (local
 * development's) of those in `changed`: each written beside its own config
 * as `.wrangler.bench-<label>.jsonc`, so relative paths still hold, and
 * removed by `remove`.
 */
function configsWith(
  label: string,
  changed: readonly string[],
  change: (config: WranglerConfig, source: string) => void,
): { configs: string[]; remove(): void } {
  const written: string[] = [];
  const configs = CONFIGS.map((source) => {
    if (!changed.includes(source)) return source;
    const config = readConfigJson(source);
    change(config, source);
    const path = join(dirname(source), `.wrangler.bench-${label}.jsonc`);
    writeFileSync(path, JSON.stringify(config, null, 2));
    written.push(path);
    return path;
  });
  return {
    configs,
    remove: () => {
      for (const path of written) rmSync(path, { force: true });
    },
  };
}

/** The three Workers' configs with the consumers paced to `msPerSecond` (local development runs them unpaced). */
function pacedConfigs(msPerSecond: number): { configs: string[]; remove(): void } {
  return configsWith("paced", CONSUMER_CONFIGS, ({ vars }) => {
    vars.D1_MS_PER_SECOND = String(msPerSecond);
  });
}

/**
 * Where the API pass runs the archiver: "apart" is the production layout,
 * the archiver's three Workers in a `wrangler dev` of their own whose D1
 * statements run in the process of D1 and the API Worker
 * (bench/split-d1), so the API's inserts share D1 with the archiver but not
 * the thread its JSON, gzip and uploads run on; "together" is local
 * development's, all of it on one workerd thread.
 */
type ApiLayout = "apart" | "together";

/** What wrangler logs when it restarts a crashed workerd (it then goes on as if nothing happened). */
const RUNTIME_RESTARTED = "The Workers runtime crashed unexpectedly";

/** The port of the archiver's own `wrangler dev` in the "apart" layout. */
const ARCHIVER_APART_PORT = PORT + 1;

/**
 * The three Workers' configs for the "apart" layout: each Worker's entry
 * wrapped (bench/split-d1/entries) so its `env.D1` runs on the host's
 * Database entrypoint, its own D1 binding removed, the consumers paced to
 * `msPerSecond`.
 */
function apartConfigs(msPerSecond: number): { configs: string[]; remove(): void } {
  return configsWith("apart", CONFIGS, (config, source) => {
    const app = source.split("/").at(-2) as string;
    config.main = `../../bench/split-d1/entries/${app}.ts`;
    delete config.d1_databases;
    config.services = [
      ...(config.services ?? []),
      { binding: "D1_HOST", service: "path-stats-bench-d1-host", entrypoint: "Database" },
    ];
    if (CONSUMER_CONFIGS.includes(source)) config.vars.D1_MS_PER_SECOND = String(msPerSecond);
  });
}

/**
 * Runs `work` against the "apart" layout on fresh state: the archiver's
 * Workers (`archiverConfigs`) on ARCHIVER_APART_PORT, then D1's host and the
 * API Worker on the stack's port, both persisting to the same state (the
 * archiver's process holds R2 and the queues, the other D1). The stack given
 * to `work` has both logs, and stops both.
 */
async function withApartStack<T>(
  name: string,
  archiverConfigs: string[],
  work: (stack: BackgroundStack, stateDir: string) => Promise<T>,
): Promise<T> {
  const stateDir = join(ROOT, ".wrangler", name);
  rmSync(stateDir, { recursive: true, force: true });
  const archiver = await startBackgroundStack(stateDir, [], archiverConfigs, ARCHIVER_APART_PORT);
  let database: BackgroundStack | null = null;
  try {
    database = await startBackgroundStack(
      stateDir,
      [],
      [join(ROOT, "bench", "api-writes", "wrangler.jsonc"), join(ROOT, "bench", "split-d1", "wrangler.jsonc")],
    );
    const both: BackgroundStack = {
      pid: archiver.pid,
      log: () => `${archiver.log()}\n${database?.log() ?? ""}`,
      stop: async () => {
        await database?.stop();
        await archiver.stop();
      },
    };
    return await work(both, stateDir);
  } catch (error) {
    // Both logs whole: the last lines of D1's are mostly the API's inserts.
    mkdirSync(join(ROOT, ".artifacts"), { recursive: true });
    writeFileSync(join(ROOT, ".artifacts", `${name}-archiver.log`), archiver.log());
    writeFileSync(join(ROOT, ".artifacts", `${name}-database.log`), database?.log() ?? "");
    console.error(`--- last lines of the archiver's log ---\n${archiver.log().slice(-4000)}`);
    console.error(`both logs are in .artifacts/${name}-archiver.log and -database.log`);
    throw error;
  } finally {
    await database?.stop();
    await archiver.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

/** What a pass of the path statistics' cost measured (issue "Path statistics that outlive the rows"). */
interface StatsCostResult {
  rows: number;
  archiveMs: number;
  /** D1 rows read by the chunks, per archived row. */
  readsPerRow: number;
  /** The day's statistics as /admin/stats gave them afterwards (null without statistics). */
  stats: { requests: number; paths: number; pathsExact: boolean } | null;
  /** /admin/stats of the day before it was archived, counted from its rows in D1 (null without statistics). */
  hot: { ms: number; d1RowsRead: number; queries: number } | { ms: number; refused: string } | null;
}

/**
 * Archives a seeded day on a fresh stack of `configs`, after `prepare` has
 * changed the seeded rows (SQL run on the state's D1 file), and reads its
 * statistics back: the archive time against the main pass's, in the same
 * run.
 */
async function benchStatsCost(
  rows: number,
  name: string,
  configs: string[],
  prepare: string | null,
): Promise<StatsCostResult> {
  return withFreshStack(
    `bench-state-stats-${name}-${rows}`,
    async (_stack, stateDir) => {
      console.log(`[${rows}, ${name}] seeding ...`);
      await seedInWorker(DATE, rows, localD1File(stateDir));
      if (prepare) runSql(localD1File(stateDir), prepare);
      // The day's statistics counted from D1 before it is archived: what one /admin/stats call of a hot day costs.
      const hotStarted = Date.now();
      const hot = await admin("GET", `/admin/stats?from=${DATE}&to=${DATE}&group=day`);
      const hotMs = Date.now() - hotStarted;
      const hotCost = (hot.json as { cost?: { d1RowsRead: number; queries: number } }).cost;
      console.log(`[${rows}, ${name}] archiving ...`);
      const triggered = await admin("POST", `/admin/trigger-archive?date=${DATE}`, undefined, { idempotent: true });
      if (triggered.status !== 202) throw new Error(`trigger-archive answered ${triggered.status}`);
      const run = await until("archived");
      const archiveMs = Date.parse(run.timings.archivedAt ?? "") - Date.parse(run.timings.createdAt);
      console.log(`[${rows}, ${name}] archived in ${sec(archiveMs)} s`);
      const answer = await admin("GET", `/admin/stats?from=${DATE}&to=${DATE}`);
      const body = answer.json as { days?: { requests: number; pathsExact: boolean }[]; rows?: unknown[] };
      const day = body.days?.[0];
      return {
        rows,
        archiveMs,
        readsPerRow: run.rows.d1RowsReadArchiving / run.rows.archived,
        stats: answer.status === 200 && day ? { ...day, paths: body.rows?.length ?? 0 } : null,
        hot:
          hot.status === 200 && hotCost
            ? { ms: hotMs, ...hotCost }
            : hot.status === 422
              ? { ms: hotMs, refused: (hot.json as { error?: { message?: string } }).error?.message ?? "refused" }
              : null,
      };
    },
    configs,
  );
}

/** Runs `sql` on a stopped-for-writes local D1 file (the stack is idle between seeding and the trigger). */
function runSql(file: string, sql: string): void {
  const db = new DatabaseSync(file);
  try {
    db.exec("PRAGMA busy_timeout = 30000");
    db.exec(sql);
  } finally {
    db.close();
  }
}

/**
 * Gives every seeded row a path of its own, one the example's path rules
 * leave alone (no numeric segment, no query string): a day's worst case for
 * the statistics' bound.
 */
const DISTINCT_PATHS = "UPDATE traffic_events SET path = '/p' || id";

/**
 * What archiving costs the API whose database it shares: a Worker of the web
 * API (bench/api-writes) inserts rows of today into traffic_events at `rate`
 * per second, one statement each, on the same local D1 as the archiver,
 * while a closed day of `rows` rows waits (idle, 10 s), is archived, then is
 * cleaned, the consumers paced to `msPerSecond` (D1_MS_PER_SECOND), the
 * archiver run in `layout`. Every INSERT is timed; none may fail.
 */
async function benchApiWrites(
  rows: number,
  rate: number,
  msPerSecond: number,
  layout: ApiLayout,
): Promise<WritePhases & { archiver: Record<"archive" | "cleanup", ArchiverPhase> }> {
  const archiverConfigs = layout === "apart" ? apartConfigs(msPerSecond) : pacedConfigs(msPerSecond);
  const work = async (stack: BackgroundStack, stateDir: string) => {
    console.log(`[api writes, ${rows}] seeding ...`);
    await seedInWorker(DATE, rows, localD1File(stateDir));
    const today = new Date().toISOString().slice(0, 10);
    type Sample = { phase: keyof WritePhases; ms: number; d1Ms: number; waitMs: number; ok: boolean };
    const samples: Sample[] = [];
    let phase: keyof WritePhases = "idle";
    let writing = true;
    const writer = (async () => {
      const inflight = new Set<Promise<void>>();
      let next = performance.now();
      while (writing) {
        const at = phase;
        const started = performance.now();
        const sent = httpRequest(`${BASE_URL}/insert?date=${today}`, {
          method: "POST",
          attempts: 1,
          timeoutMs: 60_000,
        })
          .then(
            (response) => {
              // A failed request may answer an error page, not the API's JSON: a failure, not a crash of the bench.
              let body: { ok?: boolean; d1Ms?: number; waitMs?: number } = {};
              try {
                body = JSON.parse(response.body);
              } catch {}
              const ok = response.status === 200 && body.ok === true;
              if (!ok && samples.filter((s) => !s.ok).length < 3) {
                console.log(
                  `[api writes] an insert in ${at} failed: ${response.status} ${response.body.slice(0, 200)}`,
                );
              }
              const [d1Ms, waitMs] = [body.d1Ms ?? Number.NaN, body.waitMs ?? Number.NaN];
              samples.push({ phase: at, ms: performance.now() - started, d1Ms, waitMs, ok });
            },
            () => {
              samples.push({
                phase: at,
                ms: performance.now() - started,
                d1Ms: Number.NaN,
                waitMs: Number.NaN,
                ok: false,
              });
            },
          )
          .finally(() => inflight.delete(sent));
        inflight.add(sent);
        next += 1000 / rate;
        await sleep(Math.max(0, next - performance.now()));
      }
      await Promise.all(inflight);
    })();
    // Apart, the archiver's own process must answer too: if it died, its events would never come.
    const answering = async () =>
      (await isUp()) && (layout === "together" || (await isUp(`http://127.0.0.1:${ARCHIVER_APART_PORT}`)));
    /**
     * Waits for a line of the stack's log; fails (with the log's last lines) if the stack stops
     * answering, or if wrangler restarted a crashed runtime: a pass with a crash in it measures the crash.
     */
    const until = async (event: string) => {
      let unanswered = 0;
      for (let polls = 1; ; polls++) {
        const log = stack.log();
        if (log.includes(RUNTIME_RESTARTED)) throw new Error(`a workerd process crashed while waiting for ${event}`);
        if (log.includes(event)) return;
        await sleep(100);
        if (polls % 50 === 0) unanswered = (await answering()) ? 0 : unanswered + 1;
        if (unanswered === 3) throw new Error(`the stack stopped answering while waiting for ${event}`);
      }
    };
    let archiveMs = 0;
    let cleanupMs = 0;
    try {
      await sleep(10_000);
      console.log(`[api writes, ${rows}] archiving while the API writes ${rate}/s ...`);
      phase = "archive";
      const archiveStarted = performance.now();
      const archived = await admin("POST", `/admin/trigger-archive?date=${DATE}`, undefined, { idempotent: true });
      const runId = (archived.json as { runId?: string }).runId;
      if (archived.status !== 202 || !runId) throw new Error(`trigger-archive answered ${archived.status}`);
      await until(`"event":"archive.finalized","runId":"${runId}"`);
      archiveMs = performance.now() - archiveStarted;
      console.log(`[api writes, ${rows}] cleaning up while the API writes ${rate}/s ...`);
      phase = "cleanup";
      const cleanupStarted = performance.now();
      const cleaning = await admin("POST", `/admin/trigger-cleanup?date=${DATE}`, undefined, { idempotent: true });
      if (cleaning.status !== 202) throw new Error(`trigger-cleanup answered ${cleaning.status}`);
      await until(`"event":"cleanup.date_cleaned","table":"traffic_events","date":"${DATE}"`);
      cleanupMs = performance.now() - cleanupStarted;
    } finally {
      // The writer stops whatever happened: left writing, it would go on into the next stack on this port.
      writing = false;
      await writer;
    }
    const of = (name: keyof WritePhases): WritePhase => {
      const mine = samples.filter((s) => s.phase === name);
      const sorted = (value: (s: Sample) => number) =>
        mine
          .filter((s) => s.ok)
          .map(value)
          .sort((x, y) => x - y);
      const ms = sorted((s) => s.ms);
      const d1 = sorted((s) => s.d1Ms);
      const wait = sorted((s) => s.waitMs);
      return {
        inserts: mine.length,
        failed: mine.filter((s) => !s.ok).length,
        p50: quantile(ms, 0.5),
        p99: quantile(ms, 0.99),
        max: ms.at(-1) ?? Number.NaN,
        d1P99: quantile(d1, 0.99),
        d1Max: d1.at(-1) ?? Number.NaN,
        waitP99: quantile(wait, 0.99),
      };
    };
    const archiver = {
      archive: pacingTotals(stack.log(), "archive.d1_paced", archiveMs),
      cleanup: pacingTotals(stack.log(), "cleanup.d1_paced", cleanupMs),
    };
    if (samples.some((s) => !s.ok)) {
      // The stack's whole log, to see what the failed inserts met.
      mkdirSync(join(ROOT, ".artifacts"), { recursive: true });
      writeFileSync(join(ROOT, ".artifacts", "bench-api-writes.log"), stack.log());
      console.log("[api writes] some inserts failed: the stack's log is in .artifacts/bench-api-writes.log");
    }
    return { idle: of("idle"), archive: of("archive"), cleanup: of("cleanup"), archiver };
  };
  try {
    return layout === "apart"
      ? await withApartStack("bench-state-api-writes", archiverConfigs.configs, work)
      : await withFreshStack("bench-state-api-writes", work, [
          join(ROOT, "bench", "api-writes", "wrangler.jsonc"),
          ...archiverConfigs.configs,
        ]);
  } finally {
    archiverConfigs.remove();
  }
}

/**
 * Tries of the API pass per size. The process of D1 and the API sometimes
 * died mid-pass: wrangler 4.124 ended on one failed proxied request (patched
 * now: patches/, docs/benchmark.md, session 16); why that request fails is
 * not known. A second try measures the size instead of the whole bench
 * failing, and the output says the first one died.
 */
const API_PASS_TRIES = 2;

/** The API pass of one size as text (apiWritesText), tried up to API_PASS_TRIES times; `finished` false if none finished. */
async function apiWritesPass(
  rows: number,
  rate: number,
  pacing: number,
  layout: ApiLayout,
): Promise<{ text: string; finished: boolean }> {
  const failures: string[] = [];
  for (let attempt = 1; attempt <= API_PASS_TRIES; attempt++) {
    try {
      const text = apiWritesText(rows, rate, layout, await benchApiWrites(rows, rate, pacing, layout));
      const died = failures.map((reason, i) => `Try ${i + 1} of this pass did not finish: ${reason}`);
      return { text: [text, ...died].join("\n\n"), finished: true };
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      failures.push(reason);
      console.error(`[api writes, ${rows}] try ${attempt} of ${API_PASS_TRIES} did not finish: ${reason}`);
    }
  }
  return {
    text: `The API's writes at ${rate}/s while a closed day of ${rows.toLocaleString("en-US")} rows is archived and cleaned: did not finish in ${API_PASS_TRIES} tries (${failures.join("; ")}).`,
    finished: false,
  };
}

/** The API-writes table, and which of #24's latency targets it meets. */
function apiWritesText(
  rows: number,
  rate: number,
  layout: ApiLayout,
  phases: WritePhases & { archiver: Record<"archive" | "cleanup", ArchiverPhase> },
): string {
  const ms = (n: number) => (Number.isNaN(n) ? "n/a" : n.toFixed(1));
  const idle = phases.idle.p99;
  const allowed = Math.max(2 * idle, idle + 20);
  const lines = (["idle", "archive", "cleanup"] as const).map((name) => {
    const p = phases[name];
    const target = name === "idle" ? "" : p.p99 <= allowed ? "met" : "missed";
    return `| ${name} | ${p.inserts} | ${p.failed} | ${ms(p.p50)} | ${ms(p.p99)} | ${ms(p.max)} | ${ms(p.waitP99)} | ${ms(p.d1P99)} / ${ms(p.d1Max)} | ${target} |`;
  });
  return [
    `The API's writes at ${rate}/s (bench/api-writes: one INSERT of today's row per request, on the same local D1) while a closed day of ${rows.toLocaleString("en-US")} rows waits, is archived, then cleaned; ${layout === "apart" ? "the archiver in a `wrangler dev` of its own, its D1 statements run in the process of D1 and the API (bench/split-d1: D1 shared, the archiver's CPU not, as deployed)" : "the archiver and the API on one workerd thread (local development's layout)"}. Target: p99 during archive and cleanup at most ${ms(allowed)} ms (2× idle p99, or idle + 20 ms, whichever is larger).`,
    "",
    "| phase | inserts | failed | p50 ms | p99 ms | max ms | the API Worker's wait for D1, p99 ms | D1's own time p99 / max ms | p99 target |",
    "|---|---|---|---|---|---|---|---|---|",
    ...lines,
    "",
    `The archiver in those phases (D1_MS_PER_SECOND ${phases.archiver.archive.msPerSecond}${phases.archiver.archive.msPerSecond >= 1000 ? ": pacing off" : ""}; D1's own time and the pacer's waits summed over the consumers' invocations):`,
    "",
    "| phase | wall | D1's own time | share of wall | pacing waits | longest wait |",
    "|---|---|---|---|---|---|",
    ...(["archive", "cleanup"] as const).map((name) => {
      const a = phases.archiver[name];
      const sec = (n: number) => `${(n / 1000).toFixed(1)} s`;
      return `| ${name} | ${sec(a.wallMs)} | ${sec(a.d1Ms)} | ${((100 * a.d1Ms) / a.wallMs).toFixed(1)}% | ${sec(a.waitMs)} | ${a.longestWaitMs} ms |`;
    }),
  ].join("\n");
}

/**
 * The path statistics' cost: each size's day archived without them and with
 * them, back to back on fresh stacks, `pairsPerSize` times (one pair's ratio
 * moves by ±0.1 between runs of one code on this shared machine; the median
 * is what is judged); then a day of the smallest size where every row has a
 * path of its own, timed and under the heap limit; and each seeded day under
 * the heap limit with statistics and without them.
 */
async function benchStatsPass(sizes: readonly number[], pairsPerSize: number): Promise<StatsPass> {
  const noStats = configsWith("no-stats", CONFIGS, ({ vars }) => {
    vars.ARCHIVE_STATS = undefined;
  });
  try {
    const pairs: StatsPass["pairs"] = [];
    for (const size of sizes) {
      for (let i = 0; i < pairsPerSize; i++) {
        const without = await benchStatsCost(size, `without-${i + 1}`, noStats.configs, null);
        pairs.push({ without, with: await benchStatsCost(size, `with-${i + 1}`, CONFIGS, null) });
      }
    }
    const rows = Math.min(...sizes);
    const timed = await benchStatsCost(rows, "distinct-paths", CONFIGS, DISTINCT_PATHS);
    const timeout = (r: number) => 5 * timed.archiveMs * (r / rows) + 60_000;
    const heaps: StatsPass["heaps"] = [];
    for (const [day, size, prepare] of [
      ["seeded", rows, null],
      ["distinct paths", rows, DISTINCT_PATHS],
      ...sizes.filter((s) => s !== rows).map((s) => ["seeded", s, null] as const),
    ] as const) {
      // The seeded day without statistics too: what the archive's own garbage reads, beside theirs.
      if (!prepare) {
        const heap = await benchHeap(size, timeout(size), { configs: noStats.configs });
        heaps.push({ day, rows: size, statistics: false, youngHeld: false, heap });
      }
      for (const semiSpaceMib of [undefined, YOUNG_LIMIT_MIB]) {
        heaps.push({
          day,
          rows: size,
          statistics: true,
          youngHeld: semiSpaceMib !== undefined,
          heap: await benchHeap(size, timeout(size), { prepare, semiSpaceMib }),
        });
      }
    }
    return { pairs, distinct: timed, heaps };
  } finally {
    noStats.remove();
  }
}

interface StatsPass {
  pairs: { without: StatsCostResult; with: StatsCostResult }[];
  distinct: StatsCostResult;
  /** Days under the heap limit: old space held, and the young generation too or not; the seeded days also without statistics. */
  heaps: { day: string; rows: number; statistics: boolean; youngHeld: boolean; heap: HeapResult }[];
}

/** The young generation's limit (V8's semi-space, MiB) of the heap passes that hold it too. */
const YOUNG_LIMIT_MIB = 1;

const mib = (n: number) => (Number.isNaN(n) ? "n/a" : (n / 1024 / 1024).toFixed(1));
const sec = (ms: number | null) => (ms === null ? "n/a" : (ms / 1000).toFixed(1));
const met = (ok: boolean) => (ok ? "met" : "missed");

function statsPassText({ pairs, distinct, heaps }: StatsPass): string {
  const statsOf = (r: StatsCostResult) =>
    r.stats
      ? `${r.stats.requests.toLocaleString("en-US")} / ${r.stats.paths}${r.stats.pathsExact ? "" : " (named rows not all exact)"}`
      : "none";
  const sizes = [...new Set(pairs.map((pair) => pair.without.rows))];
  const pairsOf = (rows: number) => pairs.filter((pair) => pair.without.rows === rows);
  const median = (values: number[]) =>
    quantile(
      [...values].sort((a, b) => a - b),
      0.5,
    );
  const withoutOf = (rows: number) => median(pairsOf(rows).map((pair) => pair.without.archiveMs));
  const distinctRatio = distinct.archiveMs / withoutOf(distinct.rows);
  const same = (values: string[]) => (new Set(values).size === 1 ? (values[0] as string) : values.join(", "));
  return [
    `Path statistics (issue #23): the same seeded day archived without them (ARCHIVE_STATS removed) and with them, back to back, each on a fresh stack, ${pairs.length / sizes.length} pair(s) per size; then a day where every row has a path of its own. Target: the archive with statistics within 1.25× of the archive without, judged on the median pair's ratio (one pair's moves by about ±0.1 between runs of one code here); D1 reads per row unchanged (the statistics are counted from the rows the archive reads).`,
    "",
    "| rows | archive s: without / with statistics, each pair | with / without: median (min–max) | target ≤ 1.25× | D1 reads / row (chunks): without / with | requests counted / rows kept |",
    "|---|---|---|---|---|---|",
    ...sizes.map((rows) => {
      const of = pairsOf(rows);
      const ratios = of.map(({ without, with: withStats }) => withStats.archiveMs / without.archiveMs);
      const ratio = median(ratios);
      const times = of.map(({ without, with: withStats }) => `${sec(without.archiveMs)} / ${sec(withStats.archiveMs)}`);
      const reads = same(
        of.map(({ without, with: w }) => `${without.readsPerRow.toFixed(4)} / ${w.readsPerRow.toFixed(4)}`),
      );
      return `| ${rows.toLocaleString("en-US")} | ${times.join(", ")} | ${ratio.toFixed(2)}x (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}) | ${met(ratio <= 1.25)} | ${reads} | ${same(of.map(({ with: w }) => statsOf(w)))} |`;
    }),
    `| ${distinct.rows.toLocaleString("en-US")}, a distinct path per row | – / ${sec(distinct.archiveMs)} | ${distinctRatio.toFixed(2)}x (against the median without) | ${met(distinctRatio <= 1.25)} | – / ${distinct.readsPerRow.toFixed(4)} | ${statsOf(distinct)} |`,
    "",
    ...sizes
      .map((rows) => pairsOf(rows)[0] as StatsPass["pairs"][number])
      .flatMap(({ with: w }) =>
        w.hot && "refused" in w.hot
          ? [
              `One \`/admin/stats\` call of the ${w.rows.toLocaleString("en-US")}-row day while it was hot: refused in ${sec(w.hot.ms)} s, as documented: ${w.hot.refused}`,
            ]
          : w.hot
            ? [
                `One \`/admin/stats\` call of the ${w.rows.toLocaleString("en-US")}-row day while it was hot (counted from its rows in D1, before archiving): ${sec(w.hot.ms)} s, ${w.hot.d1RowsRead.toLocaleString("en-US")} D1 rows read in ${w.hot.queries} queries; after archiving, from its rollups: a few hundred rows.`,
              ]
            : [],
      ),
    "",
    "",
    `Days under the heap limit (old space held to ${HEAP_LIMIT_MIB} MiB; target: each consumer's used heap, garbage included, at most 24 MiB), with statistics and, for the seeded days, without them (ARCHIVE_STATS removed); and again with V8's young generation held to a semi-space of ${YOUNG_LIMIT_MIB} MiB, where the used heap counts little garbage beside old space:`,
    "",
    "| day | rows | statistics | young generation | archive consumer MiB | cleanup consumer MiB | target 24 MiB |",
    "|---|---|---|---|---|---|---|",
    ...heaps.map(({ day, rows, statistics, youngHeld, heap }) => {
      const cells = `| ${day} | ${rows.toLocaleString("en-US")} | ${statistics ? "with" : "without"} | ${youngHeld ? `held to ${YOUNG_LIMIT_MIB} MiB` : "V8's default"} |`;
      return heap.error
        ? `${cells} did not finish: ${heap.error.replaceAll("|", "/")} | | missed |`
        : `${cells} ${mib(heap.archive)} | ${mib(heap.cleanup)} | ${met(Math.max(heap.archive, heap.cleanup) <= 24 * 1024 * 1024)} |`;
    }),
  ].join("\n");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: cliArgs(),
    options: {
      sizes: { type: "string", default: "1000000,5000000" },
      wide: { type: "string" },
      // The API's inserts per second while the archiver works (benchApiWrites). 50: every request to
      // the local runtime grows its two workerd processes by about 20 KB each, and at 200/s the
      // process of D1 and the API died in three of three 1M passes (docs/benchmark.md, session 14).
      "api-writes": { type: "string", default: "50" },
      // The consumers' D1_MS_PER_SECOND while the API writes (default: production's; 1000 is off).
      "d1-ms-per-second": { type: "string" },
      // Where the API pass runs the archiver (ApiLayout): apart (production's layout) or together.
      "api-layout": { type: "string", default: "apart" },
      // --only api-writes or --only stats: that part alone, printed, bench/RESULTS.md left as it is.
      only: { type: "string" },
      // How many times each size's day is archived without statistics and with them (benchStatsPass).
      "stats-pairs": { type: "string", default: "3" },
    },
  });
  const rate = Number(values["api-writes"]);
  const pacing = values["d1-ms-per-second"] === undefined ? productionPacing() : Number(values["d1-ms-per-second"]);
  if (!(Number.isInteger(pacing) && pacing >= 10 && pacing <= 1000))
    throw new Error(`--d1-ms-per-second must be an integer from 10 to 1000, got ${values["d1-ms-per-second"]}`);
  if (!(rate > 0 && rate <= 2000)) throw new Error(`--api-writes must be inserts per second (1 to 2000), got ${rate}`);
  const layout = values["api-layout"] as ApiLayout;
  if (layout !== "apart" && layout !== "together")
    throw new Error(`--api-layout takes apart or together, got ${values["api-layout"]}`);
  if (!(await portIsFree(ARCHIVER_APART_PORT)))
    throw new Error(`port ${ARCHIVER_APART_PORT} is taken: the API pass runs the archiver there`);
  if (values.only !== undefined && values.only !== "api-writes" && values.only !== "stats")
    throw new Error(`--only takes api-writes or stats, got ${values.only}`);
  const statsPairs = Number(values["stats-pairs"]);
  if (!(Number.isInteger(statsPairs) && statsPairs >= 1 && statsPairs <= 9))
    throw new Error(`--stats-pairs must be an integer from 1 to 9, got ${values["stats-pairs"]}`);
  const sizes = (values.sizes ?? "").split(",").map(Number);
  if (sizes.some((n) => !Number.isInteger(n) || n < 1))
    throw new Error(`--sizes must be positive integers, got ${values.sizes}`);
  // --wide N: each size again with the table widened to N columns (D1 allows 100).
  const wide = values.wide === undefined ? null : Number(values.wide);
  if (wide !== null && (!Number.isInteger(wide) || wide <= SEEDED_COLUMNS || wide > 100))
    throw new Error(`--wide must be an integer from ${SEEDED_COLUMNS + 1} to 100, got ${values.wide}`);
  if (!(await portIsFree(PORT)))
    throw new Error(`port ${PORT} is taken: stop pnpm dev (the bench starts its own stack on fresh state)`);

  if (values.only === "stats") {
    console.log(`\n${statsPassText(await benchStatsPass(sizes, statsPairs))}\n`);
    return;
  }
  const apiWrites: string[] = [];
  for (const size of sizes) {
    const pass = await apiWritesPass(size, rate, pacing, layout);
    apiWrites.push(pass.text);
    // The rest of the bench still runs; its exit says a pass is missing.
    if (!pass.finished) process.exitCode = 1;
  }
  if (values.only === "api-writes") {
    console.log(`\n${apiWrites.join("\n\n")}\n`);
    return;
  }

  const results: Result[] = [];
  for (const size of sizes) {
    for (const columns of wide === null ? [SEEDED_COLUMNS] : [SEEDED_COLUMNS, wide]) {
      const timed = await benchOne(size, columns);
      // Far longer than either step took without a limit, short of the default wait.
      const heap = await benchHeap(size, 5 * Math.max(timed.archiveMs, timed.cleanupMs) + 60_000, { columns });
      results.push({ ...timed, heap });
    }
  }
  const statsText = statsPassText(await benchStatsPass(sizes, statsPairs));
  const pollingRows = Math.min(...sizes);
  const polling = await benchPolling(pollingRows);
  // The seed design up to the smallest size: its OFFSET pages read O(n²) rows, and it holds the whole day.
  const seedDesign: SeedDesignResult[] = [];
  for (const rows of new Set([100_000, 300_000, pollingRows].filter((n) => n <= pollingRows))) {
    seedDesign.push(
      await benchSeedDesign(rows).catch(
        (error: Error): SeedDesignResult => ({
          rows,
          ms: 0,
          rowsRead: 0,
          jsonlChars: 0,
          objectBytes: 0,
          error: error.message,
        }),
      ),
    );
  }

  const columns = [
    "rows",
    "archive s",
    "baseline s: Node",
    "ratio",
    "baseline s: sqlite3 -json, gzip -6",
    "ratio",
    "CPU s: archive, workerd (busiest thread) / sqlite3 + gzip",
    "RssAnon peak MiB (before)",
    `heap peak MiB, old space held to ${HEAP_LIMIT_MIB} MiB: archive / cleanup consumer`,
    "consumer peak buffered MiB",
    "D1 reads / row: archive + plan",
    "object MiB",
    "gzip -6 MiB",
    "size ratio",
    "padding MiB",
    "parts (chunks)",
    "cleanup s",
    "rows written / row deleted",
  ];
  const header = `| ${columns.join(" | ")} |`;
  const rule = `|${columns.map(() => "---").join("|")}|`;
  const label = (r: Result) =>
    `${r.rows.toLocaleString("en-US")}${r.columns > SEEDED_COLUMNS ? ` × ${r.columns} columns` : ""}`;
  const lines = results.map((r) =>
    [
      label(r),
      sec(r.archiveMs),
      sec(r.baselineMs),
      `${(r.archiveMs / r.baselineMs).toFixed(2)}x`,
      sec(r.sqlite3Ms),
      r.sqlite3Ms === null ? "n/a" : `${(r.archiveMs / r.sqlite3Ms).toFixed(2)}x`,
      `${sec(r.archiveCpu.totalMs)} (${sec(r.archiveCpu.busiestMs)}) / ${sec(r.sqlite3CpuMs)}`,
      `${mib(r.rssPeak)} (${mib(r.rssBefore)})`,
      r.heap.error
        ? `did not finish: ${r.heap.error.replaceAll("|", "/")}`
        : `${mib(r.heap.archive)} / ${mib(r.heap.cleanup)}`,
      mib(r.peakBuffered),
      `${(r.readsArchiving / r.rows).toFixed(4)} + ${(r.readsPlanning / r.rows).toFixed(4)}`,
      mib(r.objectBytes),
      mib(r.gzip6Bytes),
      `${(r.objectBytes / r.gzip6Bytes).toFixed(3)}x`,
      mib(r.paddingBytes),
      `${r.parts} (${r.chunks})`,
      sec(r.cleanupMs),
      (r.rowsWritten / r.rowsDeleted).toFixed(3),
    ].join(" | "),
  );
  const table = [header, rule, ...lines.map((l) => `| ${l} |`)].join("\n");
  const unpolledMean = (polling.unpolledMs[0] + polling.unpolledMs[1]) / 2;
  const pollingLine =
    `Status polled at 1 Hz during a ${pollingRows.toLocaleString("en-US")}-row archive: ${sec(polling.polledMs)} s, ` +
    `against ${sec(polling.unpolledMs[0])} s and ${sec(polling.unpolledMs[1])} s not polled (before and after it): ` +
    `${(polling.polledMs / unpolledMean).toFixed(3)}x their mean.`;
  const stageLines = results.map((r) => {
    const list = (stages: Record<string, number>) =>
      Object.entries(stages)
        .map(([stage, ms]) => (stage.endsWith("Longest") ? `${stage} ${ms.toFixed(1)} ms` : `${stage} ${sec(ms)}`))
        .join(", ");
    return `- ${label(r)} rows: archive chunks (s, summed over chunks): ${list(r.archiveStages)}; cleanup ranges: ${list(r.cleanupStages)}`;
  });
  const ours = results.find((r) => r.rows === pollingRows && r.columns === SEEDED_COLUMNS) as Result;
  const seedDesignText = [
    "The seed design (bench/seed-design: one request, LIMIT 1000 OFFSET n pages, the day merged in memory, one put), on the same machine:",
    "",
    "| design | rows | time s | D1 rows read / row | held at once MiB | object MiB |",
    "|---|---|---|---|---|---|",
    ...seedDesign.map((d) =>
      d.error
        ? `| seed design | ${d.rows.toLocaleString("en-US")} | failed after ${sec(d.ms)} s: ${d.error.replaceAll("|", "/")} | | | |`
        : `| seed design | ${d.rows.toLocaleString("en-US")} | ${sec(d.ms)} | ${(d.rowsRead / d.rows).toFixed(1)} | ${mib(d.jsonlChars)} (the day as one string) | ${mib(d.objectBytes)} |`,
    ),
    `| this archiver | ${ours.rows.toLocaleString("en-US")} | ${sec(ours.archiveMs)} | ${((ours.readsArchiving + ours.readsPlanning) / ours.rows).toFixed(4)} | ${mib(ours.peakBuffered)} (its buffers; heap peak ${mib(ours.heap.archive)} used under ${HEAP_LIMIT_MIB} MiB) | ${mib(ours.objectBytes)} |`,
  ].join("\n");
  const d1Text = [
    `D1's own time the archiver took (\`meta.duration\`, summed over its statements), the longest single statement or batch (the longest an API statement waits behind one), and the same rows deleted by id range in SQLite itself (node:sqlite on a copy of the day: at once / in committed windows of ${deleteBatchRows()}). Targets (issue #24): no statement over 100 ms; cleanup's D1 time at most 2.5× the windowed range delete; cleanup's wall time at most 0.6× the archive's.`,
    "",
    "| rows | archive: D1 s | longest ms | cleanup: D1 s | longest ms | range delete s: once / windows | cleanup D1 / windows | cleanup wall / archive wall | targets: 100 ms / 2.5× / 0.6× |",
    "|---|---|---|---|---|---|---|---|---|",
    ...results.map((r) => {
      const a = r.archiveStages;
      const c = r.cleanupStages;
      const longest = Math.max(a.d1Longest ?? 0, c.deleteD1Longest ?? 0);
      const d1Ratio = (c.deleteD1 ?? 0) / r.rangeDelete.windowsMs;
      const wallRatio = r.cleanupMs / r.archiveMs;
      return `| ${label(r)} | ${sec(a.d1Query ?? 0)} | ${(a.d1Longest ?? 0).toFixed(1)} | ${sec(c.deleteD1 ?? 0)} | ${(c.deleteD1Longest ?? 0).toFixed(1)} | ${sec(r.rangeDelete.onceMs)} / ${sec(r.rangeDelete.windowsMs)} | ${d1Ratio.toFixed(2)}x | ${wallRatio.toFixed(2)}x | ${met(longest <= 100)} / ${met(d1Ratio <= 2.5)} / ${met(wallRatio <= 0.6)} |`;
    }),
  ].join("\n");
  const stagesText = `Where the time went (each chunk's and range's own clock, local runtime):\n\n${stageLines.join("\n")}`;
  const apiWritesSection = apiWrites.join("\n\n");
  console.log(
    `\n${table}\n\n${pollingLine}\n\n${apiWritesSection}\n\n${d1Text}\n\n${statsText}\n\n${seedDesignText}\n\n${stagesText}\n`,
  );
  for (const r of results) {
    if (r.rawBytes !== r.baselineRawBytes)
      console.log(`note: archive JSON Lines ${r.rawBytes} bytes, baseline ${r.baselineRawBytes} bytes`);
  }

  const machine = `${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${mib(totalmem())} MiB RAM, ${process.platform}`;
  const report = `# Benchmark results

Command: \`pnpm bench -- --sizes ${sizes.join(",")}${wide === null ? "" : ` --wide ${wide}`}${values["d1-ms-per-second"] === undefined ? "" : ` --d1-ms-per-second ${pacing}`}\` (scripts/bench.ts), run ${new Date().toISOString()}.

Machine: ${machine}. Node.js ${process.version}, wrangler ${version("wrangler --version")}, ${workerdVersion()}.

Each size runs on a fresh local stack (\`wrangler dev\` of the three Workers, PART_SIZE_BYTES 5 MiB,
PARTS_PER_CHUNK 4, PAGE_ROWS 5000, DELETE_BATCH_ROWS ${deleteBatchRows()}) and fresh state, seeded with \`pnpm seed\`'s
realistic rows for one date.

${table}

${pollingLine}

${apiWritesSection}

${d1Text}

${statsText}

${seedDesignText}

${stagesText}

- **stages**: d1Wait is waiting for a D1 page (fetched one page ahead), d1Query D1's own time running the page
  queries (its \`meta.duration\`: locally on the same thread as the consumer), encode is rows to JSON Lines, digest the
  SHA-256, compressWait the reading side waiting on the compressor, upload the part uploads, total the chunk's wall
  time; the reading and uploading sides overlap, so stages add up to more than total. Cleanup: verify is the
  read-back check of the range's member, read the second read that feeds the deletes, delete the DELETE statements.
- **archive s**: from the run's planning (\`created_at\`, at \`POST /admin/trigger-archive\`) to its \`archived_at\`:
  planning, every chunk, finalization. Cleanup likewise, from the trigger to the run's \`cleaned_at\`.
- **baseline**: the same rows as JSON Lines (the same bytes the archive holds) through zlib level 6, in one Node stream
  (node:sqlite → JSON.stringify → zlib), measured in the same run; \`sqlite3 -json | gzip -6\` where sqlite3 is installed.
- **CPU s**: CPU time (user + system, from /proc) of the local runtime's threads from the trigger to archived, and
  in brackets its busiest thread's; against it, the CPU of the sqlite3 and gzip processes. The local runtime runs
  D1, R2 and all three Workers on one thread, so D1's queries and the consumer's gzip take turns on one core,
  where the baseline's two processes run side by side on two.
- **RssAnon peak**: the largest RssAnon of the stack's workerd processes sampled every 100 ms while archiving
  (anonymous memory; SQLite's file pages are not counted); in brackets, before the archive started.
- **heap peak, old space held to ${HEAP_LIMIT_MIB} MiB**: the same day archived and cleaned again on a fresh stack whose
  isolates V8 holds to ${HEAP_LIMIT_MIB} MiB of old space (the used heap also counts the young generation, so this keeps
  it under the consumers' 24 MiB target); the largest used JS heap of the archive
  consumer's isolate while archiving, and of the cleanup consumer's while cleaning, sampled every 100 ms through
  workerd's inspector (\`Runtime.getHeapUsage\`), garbage not yet collected included. Without a limit (the local
  runtime sets none; production 128 MB) V8 lets garbage pile up and the peak says little. A consumer over the limit
  dies and the day does not finish: the cell says so. n/a when the isolate's inspector never answered. The timed
  figures come from the pass without a limit. \`pnpm heap-profile\` takes heap snapshots for the live part.
- **consumer peak buffered**: the largest of the chunks' own reports (part buffer plus the page being compressed and the one
  being fetched).
- **D1 reads / row**: D1's own \`rows_read\` over archived rows, for the chunk reads and for planning (probes of the (event_date, id) index
  spread over the day's id span, plus a gzip-size sample).
- **size ratio**: the archive object over gzip -6 of the same JSON Lines; the difference is the padding of each non-final
  chunk's last part and the gzip member headers.
- **rows written / row deleted**: D1's \`rows_written\` for the cleanup's DELETEs and their progress counts, per row deleted
  (each deleted row also removes its (event_date, id) index entry).
`;
  writeFileSync(join(ROOT, "bench", "RESULTS.md"), report);
  console.log("written to bench/RESULTS.md");
}

main().catch((error) => {
  console.error(`bench failed: ${error instanceof Error ? error.message : error}`);
  process.exitCode = 1;
});
