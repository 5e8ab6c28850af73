import { env } from "cloudflare:workers";
import { gunzipSync } from "node:zlib";
import { type Manifest, type RunRow, seededRandom } from "@path-stats/shared";

export type EventRow = {
  event_date: string;
  ts: number;
  path: string;
  method: string;
  status: number;
  country: string | null;
  referrer: string | null;
  user_agent: string | null;
  latency_ms: number | null;
  bytes: number | null;
};

const COLUMNS = [
  "event_date",
  "ts",
  "path",
  "method",
  "status",
  "country",
  "referrer",
  "user_agent",
  "latency_ms",
  "bytes",
] as const;
/** D1 binds at most 100 parameters per statement. */
const ROWS_PER_INSERT = Math.floor(100 / COLUMNS.length);

/** Deterministic pseudo-random numbers, so a failing test sees the same data again (seeds replay as before). */
export const random = seededRandom;

/** A poorly compressible string, to reach several 5 MiB parts with few rows. */
export function noise(next: () => number, length: number): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  let s = "";
  for (let i = 0; i < length; i++) s += alphabet[Math.floor(next() * 64)];
  return s;
}

export function event(date: string, i: number, overrides: Partial<EventRow> = {}): EventRow {
  return {
    event_date: date,
    ts: Date.parse(`${date}T00:00:00Z`) + i * 1000,
    path: `/api/items/${i % 97}`,
    method: i % 5 === 0 ? "POST" : "GET",
    status: i % 13 === 0 ? 500 : 200,
    country: i % 7 === 0 ? null : "DE",
    referrer: null,
    user_agent: "test-agent/1.0",
    latency_ms: i % 250,
    bytes: 100 + i,
    ...overrides,
  };
}

export async function insertEvents(rows: readonly EventRow[]): Promise<void> {
  const statements: D1PreparedStatement[] = [];
  for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
    const group = rows.slice(i, i + ROWS_PER_INSERT);
    const placeholders = group.map(() => `(${COLUMNS.map(() => "?").join(", ")})`).join(", ");
    statements.push(
      env.D1.prepare(`INSERT INTO traffic_events (${COLUMNS.join(", ")}) VALUES ${placeholders}`).bind(
        ...group.flatMap((r) => COLUMNS.map((c) => r[c])),
      ),
    );
  }
  for (let i = 0; i < statements.length; i += 200) await env.D1.batch(statements.slice(i, i + 200));
}

/** One event with an id chosen by the writer (restores, backfills): AUTOINCREMENT allows any unused id. */
export async function insertEventWithId(id: number, row: EventRow): Promise<void> {
  await env.D1.prepare(
    `INSERT INTO traffic_events (id, ${COLUMNS.join(", ")}) VALUES (?, ${COLUMNS.map(() => "?").join(", ")})`,
  )
    .bind(id, ...COLUMNS.map((c) => row[c]))
    .run();
}

export async function runsOf(date: string): Promise<RunRow[]> {
  const { results } = await env.D1.prepare("SELECT * FROM archive_runs WHERE date = ?1 ORDER BY rowid")
    .bind(date)
    .all<RunRow>();
  return results;
}

/** D1 rows read per archived row for a run: its planning and every chunk's pages (D1's own counts). */
export async function readsPerRow(run: RunRow): Promise<number> {
  const chunks = await env.D1.prepare("SELECT SUM(rows_read) AS n FROM archive_chunks WHERE run_id = ?1")
    .bind(run.run_id)
    .first<{ n: number }>();
  return (run.plan_rows_read + (chunks?.n ?? 0)) / (run.archived_rows ?? 1);
}

/** Waits until the run leaves 'archiving'/'finalizing' (the queue consumers work in the background). */
export async function waitForRun(runId: string, timeoutMs = 90_000): Promise<RunRow> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = await env.D1.prepare("SELECT * FROM archive_runs WHERE run_id = ?1").bind(runId).first<RunRow>();
    if (run && (run.status === "archived" || run.status === "failed")) return run;
    if (Date.now() > deadline) throw new Error(`run ${runId} still ${run?.status} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The archive object's lines, decompressed with Node's zlib (which reads concatenated members). */
export async function archiveLines(key: string): Promise<string[]> {
  const object = await env.R2_ARCHIVE.get(key);
  if (!object) throw new Error(`no object ${key}`);
  const text = gunzipSync(new Uint8Array(await object.arrayBuffer())).toString("utf8");
  expectTrailingNewline(text);
  return text.slice(0, -1).split("\n");
}

function expectTrailingNewline(text: string): void {
  if (!text.endsWith("\n")) throw new Error("archive does not end with a newline");
}

export async function manifestOf(run: RunRow): Promise<Manifest> {
  const object = await env.R2_ARCHIVE.get(run.manifest_key);
  if (!object) throw new Error(`no manifest ${run.manifest_key}`);
  return object.json<Manifest>();
}

/** The rows D1 holds for a date within a rowid range, as D1 returns them. */
export async function d1Rows(date: string, lo = 0, hi = Number.MAX_SAFE_INTEGER): Promise<Record<string, unknown>[]> {
  const { results } = await env.D1.prepare(
    "SELECT * FROM traffic_events WHERE event_date = ?1 AND id >= ?2 AND id <= ?3 ORDER BY id",
  )
    .bind(date, lo, hi)
    .all();
  return results;
}
