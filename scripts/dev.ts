/**
 * `pnpm dev`: all three Workers in one `wrangler dev` on 127.0.0.1:8787,
 * sharing local D1, R2 and Queues persisted in .wrangler/state. Applies the
 * archiver's migrations first, then the example table's when the archiver is
 * configured for it (migrations.ts), and creates apps/producer/.dev.vars from
 * the example when missing. The cron is reachable at /__scheduled
 * (--test-scheduled).
 */
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { CONFIGS, isUp, PORT, PRODUCER_CONFIG, ROOT, STATE_DIR, sleep } from "./lib.ts";
import {
  ARCHIVER_MIGRATIONS_TABLE,
  applyMigrations,
  archivesExampleTable,
  carryOverMigrationHistory,
  EXAMPLE_CONFIG,
} from "./migrations.ts";

export async function prepareLocalState(stateDir = STATE_DIR): Promise<void> {
  const devVars = join(ROOT, "apps", "producer", ".dev.vars");
  if (!existsSync(devVars)) {
    copyFileSync(join(ROOT, "apps", "producer", ".dev.vars.example"), devVars);
    console.log("created apps/producer/.dev.vars from .dev.vars.example");
  }
  const target = { local: stateDir };
  const carried = await carryOverMigrationHistory("path-stats-db", target);
  if (carried.length > 0)
    console.log(`archiver migrations recorded in ${ARCHIVER_MIGRATIONS_TABLE}: ${carried.join(", ")}`);
  await applyMigrations("path-stats-db", target, PRODUCER_CONFIG);
  if (archivesExampleTable()) {
    // The example table, its index and triggers: the "operator's" migrations, after the archiver's.
    await applyMigrations("path-stats-db", target, EXAMPLE_CONFIG);
    console.log(`local D1 migrations applied, the archiver's and the example table's (${stateDir})`);
  } else {
    console.log(`local D1 migrations applied, the archiver's; the archived table's are yours (${stateDir})`);
  }
}

export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** Starts the stack; resolves with the child process (its output goes to `log`). */
export async function startStack(
  output: "inherit" | "pipe" = "inherit",
  stateDir = STATE_DIR,
  extraArgs: string[] = [],
  configs = CONFIGS,
  port = PORT,
) {
  if (!(await portIsFree(port))) {
    throw new Error(
      `port ${port} on 127.0.0.1 is taken: stop whatever listens there (another \`pnpm dev\`?) and try again`,
    );
  }
  await prepareLocalState(stateDir);
  const args = ["dev", ...configs.flatMap((c) => ["-c", c]), "--ip", "127.0.0.1", "--port", String(port)];
  args.push("--persist-to", stateDir, "--test-scheduled", "--show-interactive-dev-session=false", ...extraArgs);
  return spawn("wrangler", args, { cwd: ROOT, stdio: ["ignore", output, output], detached: output === "pipe" });
}

/** A stack a script started in the background: its output so far, and how to stop it. */
export interface BackgroundStack {
  /** The wrangler process, root of the stack's process tree. */
  pid: number;
  log(): string;
  /** Signals the stack's whole process group and waits until it no longer answers. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Starts the stack (or other Workers: `configs`) in the background, on the
 * stack's port or `port`, and waits until it answers /healthz there.
 */
export async function startBackgroundStack(
  stateDir = STATE_DIR,
  extraArgs: string[] = [],
  configs = CONFIGS,
  port = PORT,
): Promise<BackgroundStack> {
  const child = await startStack("pipe", stateDir, extraArgs, configs, port);
  const url = `http://127.0.0.1:${port}`;
  let log = "";
  child.stdout?.on("data", (d) => {
    log += d;
  });
  child.stderr?.on("data", (d) => {
    log += d;
  });
  const stack: BackgroundStack = {
    pid: child.pid ?? 0,
    log: () => log,
    async stop(signal = "SIGTERM") {
      try {
        if (child.pid) process.kill(-child.pid, signal);
      } catch {}
      // Down means not answering and the port released, so a restart can bind it.
      while ((await isUp(url)) || !(await portIsFree(port))) await sleep(100);
    },
  };
  const deadline = Date.now() + 90_000;
  while (!(await isUp(url))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stack.stop();
      throw new Error(`the stack did not start:\n${log.slice(-3000)}`);
    }
    await sleep(300);
  }
  return stack;
}

/**
 * Runs `work` against a background stack (or other Workers: `configs`) on
 * fresh state in .wrangler/<name>. If it fails, the stack's last log lines
 * are printed; either way the stack is stopped and its state removed.
 */
export async function withFreshStack<T>(
  name: string,
  work: (stack: BackgroundStack, stateDir: string) => Promise<T>,
  configs = CONFIGS,
): Promise<T> {
  const stateDir = join(ROOT, ".wrangler", name);
  rmSync(stateDir, { recursive: true, force: true });
  const stack = await startBackgroundStack(stateDir, [], configs);
  try {
    return await work(stack, stateDir);
  } catch (error) {
    console.error(`--- last lines of the stack's log ---\n${stack.log().slice(-4000)}`);
    throw error;
  } finally {
    await stack.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    const child = await startStack("inherit");
    const stop = () => child.kill("SIGINT");
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    child.on("close", (code) => process.exit(code ?? 0));
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  }
}
