import { env } from "cloudflare:workers";
import type { ChunkRow, RunRow } from "@path-stats/shared";
import { describe, expect, it } from "vitest";
import { runCron } from "../src/cron.ts";
import { evaluateHealth } from "../src/monitoring/health.ts";
import { planArchive } from "../src/plan-archive.ts";
import { planCleanup } from "../src/plan-cleanup.ts";
import { planRestore } from "../src/restore/plan-restore.ts";
import { capturingQueue, deliverCleanup, faultyD1 } from "./faults.ts";
import { archiveLines, d1Rows, event, insertEvents, insertEventWithId, runsOf, waitForRun } from "./helpers.ts";
import worker from "./worker.ts";

/**
 * Restore: a committed archive's rows back into D1 with their original ids
 * and values, idempotent under redelivery and crashes, never overwriting a
 * row that differs, and cleaned again later by exact match.
 */

const NOW = new Date("2026-10-10T12:00:00Z");

/** Archives and cleans a day; its rows are then only in the archive. */
async function archivedAndCleaned(
  date: string,
  rows: number,
): Promise<{ run: RunRow; lines: string[]; inserted: Record<string, unknown>[] }> {
  await insertEvents(Array.from({ length: rows }, (_, i) => event(date, i, { referrer: i % 3 ? null : `/r/${i}` })));
  const inserted = await d1Rows(date);
  const planned = await planArchive(env, date, NOW);
  const run = await waitForRun(planned.run?.run_id ?? "");
  expect(run.status).toBe("archived");
  const lines = await archiveLines(run.object_key);
  await clean(date);
  expect(await d1Rows(date)).toEqual([]);
  return { run, lines, inserted };
}

async function clean(date: string, testEnv: Env = env): Promise<void> {
  const queue = capturingQueue();
  await planCleanup({ ...testEnv, CLEANUP_QUEUE: queue }, date, NOW);
  for (const m of queue.sent) expect(await deliverCleanup(m, testEnv)).toBe("ack");
}

async function restore(date: string, runId: string | null = null) {
  const queue = capturingQueue();
  const result = await planRestore({ ...env, CLEANUP_QUEUE: queue }, date, runId, NOW);
  return { result, messages: queue.sent };
}

async function chunksOf(runId: string): Promise<ChunkRow[]> {
  const { results } = await env.D1.prepare("SELECT * FROM archive_chunks WHERE run_id = ?1 ORDER BY chunk_index")
    .bind(runId)
    .all<ChunkRow>();
  return results;
}

describe("restore", () => {
  it("brings a cleaned day back exactly, once under redelivery, keeps it from the cron, and cleanup removes it again", async () => {
    const date = "2026-10-01";
    const { run, lines, inserted } = await archivedAndCleaned(date, 700);
    const { result, messages } = await restore(date);
    expect(result).toMatchObject({ outcome: "enqueued", runIds: [run.run_id] });
    expect(messages.length).toBe(run.chunk_count);
    expect(messages.every((m) => (m as { action?: string }).action === "restore")).toBe(true);

    // Every message delivered twice: the second finds every row present and equal.
    for (const m of [...messages, ...messages]) expect(await deliverCleanup(m)).toBe("ack");
    // Column by column as first inserted, and byte for byte as archived.
    expect(await d1Rows(date)).toEqual(inserted);
    expect((await d1Rows(date)).map((r) => JSON.stringify(r))).toEqual(lines);
    const chunks = await chunksOf(run.run_id);
    expect(chunks.map((c) => [c.restore_state, c.cleanup_state])).toEqual(chunks.map(() => ["restored", "none"]));
    expect(chunks.reduce((n, c) => n + c.rows_restored, 0)).toBe(700);
    const meta = await env.D1.prepare("SELECT d1_cleaned, keep_until FROM archive_metadata WHERE date = ?1")
      .bind(date)
      .first<{ d1_cleaned: number; keep_until: string }>();
    expect(meta?.d1_cleaned).toBe(0);
    expect(meta?.keep_until).toBe("2026-10-11T12:00:00.000Z");

    // No run archives the restored rows again, and the cron keeps them until keep_until.
    expect((await planArchive({ ...env, ARCHIVE_QUEUE: capturingQueue() }, date, NOW)).outcome).not.toBe("planned");
    expect(await runsOf(date)).toHaveLength(1);
    await runCron({ ...env, ARCHIVE_QUEUE: capturingQueue(), CLEANUP_QUEUE: capturingQueue() }, NOW);
    expect(await d1Rows(date)).toHaveLength(700);

    // Cleanup deletes them again by exact match, and the day is cleaned.
    await clean(date);
    expect(await d1Rows(date)).toEqual([]);
    const after = await env.D1.prepare("SELECT d1_cleaned FROM archive_metadata WHERE date = ?1")
      .bind(date)
      .first<{ d1_cleaned: number }>();
    expect(after?.d1_cleaned).toBe(1);
    expect((await runsOf(date)).map((r) => r.status)).toEqual(["archived"]);
  });

  it("continues after a crash between two batches, inserting each row once", async () => {
    const date = "2026-10-02";
    const { lines } = await archivedAndCleaned(date, 300);
    const { messages } = await restore(date);
    // DELETE_BATCH_ROWS is 50 in the tests: the second batch's INSERT dies.
    const dying = { ...env, D1: faultyD1([{ match: /^INSERT INTO "traffic_events"/, skip: 1, times: 1 }]) };
    expect(await deliverCleanup(messages[0], dying)).toBe("retry");
    expect((await d1Rows(date)).length).toBe(50);
    expect(await deliverCleanup(messages[0], env, 2)).toBe("ack");
    expect((await d1Rows(date)).map((r) => JSON.stringify(r))).toEqual(lines);
  });

  it("stops at a row D1 holds with other content, overwriting nothing, and health reports it", async () => {
    const date = "2026-10-03";
    const { run, lines } = await archivedAndCleaned(date, 120);
    const archived = JSON.parse(lines[10] as string) as { id: number };
    await insertEventWithId(archived.id, event(date, 10, { path: "/changed-since" }));

    const { messages } = await restore(date);
    for (const m of messages) expect(await deliverCleanup(m)).toBe("ack");
    const [chunk] = await chunksOf(run.run_id);
    expect(chunk?.restore_state).toBe("failed");
    expect(chunk?.restore_error).toContain(`row id(s) ${archived.id}`);
    const kept = await env.D1.prepare("SELECT path FROM traffic_events WHERE id = ?1")
      .bind(archived.id)
      .first<{ path: string }>();
    expect(kept?.path).toBe("/changed-since");

    const health = await evaluateHealth(env, NOW);
    expect(health.problems.map((p) => p.key)).toContain(`restore_failed:${run.run_id}:0`);
  });

  it("is refused while a run of the day is in flight, and for a day with no archive, sending nothing", async () => {
    const date = "2026-10-04";
    await insertEvents(Array.from({ length: 20 }, (_, i) => event(date, i)));
    await expect(restore(date)).rejects.toMatchObject({ code: "not_archived" });
    const planned = await planArchive({ ...env, ARCHIVE_QUEUE: capturingQueue() }, date, NOW);
    const attempt = capturingQueue();
    await expect(planRestore({ ...env, CLEANUP_QUEUE: attempt }, date, null, NOW)).rejects.toMatchObject({
      code: "run_in_flight",
    });
    expect(attempt.sent).toEqual([]);
    expect(planned.outcome).toBe("planned");
  });

  it("answers over the admin API: 202 with the ranges, 404 for an unknown run, 409 when refused", async () => {
    const date = "2026-10-05";
    const { run } = await archivedAndCleaned(date, 40);
    const post = async (query: string) => {
      const response = await worker.fetch(
        new Request(`http://archiver/admin/restore?${query}`, {
          method: "POST",
          headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
        }),
        { ...env, CLEANUP_QUEUE: capturingQueue() },
      );
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    expect(await post(`date=${date}&runId=${run.run_id}`)).toMatchObject({
      status: 202,
      body: { outcome: "enqueued", ranges: run.chunk_count },
    });
    expect(await post(`date=${date}&runId=nope`)).toMatchObject({
      status: 404,
      body: { error: { code: "run_not_found" } },
    });
    expect(await post("date=2026-10-06")).toMatchObject({ status: 409, body: { error: { code: "not_archived" } } });
    expect(await post("date=not-a-date")).toMatchObject({ status: 400 });
  });
});
