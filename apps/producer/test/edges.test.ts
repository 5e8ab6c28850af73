import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import {
  type ChunkRow,
  PAGE_TARGET_BYTES,
  type RangePage,
  type RunRow,
  rangePages,
  readConfig,
  TEXT_PAGE_BYTES,
  tableOf,
} from "@path-stats/shared";
import { describe, expect, it } from "vitest";
import { replayDeadLetters } from "../src/dead-letters.ts";
import { evaluateHealth } from "../src/monitoring/health.ts";
import { overview } from "../src/monitoring/overview.ts";
import { planArchive } from "../src/plan-archive.ts";
import { planCleanup } from "../src/plan-cleanup.ts";
import { dayStatus } from "../src/status.ts";
import { capturingQueue, DELETE_ROWS, deliver, deliverCleanup, faultyD1, measuringD1, PAGE_READ } from "./faults.ts";
import {
  archiveLines,
  d1Rows,
  event,
  insertEvents,
  insertEventWithId,
  noise,
  random,
  runsOf,
  waitForRun,
} from "./helpers.ts";
import worker from "./worker.ts";

/**
 * Trust at the edges: rows that enter archived ranges, plans that race,
 * uploads that vanish, consumers that stall. Each test fails without the
 * mechanism it names.
 */

const NOW = new Date("2026-09-30T08:00:00Z");

async function archive(date: string, testEnv: Env = env): Promise<RunRow> {
  const planned = await planArchive(testEnv, date, NOW);
  if (planned.outcome !== "planned") throw new Error(`expected a new run of ${date}, got ${planned.outcome}`);
  return waitForRun(planned.run.run_id);
}

async function cleanAll(date: string): Promise<void> {
  const queue = capturingQueue();
  await planCleanup({ ...env, CLEANUP_QUEUE: queue }, date, NOW);
  for (const m of queue.sent) expect(await deliverCleanup(m)).toBe("ack");
}

async function count(date: string): Promise<number> {
  const row = await env.D1.prepare("SELECT COUNT(*) AS n FROM traffic_events WHERE event_date = ?1")
    .bind(date)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

async function cleanedFlag(date: string): Promise<number | undefined> {
  const row = await env.D1.prepare("SELECT d1_cleaned FROM archive_metadata WHERE date = ?1")
    .bind(date)
    .first<{ d1_cleaned: number }>();
  return row?.d1_cleaned;
}

/** Every archived line of a date's committed runs, parsed, keyed by run. */
async function archivedRows(date: string): Promise<Map<string, Record<string, unknown>[]>> {
  const byRun = new Map<string, Record<string, unknown>[]>();
  for (const run of await runsOf(date)) {
    if (run.status !== "archived") continue;
    byRun.set(
      run.run_id,
      (await archiveLines(run.object_key)).map((l) => JSON.parse(l)),
    );
  }
  return byRun;
}

function insertWithId(id: number, date: string, path: string): Promise<void> {
  return insertEventWithId(id, event(date, id, { path }));
}

describe("a row leaves D1 only if the committed archive holds it exactly", () => {
  it("an explicit-id row inserted into a range between its check and a retried delete survives, then is archived once and cleaned", async () => {
    const date = "2026-09-01";
    await insertEvents(Array.from({ length: 300 }, (_, i) => event(date, i)));
    const first = await archive(date);
    const queue = capturingQueue();
    await planCleanup({ ...env, CLEANUP_QUEUE: queue }, date, NOW);
    const [message] = queue.sent;

    // The range is checked and its first delete runs; the second fails.
    const dying = { ...env, D1: faultyD1([{ match: DELETE_ROWS, skip: 1, times: 1 }]) };
    expect(await deliverCleanup(message, dying)).toBe("retry");
    // A writer that assigns ids puts a new row at an id whose archived row was just deleted.
    const reused = first.rowid_lo + 1;
    expect(await d1Rows(date, reused, reused)).toEqual([]);
    await insertWithId(reused, date, "/backfilled");
    expect(await deliverCleanup(message, env, 2)).toBe("ack");

    const rows = await d1Rows(date);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ id: reused, path: "/backfilled" });
    const chunk = await env.D1.prepare("SELECT * FROM archive_chunks WHERE run_id = ?1")
      .bind(first.run_id)
      .first<ChunkRow>();
    expect(chunk).toMatchObject({ cleanup_state: "cleaned", rows_deleted: 300, rows_left: 1 });
    expect(await cleanedFlag(date)).toBe(0);

    // The next plan finds the row inside the cleaned range, archives it, and cleanup removes it.
    const second = await archive(date);
    expect(second).toMatchObject({ status: "archived", archived_rows: 1 });
    await cleanAll(date);
    expect(await count(date)).toBe(0);
    expect(await cleanedFlag(date)).toBe(1);
    const archived = await archivedRows(date);
    expect(archived.get(first.run_id)?.find((r) => r.id === reused)?.path).not.toBe("/backfilled");
    expect(archived.get(second.run_id)).toEqual([rows[0]]);
  });

  it("a row moved into a cleaned day by UPDATE or UPSERT resets d1_cleaned and is archived by the next run", async () => {
    const date = "2026-09-02";
    const other = "2026-09-03";
    await insertEvents(Array.from({ length: 50 }, (_, i) => event(date, i)));
    await insertEvents(Array.from({ length: 5 }, (_, i) => event(other, i, { path: `/other-${i}` })));
    const run = await archive(date);
    await cleanAll(date);
    expect(await cleanedFlag(date)).toBe(1);

    const [moved, upserted] = await d1Rows(other);
    await env.D1.prepare("UPDATE traffic_events SET event_date = ?1 WHERE id = ?2").bind(date, moved?.id).run();
    expect(await cleanedFlag(date)).toBe(0);
    // Marked cleaned again by nothing but an empty day...
    expect((await planCleanup({ ...env, CLEANUP_QUEUE: capturingQueue() }, date, NOW)).outcome).toBe(
      "nothing_to_clean",
    );
    expect(await cleanedFlag(date)).toBe(0);

    const second = await archive(date);
    await cleanAll(date);
    expect(await cleanedFlag(date)).toBe(1);
    await env.D1.prepare(
      `INSERT INTO traffic_events (id, event_date, ts, path, method, status) VALUES (?1, ?2, 0, '/upsert', 'GET', 200)
       ON CONFLICT (id) DO UPDATE SET event_date = excluded.event_date, path = excluded.path`,
    )
      .bind(upserted?.id, date)
      .run();
    expect(await cleanedFlag(date)).toBe(0);
    const third = await archive(date);
    await cleanAll(date);
    expect(await cleanedFlag(date)).toBe(1);

    const archived = await archivedRows(date);
    expect(archived.get(run.run_id)).toHaveLength(50);
    expect(archived.get(second.run_id)?.map((r) => r.id)).toEqual([moved?.id]);
    expect(archived.get(third.run_id)).toMatchObject([{ id: upserted?.id, path: "/upsert" }]);
  });

  it("a day whose last rows left D1 another way is marked cleaned by the next cleanup", async () => {
    const date = "2026-09-04";
    await insertEvents(Array.from({ length: 20 }, (_, i) => event(date, i)));
    await archive(date);
    await cleanAll(date);
    await insertWithId(9_000_001, date, "/stray");
    expect(await cleanedFlag(date)).toBe(0);
    await env.D1.prepare("DELETE FROM traffic_events WHERE id = 9000001").run();
    await cleanAll(date);
    expect(await cleanedFlag(date)).toBe(1);
  });
});

describe("never two runs over the same rows", () => {
  it("a plan that stalled while another run archived the day does not create a second run", async () => {
    const date = "2026-09-05";
    await insertEvents(Array.from({ length: 100 }, (_, i) => event(date, i)));
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slow = {
      ...env,
      D1: faultyD1([{ match: /^INSERT INTO archive_runs/, times: 1, effect: "stall", until: () => held }]),
    };
    const stalled = planArchive(slow, date, NOW);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const winner = await archive(date);
    release();
    const outcome = await stalled;
    expect(outcome.outcome).toBe("up_to_date");
    expect((await runsOf(date)).map((r) => [r.run_id, r.status])).toEqual([[winner.run_id, "archived"]]);
    const listed = await env.R2_ARCHIVE.list({ prefix: `traffic_events/event_date=${date}/` });
    expect(listed.objects.map((o) => o.key).sort()).toEqual([winner.manifest_key, winner.object_key].sort());
  });
});

describe("no run stuck forever", () => {
  it("fails a run whose upload is gone in one attempt, and a new trigger archives the day", async () => {
    const date = "2026-09-06";
    await insertEvents(Array.from({ length: 40 }, (_, i) => event(date, i)));
    const queue = capturingQueue();
    const planned = await planArchive({ ...env, ARCHIVE_QUEUE: queue }, date, NOW);
    const run = planned.run as RunRow;
    await env.R2_ARCHIVE.resumeMultipartUpload(run.object_key, run.upload_id).abort();

    expect(await deliver(queue.sent[0])).toBe("ack");
    const failed = (await runsOf(date))[0];
    expect(failed?.status).toBe("failed");
    expect(failed?.error).toMatch(/NoSuchUpload|10024|upload/i);

    const again = await archive(date);
    expect(again.archived_rows).toBe(40);
  });

  it("fails at once a run whose rows all left D1 before it archived them", async () => {
    const date = "2026-09-07";
    await insertEvents(Array.from({ length: 10 }, (_, i) => event(date, i)));
    const queue = capturingQueue();
    await planArchive({ ...env, ARCHIVE_QUEUE: queue }, date, NOW);
    await env.D1.prepare("DELETE FROM traffic_events WHERE event_date = ?1").bind(date).run();
    expect(await deliver(queue.sent[0])).toBe("ack");
    const [run] = await runsOf(date);
    expect(run?.status).toBe("failed");
    expect(run?.error).toMatch(/archived no rows/);
  });

  it("keeps the upload of a run whose insert D1 reported as failed but committed", async () => {
    const date = "2026-09-08";
    await insertEvents(Array.from({ length: 60 }, (_, i) => event(date, i)));
    const queue = capturingQueue();
    const flaky = {
      ...env,
      ARCHIVE_QUEUE: queue,
      D1: faultyD1([{ match: /^INSERT INTO archive_runs/, times: 1, effect: "commit-then-fail" }]),
    };
    const planned = await planArchive(flaky, date, NOW);
    expect(planned.outcome).toBe("planned");
    for (const m of queue.sent) expect(await deliver(m)).toBe("ack");
    const [run] = await runsOf(date);
    expect(run).toMatchObject({ status: "archived", archived_rows: 60 });
  });

  it("lets an operator fail a stuck run, and only a run that is archiving", async () => {
    const date = "2026-09-09";
    await insertEvents(Array.from({ length: 30 }, (_, i) => event(date, i)));
    const planned = await planArchive({ ...env, ARCHIVE_QUEUE: capturingQueue() }, date, NOW);
    const runId = planned.run?.run_id ?? "";
    const post = async (path: string, body?: unknown, token = env.ADMIN_TOKEN) => {
      const response = await worker.fetch(
        new Request(`http://archiver.test${path}`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: body === undefined ? undefined : JSON.stringify(body),
        }),
        env,
        createExecutionContext(),
      );
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };

    expect((await post(`/admin/runs/${runId}/fail`, {})).status).toBe(400);
    expect((await post(`/admin/runs/${runId}/fail`, { reason: "stuck" }, "wrong")).status).toBe(401);
    expect((await post("/admin/runs/nope/fail", { reason: "stuck" })).status).toBe(404);
    const failed = await post(`/admin/runs/${runId}/fail`, { reason: "consumer wedged" });
    expect(failed).toMatchObject({ status: 200, body: { runId, status: "failed" } });
    expect(String(failed.body.error)).toMatch(/consumer wedged/);
    // Its upload is gone, its rows are all still in D1.
    expect(await count(date)).toBe(30);
    const again = await post(`/admin/runs/${runId}/fail`, { reason: "twice" });
    expect(again).toMatchObject({ status: 409, body: { error: { code: "run_not_archiving" } } });

    const next = await archive(date);
    expect(next.archived_rows).toBe(30);
    expect((await post(`/admin/runs/${next.run_id}/fail`, { reason: "late" })).status).toBe(409);
  });

  it("answers an unauthenticated wrong method with 401, not 405", async () => {
    const response = await worker.fetch(
      new Request("http://archiver.test/admin/trigger-archive?date=2026-09-01", { method: "PUT" }),
      env,
      createExecutionContext(),
    );
    expect(response.status).toBe(401);
    expect(response.headers.get("allow")).toBeNull();
  });
});

describe("leases renewed while working", () => {
  it("a duplicate delivery cannot take over a chunk whose consumer is slow but alive", async () => {
    const date = "2026-09-10";
    await insertEvents(Array.from({ length: 2000 }, (_, i) => event(date, i)));
    const queue = capturingQueue();
    const shortLease = { ...env, LEASE_SECONDS: "1", PAGE_ROWS: "100" };
    const planned = await planArchive({ ...shortLease, ARCHIVE_QUEUE: queue }, date, NOW);
    // Every page read takes 150 ms: the chunk needs several leases of work.
    const pause = () => new Promise<void>((resolve) => setTimeout(resolve, 150));
    const slow = {
      ...shortLease,
      D1: faultyD1([{ match: PAGE_READ, times: 1000, effect: "stall", until: pause }]),
    };
    const first = deliver(queue.sent[0], slow);
    await new Promise((resolve) => setTimeout(resolve, 1600));
    expect(await deliver(queue.sent[0], shortLease)).toBe("retry");
    expect(await first).toBe("ack");
    const run = await waitForRun(planned.run?.run_id ?? "");
    expect(run).toMatchObject({ status: "archived", archived_rows: 2000 });
    const chunk = await env.D1.prepare("SELECT attempts FROM archive_chunks WHERE run_id = ?1")
      .bind(run.run_id)
      .first<{ attempts: number }>();
    expect(chunk?.attempts).toBe(1);
  });
});

describe("dead letters", () => {
  it("a letter that cannot be recorded is retried, never acked unrecorded", async () => {
    const body = { version: 1, runId: "someRun", date: "2026-09-11", chunkIndex: 0 };
    const batch = createMessageBatch(env.ARCHIVE_DLQ_NAME, [{ id: "dlq-1", timestamp: new Date(), attempts: 1, body }]);
    const ctx = createExecutionContext();
    const down = { ...env, D1: faultyD1([{ match: /^INSERT INTO dead_letters/, times: 1 }]) };
    await worker.queue(batch, down);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toEqual([]);
    expect(result.retryMessages.map((m: { msgId: string }) => m.msgId)).toEqual(["dlq-1"]);
    expect(await env.D1.prepare("SELECT COUNT(*) AS n FROM dead_letters WHERE message_id = 'dlq-1'").first()).toEqual({
      n: 0,
    });
  });

  it("replays thousands of pending letters in bounded batches", async () => {
    const letters = 1234;
    const rows = Array.from({ length: letters }, (_, i) => [
      i % 3 === 0 ? "cleanup-ranges" : "archive-chunks",
      `bulk-${i}`,
      JSON.stringify({ version: 1, runId: `run${i}`, date: "2026-09-12", chunkIndex: i }),
    ]);
    for (let i = 0; i < rows.length; i += 25) {
      const group = rows.slice(i, i + 25);
      await env.D1.prepare(
        `INSERT INTO dead_letters (queue, message_id, body, attempts, received_at)
         VALUES ${group.map(() => "(?, ?, ?, 5, '2026-09-12T00:00:00Z')").join(", ")}`,
      )
        .bind(...group.flat())
        .run();
    }
    const archiveQueue = capturingQueue();
    const cleanupQueue = capturingQueue();
    const result = await replayDeadLetters(
      { ...env, ARCHIVE_QUEUE: archiveQueue, CLEANUP_QUEUE: cleanupQueue },
      "pending",
      NOW,
    );
    expect(result.replayed).toHaveLength(letters);
    expect(result.pendingLeft).toBe(0);
    expect(archiveQueue.sent.length + cleanupQueue.sent.length).toBe(letters);
    expect(cleanupQueue.sent).toHaveLength(Math.ceil(letters / 3));
    expect(new Set(archiveQueue.sent.map((m) => m.chunkIndex)).size).toBe(archiveQueue.sent.length);
  });
});

/** How many of a day's rows the page reader gets from text pages and from row pages. */
async function pageKinds(date: string, maxPageRows = 5000): Promise<Record<RangePage["kind"], number>> {
  const kinds = { text: 0, rows: 0 };
  const range = { table: tableOf(readConfig(env)), date, rowidLo: 0, rowidHi: Number.MAX_SAFE_INTEGER, maxPageRows };
  for await (const page of rangePages(env.D1, range)) kinds[page.kind] += page.rows;
  return kinds;
}

describe("rows of any width", () => {
  it("keep every D1 answer within D1's limits when 10 KB rows follow narrow ones, and a line too big for one string", async () => {
    const date = "2026-09-16";
    const next = random(16);
    await insertEvents([
      ...Array.from({ length: 2500 }, (_, i) => event(date, i)),
      ...Array.from({ length: 800 }, (_, i) => event(date, 2500 + i, { user_agent: noise(next, 10_000) })),
      ...Array.from({ length: 300 }, (_, i) => event(date, 3300 + i, { referrer: i % 2 ? noise(next, 3000) : null })),
      // 1.2 MB as a value, 2.4 MB as a JSON line: only a row page can read it from production D1.
      event(date, 3600, { user_agent: '"'.repeat(1_200_000) }),
      ...Array.from({ length: 50 }, (_, i) => event(date, 3601 + i)),
    ]);
    // Pages of up to 5000 rows: without a bound by size, the fourth page
    // (100, 400, 1600 narrow rows before it) would hold every wide row, about 8 MB.
    const measured = measuringD1(/traffic_events/);
    const testEnv = { ...env, D1: measured, PAGE_ROWS: "5000", PARTS_PER_CHUNK: "100" };
    const queue = capturingQueue();
    const planned = await planArchive({ ...testEnv, ARCHIVE_QUEUE: queue }, date, NOW);
    for (const m of queue.sent) expect(await deliver(m, testEnv)).toBe("ack");
    const run = await waitForRun(planned.run?.run_id ?? "");

    expect(run.status).toBe("archived");
    expect(run.archived_rows).toBe(3651);
    const lines = await archiveLines(run.object_key);
    expect(lines).toEqual((await d1Rows(date)).map((r) => JSON.stringify(r)));
    // Text pages come near their byte target; the long line's page was refused and read as rows.
    expect(measured.largestString).toBeGreaterThan(TEXT_PAGE_BYTES / 2);
    expect(measured.largestString).toBeLessThan(2_000_000);
    expect(measured.refusals).toBeGreaterThan(0);
    expect(measured.largestAnswer).toBeLessThan(PAGE_TARGET_BYTES * 1.25);
    const kinds = await pageKinds(date);
    expect(kinds.text).toBe(3650);
    expect(kinds.rows).toBe(1);
  });

  it("hand on a row page's wide rows in pieces of about PAGE_TARGET_BYTES, narrow rows before them or not", async () => {
    const date = "2026-09-23";
    const next = random(17);
    // REALs send every page through the row path; the second page (400 rows) holds 12 rows of 1 MB.
    await insertEvents([
      ...Array.from({ length: 300 }, (_, i) => event(date, i)),
      ...Array.from({ length: 12 }, (_, i) => event(date, 300 + i, { user_agent: noise(next, 1_000_000) })),
    ]);
    await env.D1.prepare("UPDATE traffic_events SET latency_ms = id + 0.5 WHERE event_date = ?1").bind(date).run();
    const range = {
      table: tableOf(readConfig(env)),
      date,
      rowidLo: 0,
      rowidHi: Number.MAX_SAFE_INTEGER,
      maxPageRows: 5000,
    };
    let rows = 0;
    let largest = 0;
    for await (const page of rangePages(env.D1, range)) {
      expect(page.kind).toBe("rows");
      rows += page.rows;
      largest = Math.max(largest, page.bytes.byteLength);
    }
    expect(rows).toBe(312);
    // A piece is flushed once it reaches the target, so it is at most the target and one row more.
    expect(largest).toBeLessThan(PAGE_TARGET_BYTES + 1_100_000);
  });

  it("archive REAL values and integers up to ±2^53 exactly, as JavaScript writes them", async () => {
    const date = "2026-09-19";
    await insertEvents(Array.from({ length: 300 }, (_, i) => event(date, i)));
    const ids = (await d1Rows(date)).map((r) => r.id);
    // A REAL in an INTEGER column stays a REAL; SQLite's own JSON would write it with 15 digits (0.3).
    await env.D1.prepare("UPDATE traffic_events SET latency_ms = 0.1 + 0.2 WHERE id = ?1").bind(ids[150]).run();
    await env.D1.prepare("UPDATE traffic_events SET bytes = 9007199254740991, ts = -9007199254740991 WHERE id = ?1")
      .bind(ids[200])
      .run();
    const run = await archive(date);

    expect(run.status).toBe("archived");
    const lines = await archiveLines(run.object_key);
    expect(lines).toEqual((await d1Rows(date)).map((r) => JSON.stringify(r)));
    expect(lines[150]).toContain('"latency_ms":0.30000000000000004');
    expect(lines[200]).toContain('"ts":-9007199254740991');
    // Only the page holding the REAL was read as rows.
    const kinds = await pageKinds(date, 100);
    expect(kinds.rows).toBe(100);
    expect(kinds.text).toBe(200);

    // Cleanup matches the window holding the REAL row by row (SQLite writes it otherwise), the rest together.
    await cleanAll(date);
    expect(await count(date)).toBe(0);
    const chunk = await env.D1.prepare("SELECT * FROM archive_chunks WHERE run_id = ?1")
      .bind(run.run_id)
      .first<ChunkRow>();
    expect(chunk).toMatchObject({ cleanup_state: "cleaned", rows_deleted: 300, rows_left: 0 });
    expect(chunk?.delete_statements).toBe(Math.ceil(300 / Number(env.DELETE_BATCH_ROWS)) + 1);
  });
});

describe("values JSON cannot carry exactly", () => {
  const cases: [string, string, RegExp][] = [
    ["2026-09-17", "UPDATE traffic_events SET latency_ms = 9e999 WHERE id = ?1", /non-finite number/],
    ["2026-09-18", "UPDATE traffic_events SET bytes = -9e999 WHERE id = ?1", /non-finite number/],
    ["2026-09-13", "UPDATE traffic_events SET bytes = X'00ff10' WHERE id = ?1", /BLOB in column bytes/],
    ["2026-09-20", "UPDATE traffic_events SET user_agent = X'00ff10' WHERE id = ?1", /BLOB in column user_agent/],
    ["2026-09-14", "UPDATE traffic_events SET bytes = 9007199254740993 WHERE id = ?1", /beyond ±2\^53 .* bytes/],
    // Bytes that are not UTF-8, stored as TEXT: D1 answers them as U+FFFD, which the archive would keep
    // and cleanup could never match. On a text page, and on a row page (the row holds a REAL too).
    [
      "2026-09-21",
      "UPDATE traffic_events SET path = CAST(X'2F61FF62' AS TEXT) WHERE id = ?1",
      /not valid UTF-8 in column path/,
    ],
    [
      "2026-09-22",
      "UPDATE traffic_events SET latency_ms = 0.5, referrer = CAST(X'2FC3' AS TEXT) WHERE id = ?1",
      /not valid UTF-8 in column referrer/,
    ],
  ];
  for (const [date, sql, reason] of cases) {
    it(`fail the run, naming the row, and delete nothing (${reason.source})`, async () => {
      await insertEvents(Array.from({ length: 20 }, (_, i) => event(date, i)));
      const [row] = await d1Rows(date);
      await env.D1.prepare(sql).bind(row?.id).run();
      const planned = await planArchive(env, date, NOW);
      const run = await waitForRun(planned.run?.run_id ?? "");
      expect(run.status).toBe("failed");
      expect(run.error).toMatch(reason);
      // Named by its id (the re-read of text as bytes once answered "row id null").
      expect(run.error).toContain(`row id ${row?.id} `);
      expect(await count(date)).toBe(20);
      const listed = await env.R2_ARCHIVE.list({ prefix: `traffic_events/event_date=${date}/` });
      expect(listed.objects).toEqual([]);
      await expect(planCleanup(env, date, NOW)).rejects.toMatchObject({ code: "run_failed" });
    });
  }

  // Last in the file: AUTOINCREMENT continues above the largest id, so later rows would get such ids too
  // (sqlite_sequence keeps it even after the row is moved back).
  it("refuse to plan a day with an id beyond ±2^53, creating nothing, and say why in status and health at once", async () => {
    const date = "2026-09-15";
    await insertEvents(Array.from({ length: 20 }, (_, i) => event(date, i)));
    const [row] = await d1Rows(date);
    await env.D1.prepare("UPDATE traffic_events SET id = 9007199254740993 WHERE id = ?1").bind(row?.id).run();
    await expect(planArchive(env, date, NOW)).rejects.toThrow(/id beyond ±2\^53/);
    expect(await runsOf(date)).toEqual([]);
    expect(await count(date)).toBe(20);

    const status = await dayStatus(env.D1, tableOf(readConfig(env)), date);
    expect(status.status).toBe("refused");
    expect(status.refusal?.reason).toMatch(/id beyond ±2\^53 \(about 9007199254740992\)/);
    // The operator page's day list says the same.
    const listed = (await overview(env.D1, readConfig(env).tables, tableOf(readConfig(env)), NOW, 60)).days.find(
      (d) => d.date === date,
    );
    expect(listed).toMatchObject({ state: "refused", lastError: status.refusal?.reason });
    const problem = (await evaluateHealth(env, NOW)).problems.find((p) => p.code === "day_refused");
    expect(problem).toMatchObject({ table: "traffic_events", date, key: `day_refused:traffic_events:${date}` });
    expect(problem?.message).toMatch(/9007199254740992/);

    // The row put back within range: the day plans, and the refusal is gone.
    await env.D1.prepare("UPDATE traffic_events SET id = ?1 WHERE id > 9007199254740000").bind(row?.id).run();
    expect((await planArchive({ ...env, ARCHIVE_QUEUE: capturingQueue() }, date, NOW)).outcome).toBe("planned");
    expect((await dayStatus(env.D1, tableOf(readConfig(env)), date)).refusal).toBeNull();
    expect((await evaluateHealth(env, NOW)).problems.some((p) => p.code === "day_refused")).toBe(false);
  });
});
