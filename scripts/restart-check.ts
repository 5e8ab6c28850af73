/**
 * `pnpm restart-check`: kills the whole local stack in the middle of an
 * archive and in the middle of a cleanup, starts it again on the same state
 * (local queues keep nothing across a restart), triggers again, and checks
 * the day ends archived exactly once and then cleaned, each within 3 minutes
 * of the restart, with the default configuration (a dead consumer's claim
 * is taken over after one lease, 60 s). While it waits it re-triggers every
 * 15 s, as an operator or the cron would. Runs on its own port and state.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
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
/** What ARCHITECTURE §8 allows a crash of the whole stack to cost. */
const RECOVERY_LIMIT_MS = 3 * 60_000;
const NUDGE_EVERY_MS = 15_000;

let current: BackgroundStack | null = null;

async function start(): Promise<BackgroundStack> {
  // wrangler dev gives --env-file to the first Worker (the producer) only; the
  // check sets nothing but the admin token, so every Worker runs its defaults.
  const envFile = join(STATE, "..", "restart-check.env");
  mkdirSync(dirname(envFile), { recursive: true });
  writeFileSync(envFile, `ADMIN_TOKEN=${adminToken()}\n`);
  current = await startBackgroundStack(STATE, ["--env-file", envFile]);
  return current;
}

type DayStatus = {
  status: string;
  d1Remaining: number | null;
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

/** Waits for `done`, re-sending `nudge` (a trigger) every 15 s meanwhile; fails past the recovery limit. */
async function waitFor(
  what: string,
  done: (s: DayStatus) => boolean,
  nudge: string,
): Promise<{ day: DayStatus; ms: number }> {
  const started = Date.now();
  let nudged = started;
  for (;;) {
    const s = await status();
    if (done(s)) return { day: s, ms: Date.now() - started };
    if (Date.now() - started > RECOVERY_LIMIT_MS) throw new Error(`${what} took more than 3 minutes`);
    if (Date.now() - nudged >= NUDGE_EVERY_MS) {
      await post(nudge, [200, 202]);
      nudged = Date.now();
    }
    await sleep(250);
  }
}

/** The triggers are idempotent, so a dropped connection is retried. */
async function post(path: string, wanted: number[]): Promise<void> {
  const res = await admin("POST", path, undefined, { idempotent: true });
  if (!wanted.includes(res.status)) throw new Error(`${path} answered ${res.status}: ${JSON.stringify(res.json)}`);
}

async function main(): Promise<void> {
  rmSync(STATE, { recursive: true, force: true });
  const loop = watchEventLoop();
  const archive = `/admin/trigger-archive?date=${DATE}`;
  const cleanup = `/admin/trigger-cleanup?date=${DATE}`;
  let stack = await start();
  try {
    await seedInWorker(DATE, ROWS, localD1File(STATE));
    await post(archive, [202]);
    const first = await waitFor("the first chunk", (d) => (d.runs[0]?.chunks.done ?? 0) >= 1, archive);
    console.log(`killing the stack with ${first.day.runs[0]?.chunks.done} chunk(s) archived`);
    await stack.stop("SIGKILL"); // as a crash or a power cut would

    stack = await start();
    await post(archive, [202]);
    const archived = await waitFor("archiving after the restart", (d) => d.status === "archived", archive);
    const runs = archived.day.runs;
    if (runs.length !== 1) throw new Error(`${runs.length} runs for the day, expected exactly one`);
    let lines = 0;
    for await (const batch of archiveLines(runs[0]?.objectKey ?? "", STATE)) lines += batch.length;
    if (lines !== ROWS) throw new Error(`the archive holds ${lines} rows, expected ${ROWS}`);
    console.log(
      `archived exactly once, ${(archived.ms / 1000).toFixed(0)} s after the restart: ${lines} rows in one object`,
    );

    await post(cleanup, [202]);
    await waitFor("the first rows to be deleted", (d) => (d.runs[0]?.rows.deleted ?? 0) > 0, cleanup);
    console.log("killing the stack in the middle of the cleanup");
    await stack.stop("SIGKILL"); // as a crash or a power cut would

    stack = await start();
    await post(cleanup, [202, 200]);
    const cleaned = await waitFor("cleanup after the restart", (d) => d.status === "cleaned", cleanup);
    const deleted = cleaned.day.runs[0]?.rows.deleted;
    const left = (await archiveStatus<DayStatus>(DATE, { live: true })).d1Remaining;
    if (left !== 0 || !cleaned.day.d1Cleaned || deleted !== ROWS) {
      throw new Error(`${left} rows left, ${deleted} counted deleted`);
    }
    console.log(
      `cleaned ${(cleaned.ms / 1000).toFixed(0)} s after the restart: 0 rows left, ${deleted} rows deleted, each counted once`,
    );
    console.log(`the check's own event loop was held at most ${loop.longestMs()} ms at a time`);
    console.log("restart check: 1 passed, 0 failed");
  } finally {
    await stack.stop("SIGKILL");
    rmSync(STATE, { recursive: true, force: true });
  }
}

console.log(`restart check on port ${PORT}`);
main().catch((error) => {
  console.error(`--- last lines of the stack's log ---\n${current?.log().slice(-3000) ?? ""}`);
  console.error(`restart check failed: ${error instanceof Error ? error.message : error}`);
  console.log("restart check: 0 passed, 1 failed");
  process.exitCode = 1;
});
