import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import {
  type ArchiveChunkMessage,
  RELATIVE_ACCURACY,
  readConfig,
  type StatsAnswerRow,
  watchedCode,
} from "@path-stats/shared";
import { describe, expect, it } from "vitest";
import { evaluateHealth } from "../src/monitoring/health.ts";
import { planArchive } from "../src/plan-archive.ts";
import { planCleanup } from "../src/plan-cleanup.ts";
import { failRunByOperator } from "../src/runs.ts";
import type { StatsAnswer } from "../src/stats/path-stats.ts";
import { daysDueForRecount, planRecount } from "../src/stats/plan-recount.ts";
import { capturingQueue, deliver, deliverAll, deliverCleanup, faultyD1 } from "./faults.ts";
import { type EventRow, event, insertEvents, insertEventWithId, random, runsOf } from "./helpers.ts";
import worker from "./worker.ts";

/**
 * Path statistics (issue "Path statistics that outlive the rows"): a day's
 * /admin/stats answer is the same before it is archived (counted from D1)
 * and after it is cleaned (its rollups), and both are what the rows say.
 */

const DAY = "2026-05-20";
const WIDE_DAY = "2026-05-21";
const RULES_DAY = "2026-05-23";
const BACKFILL_DAY = "2026-05-22";
const HUGE_DAY = "2026-05-19";
const SPARSE_DAY = "2026-05-18";
const RACE_DAY = "2026-05-17";
const NOW = new Date("2026-05-24T01:00:00Z");
const STATUSES = [200, 200, 200, 200, 201, 204, 301, 304, 400, 401, 404, 404, 429, 500, 502, 503];

/** `n` requests over 200 paths of very different weights, with mixed statuses, latencies (a heavy tail) and sizes. */
function requests(date: string, n: number, seed: number, offset = 0): EventRow[] {
  const next = random(seed);
  return Array.from({ length: n }, (_, k) => {
    const i = offset + k;
    const latency = Math.round(Math.exp(next() * 7) * (next() < 0.02 ? 20 : 1)); // 1 ms … 20 s
    const thing = Math.floor(200 * next() ** 2);
    return event(date, i, {
      // 200 (path, method) pairs: STATS_MAX_PATHS keeps them all by name.
      path: `/api/v1/things/${thing}`,
      method: thing % 10 === 0 ? "POST" : "GET",
      status: STATUSES[Math.floor(next() * STATUSES.length)] as number,
      latency_ms: next() < 0.03 ? null : latency,
      bytes: next() < 0.03 ? null : Math.floor(next() * 80_000),
    });
  });
}

async function stats(query: string, vars: Record<string, string> = {}): Promise<StatsAnswer> {
  const response = await worker.fetch(
    new Request(`http://archiver.test/admin/stats?${query}`, {
      headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
    }),
    { ...env, ...vars } as Env,
    createExecutionContext(),
  );
  const body = (await response.json()) as StatsAnswer;
  expect(response.status, JSON.stringify(body)).toBe(200);
  return body;
}

/** What the rows say for one (path, method), computed the plain way. */
function exactOf(rows: readonly EventRow[]) {
  const latencies = rows
    .map((r) => r.latency_ms)
    .filter((v): v is number => v !== null)
    .sort((a, b) => a - b);
  const bytes = rows.map((r) => r.bytes).filter((v): v is number => v !== null);
  const codes: Record<string, number> = {};
  for (const r of rows) if (watchedCode(r.status)) codes[r.status] = (codes[r.status] ?? 0) + 1;
  const classOf = (c: number) => rows.filter((r) => Math.floor(r.status / 100) === c).length;
  return {
    requests: rows.length,
    status: { "1xx": classOf(1), "2xx": classOf(2), "3xx": classOf(3), "4xx": classOf(4), "5xx": classOf(5) },
    codes,
    bytes: { sum: bytes.reduce((a, b) => a + b, 0), max: bytes.length > 0 ? Math.max(...bytes) : null },
    latencies,
    firstAt: Math.min(...rows.map((r) => r.ts)),
    lastAt: Math.max(...rows.map((r) => r.ts)),
  };
}

/** Checks every row of an answer against the rows it counts: counts exact, p50/p95/p99 within the sketch's 1%. */
function expectExact(answer: StatsAnswer, rows: readonly EventRow[]) {
  const pairs = new Map<string, EventRow[]>();
  for (const r of rows) pairs.set(`${r.method} ${r.path}`, [...(pairs.get(`${r.method} ${r.path}`) ?? []), r]);
  expect(answer.rows).toHaveLength(pairs.size);
  for (const row of answer.rows as StatsAnswerRow[]) {
    const exact = exactOf(pairs.get(`${row.method} ${row.path}`) ?? []);
    expect(row).toMatchObject({
      requests: exact.requests,
      status: exact.status,
      codes: exact.codes,
      bytes: exact.bytes,
      firstAt: exact.firstAt,
      lastAt: exact.lastAt,
    });
    expect(row.latency.count).toBe(exact.latencies.length);
    expect(row.latency.minMs).toBe(exact.latencies[0] ?? null);
    expect(row.latency.maxMs).toBe(exact.latencies.at(-1) ?? null);
    for (const [q, got] of [
      [0.5, row.latency.p50Ms],
      [0.95, row.latency.p95Ms],
      [0.99, row.latency.p99Ms],
    ] as const) {
      if (exact.latencies.length === 0) {
        expect(got).toBeNull();
        continue;
      }
      const truth = exact.latencies[Math.floor(q * (exact.latencies.length - 1))] as number;
      expect(Math.abs((got as number) - truth)).toBeLessThanOrEqual(truth * RELATIVE_ACCURACY * (1 + 1e-9));
    }
  }
}

/** Plans the day's archive run, delivering nothing: the test delivers its messages. */
async function planned(
  date: string,
  vars: Record<string, string> = {},
): Promise<{ runId: string; messages: ArchiveChunkMessage[] }> {
  const queue = capturingQueue();
  const outcome = await planArchive({ ...env, ...vars, ARCHIVE_QUEUE: queue } as Env, date, NOW);
  if (outcome.outcome !== "planned") throw new Error(`not planned: ${outcome.message}`);
  return { runId: outcome.run.run_id, messages: queue.sent };
}

/** What the admin API sent to the cleanup-ranges queue, for the test to deliver. */
const queued = capturingQueue().sent;
const adminQueue = {
  async sendBatch(messages: Iterable<{ body: unknown }>) {
    for (const m of messages) queued.push(m.body as ArchiveChunkMessage);
  },
};

async function admin(method: string, path: string) {
  const response = await worker.fetch(
    new Request(`http://archiver.test${path}`, { method, headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` } }),
    { ...env, CLEANUP_QUEUE: adminQueue } as unknown as Env,
    createExecutionContext(),
  );
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function rowsInD1(date: string): Promise<number> {
  const row = await env.D1.prepare("SELECT count(*) AS n FROM traffic_events WHERE event_date = ?1")
    .bind(date)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

async function dayRecord(date: string) {
  return env.D1.prepare("SELECT * FROM path_stats_days WHERE table_name = 'traffic_events' AND date = ?1")
    .bind(date)
    .first<{ requests: number; runs: number; state: string; stale_reason: string | null; paths: number }>();
}

describe("path statistics", () => {
  it("answer the same from D1 before archiving and from the rollups after cleanup, through a failed run, duplicated deliveries, a late-row run and a row changed after archiving", async () => {
    const rows = requests(DAY, 6000, 11);
    await insertEvents(rows);
    const query = `from=${DAY}&to=${DAY}`;

    const fromD1 = await stats(query);
    expect(fromD1.days).toEqual([{ date: DAY, source: "d1", requests: 6000, pathsExact: true }]);
    expect(fromD1.cost.d1Days).toBe(1);
    expectExact(fromD1, rows);

    // A run that archives one of its chunks and is then failed adds nothing.
    const failed = await planned(DAY, { MAX_CHUNK_ROWS: "2000" });
    expect(failed.messages.length).toBeGreaterThan(1);
    expect(await deliver(failed.messages[0])).toBe("ack");
    await failRunByOperator(env, failed.runId, "test: a run that fails after a chunk", NOW);
    const leftOver = await env.D1.prepare("SELECT count(*) AS n FROM path_stats_chunks WHERE run_id = ?1")
      .bind(failed.runId)
      .first<{ n: number }>();
    expect(leftOver?.n).toBe(0);
    expect(await dayRecord(DAY)).toBeNull();

    // The next run, every message delivered twice.
    const run = await planned(DAY);
    for (const message of run.messages) {
      expect(await deliver(message)).toBe("ack");
      expect(await deliver(message)).toBe("ack");
    }
    expect((await runsOf(DAY)).map((r) => r.status)).toEqual(["failed", "archived"]);
    expect(await dayRecord(DAY)).toMatchObject({ requests: 6000, runs: 1, state: "current" });
    const archived = await stats(query);
    expect(archived.days).toEqual([{ date: DAY, source: "rollups", requests: 6000, pathsExact: true }]);
    // The same fields and numbers: equal answers, row for row.
    expect(archived.rows).toEqual(fromD1.rows);

    // Late rows: a run of their own, added to the day.
    const late = requests(DAY, 500, 12, 6000);
    await insertEvents(late);
    await deliverAll((testEnv) => planArchive(testEnv, DAY, NOW), {}, "archive-chunks");
    expect(await dayRecord(DAY)).toMatchObject({ requests: 6500, runs: 2, state: "current" });

    // A row changed after archiving: cleanup leaves it, and a run of its own archives its newer content.
    await env.D1.prepare(
      "UPDATE traffic_events SET status = 503, latency_ms = 7777 WHERE id = (SELECT min(id) FROM traffic_events WHERE event_date = ?1)",
    )
      .bind(DAY)
      .run();
    const latest = [{ ...(rows[0] as EventRow), status: 503, latency_ms: 7777 }, ...rows.slice(1), ...late];
    await deliverAll((testEnv) => planCleanup(testEnv, DAY, NOW));
    expect(await rowsInD1(DAY)).toBe(1);
    await deliverAll((testEnv) => planArchive(testEnv, DAY, NOW), {}, "archive-chunks");
    // Its day cannot just add the run (the row's old content is counted): stale, and said so.
    expect(await dayRecord(DAY)).toMatchObject({
      state: "stale",
      stale_reason: expect.stringMatching(/holds newer content of rows that earlier runs archived/),
    });
    const stale = await stats(query);
    expect(stale.days).toEqual([
      {
        date: DAY,
        source: "unavailable",
        requests: 0,
        pathsExact: false,
        reason: expect.stringMatching(/stale .* D1 no longer holds the day/),
      },
    ]);
    expect(stale.rows).toEqual([]);

    // Counted again from the archives, as an operator (or the cron) asks, every message twice, the first
    // range's before the next: each row once, the changed one with its newer content.
    const recount = await admin("POST", `/admin/stats/recount?date=${DAY}`);
    expect(recount.status).toBe(202);
    const messages = queued.splice(0);
    expect(messages.length).toBeGreaterThan(2);
    for (const message of messages.flatMap((m) => [m, m])) expect(await deliverCleanup(message)).toBe("ack");
    expect(await dayRecord(DAY)).toMatchObject({ state: "current", requests: 6500, runs: 3 });

    await deliverAll((testEnv) => planCleanup(testEnv, DAY, NOW));
    expect(await rowsInD1(DAY)).toBe(0);
    const cleaned = await stats(query);
    expect(cleaned.days).toEqual([{ date: DAY, source: "rollups", requests: 6500, pathsExact: true }]);
    expect(cleaned.cost.d1Days).toBe(0);
    expectExact(cleaned, latest);

    // Per day, all paths in one row; per path, over the days asked for.
    const perDay = await stats(`${query}&group=day`);
    expect(perDay.rows).toHaveLength(1);
    const { latencies, ...totals } = exactOf(latest);
    expect(perDay.rows[0]).toMatchObject({ date: DAY, ...totals, latency: { count: latencies.length } });
    const onePath = await stats(`${query}&group=path&path=/api/v1/things/0`);
    expect(onePath.rows.length).toBeGreaterThan(0);
    expect(onePath.rows.every((r) => r.path === "/api/v1/things/0")).toBe(true);
  });

  it("keep STATS_MAX_PATHS paths and one (other) row when the day has more, its totals exact", async () => {
    const rows = requests(WIDE_DAY, 3000, 21).map((r, i) => ({ ...r, path: `/u/${i % 700}` }));
    await insertEvents(rows);
    const vars = { STATS_MAX_PATHS: "20" };
    await deliverAll((testEnv) => planArchive(testEnv, WIDE_DAY, NOW), vars, "archive-chunks");
    const answer = await stats(`from=${WIDE_DAY}&to=${WIDE_DAY}`, vars);
    expect(answer.days[0]).toMatchObject({ source: "rollups", requests: 3000 });
    expect(answer.rows).toHaveLength(21);
    const other = answer.rows.at(-1) as StatsAnswerRow;
    expect(other).toMatchObject({ path: "(other)", method: "*" });
    const total = exactOf(rows);
    const sum = (f: (r: StatsAnswerRow) => number) => (answer.rows as StatsAnswerRow[]).reduce((s, r) => s + f(r), 0);
    expect(sum((r) => r.requests)).toBe(3000);
    expect(sum((r) => r.bytes.sum)).toBe(total.bytes.sum);
    expect(sum((r) => r.latency.count)).toBe(total.latencies.length);
    expect(sum((r) => r.status["5xx"])).toBe(total.status["5xx"]);
    // Each named row is exact: a pair once named in a chunk gets all its rows.
    const named = answer.rows.slice(0, -1) as StatsAnswerRow[];
    for (const row of named) {
      expect(row.requests).toBe(rows.filter((r) => r.path === row.path && r.method === row.method).length);
    }
  });

  it("group paths after the table's path rules", async () => {
    const rows = Array.from({ length: 300 }, (_, i) =>
      event(RULES_DAY, i, { path: `/users/${i}${i % 3 === 0 ? "?tab=orders" : ""}`, method: "GET" }),
    );
    await insertEvents(rows);
    const vars = {
      ARCHIVE_STATS: JSON.stringify({
        path: "path",
        method: "method",
        status: "status",
        latencyMs: "latency_ms",
        pathRules: [
          ["\\?.*$", ""],
          ["/[0-9]+(?=/|$)", "/:id"],
        ],
      }),
    };
    const before = await stats(`from=${RULES_DAY}&to=${RULES_DAY}`, vars);
    await deliverAll((testEnv) => planArchive(testEnv, RULES_DAY, NOW), vars, "archive-chunks");
    const after = await stats(`from=${RULES_DAY}&to=${RULES_DAY}`, vars);
    expect(after.days[0]).toMatchObject({ source: "rollups", requests: 300 });
    expect(after.rows).toEqual(before.rows);
    expect(after.rows).toMatchObject([{ path: "/users/:id", method: "GET", requests: 300, bytes: { max: null } }]);
  });

  it("mark a day stale when it changed while a run committed (a recount finished meanwhile), not leave the run out", async () => {
    await insertEvents(requests(RACE_DAY, 500, 51));
    await deliverAll((testEnv) => planArchive(testEnv, RACE_DAY, NOW), {}, "archive-chunks");
    expect(await dayRecord(RACE_DAY)).toMatchObject({ state: "current", requests: 500 });
    await insertEvents(requests(RACE_DAY, 100, 52, 500));
    // The late-row run's commit is held just before its batch, while another writer's write to the day lands.
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let reached = () => {};
    const stalled = new Promise<void>((resolve) => {
      reached = resolve;
    });
    const held = faultyD1([
      {
        match: /INSERT INTO path_stats_days/,
        times: 1,
        effect: "stall",
        until: async () => {
          reached();
          await gate;
        },
      },
    ]);
    const late = await planned(RACE_DAY);
    expect(late.messages).toHaveLength(1);
    const delivering = deliver(late.messages[0], { ...env, D1: held } as Env);
    await stalled;
    // As a recount's write would: one version up, its own id.
    await env.D1.prepare(
      "UPDATE path_stats_days SET version = version + 1, written_by = 'a-recount' WHERE table_name = 'traffic_events' AND date = ?1",
    )
      .bind(RACE_DAY)
      .run();
    release();
    expect(await delivering).toBe("ack");
    expect(await dayRecord(RACE_DAY)).toMatchObject({
      state: "stale",
      requests: 500,
      stale_reason: expect.stringMatching(/^the day changed while run .* committed$/),
    });
  });

  it("are reported by health when a day's rollups do not count the rows its archives hold", async () => {
    const healthOf = async () =>
      (await evaluateHealth(env, NOW)).problems.filter((p) => p.code === "stats_mismatch").map((p) => p.key);
    expect(await healthOf()).toEqual([]);
    // A lost write, injected: the day's record says one request fewer than its archive holds.
    const corrupt = env.D1.prepare(
      "UPDATE path_stats_days SET requests = requests + ?2 WHERE table_name = 'traffic_events' AND date = ?1",
    );
    await corrupt.bind(WIDE_DAY, -1).run();
    try {
      expect(await healthOf()).toEqual([`stats_mismatch:traffic_events:${WIDE_DAY}`]);
    } finally {
      await corrupt.bind(WIDE_DAY, 1).run();
    }
    expect(await healthOf()).toEqual([]);
  });

  it("counted again from the archives for a day archived before they were kept, are what archiving counted", async () => {
    // Three chunks and a late-row run, so that the archive's merges and the recount's differ in order.
    const vars = { MAX_CHUNK_ROWS: "1500" };
    await insertEvents(requests(BACKFILL_DAY, 4000, 41));
    await deliverAll((testEnv) => planArchive(testEnv, BACKFILL_DAY, NOW), vars, "archive-chunks");
    await insertEvents(requests(BACKFILL_DAY, 400, 42, 4000));
    await deliverAll((testEnv) => planArchive(testEnv, BACKFILL_DAY, NOW), vars, "archive-chunks");
    const kept = async () =>
      (
        await env.D1.prepare(
          "SELECT * FROM path_stats WHERE table_name = 'traffic_events' AND date = ?1 ORDER BY path, method",
        )
          .bind(BACKFILL_DAY)
          .all()
      ).results;
    const archived = await kept();
    expect(archived).toHaveLength(200);
    const record = await dayRecord(BACKFILL_DAY);
    expect(record).toMatchObject({ state: "current", requests: 4400, runs: 2 });
    await deliverAll((testEnv) => planCleanup(testEnv, BACKFILL_DAY, NOW));

    // As an older archiver left it: committed runs, cleaned, and no statistics.
    await env.D1.batch([
      env.D1.prepare("DELETE FROM path_stats WHERE date = ?1").bind(BACKFILL_DAY),
      env.D1.prepare("DELETE FROM path_stats_days WHERE date = ?1").bind(BACKFILL_DAY),
    ]);
    expect((await stats(`from=${BACKFILL_DAY}&to=${BACKFILL_DAY}`)).days[0]).toMatchObject({
      source: "unavailable",
      reason: "archived before path statistics were kept, and cleaned since",
    });
    // The cron's query finds it, and the recount writes the same rows, sketches and quantiles included.
    expect(await daysDueForRecount(env.D1, readConfig(env), NOW, 100)).toContainEqual({
      tableName: "traffic_events",
      date: BACKFILL_DAY,
    });
    const ranges = await deliverAll((testEnv) => planRecount(testEnv, BACKFILL_DAY, NOW), vars);
    expect(ranges).toBe(4);
    expect(await kept()).toEqual(archived);
    expect(await dayRecord(BACKFILL_DAY)).toMatchObject({ state: "current", requests: 4400, runs: 2 });
  });

  it("refuse what they cannot answer, changing nothing", async () => {
    const refused = async (query: string, vars: Record<string, string> = {}) => {
      const response = await worker.fetch(
        new Request(`http://archiver.test/admin/stats?${query}`, {
          headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
        }),
        { ...env, ...vars } as Env,
        createExecutionContext(),
      );
      return { status: response.status, body: (await response.json()) as { error: { code: string; message: string } } };
    };
    expect((await refused(`from=${DAY}`)).status).toBe(400);
    expect((await refused(`from=${DAY}&to=2026-05-19`)).body.error.message).toMatch(/from must not be after to/);
    expect((await refused("from=2026-01-01&to=2026-05-01")).body.error.message).toMatch(/at most 92 days/);
    expect((await refused(`from=${DAY}&to=${DAY}&group=hour`)).status).toBe(400);
    expect((await refused("from=2999-01-01&to=2999-01-01")).body.error.message).toMatch(/must not be after today/);
    const none = await refused(`from=${DAY}&to=${DAY}`, { ARCHIVE_STATS: "" });
    expect(none).toMatchObject({ status: 400, body: { error: { code: "no_stats" } } });

    // A hot day with more rows than one call reads is refused before its rows are read: here pages of one
    // row, in half of 50 queries.
    const small = { D1_QUERIES_PER_INVOCATION: "50", PAGE_ROWS: "1" };
    await insertEvents(Array.from({ length: 30 }, (_, i) => event(HUGE_DAY, i)));
    const huge = await refused(`from=${HUGE_DAY}&to=${HUGE_DAY}`, small);
    expect(huge).toMatchObject({ status: 422, body: { error: { code: "too_many_rows" } } });
    expect(huge.body.error.message).toMatch(/has 30 rows in D1, more than this call reads \(\d+:/);
    // A day of two rows whose ids lie far apart is read, whatever its span. (Last in the file:
    // AUTOINCREMENT goes on above the large id.)
    await insertEvents([event(SPARSE_DAY, 0)]);
    await insertEventWithId(50_000_000, event(SPARSE_DAY, 1));
    const sparse = await stats(`from=${SPARSE_DAY}&to=${SPARSE_DAY}`, small);
    expect(sparse.days[0]).toMatchObject({ source: "d1", requests: 2 });
  });
});
