import { env } from "cloudflare:workers";
import { type ChunkRow, chunkMemberRange, Manifest, type RunRow, readConfig, tableOf } from "@path-stats/shared";
import { describe, expect, it } from "vitest";
import { runCron } from "../src/cron.ts";
import { evaluateHealth } from "../src/monitoring/health.ts";
import { planArchive } from "../src/plan-archive.ts";
import { planScrub } from "../src/scrub/plan-scrub.ts";
import { dayStatus } from "../src/status.ts";
import { capturingQueue, deliverCleanup } from "./faults.ts";
import { event, insertEvents, noise, random, waitForRun } from "./helpers.ts";

/**
 * Scrub: committed archives read back from R2 and checked against their
 * manifests, range by range; altered bytes, in a row or in the padding, are
 * found and reported; the cron scrubs the archives checked longest ago.
 */

const NOW = new Date("2026-10-25T12:00:00Z");

async function archive(date: string, rows: number, width = 0): Promise<RunRow> {
  const next = random(rows);
  await insertEvents(
    Array.from({ length: rows }, (_, i) => event(date, i, width ? { user_agent: noise(next, width) } : {})),
  );
  const planned = await planArchive(env, date, NOW);
  const run = await waitForRun(planned.run?.run_id ?? "");
  expect(run.status).toBe("archived");
  return run;
}

async function scrub(date: string): Promise<void> {
  const queue = capturingQueue();
  await planScrub({ ...env, CLEANUP_QUEUE: queue }, date, NOW);
  expect(queue.sent.every((m) => (m as { action?: string }).action === "verify")).toBe(true);
  for (const m of queue.sent) expect(await deliverCleanup(m)).toBe("ack");
}

async function runRow(runId: string): Promise<RunRow & { verified_at: string | null; verify_error: string | null }> {
  return (await env.D1.prepare("SELECT * FROM archive_runs WHERE run_id = ?1").bind(runId).first()) as never;
}

async function alter(run: RunRow, offset: (manifest: Manifest) => number): Promise<void> {
  const manifest = Manifest.parse(await (await env.R2_ARCHIVE.get(run.manifest_key))?.json());
  const object = await env.R2_ARCHIVE.get(run.object_key);
  const bytes = new Uint8Array(await (object as R2ObjectBody).arrayBuffer());
  const at = offset(manifest);
  bytes[at] = (bytes[at] as number) ^ 0xff;
  await env.R2_ARCHIVE.put(run.object_key, bytes);
}

describe("scrub", () => {
  it("passes an unaltered archive and records when, per range and per run, in status", async () => {
    const date = "2026-10-11";
    const run = await archive(date, 200);
    await scrub(date);
    const after = await runRow(run.run_id);
    expect(after).toMatchObject({ verified_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), verify_error: null });
    const { results } = await env.D1.prepare("SELECT verify_state FROM archive_chunks WHERE run_id = ?1")
      .bind(run.run_id)
      .all<Pick<ChunkRow, "verify_state">>();
    expect(results.every((c) => c.verify_state === "ok")).toBe(true);
    const status = await dayStatus(env.D1, tableOf(readConfig(env)), date);
    expect(status.runs[0]?.verify).toEqual({ state: "ok", verifiedAt: after.verified_at, error: null });
  });

  it("finds a byte flipped inside a range's rows, and health reports it", async () => {
    const date = "2026-10-12";
    const run = await archive(date, 200);
    await alter(run, () => 40);
    await scrub(date);
    const after = await runRow(run.run_id);
    expect(after.verify_error).toMatch(/^chunk 0: /);
    const health = await evaluateHealth(env, NOW);
    expect(health.problems.map((p) => p.key)).toContain(`archive_verify_failed:${run.run_id}`);
    expect((await dayStatus(env.D1, tableOf(readConfig(env)), date)).runs[0]?.verify.state).toBe("failed");
  });

  it("finds damaged padding between two ranges, which a whole-object reader would trip on", async () => {
    const date = "2026-10-13";
    // Wide, poorly compressible rows: two chunks of one 5 MiB part each, the first padded.
    const run = await archive(date, 5000, 2000);
    expect(run.chunk_count).toBeGreaterThan(1);
    await alter(run, (manifest) => {
      const member = chunkMemberRange(manifest, 0);
      if (!member || (manifest.chunks[0]?.paddingBytes ?? 0) < 30) throw new Error("chunk 0 has no padding to alter");
      return member.offset + member.length + 3; // the first padding member's header
    });
    await scrub(date);
    const after = await runRow(run.run_id);
    expect(after.verify_error).toMatch(/^chunk 0: padding after chunk 0: /);
  });

  it("is done by the cron for the archives checked longest ago, a bounded number of days per run", async () => {
    await env.D1.prepare("UPDATE archive_runs SET verified_at = '2026-01-01T00:00:00.000Z'").run(); // all long ago
    const older = "2026-10-14";
    const newer = "2026-10-15";
    for (const date of [newer, older]) await archive(date, 30);
    const queue = capturingQueue();
    const cronEnv = { ...env, SCRUB_DAYS_PER_CRON: "1", CLEANUP_QUEUE: queue, ARCHIVE_QUEUE: capturingQueue() };
    await runCron(cronEnv, NOW);
    const verifies = () => queue.sent.filter((m) => (m as { action?: string }).action === "verify");
    // Never checked comes first, then the oldest date.
    expect(new Set(verifies().map((m) => m.date))).toEqual(new Set([older]));
    for (const m of verifies()) expect(await deliverCleanup(m)).toBe("ack");
    queue.sent.length = 0;
    await runCron(cronEnv, NOW);
    expect(new Set(verifies().map((m) => m.date))).toEqual(new Set([newer]));
  });
});
