/**
 * `pnpm restart-check`: kills the whole local stack in the middle of an
 * archive and in the middle of a cleanup, starts it again on the same state
 * (local queues keep nothing across a restart), triggers again, and checks
 * the day ends archived exactly once and then cleaned. Runs on its own port
 * and state, with a 3-second lease so stalled work is resumed at once.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { type BackgroundStack, startBackgroundStack } from "./dev.ts";
import {
  admin,
  adminToken,
  archiveLines,
  archiveStatus,
  localD1File,
  PORT,
  ROOT,
  sleep,
  watchEventLoop,
} from "./lib.ts";
import { seedInWorker } from "./seed.ts";

const DATE = "2026-02-10";
const ROWS = 1_000_000;
const STATE = join(ROOT, ".wrangler", "restart-check-state");
const LEASE_SECONDS = 3;
const CONSUMER_DEV_VARS = join(ROOT, "apps", "archive-consumer", ".dev.vars");

let current: BackgroundStack | null = null;

async function start(): Promise<BackgroundStack> {
  // The short lease must reach the producer (resume) and the archive consumer
  // (claims). wrangler dev gives --var and --env-file to the first Worker only;
  // the others read .dev.vars beside their config, written for this check and
  // removed after it.
  const envFile = join(STATE, "..", "restart-check.env");
  mkdirSync(dirname(envFile), { recursive: true });
  writeFileSync(envFile, `ADMIN_TOKEN=${adminToken()}\nLEASE_SECONDS=${LEASE_SECONDS}\n`);
  writeFileSync(CONSUMER_DEV_VARS, `LEASE_SECONDS=${LEASE_SECONDS}\n`);
  current = await startBackgroundStack(STATE, ["--env-file", envFile]);
  return current;
}

type DayStatus = {
  status: string;
  d1Remaining: number;
  d1Cleaned: boolean;
  runs: { objectKey: string; chunks: { done: number; cleaned: number }; rows: { deleted: number } }[];
};

/**
 * The day as the admin API reports it. The check watches through the stack
 * itself: a second process reading D1's SQLite file while the runtime writes
 * heavily is not something a real deployment has, and was seen to take the
 * local runtime down.
 */
function status(): Promise<DayStatus> {
  return archiveStatus<DayStatus>(DATE);
}

async function waitFor(what: string, done: (s: DayStatus) => boolean, timeoutMs = 120_000): Promise<DayStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await status();
    if (done(s)) return s;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

/** The triggers are idempotent, so a dropped connection is retried. */
async function post(path: string, wanted: number[]): Promise<void> {
  const res = await admin("POST", path, undefined, { idempotent: true });
  if (!wanted.includes(res.status)) throw new Error(`${path} answered ${res.status}: ${JSON.stringify(res.json)}`);
}

async function main(): Promise<void> {
  if (existsSync(CONSUMER_DEV_VARS))
    throw new Error(`${CONSUMER_DEV_VARS} exists; this check writes its own, so move it away first`);
  rmSync(STATE, { recursive: true, force: true });
  const loop = watchEventLoop();
  let stack = await start();
  try {
    await seedInWorker(DATE, ROWS, localD1File(STATE));
    await post(`/admin/trigger-archive?date=${DATE}`, [202]);
    const first = await waitFor("the first chunk", (d) => (d.runs[0]?.chunks.done ?? 0) >= 1);
    console.log(`killing the stack with ${first.runs[0]?.chunks.done} chunk(s) archived`);
    await stack.stop("SIGKILL"); // as a crash or a power cut would

    stack = await start();
    await sleep(LEASE_SECONDS * 1000 + 500);
    await post(`/admin/trigger-archive?date=${DATE}`, [202]);
    const archived = await waitFor("the run to be archived", (d) => d.status === "archived");
    if (archived.runs.length !== 1) throw new Error(`${archived.runs.length} runs for the day, expected exactly one`);
    let lines = 0;
    for await (const batch of archiveLines(archived.runs[0]?.objectKey ?? "", STATE)) lines += batch.length;
    if (lines !== ROWS) throw new Error(`the archive holds ${lines} rows, expected ${ROWS}`);
    console.log(`archived exactly once after the restart: ${lines} rows in one object`);

    await post(`/admin/trigger-cleanup?date=${DATE}`, [202]);
    await waitFor("the first rows to be deleted", (d) => d.d1Remaining < ROWS);
    console.log("killing the stack in the middle of the cleanup");
    await stack.stop("SIGKILL"); // as a crash or a power cut would

    stack = await start();
    await sleep(LEASE_SECONDS * 1000 + 500);
    await post(`/admin/trigger-cleanup?date=${DATE}`, [202, 200]);
    const cleaned = await waitFor("the day to be cleaned", (d) => d.status === "cleaned");
    const deleted = cleaned.runs[0]?.rows.deleted;
    if (cleaned.d1Remaining !== 0 || !cleaned.d1Cleaned || deleted !== ROWS) {
      throw new Error(`${cleaned.d1Remaining} rows left, ${deleted} counted deleted`);
    }
    console.log(`cleaned after the restart: 0 rows left, ${deleted} rows deleted, each counted once`);
    console.log(`the check's own event loop was held at most ${loop.longestMs()} ms at a time`);
    console.log("restart check: 1 passed, 0 failed");
  } finally {
    await stack.stop("SIGKILL");
    rmSync(STATE, { recursive: true, force: true });
    rmSync(CONSUMER_DEV_VARS, { force: true });
  }
}

console.log(`restart check on port ${PORT}`);
main().catch((error) => {
  console.error(`--- last lines of the stack's log ---\n${current?.log().slice(-3000) ?? ""}`);
  console.error(`restart check failed: ${error instanceof Error ? error.message : error}`);
  console.log("restart check: 0 passed, 1 failed");
  process.exitCode = 1;
});
