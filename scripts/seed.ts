/**
 * `pnpm seed -- --date YYYY-MM-DD --count N`: N synthetic, realistic,
 * deterministic traffic events for one date into the local D1 database
 * (.wrangler/state), written straight into its SQLite file in large
 * transactions (1M rows in a few seconds). Run `pnpm dev` once first: it
 * creates the database and applies the migrations.
 *
 * The other scripts seed through `seedInWorker`: node:sqlite is synchronous,
 * and seeding on the script's own thread would hold its event loop for
 * seconds while it has the local stack to talk to.
 */
import { DatabaseSync } from "node:sqlite";
import { parseArgs } from "node:util";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { cliArgs, localD1File } from "./lib.ts";

/** mulberry32: small, fast, deterministic. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function weighted<T>(choices: [T, number][]): (r: number) => T {
  const total = choices.reduce((s, [, w]) => s + w, 0);
  return (r) => {
    let x = r * total;
    for (const [value, w] of choices) {
      x -= w;
      if (x < 0) return value;
    }
    return (choices.at(-1) as [T, number])[0];
  };
}

const method = weighted([
  ["GET", 80],
  ["POST", 12],
  ["PUT", 4],
  ["DELETE", 3],
  ["PATCH", 1],
]);
const status = weighted([
  [200, 82],
  [304, 5],
  [404, 5],
  [201, 3],
  [302, 2],
  [500, 1.5],
  [401, 1],
  [503, 0.5],
]);
const country = weighted(
  (
    [
      "US",
      "DE",
      "GB",
      "FR",
      "JP",
      "IN",
      "BR",
      "CA",
      "AU",
      "NL",
      "ES",
      "IT",
      "SE",
      "PL",
      "KR",
      "MX",
      "SG",
      "CH",
      "ZA",
      "NG",
    ] as const
  ).map((c, i) => [c, 1 / (i + 1)] as [string, number]),
);
const agents = [
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
  "curl/8.5.0",
  "python-requests/2.32.3",
  "Go-http-client/2.0",
  "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
  "okhttp/4.12.0",
];
const userAgent = weighted(agents.map((a, i) => [a, 1 / (i + 1)] as [string, number]));
const sections = [
  "api/v1/items",
  "api/v1/users",
  "api/v2/search",
  "static/js",
  "static/css",
  "blog",
  "docs",
  "api/v1/orders",
  "img",
  "account",
];
const referrers = [
  "https://www.google.com/",
  "https://duckduckgo.com/",
  "https://news.ycombinator.com/",
  "https://t.co/",
  "https://www.bing.com/",
];

/** A path from a long-tailed distribution: a few hot ones, a long tail of ids. */
function path(r: () => number): string {
  const section = sections[Math.floor(r() ** 2 * sections.length)] as string;
  const id = Math.floor(r() ** 3 * 50_000);
  return r() < 0.3 ? `/${section}` : `/${section}/${id}${r() < 0.2 ? `?page=${1 + Math.floor(r() * 20)}` : ""}`;
}

/** Log-normal, for latencies and sizes. */
function logNormal(r: () => number, median: number, sigma: number): number {
  const u = Math.max(r(), 1e-12);
  const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
  return Math.max(0, Math.round(median * Math.exp(sigma * z)));
}

export interface SeedResult {
  inserted: number;
  firstId: number;
  lastId: number;
  ms: number;
}

export function seed(
  date: string,
  count: number,
  file = localD1File(),
  onProgress: (rows: number) => void = () => {},
): SeedResult {
  const started = Date.now();
  const seedValue = [...date].reduce((h, ch) => Math.imul(h ^ ch.charCodeAt(0), 16777619), 2166136261);
  const r = prng(seedValue);
  const dayStart = Date.parse(`${date}T00:00:00Z`);
  const db = new DatabaseSync(file);
  db.exec("PRAGMA busy_timeout = 30000");
  const insert = db.prepare(
    `INSERT INTO traffic_events (event_date, ts, path, method, status, country, referrer, user_agent, latency_ms, bytes)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  let firstId = 0;
  let lastId = 0;
  const perTransaction = 50_000;
  for (let done = 0; done < count; done += perTransaction) {
    db.exec("BEGIN");
    for (let i = done; i < Math.min(count, done + perTransaction); i++) {
      const ts = dayStart + Math.floor((i / count) * 86_400_000) + Math.floor(r() * 1000);
      const referrer =
        r() < 0.4
          ? null
          : r() < 0.6
            ? (referrers[Math.floor(r() * referrers.length)] as string)
            : `https://example.com${path(r)}`;
      const result = insert.run(
        date,
        ts,
        path(r),
        method(r()),
        status(r()),
        r() < 0.02 ? null : country(r()),
        referrer,
        userAgent(r()),
        logNormal(r, 45, 0.9),
        logNormal(r, 2400, 1.2),
      );
      lastId = Number(result.lastInsertRowid);
      if (firstId === 0) firstId = lastId;
    }
    db.exec("COMMIT");
    onProgress(Math.min(count, done + perTransaction));
  }
  db.close();
  return { inserted: count, firstId, lastId, ms: Date.now() - started };
}

type SeedMessage = { progress: number } | { result: SeedResult } | { error: string };

/** `seed` on a worker thread, so the caller's event loop stays free; progress arrives as rows written so far. */
export function seedInWorker(
  date: string,
  count: number,
  file = localD1File(),
  onProgress: (rows: number) => void = () => {},
): Promise<SeedResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: { date, count, file } });
    worker.on("message", (message: SeedMessage) => {
      if ("progress" in message) onProgress(message.progress);
      else if ("result" in message) resolve(message.result);
      else reject(new Error(`seeding failed: ${message.error}`));
    });
    worker.on("error", reject);
    worker.on("exit", (code) => {
      if (code !== 0) reject(new Error(`the seeding thread exited with code ${code}`));
    });
  });
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  const { date, count, file } = workerData as { date: string; count: number; file: string };
  try {
    const result = seed(date, count, file, (progress) => port.postMessage({ progress } satisfies SeedMessage));
    port.postMessage({ result } satisfies SeedMessage);
  } catch (error) {
    port.postMessage({ error: error instanceof Error ? error.message : String(error) } satisfies SeedMessage);
  }
}

if (isMainThread && import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    args: cliArgs(),
    options: { date: { type: "string" }, count: { type: "string", default: "100000" } },
  });
  const count = Number(values.count);
  if (
    !values.date ||
    !/^\d{4}-\d{2}-\d{2}$/.test(values.date) ||
    Number.isNaN(Date.parse(`${values.date}T00:00:00Z`))
  ) {
    console.error("usage: pnpm seed -- --date YYYY-MM-DD --count N");
    process.exit(2);
  }
  if (!Number.isInteger(count) || count < 1) {
    console.error(`--count must be a positive integer, got ${values.count}`);
    process.exit(2);
  }
  try {
    const result = seed(values.date, count, localD1File(), (rows) => {
      // Progress on a terminal only; logs get the summary line.
      if (process.stdout.isTTY) process.stdout.write(`\rseeded ${rows} / ${count}`);
    });
    if (process.stdout.isTTY) process.stdout.write("\n");
    console.log(
      `seeded ${result.inserted} events for ${values.date} (ids ${result.firstId}..${result.lastId}) into the local D1 in ${(result.ms / 1000).toFixed(1)} s`,
    );
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  }
}
