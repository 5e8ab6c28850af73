import { env } from "cloudflare:workers";
import type { ChunkRow, CleanupRangeMessage, RunRow } from "@path-stats/shared";
import { describe, expect, it } from "vitest";
import { evaluateHealth } from "../src/monitoring/health.ts";
import { planArchive } from "../src/plan-archive.ts";
import { planCleanup } from "../src/plan-cleanup.ts";
import { planRestore } from "../src/restore/plan-restore.ts";
import { failRunByOperator } from "../src/runs.ts";
import { capturingQueue, deliver, deliverCleanup, faultyD1 } from "./faults.ts";
import {
  archiveLines,
  d1Rows,
  event,
  insertEvents,
  insertEventWithId,
  manifestOf,
  runsOf,
  waitForRun,
} from "./helpers.ts";

/**
 * A row leaves D1 only if restoring its archive would give back exactly that
 * row: every current column, same type and value. Each test is a way that
 * promise was broken before (issue "A row leaves D1 only if restoring its
 * archive would give back exactly that row"), reproduced with the fault put
 * where it happens.
 */

const NOW = new Date("2026-11-20T12:00:00Z");

async function archive(date: string): Promise<RunRow> {
  const planned = await planArchive(env, date, NOW);
  if (planned.outcome !== "planned") throw new Error(`expected a new run of ${date}, got ${planned.outcome}`);
  return waitForRun(planned.run.run_id);
}

async function heldCleanup(date: string, testEnv: Env = env): Promise<CleanupRangeMessage[]> {
  const queue = capturingQueue();
  await planCleanup({ ...testEnv, CLEANUP_QUEUE: queue }, date, NOW);
  return queue.sent as unknown as CleanupRangeMessage[];
}

async function clean(date: string, testEnv: Env = env): Promise<void> {
  for (const m of await heldCleanup(date, testEnv)) expect(await deliverCleanup(m, testEnv)).toBe("ack");
}

async function chunksOf(runId: string): Promise<ChunkRow[]> {
  const { results } = await env.D1.prepare("SELECT * FROM archive_chunks WHERE run_id = ?1 ORDER BY chunk_index")
    .bind(runId)
    .all<ChunkRow>();
  return results;
}

async function cleanedFlag(date: string): Promise<number | undefined> {
  const row = await env.D1.prepare("SELECT d1_cleaned FROM archive_metadata WHERE date = ?1")
    .bind(date)
    .first<{ d1_cleaned: number }>();
  return row?.d1_cleaned;
}

/** Every archived line of every committed run of the date, parsed. */
async function archivedRows(date: string): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  for (const run of await runsOf(date)) {
    if (run.status === "archived") rows.push(...(await archiveLines(run.object_key)).map((l) => JSON.parse(l)));
  }
  return rows;
}

/** Doubles that SQLite's own text conversions get wrong often (tiny and huge ones), and some ordinary ones. */
function awkwardDoubles(n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const exponent = [-320, -300, -250, -200, -150, -101, -3, 12, 20, 150, 300][i % 11] as number;
    out.push((1 + ((i * 7919) % 1000) / 1013) * 10 ** exponent * (i % 3 ? 1 : -1));
  }
  return out;
}

describe("a row leaves D1 only if its archive gives it back exactly", () => {
  it("keeps rows whose column added after archiving was backfilled, deletes those at the default, archives the rest again", async () => {
    const date = "2026-11-01";
    await insertEvents(Array.from({ length: 5 }, (_, i) => event(date, i)));
    const first = await archive(date);
    await env.D1.exec("ALTER TABLE traffic_events ADD COLUMN region TEXT NOT NULL DEFAULT 'eu'");
    try {
      const ids = (await d1Rows(date)).map((r) => r.id as number);
      await env.D1.prepare("UPDATE traffic_events SET region = 'us' WHERE id IN (?1, ?2)").bind(ids[1], ids[3]).run();

      await clean(date);
      // Restoring the archive (no region) would give the default 'eu': only those rows went.
      expect((await d1Rows(date)).map((r) => [r.id, r.region])).toEqual([
        [ids[1], "us"],
        [ids[3], "us"],
      ]);
      expect((await chunksOf(first.run_id))[0]).toMatchObject({ rows_deleted: 3, rows_left: 2 });
      expect(await cleanedFlag(date)).toBe(0);

      // The backfilled rows are archived again, with the new column, and then cleaned.
      const before = await d1Rows(date);
      const second = await archive(date);
      expect((await archiveLines(second.object_key)).map((l) => JSON.parse(l).region)).toEqual(["us", "us"]);
      // The second manifest says whose rows it may supersede.
      expect((await manifestOf(second)).supersedes).toEqual([
        { runId: first.run_id, rowidLo: ids[1], rowidHi: ids[3] },
      ]);
      await clean(date);
      expect(await d1Rows(date)).toEqual([]);
      expect(await cleanedFlag(date)).toBe(1);

      // A restore of the day gives each row once, with its current content, whichever range comes first.
      for (const order of ["as planned", "reversed"]) {
        const queue = capturingQueue();
        await planRestore({ ...env, CLEANUP_QUEUE: queue }, date, null, NOW);
        const messages = order === "reversed" ? [...queue.sent].reverse() : queue.sent;
        for (const m of messages) expect(await deliverCleanup(m)).toBe("ack");
        const restored = await d1Rows(date);
        expect(restored.map((r) => [r.id, r.region])).toEqual(
          ids.map((id, i) => [id, i === 1 || i === 3 ? "us" : "eu"]),
        );
        expect(restored.filter((r) => r.region === "us")).toEqual(before.filter((r) => r.region === "us"));
        await clean(date);
        expect(await d1Rows(date)).toEqual([]);
      }
    } finally {
      await env.D1.exec("ALTER TABLE traffic_events DROP COLUMN region");
    }
  });

  it("keeps a REAL that changed in its 16th or 17th digit; deletes the others", async () => {
    const date = "2026-11-02";
    const below = 0.3 - 2 ** -54; // the double just below 0.3
    expect(below).not.toBe(0.3);
    await insertEvents(Array.from({ length: 6 }, (_, i) => event(date, i, { latency_ms: 0.3 })));
    await archive(date);
    const ids = (await d1Rows(date)).map((r) => r.id as number);
    // 0.30000000000000004 and 0.3 print alike with SQLite's 15 digits.
    await env.D1.prepare("UPDATE traffic_events SET latency_ms = ?1 WHERE id = ?2")
      .bind(0.1 + 0.2, ids[2])
      .run();
    await env.D1.prepare("UPDATE traffic_events SET latency_ms = ?1 WHERE id = ?2").bind(below, ids[4]).run();
    await clean(date);
    expect((await d1Rows(date)).map((r) => [r.id, r.latency_ms])).toEqual([
      [ids[2], 0.1 + 0.2],
      [ids[4], below],
    ]);
  });

  it("archives, deletes and restores tiny and huge REALs exactly, so none is archived again", async () => {
    const date = "2026-11-03";
    const values = awkwardDoubles(200);
    await insertEvents(values.map((v, i) => event(date, i, { latency_ms: v })));
    const inserted = await d1Rows(date);
    expect(inserted.map((r) => r.latency_ms)).toEqual(values);
    const run = await archive(date);
    await clean(date);
    expect(await d1Rows(date)).toEqual([]);
    expect((await chunksOf(run.run_id))[0]).toMatchObject({ rows_deleted: 200, rows_left: 0 });

    // Restored, every value comes back bit for bit.
    const queue = capturingQueue();
    await planRestore({ ...env, CLEANUP_QUEUE: queue }, date, null, NOW);
    for (const m of queue.sent) expect(await deliverCleanup(m)).toBe("ack");
    const restored = await d1Rows(date);
    expect(restored.length).toBe(200);
    for (const [i, row] of restored.entries()) expect(Object.is(row.latency_ms, inserted[i]?.latency_ms)).toBe(true);
    // And cleaned again by exact match; the cron finds nothing to archive.
    await clean(date);
    expect(await d1Rows(date)).toEqual([]);
    expect((await planArchive(env, date, NOW)).outcome).toBe("up_to_date");
  });

  it("fails the run on an integral REAL in a column without type, which JSON would restore as an INTEGER", async () => {
    const date = "2026-11-12";
    await insertEvents(Array.from({ length: 5 }, (_, i) => event(date, i)));
    await env.D1.exec("ALTER TABLE traffic_events ADD COLUMN extra");
    try {
      const [row] = await d1Rows(date);
      await env.D1.prepare("UPDATE traffic_events SET extra = 3.0 WHERE id = ?1").bind(row?.id).run();
      const planned = await planArchive(env, date, NOW);
      const run = await waitForRun(planned.run?.run_id ?? "");
      expect(run.status).toBe("failed");
      expect(run.error).toMatch(new RegExp(`row id ${row?.id} has an integral REAL \\(3\\) in column extra`));
      expect((await d1Rows(date)).length).toBe(5);
    } finally {
      await env.D1.exec("ALTER TABLE traffic_events DROP COLUMN extra");
    }
  });

  it("archives and cleans text that holds U+FFFD itself, on text and row pages", async () => {
    const date = "2026-11-11";
    await insertEvents([
      event(date, 0, { path: "/a\uFFFDb" }),
      event(date, 1, { path: "/c\uFFFD", latency_ms: 0.25 }),
      event(date, 2),
    ]);
    const run = await archive(date);
    expect(run.status).toBe("archived");
    expect((await archiveLines(run.object_key)).map((l) => JSON.parse(l).path)).toEqual([
      "/a\uFFFDb",
      "/c\uFFFD",
      "/api/items/2",
    ]);
    await clean(date);
    expect(await d1Rows(date)).toEqual([]);
  });

  it("rows cleanup cannot match although nothing changed them are reported by health, changed rows are not", async () => {
    const date = "2026-11-13";
    await insertEvents(Array.from({ length: 10 }, (_, i) => event(date, i)));
    const first = await archive(date);
    const ids = (await d1Rows(date)).map((r) => r.id as number);
    // A matcher that cannot match one row (as tiny REALs and invalid UTF-8 once were).
    const blind = ids[4] as number;
    const blindD1 = new Proxy(env.D1, {
      get(target, prop) {
        if (prop === "prepare") {
          return (sql: string) =>
            target.prepare(
              sql
                .replace("AND (SELECT yes FROM same)", "AND 0")
                .replace(
                  /^DELETE FROM "traffic_events" WHERE "id" IN \(/,
                  `DELETE FROM "traffic_events" WHERE id <> ${blind} AND id IN (`,
                ),
            );
        }
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    await clean(date, { ...env, D1: blindD1 });
    expect((await d1Rows(date)).map((r) => r.id)).toEqual([blind]);
    let problems = (await evaluateHealth(env, NOW)).problems.filter((p) => p.code === "rows_unmatched");
    expect(problems.map((p) => [p.date, p.runId])).toEqual([[date, first.run_id]]);
    expect(problems[0]?.message).toMatch(/left 1 row\(s\) in D1 that nothing changed/);

    // Archived again and cleaned by a matcher that works: the latest run left nothing, the problem clears.
    await archive(date);
    await clean(date);
    problems = (await evaluateHealth(env, NOW)).problems.filter((p) => p.code === "rows_unmatched");
    expect(problems).toEqual([]);

    // A row changed after archiving is left too, but that is the writer's doing: no problem.
    const other = "2026-11-14";
    await insertEvents(Array.from({ length: 10 }, (_, i) => event(other, i)));
    await archive(other);
    const [row] = await d1Rows(other);
    await env.D1.prepare("UPDATE traffic_events SET path = '/changed' WHERE id = ?1").bind(row?.id).run();
    await clean(other);
    expect((await d1Rows(other)).length).toBe(1);
    problems = (await evaluateHealth(env, NOW)).problems.filter((p) => p.code === "rows_unmatched");
    expect(problems).toEqual([]);
  });

  it("leaves a row that became a BLOB after archiving and deletes the rest of its window", async () => {
    const date = "2026-11-15";
    await insertEvents(Array.from({ length: 20 }, (_, i) => event(date, i)));
    const run = await archive(date);
    const [row] = await d1Rows(date);
    await env.D1.prepare("UPDATE traffic_events SET user_agent = X'00ff' WHERE id = ?1").bind(row?.id).run();
    await clean(date);
    expect((await d1Rows(date)).map((r) => r.id)).toEqual([row?.id]);
    expect((await chunksOf(run.run_id))[0]).toMatchObject({ cleanup_state: "cleaned", rows_deleted: 19, rows_left: 1 });
  });

  it("a BLOB in a TEXT column that SQLite would write as JSON text fails the run, and after archiving is not deleted", async () => {
    // jsonb('"x"') is a BLOB that json_object() and json_quote() write as the JSON string "x".
    const failing = "2026-10-20";
    await insertEvents(Array.from({ length: 20 }, (_, i) => event(failing, i)));
    const [first] = await d1Rows(failing);
    await env.D1.prepare(`UPDATE traffic_events SET user_agent = jsonb('"x"') WHERE id = ?1`).bind(first?.id).run();
    const planned = await planArchive(env, failing, NOW);
    const failed = await waitForRun(planned.run?.run_id ?? "");
    expect(failed.status).toBe("failed");
    expect(failed.error).toContain(`row id ${first?.id} has a BLOB in column user_agent`);

    // A row archived as text that became such a BLOB afterwards stays in D1.
    const date = "2026-10-21";
    await insertEvents(Array.from({ length: 20 }, (_, i) => event(date, i, { user_agent: "x" })));
    const run = await archive(date);
    const [row] = await d1Rows(date);
    await env.D1.prepare(`UPDATE traffic_events SET user_agent = jsonb('"x"') WHERE id = ?1`).bind(row?.id).run();
    await clean(date);
    expect((await d1Rows(date)).map((r) => r.id)).toEqual([row?.id]);
    expect((await chunksOf(run.run_id))[0]).toMatchObject({ cleanup_state: "cleaned", rows_deleted: 19, rows_left: 1 });
  });

  it("refuses a range whose archived column was dropped, deleting nothing, and says so in health", async () => {
    const date = "2026-11-04";
    await insertEvents(Array.from({ length: 8 }, (_, i) => event(date, i)));
    const run = await archive(date);
    await env.D1.exec("ALTER TABLE traffic_events DROP COLUMN referrer");
    try {
      await clean(date);
      expect((await d1Rows(date)).length).toBe(8);
      const [chunk] = await chunksOf(run.run_id);
      expect(chunk?.cleanup_state).toBe("failed");
      expect(chunk?.cleanup_error).toMatch(/no column "referrer"/);
      const health = await evaluateHealth(env, NOW);
      const problem = health.problems.find((p) => p.runId === run.run_id);
      expect(problem?.date).toBe(date);
      expect(problem?.message).toMatch(new RegExp(`${run.run_id}.*${date}.*"referrer".*Add the column back`));
    } finally {
      await env.D1.exec("ALTER TABLE traffic_events ADD COLUMN referrer TEXT");
    }
    // With the column back (NULL, as it was for these rows), the range is cleaned.
    await clean(date);
    expect(await d1Rows(date)).toEqual([]);
  });

  it("deletes an identical row that re-enters the range while it is being cleaned, so it is never archived again", async () => {
    const date = "2026-11-05";
    await insertEvents(Array.from({ length: 120 }, (_, i) => event(date, i)));
    const run = await archive(date);
    const rows = await d1Rows(date);
    const row50 = rows[50] as Record<string, unknown> & { id: number };
    // After the deletes, before the range is marked cleaned: a writer that assigns ids puts row 50 back.
    const racing = faultyD1([
      {
        match: /SELECT COUNT\(\*\) AS n FROM "traffic_events" WHERE "event_date" = \?1 AND "id" >= \?2/,
        times: 1,
        effect: "stall",
        until: async () => {
          const { id, ...content } = row50;
          await insertEventWithId(id, content as Parameters<typeof insertEventWithId>[1]);
        },
      },
    ]);
    await clean(date, { ...env, D1: racing });
    expect(racing.failures).toBe(1);
    expect(await d1Rows(date)).toEqual([]);
    expect((await chunksOf(run.run_id))[0]).toMatchObject({
      cleanup_state: "cleaned",
      rows_left: 0,
      rows_deleted: 121,
    });
    expect((await planArchive(env, date, NOW)).outcome).toBe("up_to_date");
    expect((await archivedRows(date)).length).toBe(120);
  });

  it("a range too big for one invocation's D1 queries is cleaned in several; a row re-entering between them is deleted too", async () => {
    const date = "2026-10-22";
    await insertEvents(Array.from({ length: 3000 }, (_, i) => event(date, i)));
    const run = await archive(date);
    const rows = await d1Rows(date);
    const first = rows[0] as Record<string, unknown> & { id: number };
    // D1's 50 queries per invocation (Workers Free), windows of 50 rows: 60 windows per pass.
    const queue = capturingQueue();
    const testEnv = { ...env, D1_QUERIES_PER_INVOCATION: "50", CLEANUP_QUEUE: queue };
    await planCleanup(testEnv, date, NOW);
    expect(queue.sent).toHaveLength(1);
    let deliveries = 0;
    for (let message = queue.sent.shift(); message; message = queue.sent.shift()) {
      expect(await deliverCleanup(message, testEnv)).toBe("ack");
      // Between the first two invocations, a writer that assigns ids puts back a row already deleted.
      if (++deliveries === 1) {
        expect(await d1Rows(date, first.id, first.id)).toEqual([]);
        const { id, ...content } = first;
        await insertEventWithId(id, content as Parameters<typeof insertEventWithId>[1]);
      }
    }
    // Two invocations for the first pass, and at least one more pass for the row that came back.
    expect(deliveries).toBeGreaterThanOrEqual(3);
    expect(await d1Rows(date)).toEqual([]);
    expect((await chunksOf(run.run_id))[0]).toMatchObject({
      cleanup_state: "cleaned",
      rows_left: 0,
      rows_deleted: 3001,
    });
    expect(await cleanedFlag(date)).toBe(1);
  });

  it("a row entering or changing inside a cleaned range makes it not cleaned; the next cleanup deletes it if identical", async () => {
    const date = "2026-11-06";
    await insertEvents(Array.from({ length: 60 }, (_, i) => event(date, i)));
    const run = await archive(date);
    const rows = await d1Rows(date);
    await clean(date);
    expect((await chunksOf(run.run_id))[0]?.cleanup_state).toBe("cleaned");

    // Inside the range, not above it: an identical row comes back.
    const { id, ...content } = rows[10] as Record<string, unknown> & { id: number };
    await insertEventWithId(id, content as Parameters<typeof insertEventWithId>[1]);
    expect((await chunksOf(run.run_id))[0]).toMatchObject({ cleanup_state: "none", cleaned_at: null });
    await clean(date);
    expect(await d1Rows(date)).toEqual([]);

    // A row comes back and is then changed: the range is not cleaned again, the changed row is left and archived anew.
    const { id: id20, ...content20 } = rows[20] as Record<string, unknown> & { id: number };
    await insertEventWithId(id20, content20 as Parameters<typeof insertEventWithId>[1]);
    await clean(date);
    await insertEventWithId(id20, content20 as Parameters<typeof insertEventWithId>[1]);
    await env.D1.prepare("UPDATE traffic_events SET path = '/changed' WHERE id = ?1").bind(id20).run();
    expect((await chunksOf(run.run_id))[0]?.cleanup_state).toBe("none");
    await clean(date);
    expect((await d1Rows(date)).map((r) => r.path)).toEqual(["/changed"]);
    const second = await archive(date);
    expect(second.archived_rows).toBe(1);
    expect((await archivedRows(date)).filter((r) => r.id === id20).map((r) => r.path)).toEqual([
      content20.path,
      "/changed",
    ]);
  });

  it("a run planned after a restore was planned leaves the restored ranges to the restore", async () => {
    const date = "2026-11-07";
    const other = "2026-11-17";
    // A row of another day just below this day's ids: it moves into the day later, so the rows no
    // archive holds (it, and a late row above) span the day's cleaned range.
    await insertEvents([event(other, 0, { path: "/moves" }), ...Array.from({ length: 50 }, (_, i) => event(date, i))]);
    await archive(date);
    await clean(date);
    // The restore is planned; its messages wait.
    const restoreQueue = capturingQueue();
    await planRestore({ ...env, CLEANUP_QUEUE: restoreQueue }, date, null, NOW);
    // Meanwhile a row moves into the day, a late row arrives, and the cron plans a run.
    await env.D1.prepare("UPDATE traffic_events SET event_date = ?1 WHERE event_date = ?2").bind(date, other).run();
    await insertEvents([event(date, 900, { path: "/late" })]);
    const archiveQueue = capturingQueue();
    const planned = await planArchive({ ...env, ARCHIVE_QUEUE: archiveQueue }, date, NOW);
    expect(planned.outcome).toBe("planned");
    // Around the range being restored, not across it.
    expect(planned.run?.chunk_count).toBe(2);
    // The restore runs, then the run's chunks: every archived row is in one archive only.
    for (const m of restoreQueue.sent) expect(await deliverCleanup(m)).toBe("ack");
    for (const m of archiveQueue.sent) await deliver(m);
    const second = await waitForRun(planned.run?.run_id ?? "");
    expect(second).toMatchObject({ status: "archived", archived_rows: 2 });
    const ids = (await archivedRows(date)).map((r) => r.id);
    expect(ids.length).toBe(52);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("a restore whose range a run in flight is archiving inserts nothing and says why", async () => {
    const date = "2026-11-08";
    await insertEvents(Array.from({ length: 30 }, (_, i) => event(date, i)));
    const run = await archive(date);
    await clean(date);
    const queue = capturingQueue();
    await planRestore({ ...env, CLEANUP_QUEUE: queue }, date, null, NOW);
    // A run planned over the range just before the restore was (the two plans raced): the range is
    // set back for a moment to how that plan saw it.
    await insertEventWithId(run.rowid_lo + 1, event(date, 1, { path: "/moved-in" }));
    await env.D1.prepare(
      "UPDATE archive_chunks SET restore_state = 'none', cleanup_state = 'cleaned' WHERE run_id = ?1",
    )
      .bind(run.run_id)
      .run();
    const planned = await planArchive({ ...env, ARCHIVE_QUEUE: capturingQueue() }, date, NOW);
    expect(planned.outcome).toBe("planned");
    await env.D1.prepare("UPDATE archive_chunks SET restore_state = 'pending' WHERE run_id = ?1")
      .bind(run.run_id)
      .run();
    for (const m of queue.sent) expect(await deliverCleanup(m)).toBe("ack");
    const [chunk] = await chunksOf(run.run_id);
    expect(chunk?.restore_state).toBe("failed");
    expect(chunk?.restore_error).toMatch(new RegExp(`run ${planned.run?.run_id} .* archiving rows of this range`));
    expect((await d1Rows(date)).map((r) => r.path)).toEqual(["/moved-in"]);
  });

  it("a run whose manifest is written is finalized, never failed, when D1 fails right after", async () => {
    const date = "2026-11-09";
    await insertEvents(Array.from({ length: 40 }, (_, i) => event(date, i)));
    const queue = capturingQueue();
    const planned = await planArchive({ ...env, ARCHIVE_QUEUE: queue }, date, NOW);
    const runId = planned.run?.run_id ?? "";
    const [message] = queue.sent;
    // The finalizer's last batch (run archived, metadata) fails after the manifest is in R2.
    const dying = { ...env, D1: faultyD1([{ match: /UPDATE archive_runs SET status = 'archived'/, times: 1 }]) };
    expect(await deliver(message, dying)).toBe("retry");
    const [handedBack] = await runsOf(date);
    expect(handedBack?.status).toBe("finalizing");
    expect(await env.R2_ARCHIVE.head(handedBack?.manifest_key ?? "")).not.toBeNull();

    // No operator can fail it, and health does not advise it.
    await expect(failRunByOperator(env, runId, "looks stuck", NOW)).rejects.toMatchObject({ status: 409 });
    expect((await runsOf(date))[0]?.status).toBe("finalizing");
    const later = new Date(Date.now() + 3600_000);
    const stalled = (await evaluateHealth(env, later)).problems.find((p) => p.runId === runId);
    expect(stalled?.code).toBe("run_stalled");
    expect(stalled?.action).not.toMatch(/\/fail/);
    // The retried message finalizes it at once (no lease to wait for).
    expect(await deliver(message, env, 2)).toBe("ack");
    const [run] = await runsOf(date);
    expect(run).toMatchObject({ status: "archived", archived_rows: 40 });
  });

  it("an operator's fail of an archiving run whose manifest exists is refused", async () => {
    const date = "2026-11-10";
    await insertEvents(Array.from({ length: 10 }, (_, i) => event(date, i)));
    const run = await archive(date);
    // As an earlier version handed such a run back.
    await env.D1.prepare("UPDATE archive_runs SET status = 'archiving' WHERE run_id = ?1").bind(run.run_id).run();
    await expect(failRunByOperator(env, run.run_id, "stuck", NOW)).rejects.toMatchObject({
      status: 409,
      code: "run_committed",
    });
    expect((await runsOf(date))[0]?.status).toBe("archiving");
  });
});
