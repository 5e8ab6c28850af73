/**
 * `pnpm demo`: the main job, locally, end to end. Starts the stack (or uses
 * a running one), seeds a day, archives it with progress, verifies the
 * object independently of the archiver (wrangler's own download, streamed
 * gunzip, line count, a sample of rows compared with D1 read straight from
 * its SQLite file), cleans up, and reports. Stops what it started.
 *
 *   pnpm demo -- [--count N] [--date YYYY-MM-DD]
 *
 * The script never holds its event loop for long (seeding runs on a worker
 * thread, the object is decompressed as a stream) and reports the longest
 * stall it saw.
 */
import { DatabaseSync } from "node:sqlite";
import { isDeepStrictEqual, parseArgs } from "node:util";
import { type BackgroundStack, portIsFree, startBackgroundStack } from "./dev.ts";
import {
  admin,
  archiveLines,
  archiveStatus,
  BASE_URL,
  cliArgs,
  isUp,
  localD1File,
  PORT,
  progressLine,
  sleep,
  watchEventLoop,
} from "./lib.ts";
import { seedInWorker } from "./seed.ts";

/** The fields of GET /admin/archive-status the demo reads. */
type RunView = {
  objectKey: string;
  rowidHi: number;
  partSize: number;
  parts: number;
  chunks: { total: number; done: number; cleaned: number };
  rows: { planned: number; archived: number; deleted: number; d1RowsReadPlanning: number; d1RowsReadArchiving: number };
  bytes: { raw: number; object: number; padding: number };
  errors: unknown;
};
/** d1Remaining is counted only when asked for (`live`), never while polling. */
type Status = { status: string; d1Remaining: number | null; d1Cleaned: boolean; runs: RunView[] };

function utcDay(offset: number): string {
  const d = new Date();
  d.setUTCDate(d.getUTCDate() + offset);
  return d.toISOString().slice(0, 10);
}

function status(date: string, live = false): Promise<Status> {
  return archiveStatus<Status>(date, { live });
}

/** A closed day with nothing in D1 and no runs, so the demo starts clean. */
async function freshDate(): Promise<string> {
  for (let back = 2; back < 400; back++) {
    const date = utcDay(-back);
    const s = await status(date, true);
    if (s.status === "none" && s.d1Remaining === 0) return date;
  }
  throw new Error("no unused day found in the last 400 days");
}

/** Polls the day's status once a second, as an operator's page would, showing progress in place. */
async function waitFor(
  date: string,
  wanted: string,
  show: (s: Status) => { text: string; rows: number },
  timeoutMs: number,
): Promise<Status> {
  const started = Date.now();
  const line = progressLine();
  for (;;) {
    const s = await status(date);
    const { text, rows } = show(s);
    const seconds = (Date.now() - started) / 1000;
    line.update(`${text} (${Math.round(rows / Math.max(seconds, 0.001))} rows/s, ${seconds.toFixed(0)} s)`);
    if (s.status === wanted) {
      line.done();
      return s;
    }
    if (s.status === "failed") {
      line.done();
      throw new Error(`the day failed: ${JSON.stringify(s.runs.at(-1)?.errors)}`);
    }
    if (Date.now() - started > timeoutMs) {
      line.done();
      throw new Error(`still ${s.status} after ${timeoutMs / 1000} s`);
    }
    await sleep(1000);
  }
}

/**
 * Reads the whole object as a stream: it must hold exactly the rows D1 has
 * for the day up to the run's last id, in ascending id order, and about 1000
 * rows spread over it must equal D1's, column by column.
 */
async function verify(key: string, date: string, rowidHi: number, expectedRows: number) {
  const db = new DatabaseSync(localD1File(), { readOnly: true });
  try {
    const inD1 = db
      .prepare("SELECT COUNT(*) AS n FROM traffic_events WHERE event_date = ? AND id <= ?")
      .get(date, rowidHi) as { n: number };
    const byId = db.prepare("SELECT * FROM traffic_events WHERE id = ?");
    const every = Math.max(1, Math.floor(expectedRows / 1000));
    let lines = 0;
    let sampled = 0;
    let previous = 0;
    for await (const batch of archiveLines(key)) {
      for (const line of batch) {
        const id = Number(/^\{"id":(\d+),/.exec(line)?.[1]);
        if (!(id > previous)) throw new Error(`line ${lines + 1}: id ${id} does not follow ${previous}`);
        previous = id;
        if (lines % every === 0) {
          const row = { ...(byId.get(id) as object) };
          if (!isDeepStrictEqual(JSON.parse(line), row))
            throw new Error(`row ${id} differs:\n archive ${line}\n D1      ${JSON.stringify(row)}`);
          sampled++;
        }
        lines++;
      }
    }
    if (lines !== inD1.n) throw new Error(`the archive has ${lines} lines, D1 has ${inD1.n} rows`);
    return { lines, sampled };
  } finally {
    db.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: cliArgs(),
    options: { count: { type: "string", default: "1000000" }, date: { type: "string" } },
  });
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 1) throw new Error(`--count must be a positive integer, got ${values.count}`);

  let stack: BackgroundStack | null = null;
  process.on("SIGINT", async () => {
    await stack?.stop();
    process.exit(130);
  });
  const loop = watchEventLoop();
  try {
    const timings: Record<string, number> = {};
    let t = Date.now();
    if (await isUp()) {
      console.log(`using the stack already running on 127.0.0.1:${PORT}`);
    } else {
      if (!(await portIsFree(PORT)))
        throw new Error(`port ${PORT} is taken by something that is not this stack; free it and retry`);
      console.log("starting the local stack (pnpm dev) ...");
      stack = await startBackgroundStack();
      timings.start = Date.now() - t;
    }

    const date = values.date ?? (await freshDate());
    const statusUrl = `${BASE_URL}/admin/archive-status?date=${date}`;
    console.log(
      `stack: ${BASE_URL}/healthz; status of the day: ${statusUrl} (bearer token in apps/producer/.dev.vars)`,
    );
    console.log(`seeding ${count} events for ${date} ...`);
    t = Date.now();
    const seeding = progressLine();
    await seedInWorker(date, count, localD1File(), (rows) =>
      seeding.update(`seeded ${rows} / ${count} (${Math.round(rows / ((Date.now() - t) / 1000))} rows/s)`),
    );
    seeding.done();
    timings.seed = Date.now() - t;

    console.log(`archiving ${date} ...`);
    t = Date.now();
    const triggered = await admin("POST", `/admin/trigger-archive?date=${date}`, undefined, { idempotent: true });
    if (triggered.status !== 202)
      throw new Error(`trigger-archive answered ${triggered.status}: ${JSON.stringify(triggered.json)}`);
    const archived = await waitFor(
      date,
      "archived",
      (s) => {
        const run = s.runs.at(-1);
        const rows = run?.rows.archived ?? 0;
        return {
          text: `${s.status}: chunks ${run?.chunks.done ?? 0}/${run?.chunks.total ?? "?"} done, ${rows} rows`,
          rows,
        };
      },
      20 * 60_000,
    );
    timings.archive = Date.now() - t;
    const run = archived.runs.at(-1) as RunView;

    console.log("verifying the object independently (wrangler r2 object get, gunzip, compare with D1) ...");
    t = Date.now();
    const checked = await verify(run.objectKey, date, run.rowidHi, run.rows.archived);
    timings.verify = Date.now() - t;
    console.log(`  ${checked.lines} lines = ${checked.lines} rows in D1; ${checked.sampled} sampled rows equal to D1`);

    console.log(`cleaning ${date} out of D1 ...`);
    t = Date.now();
    const cleanup = await admin("POST", `/admin/trigger-cleanup?date=${date}`, undefined, { idempotent: true });
    if (cleanup.status !== 202)
      throw new Error(`trigger-cleanup answered ${cleanup.status}: ${JSON.stringify(cleanup.json)}`);
    const cleaned = await waitFor(
      date,
      "cleaned",
      (s) => {
        const run = s.runs.at(-1);
        return {
          text: `${s.status}: ranges ${run?.chunks.cleaned}/${run?.chunks.total} deleted, ${run?.rows.deleted ?? 0} rows deleted`,
          rows: run?.rows.deleted ?? 0,
        };
      },
      20 * 60_000,
    );
    timings.cleanup = Date.now() - t;
    const left = await status(date, true);
    // The day's path statistics outlive its rows: answered from its rollups now that D1 holds none of them.
    const stats = await admin("GET", `/admin/stats?from=${date}&to=${date}`);
    const answer = stats.json as {
      days?: { source: string; requests: number }[];
      rows?: { path: string; method: string; requests: number; latency: { p99Ms: number | null } }[];
    };
    if (stats.status !== 200 || answer.days?.[0]?.requests !== run.rows.archived) {
      throw new Error(`/admin/stats answered ${stats.status}: ${JSON.stringify(stats.json).slice(0, 300)}`);
    }
    const busiest = answer.rows?.[0];

    const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
    const s = (ms: number | undefined) => (ms === undefined ? "-" : `${(ms / 1000).toFixed(1)} s`);
    console.log(`
report for ${date}
  rows archived     ${run.rows.archived} (planned ${run.rows.planned})
  parts             ${run.parts} of ${mb(run.partSize)} (chunks: ${run.chunks.total})
  object            ${mb(run.bytes.object)} from ${mb(run.bytes.raw)} of JSON Lines (ratio ${(run.bytes.raw / run.bytes.object).toFixed(1)}x; padding ${mb(run.bytes.padding)})
  object key        ${run.objectKey}
  D1 rows read      ${(run.rows.d1RowsReadArchiving / run.rows.archived).toFixed(3)} per row archiving, ${(run.rows.d1RowsReadPlanning / run.rows.archived).toFixed(3)} per row planning
  time              start ${s(timings.start)}, seed ${s(timings.seed)}, archive ${s(timings.archive)}, verify ${s(timings.verify)}, cleanup ${s(timings.cleanup)}
  D1 rows left      ${left.d1Remaining} (d1_cleaned = ${cleaned.d1Cleaned ? 1 : 0})
  path statistics   ${answer.days?.[0]?.requests} requests in ${answer.rows?.length} rows, from the ${answer.days?.[0]?.source}; busiest ${busiest?.method} ${busiest?.path}: ${busiest?.requests} requests, p99 ${busiest?.latency.p99Ms?.toFixed(0)} ms
  event loop        longest stall of this script ${loop.longestMs()} ms
`);
  } catch (error) {
    if (stack) console.error(`--- last lines of the stack's log ---\n${stack.log().slice(-4000)}`);
    throw error;
  } finally {
    if (stack) {
      console.log("stopping the stack this demo started");
      await stack.stop();
    }
  }
}

main().catch((error) => {
  console.error(`demo failed: ${error instanceof Error ? error.message : error}`);
  process.exitCode = 1;
});
