/**
 * `pnpm demo`: the main job, locally, end to end. Starts the stack (or uses
 * a running one), seeds a day, archives it with progress, verifies the
 * object independently of the archiver (download with wrangler, gunzip,
 * count, compare a sample of rows with D1 read straight from its SQLite
 * file), cleans up, and reports. Stops what it started.
 *
 *   pnpm demo -- [--count N] [--date YYYY-MM-DD]
 */
import { DatabaseSync } from "node:sqlite";
import { isDeepStrictEqual, parseArgs } from "node:util";
import { gunzipSync } from "node:zlib";
import { type BackgroundStack, portIsFree, startBackgroundStack } from "./dev.ts";
import { admin, archiveStatus, cliArgs, downloadObject, isUp, localD1File, PORT, sleep } from "./lib.ts";
import { seed } from "./seed.ts";

/** The fields of GET /admin/archive-status the demo reads. */
type RunView = {
  objectKey: string;
  rowidHi: number;
  partSize: number;
  parts: number;
  chunks: { total: number; done: number; cleaned: number };
  rows: { planned: number; archived: number; d1RowsReadPlanning: number; d1RowsReadArchiving: number };
  bytes: { raw: number; object: number; padding: number };
  errors: unknown;
};
type Status = { status: string; d1Remaining: number; d1Cleaned: boolean; runs: RunView[] };

function utcDay(offset: number): string {
  const d = new Date();
  d.setUTCDate(d.getUTCDate() + offset);
  return d.toISOString().slice(0, 10);
}

function status(date: string): Promise<Status> {
  return archiveStatus<Status>(date);
}

/** A closed day with nothing in D1 and no runs, so the demo starts clean. */
async function freshDate(): Promise<string> {
  for (let back = 2; back < 400; back++) {
    const date = utcDay(-back);
    const s = await status(date);
    if (s.status === "none" && s.d1Remaining === 0) return date;
  }
  throw new Error("no unused day found in the last 400 days");
}

async function waitFor(date: string, wanted: string, show: (s: Status) => string, timeoutMs: number): Promise<Status> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    const s = await status(date);
    const line = show(s);
    if (line !== last) {
      console.log(`  ${line}`);
      last = line;
    }
    if (s.status === wanted) return s;
    if (s.status === "failed") throw new Error(`the day failed: ${JSON.stringify(s.runs.at(-1)?.errors)}`);
    if (Date.now() > deadline) throw new Error(`still ${s.status} after ${timeoutMs / 1000} s`);
    await sleep(500);
  }
}

function verify(object: Buffer, date: string, rowidHi: number): { lines: number; sampled: number } {
  const lines = gunzipSync(object).toString("utf8").split("\n");
  if (lines.pop() !== "") throw new Error("the archive does not end with a newline");
  const db = new DatabaseSync(localD1File(), { readOnly: true });
  try {
    const inD1 = db
      .prepare("SELECT COUNT(*) AS n FROM traffic_events WHERE event_date = ? AND id <= ?")
      .get(date, rowidHi) as { n: number };
    if (inD1.n !== lines.length) throw new Error(`the archive has ${lines.length} lines, D1 has ${inD1.n} rows`);
    const byId = db.prepare("SELECT * FROM traffic_events WHERE id = ?");
    const sample = Math.min(1000, lines.length);
    let previous = 0;
    for (let k = 0; k < sample; k++) {
      const line = lines[Math.floor((k * lines.length) / sample)] as string;
      const archived = JSON.parse(line) as { id: number };
      if (archived.id <= previous) throw new Error(`ids out of order at ${archived.id}`);
      previous = archived.id;
      const row = { ...(byId.get(archived.id) as object) };
      if (!isDeepStrictEqual(archived, row))
        throw new Error(`row ${archived.id} differs:\n archive ${line}\n D1      ${JSON.stringify(row)}`);
    }
    return { lines: lines.length, sampled: sample };
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
    console.log(`seeding ${count} events for ${date} ...`);
    t = Date.now();
    seed(date, count);
    timings.seed = Date.now() - t;

    console.log(`archiving ${date} ...`);
    t = Date.now();
    const triggered = await admin("POST", `/admin/trigger-archive?date=${date}`);
    if (triggered.status !== 202)
      throw new Error(`trigger-archive answered ${triggered.status}: ${JSON.stringify(triggered.json)}`);
    const archived = await waitFor(
      date,
      "archived",
      (s) => {
        const run = s.runs.at(-1);
        return `${s.status}: chunks ${run?.chunks.done ?? 0}/${run?.chunks.total ?? "?"} done, ${run?.rows.archived ?? 0} rows`;
      },
      20 * 60_000,
    );
    timings.archive = Date.now() - t;
    const run = archived.runs.at(-1) as RunView;

    console.log("verifying the object independently (wrangler r2 object get, gunzip, compare with D1) ...");
    t = Date.now();
    const object = await downloadObject(run.objectKey);
    const checked = verify(object, date, run.rowidHi);
    timings.verify = Date.now() - t;
    console.log(`  ${checked.lines} lines = ${checked.lines} rows in D1; ${checked.sampled} sampled rows equal to D1`);

    console.log(`cleaning ${date} out of D1 ...`);
    t = Date.now();
    const cleanup = await admin("POST", `/admin/trigger-cleanup?date=${date}`);
    if (cleanup.status !== 202)
      throw new Error(`trigger-cleanup answered ${cleanup.status}: ${JSON.stringify(cleanup.json)}`);
    const cleaned = await waitFor(
      date,
      "cleaned",
      (s) =>
        `${s.status}: ranges ${s.runs.at(-1)?.chunks.cleaned}/${s.runs.at(-1)?.chunks.total} deleted, ${s.d1Remaining} rows left in D1`,
      20 * 60_000,
    );
    timings.cleanup = Date.now() - t;

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
  D1 rows left      ${cleaned.d1Remaining} (d1_cleaned = ${cleaned.d1Cleaned ? 1 : 0})
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
