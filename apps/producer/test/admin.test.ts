import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { faultyR2 } from "./faults.ts";
import { event, insertEvents } from "./helpers.ts";
import worker, { consumerFaults } from "./worker.ts";

const TOKEN = env.ADMIN_TOKEN;
const BASE = "http://archiver.test";

function utcDay(offsetDays: number): string {
  const d = new Date();
  d.setUTCDate(d.getUTCDate() + offsetDays);
  return d.toISOString().slice(0, 10);
}

// biome-ignore lint/suspicious/noExplicitAny: responses of every route are read as JSON and checked field by field
type Json = any;

async function call(
  method: string,
  path: string,
  options: { token?: string | null; body?: BodyInit; headers?: Record<string, string>; env?: Env } = {},
): Promise<{ status: number; body: Json; headers: Headers }> {
  const headers = new Headers(options.headers);
  const token = options.token === undefined ? TOKEN : options.token;
  if (token !== null) headers.set("authorization", `Bearer ${token}`);
  const response = await worker.fetch(
    new Request(`${BASE}${path}`, { method, headers, body: options.body }),
    options.env ?? env,
    createExecutionContext(),
  );
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null, headers: response.headers };
}

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out; last value ${JSON.stringify(value).slice(0, 500)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Everything a refused request must leave as it was. */
async function snapshot() {
  const counts = await env.D1.batch(
    [
      "traffic_events",
      "archive_runs",
      "archive_chunks",
      "archive_metadata",
      "dead_letters",
      "path_stats",
      "path_stats_days",
      "path_stats_recounts",
    ].map((t) => env.D1.prepare(`SELECT '${t}' AS t, COUNT(*) AS n FROM ${t}`)),
  );
  const objects = await env.R2_ARCHIVE.list();
  return { counts: counts.map((r) => r.results[0]), keys: objects.objects.map((o) => o.key) };
}

afterEach(() => {
  consumerFaults.archive = undefined;
});

describe("admin API", () => {
  it("runs the whole cycle over HTTP: archive, status, cleanup, cleaned", async () => {
    const date = utcDay(-10);
    await insertEvents(Array.from({ length: 700 }, (_, i) => event(date, i)));
    await insertEvents([event(utcDay(-11), 1), event(utcDay(-9), 1)]);

    const none = await call("GET", `/admin/archive-status?date=${date}&count=live`);
    expect(none.status).toBe(200);
    expect(none.body).toMatchObject({ status: "none", d1Remaining: 700, d1Cleaned: false, runs: [] });

    const triggered = await call("POST", `/admin/trigger-archive?date=${date}`);
    expect(triggered.status).toBe(202);
    expect(triggered.body.outcome).toBe("planned");
    const archived = await until(
      () => call("GET", `/admin/archive-status?date=${date}`),
      (r) => r.body.status === "archived",
    );
    const [run] = archived.body.runs;
    expect(run).toMatchObject({
      runId: triggered.body.runId,
      status: "archived",
      rows: { planned: 700, archived: 700, deleted: 0 },
    });
    expect(run.chunks.done).toBe(run.chunks.total);
    expect(archived.body).toMatchObject({ d1Remaining: null, d1ArchivedNotDeleted: 700, d1LeftNotArchived: 0 });
    expect(run.objectKey).toMatch(new RegExp(`^traffic_events/event_date=${date}/.+\\.jsonl\\.gz$`));
    expect(run.bytes.object).toBeGreaterThan(0);

    // The same date again: already archived, nothing new.
    const again = await call("POST", `/admin/trigger-archive?date=${date}`);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ outcome: "up_to_date", runId: triggered.body.runId });

    const cleanup = await call("POST", `/admin/trigger-cleanup?date=${date}`);
    expect(cleanup.status).toBe(202);
    const cleaned = await until(
      () => call("GET", `/admin/archive-status?date=${date}`),
      (r) => r.body.status === "cleaned",
    );
    expect(cleaned.body).toMatchObject({ d1Remaining: null, d1ArchivedNotDeleted: 0, d1Cleaned: true });
    expect((await call("GET", `/admin/archive-status?date=${date}&count=live`)).body.d1Remaining).toBe(0);
    expect(cleaned.body.runs[0].rows.deleted).toBe(700);
    const meta = await env.D1.prepare("SELECT d1_cleaned FROM archive_metadata WHERE date = ?1").bind(date).first();
    expect(meta).toEqual({ d1_cleaned: 1 });
    // The neighbours are still there.
    expect((await call("GET", `/admin/archive-status?date=${utcDay(-11)}&count=live`)).body.d1Remaining).toBe(1);
  });

  it("answers status from recorded counts, reading O(runs + chunks) rows, and counts live only on request", async () => {
    const date = utcDay(-12);
    const rows = 20_000;
    await insertEvents(Array.from({ length: rows }, (_, i) => event(date, i)));
    await call("POST", `/admin/trigger-archive?date=${date}`);
    const archived = await until(
      () => call("GET", `/admin/archive-status?date=${date}`),
      (r) => r.body.status === "archived",
    );
    expect(archived.body).toMatchObject({ d1Remaining: null, d1ArchivedNotDeleted: rows });
    // Runs, chunks and the day's metadata: a few rows per chunk, nothing per event.
    expect(archived.body.cost.d1RowsRead).toBeLessThan(100);
    const live = await call("GET", `/admin/archive-status?date=${date}&count=live`);
    expect(live.body.d1Remaining).toBe(rows);
    expect(live.body.cost.d1RowsRead).toBeGreaterThanOrEqual(rows);
    expect((await call("GET", `/admin/archive-status?date=${date}&count=all`)).status).toBe(400);
  });

  it("refuses cleanup of a day with no archive with 409, deleting nothing", async () => {
    const date = utcDay(-20);
    await insertEvents([event(date, 1)]);
    const before = await snapshot();
    const res = await call("POST", `/admin/trigger-cleanup?date=${date}`);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("not_archived");
    expect(await snapshot()).toEqual(before);
  });

  it("refuses to count the statistics of a day with no archive again with 409, changing nothing", async () => {
    // The day of the test above: rows in D1, no archive.
    const date = utcDay(-20);
    const before = await snapshot();
    const res = await call("POST", `/admin/stats/recount?date=${date}`);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("not_archived");
    expect(await snapshot()).toEqual(before);
  });

  it("answers /healthz without a token", async () => {
    const res = await call("GET", "/healthz", { token: null });
    expect(res).toMatchObject({ status: 200, body: { ok: true } });
  });

  const authCases: [string, Parameters<typeof call>[2], number, string][] = [
    ["no token is configured", { env: { ...env, ADMIN_TOKEN: undefined } as unknown as Env }, 503, "admin_disabled"],
    [
      "the configured token is shorter than 32 characters",
      { env: { ...env, ADMIN_TOKEN: "a".repeat(31) }, token: "a".repeat(31) },
      503,
      "admin_disabled",
    ],
    ["the header is missing", { token: null }, 401, "unauthorized"],
    ["the token is wrong", { token: "not-the-token" }, 401, "unauthorized"],
    ["the token is a prefix of the right one", { token: TOKEN.slice(0, -1) }, 401, "unauthorized"],
    [
      "the scheme is not Bearer",
      { token: null, headers: { authorization: `Basic ${btoa(`admin:${TOKEN}`)}` } },
      401,
      "unauthorized",
    ],
  ];
  for (const [what, options, status, code] of authCases) {
    it(`answers ${status} and changes nothing when ${what}`, async () => {
      const date = utcDay(-30);
      await insertEvents([event(date, 1)]);
      const before = await snapshot();
      for (const [method, path] of [
        ["POST", `/admin/trigger-archive?date=${date}`],
        ["POST", `/admin/trigger-cleanup?date=${date}`],
        ["GET", `/admin/archive-status?date=${date}`],
        ["GET", "/admin/dead-letters"],
        ["POST", "/admin/dead-letters/replay"],
      ] as const) {
        const res = await call(method, path, options);
        expect(res.status).toBe(status);
        expect(res.body.error.code).toBe(code);
        expect(typeof res.body.error.message).toBe("string");
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await snapshot()).toEqual(before);
    });
  }

  const badInputs: [string, string, string, number, string, BodyInit?][] = [
    ["a malformed date", "POST", "/admin/trigger-archive?date=2025-1-01", 400, "invalid_date"],
    ["an impossible date", "POST", "/admin/trigger-archive?date=2025-02-30", 400, "invalid_date"],
    [
      "SQL in the date",
      "POST",
      `/admin/trigger-archive?date=${encodeURIComponent("2025-01-01' OR '1'='1")}`,
      400,
      "invalid_date",
    ],
    ["a date with extra characters", "POST", "/admin/trigger-cleanup?date=2025-01-01%00", 400, "invalid_date"],
    ["today", "POST", `/admin/trigger-archive?date=${utcDay(0)}`, 400, "date_not_closed"],
    ["the future", "POST", `/admin/trigger-cleanup?date=${utcDay(5)}`, 400, "date_not_closed"],
    ["no date", "POST", "/admin/trigger-archive", 400, "invalid_request"],
    ["the date twice", "GET", `/admin/archive-status?date=${utcDay(-3)}&date=${utcDay(-4)}`, 400, "invalid_request"],
    ["an unknown parameter", "POST", `/admin/trigger-archive?date=${utcDay(-3)}&force=1`, 400, "invalid_request"],
    ["an unknown route", "GET", "/admin/drop-everything", 404, "not_found"],
    ["a wrong method", "DELETE", `/admin/trigger-archive?date=${utcDay(-3)}`, 405, "method_not_allowed"],
    [
      "a huge body",
      "POST",
      "/admin/dead-letters/replay",
      413,
      "body_too_large",
      JSON.stringify({ ids: [1], pad: "x".repeat(100_000) }),
    ],
    ["a body that is not JSON", "POST", "/admin/dead-letters/replay", 400, "invalid_request", "{ids:"],
    [
      "a replay body of the wrong shape",
      "POST",
      "/admin/dead-letters/replay",
      400,
      "invalid_request",
      JSON.stringify({ ids: ["1; DROP TABLE dead_letters"] }),
    ],
    ["a bad dead-letter filter", "GET", "/admin/dead-letters?queue=everything", 400, "invalid_request"],
  ];
  for (const [what, method, path, status, code, body] of badInputs) {
    it(`refuses ${what} with ${status} ${code}, changing nothing`, async () => {
      await insertEvents([event(utcDay(-3), 1), event(utcDay(0), 1)]);
      const before = await snapshot();
      const res = await call(
        method,
        path,
        body === undefined ? {} : { body, headers: { "content-type": "application/json" } },
      );
      expect(res.status).toBe(status);
      expect(res.body.error.code).toBe(code);
      expect(res.body.error.message.length).toBeGreaterThan(0);
      if (status === 405) expect(res.headers.get("allow")).toContain("POST");
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await snapshot()).toEqual(before);
    });
  }

  it("records a chunk that keeps failing as a dead letter, and a replay finishes its run", async () => {
    const date = utcDay(-40);
    await insertEvents(Array.from({ length: 50 }, (_, i) => event(date, i)));
    consumerFaults.archive = (base) => ({ ...base, R2_ARCHIVE: faultyR2({ uploadPart: 100 }) });

    const triggered = await call("POST", `/admin/trigger-archive?date=${date}`);
    expect(triggered.status).toBe(202);
    const listed = await until(
      () => call("GET", `/admin/dead-letters?queue=archive-chunks&date=${date}&replayed=false`),
      (r) => r.body.deadLetters.length > 0,
    );
    const [letter] = listed.body.deadLetters;
    expect(letter).toMatchObject({ queue: "archive-chunks", date, run_id: triggered.body.runId, replayed_at: null });
    expect(letter.body).toEqual({ version: 1, runId: triggered.body.runId, date, chunkIndex: 0 });
    expect(letter.last_error).toContain("injected R2 uploadPart failure");
    expect(letter.attempts).toBeGreaterThanOrEqual(4);
    const stuck = await call("GET", `/admin/archive-status?date=${date}`);
    expect(stuck.body.status).toBe("archiving");
    expect(stuck.body.runs[0].errors.lastChunk).toContain("injected");

    consumerFaults.archive = undefined;
    const replay = await call("POST", "/admin/dead-letters/replay", { body: JSON.stringify({ ids: [letter.id] }) });
    expect(replay.status).toBe(202);
    expect(replay.body.replayed).toEqual([letter.id]);
    const done = await until(
      () => call("GET", `/admin/archive-status?date=${date}`),
      (r) => r.body.status === "archived",
    );
    expect(done.body.runs[0].rows.archived).toBe(50);

    // Replaying it again is harmless: the run stays archived, with one object.
    expect(
      (await call("POST", "/admin/dead-letters/replay", { body: JSON.stringify({ ids: [letter.id] }) })).status,
    ).toBe(202);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const after = await call("GET", `/admin/archive-status?date=${date}`);
    expect(after.body.status).toBe("archived");
    const objects = await env.R2_ARCHIVE.list({ prefix: `traffic_events/event_date=${date}/` });
    expect(objects.objects).toHaveLength(2); // the object and its manifest
    const replayed = await call("GET", `/admin/dead-letters?date=${date}&replayed=true`);
    expect(replayed.body.deadLetters[0]).toMatchObject({ id: letter.id, replay_count: 2 });
  });
});
