/**
 * `pnpm test`: every package's tests (through turbo), the scripts' own
 * tests, then the restart check, stopping at the first failure.
 *
 * The Workers tests run under a watchdog. Twice in this project's runs (of
 * about a dozen, on fresh clones) the Workers test runtime went silent for
 * good in the middle of a file: vitest and workerd both idle, connected,
 * waiting on each other, no test timeout firing. The cause is not found yet.
 * Rather than let CI sit until its limit, a run that prints nothing for
 * STALL_MINUTES is stopped, reported loudly, and run once more; a second
 * stall fails.
 */
import { spawn } from "node:child_process";
import { ROOT } from "./lib.ts";

const STALL_MINUTES = 4;
const MAX_STALLS = 2;

/** Runs a command with inherited output; resolves with its exit code, or "stalled" after a silence. */
function run(
  command: string,
  args: string[],
  watch: boolean,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number | "stalled"> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let heard = Date.now();
    const onOutput = (stream: NodeJS.WriteStream) => (data: Buffer) => {
      heard = Date.now();
      stream.write(data);
    };
    child.stdout.on("data", onOutput(process.stdout));
    child.stderr.on("data", onOutput(process.stderr));
    let stalled = false;
    const watchdog = setInterval(() => {
      if (!watch || Date.now() - heard < STALL_MINUTES * 60_000) return;
      stalled = true;
      try {
        process.kill(-(child.pid ?? 0), "SIGKILL");
      } catch {}
    }, 5_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearInterval(watchdog);
      resolve(stalled ? "stalled" : (code ?? 1));
    });
  });
}

async function main(): Promise<number> {
  const workers = ["turbo", ["run", "test", "--log-order=stream", "--log-prefix=none"]] as const;
  let result = await run(workers[0], [...workers[1]], true);
  for (let stalls = 1; result === "stalled"; stalls++) {
    if (stalls > MAX_STALLS) {
      console.error(`*** the Workers tests stalled ${stalls} times; failing ***`);
      return 1;
    }
    console.error(
      `\n*** the Workers tests printed nothing for ${STALL_MINUTES} minutes and were stopped (stall ${stalls}); running them again ***\n`,
    );
    result = await run(workers[0], [...workers[1]], true);
  }
  if (result !== 0) return result;
  const scripts = await run("vitest", ["run", "--config", "scripts/vitest.config.ts"], false);
  if (scripts !== 0) return scripts === "stalled" ? 1 : scripts;
  // On its own port, so a `pnpm dev` on 8787 is left alone.
  const restart = await run("node", ["--no-warnings=ExperimentalWarning", "scripts/restart-check.ts"], false, {
    ...process.env,
    ARCHIVER_PORT: "8797",
  });
  return restart === "stalled" ? 1 : restart;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  },
);
