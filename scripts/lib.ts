/**
 * Shared by the local scripts (dev, seed, demo, bench): where the local state
 * lives and how to reach the stack. Run with the project's Node.js 22
 * (`pnpm <script>`), which strips the types.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { StringDecoder } from "node:string_decoder";
import { fileURLToPath } from "node:url";
import { createGunzip } from "node:zlib";
import { httpRequest } from "./http.ts";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const STATE_DIR = join(ROOT, ".wrangler", "state");
/** The stack's port: 8787, or ARCHIVER_PORT (the restart check uses its own, so a running `pnpm dev` is left alone). */
export const PORT = Number(process.env.ARCHIVER_PORT ?? 8787);
export const BASE_URL = `http://127.0.0.1:${PORT}`;
export const CONFIGS = ["producer", "archive-consumer", "cleanup-consumer"].map((app) =>
  join(ROOT, "apps", app, "wrangler.jsonc"),
);
export const PRODUCER_CONFIG = CONFIGS[0] as string;

/** The local D1 database file that `wrangler dev --persist-to .wrangler/state` uses. */
export function localD1File(stateDir = STATE_DIR): string {
  const dir = join(stateDir, "v3", "d1", "miniflare-D1DatabaseObject");
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite") : [];
  if (files.length !== 1) {
    throw new Error(
      `expected one local D1 database in ${dir}, found ${files.length}: run \`pnpm dev\` (it applies the migrations) first`,
    );
  }
  return join(dir, files[0] as string);
}

/** The admin token from apps/producer/.dev.vars, or from the example `pnpm dev` copies it from. */
export function adminToken(): string {
  for (const name of [".dev.vars", ".dev.vars.example"]) {
    const file = join(ROOT, "apps", "producer", name);
    const match = existsSync(file) ? /^ADMIN_TOKEN=(.+)$/m.exec(readFileSync(file, "utf8")) : null;
    if (match?.[1]) return match[1].trim();
  }
  throw new Error("no ADMIN_TOKEN in apps/producer/.dev.vars or .dev.vars.example");
}

/**
 * One admin API call. `idempotent` marks a POST that is safe to repeat (the
 * triggers are), so it is retried on a connection error like a GET.
 */
export async function admin(
  method: string,
  path: string,
  body?: unknown,
  options: { idempotent?: boolean } = {},
): Promise<{ status: number; json: unknown }> {
  const response = await httpRequest(`${BASE_URL}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken()}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    idempotent: options.idempotent,
  });
  try {
    return { status: response.status, json: JSON.parse(response.body) };
  } catch {
    throw new Error(`${method} ${path} answered ${response.status} with no JSON: ${response.body.slice(0, 500)}`);
  }
}

/**
 * GET /admin/archive-status of a day; each script types the fields it reads.
 * `live` asks for the day's rows in D1 to be counted (it reads all of them):
 * for one-off checks, never for polling. `table` says which table, where
 * several are archived.
 */
export async function archiveStatus<T>(date: string, options: { live?: boolean; table?: string } = {}): Promise<T> {
  const table = options.table ? `table=${options.table}&` : "";
  const res = await admin("GET", `/admin/archive-status?${table}date=${date}${options.live ? "&count=live" : ""}`);
  if (res.status !== 200) throw new Error(`archive-status answered ${res.status}: ${JSON.stringify(res.json)}`);
  return res.json as T;
}

/** Whether the producer answers /healthz, on the stack's port or at `baseUrl`. */
export async function isUp(baseUrl = BASE_URL): Promise<boolean> {
  try {
    const response = await httpRequest(`${baseUrl}/healthz`, { attempts: 1, timeoutMs: 1000 });
    return response.status === 200;
  } catch {
    return false;
  }
}

/** Runs a local binary (wrangler) from node_modules/.bin, inheriting output, and fails on a non-zero exit. */
/** Runs a command; resolves with its output (stdout and stderr, or stdout alone with `stdoutOnly`). */
export function run(
  command: string,
  args: string[],
  options: { quiet?: boolean; stdoutOnly?: boolean } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let stdout = "";
    child.stdout.on("data", (d) => {
      out += d;
      stdout += d;
      if (!options.quiet) process.stdout.write(d);
    });
    child.stderr.on("data", (d) => {
      out += d;
      if (!options.quiet) process.stderr.write(d);
    });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolve(options.stdoutOnly ? stdout : out)
        : reject(new Error(`${command} ${args.join(" ")} exited ${code}\n${out.slice(-2000)}`)),
    );
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export type { ChildProcess };

/** The script's arguments; `pnpm <script> -- --flag` passes the `--` along, which is dropped here. */
export function cliArgs(): string[] {
  const args = process.argv.slice(2);
  return args[0] === "--" ? args.slice(1) : args;
}

/**
 * An archive object's lines from local R2, in batches, read through
 * wrangler's own client rather than the archiver's code and decompressed as a
 * stream (Node's zlib reads the concatenated gzip members): the script's
 * event loop is never held for long, and memory stays small whatever the
 * object's size. Fails if the object does not end with a newline.
 */
export async function* archiveLines(key: string, stateDir = STATE_DIR): AsyncGenerator<string[]> {
  const args = ["r2", "object", "get", `path-stats-archive/${key}`, "--local", "--persist-to", stateDir];
  const child = spawn("wrangler", [...args, "-c", PRODUCER_CONFIG, "--pipe"], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  child.stderr.on("data", (d) => {
    err += d;
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", resolve);
  });
  const gunzip = createGunzip();
  child.stdout.pipe(gunzip);
  const decoder = new StringDecoder("utf8");
  let rest = "";
  let read = false;
  try {
    for await (const piece of gunzip) {
      const lines = (rest + decoder.write(piece as Buffer)).split("\n");
      rest = lines.pop() ?? "";
      yield lines;
    }
    read = true;
  } catch (error) {
    const code = await exited;
    throw new Error(`reading ${key}: ${(error as Error).message}${code ? `; wrangler exited ${code}: ${err}` : ""}`);
  } finally {
    // The caller stopped early or reading failed: wrangler need not send the rest.
    if (!read) child.kill();
  }
  const code = await exited;
  if (code !== 0) throw new Error(`wrangler r2 object get ${key} exited ${code}: ${err}`);
  if (rest + decoder.end() !== "") throw new Error(`${key} does not end with a newline`);
}

/**
 * A status line that changes in place on a terminal; elsewhere (CI logs) it
 * prints a line when the text changes, at most every few seconds, and always
 * the final one.
 */
export function progressLine(): { update(text: string): void; done(text?: string): void } {
  const tty = process.stdout.isTTY === true;
  let last = "";
  let printedAt = 0;
  return {
    update(text) {
      if (tty) {
        process.stdout.write(`\r\x1b[K  ${text}`);
      } else if (text !== last && Date.now() - printedAt >= 5000) {
        console.log(`  ${text}`);
        printedAt = Date.now();
      }
      last = text;
    },
    done(text = last) {
      if (tty) process.stdout.write(`\r\x1b[K  ${text}\n`);
      else console.log(`  ${text}`);
    },
  };
}

/**
 * The longest time the script's event loop was held (by synchronous work)
 * since this was called: a loop held for seconds is how a script lets its
 * connections to the stack go stale.
 */
export function watchEventLoop(): { longestMs(): number } {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  return { longestMs: () => Math.round(histogram.max / 1e6) };
}

/** Writes an object of the local R2 (as `pnpm dev` keeps it) to `file`. */
export async function fetchLocalObject(key: string, file: string, stateDir = STATE_DIR): Promise<void> {
  const args = ["r2", "object", "get", `path-stats-archive/${key}`, "--local", "--persist-to", stateDir];
  const child = spawn("wrangler", [...args, "-c", PRODUCER_CONFIG, "--file", file], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => {
    output += d;
  });
  child.stderr.on("data", (d) => {
    output += d;
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", resolve);
  });
  if (code !== 0 || !existsSync(file))
    throw new Error(`wrangler r2 object get ${key} failed (${code}): ${output.slice(-1000)}`);
}
