import { env } from "cloudflare:workers";
import { gzipSync } from "node:zlib";
import {
  type ChunkRow,
  type CleanupRangeMessage,
  chunkMemberRange,
  emptyMember,
  type Manifest,
  paddingMemberSizes,
  type RunRow,
} from "@path-stats/shared";
import { describe, expect, it } from "vitest";
import { planArchive } from "../src/plan-archive.ts";
import { CleanupRefusedError, planCleanup } from "../src/plan-cleanup.ts";
import { capturingQueue, DELETE_ROWS, deliverCleanup, faultyD1 } from "./faults.ts";
import { archiveLines, event, insertEvents, manifestOf, waitForRun } from "./helpers.ts";

const NOW = new Date("2026-07-20T08:00:00Z");
const BATCH = Number(env.DELETE_BATCH_ROWS);

/** Archives a date through the real queues and returns its run. */
async function archive(date: string): Promise<RunRow> {
  const planned = await planArchive(env, date, NOW);
  if (planned.outcome !== "planned") throw new Error(`expected a new run of ${date}, got ${planned.outcome}`);
  return waitForRun(planned.run.run_id);
}

/** Plans cleanup with its messages held, for the test to deliver. */
async function planHeldCleanup(date: string): Promise<CleanupRangeMessage[]> {
  const queue = capturingQueue();
  await planCleanup({ ...env, CLEANUP_QUEUE: queue }, date, NOW);
  return queue.sent;
}

async function count(date: string): Promise<number> {
  const row = await env.D1.prepare("SELECT COUNT(*) AS n FROM traffic_events WHERE event_date = ?1")
    .bind(date)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

async function metadata(date: string) {
  return env.D1.prepare("SELECT d1_cleaned, cleaned_at, event_count FROM archive_metadata WHERE date = ?1")
    .bind(date)
    .first<{ d1_cleaned: number; cleaned_at: string | null; event_count: number }>();
}

async function chunksOf(runId: string): Promise<ChunkRow[]> {
  const { results } = await env.D1.prepare("SELECT * FROM archive_chunks WHERE run_id = ?1 ORDER BY chunk_index")
    .bind(runId)
    .all<ChunkRow>();
  return results;
}

/** A day of `n` rows with rows of the neighbouring dates interleaved inside its rowid range. */
async function seedInterleaved(date: string, before: string, after: string, n: number) {
  const rows = [];
  for (let i = 0; i < n; i++) {
    rows.push(event(date, i));
    if (i % 10 === 0) rows.push(event(before, i), event(after, i));
  }
  await insertEvents(rows);
}

describe("verified cleanup", () => {
  it("deletes a day that needs many statements, neighbours untouched, and flags it cleaned only then", async () => {
    const date = "2026-07-02";
    await seedInterleaved(date, "2026-07-01", "2026-07-03", 1234);
    const neighbours = [await count("2026-07-01"), await count("2026-07-03")];
    const run = await archive(date);
    expect((await metadata(date))?.d1_cleaned).toBe(0);

    const messages = await planHeldCleanup(date);
    expect(messages).toHaveLength(run.chunk_count);
    for (const m of messages) expect(await deliverCleanup(m)).toBe("ack");

    expect(await count(date)).toBe(0);
    expect([await count("2026-07-01"), await count("2026-07-03")]).toEqual(neighbours);
    const [chunk] = await chunksOf(run.run_id);
    expect(chunk).toMatchObject({ cleanup_state: "cleaned", rows_deleted: 1234 });
    // 1234 rows in statements of at most 50: 25 statements, the last one short.
    expect(chunk?.delete_statements).toBe(Math.ceil(1234 / BATCH));
    const meta = await metadata(date);
    expect(meta).toMatchObject({ d1_cleaned: 1, event_count: 1234 });
    expect(meta?.cleaned_at).not.toBeNull();
    const done = await env.D1.prepare("SELECT rows_deleted, cleaned_at FROM archive_runs WHERE run_id = ?1")
      .bind(run.run_id)
      .first<{ rows_deleted: number; cleaned_at: string | null }>();
    expect(done?.rows_deleted).toBe(1234);
    expect(done?.cleaned_at).not.toBeNull();

    // A second cleanup finds nothing to do, and a redelivery changes nothing.
    expect((await planCleanup({ ...env, CLEANUP_QUEUE: capturingQueue() }, date, NOW)).outcome).toBe(
      "nothing_to_clean",
    );
    expect(await deliverCleanup(messages[0])).toBe("ack");
    expect((await chunksOf(run.run_id))[0]?.rows_deleted).toBe(1234);
  });

  it("refuses a day that is not archived or has a run in flight, deleting nothing", async () => {
    const date = "2026-07-05";
    await insertEvents(Array.from({ length: 30 }, (_, i) => event(date, i)));
    await expect(planCleanup(env, date, NOW)).rejects.toMatchObject({ code: "not_archived" });

    await planArchive({ ...env, ARCHIVE_QUEUE: capturingQueue() }, date, NOW); // planned, never delivered
    const refused = planCleanup(env, date, NOW);
    await expect(refused).rejects.toBeInstanceOf(CleanupRefusedError);
    await expect(refused).rejects.toMatchObject({ code: "run_in_flight" });
    expect(await count(date)).toBe(30);
  });

  const tamperings: [string, (run: RunRow) => Promise<void>, RegExp][] = [
    ["its manifest is missing", async (run) => env.R2_ARCHIVE.delete(run.manifest_key), /manifest .* is missing/],
    [
      "its manifest lists another range",
      async (run) => {
        const manifest = (await (await env.R2_ARCHIVE.get(run.manifest_key))?.json()) as Manifest;
        const first = manifest.chunks[0];
        if (first) first.rowidHi += 1000;
        await env.R2_ARCHIVE.put(run.manifest_key, JSON.stringify(manifest));
      },
      /does not list range/,
    ],
    [
      "its manifest's checksum was altered",
      async (run) => {
        const manifest = (await (await env.R2_ARCHIVE.get(run.manifest_key))?.json()) as Manifest;
        const first = manifest.chunks[0];
        if (first) first.sha256 = "0".repeat(64);
        await env.R2_ARCHIVE.put(run.manifest_key, JSON.stringify(manifest));
      },
      /disagree/,
    ],
    ["its archive object is gone", async (run) => env.R2_ARCHIVE.delete(run.object_key), /archive object .* missing/],
    [
      "a byte of its archived data was flipped after upload",
      async (run) => {
        const object = await env.R2_ARCHIVE.get(run.object_key);
        const bytes = new Uint8Array(await (object as R2ObjectBody).arrayBuffer());
        // Inside the data member, past its header: the object keeps its size.
        const at = Math.floor(bytes.length / 3);
        bytes[at] = (bytes[at] ?? 0) ^ 0x5a;
        await env.R2_ARCHIVE.put(run.object_key, bytes);
      },
      /do not match its manifest|does not decompress/,
    ],
    [
      "its member was replaced by another that decompresses to as many rows, padded to the same size",
      async (run) => {
        const manifest = await manifestOf(run);
        const range = chunkMemberRange(manifest, 0);
        if (!range) throw new Error("no member range");
        const lines = await archiveLines(run.object_key);
        // One value changed, the member compressed again: only the checksum can tell.
        const changed = `${lines.map((l, k) => (k === 7 ? l.replace('"test-agent', '"best-agent') : l)).join("\n")}\n`;
        expect(changed).not.toBe(`${lines.join("\n")}\n`);
        const member = gzipSync(Buffer.from(changed), { level: 9 });
        const padding = paddingMemberSizes(range.length - member.length).map(emptyMember);
        const object = new Uint8Array(await ((await env.R2_ARCHIVE.get(run.object_key)) as R2ObjectBody).arrayBuffer());
        const forged = Buffer.concat([
          object.slice(0, range.offset),
          member,
          ...padding,
          object.slice(range.offset + range.length),
        ]);
        expect(forged.length).toBe(object.length);
        await env.R2_ARCHIVE.put(run.object_key, forged);
      },
      /do not match its manifest \(120 rows read back, 120 listed; checksum differs\)/,
    ],
  ];
  for (const [i, [what, tamper, reason]] of tamperings.entries()) {
    it(`deletes nothing when ${what}, and records why`, async () => {
      const date = `2026-06-${String(10 + i).padStart(2, "0")}`;
      await insertEvents(Array.from({ length: 120 }, (_, k) => event(date, k)));
      const run = await archive(date);
      await tamper(run);
      const messages = await planHeldCleanup(date);
      for (const m of messages) expect(await deliverCleanup(m)).toBe("ack");

      expect(await count(date)).toBe(120);
      const [chunk] = await chunksOf(run.run_id);
      expect(chunk?.cleanup_state).toBe("failed");
      expect(chunk?.cleanup_error).toMatch(reason);
      expect(chunk?.rows_deleted).toBe(0);
      const after = await env.D1.prepare("SELECT cleanup_error FROM archive_runs WHERE run_id = ?1")
        .bind(run.run_id)
        .first();
      expect(String(after?.cleanup_error)).toMatch(reason);
      expect((await metadata(date))?.d1_cleaned).toBe(0);
    });
  }

  it("finishes a range after a D1 error in the middle of it, deleting each row once", async () => {
    const date = "2026-07-08";
    await seedInterleaved(date, "2026-07-07", "2026-07-09", 500);
    const neighbours = [await count("2026-07-07"), await count("2026-07-09")];
    const run = await archive(date);
    const [message] = await planHeldCleanup(date);

    // The third delete statement fails: two have deleted 2 × 50 rows.
    const dying = { ...env, D1: faultyD1([{ match: DELETE_ROWS, skip: 2, times: 1 }]) };
    expect(await deliverCleanup(message, dying)).toBe("retry");
    expect(await count(date)).toBe(500 - 2 * BATCH);
    let [chunk] = await chunksOf(run.run_id);
    expect(chunk).toMatchObject({ cleanup_state: "pending", rows_deleted: 2 * BATCH, delete_statements: 2 });
    expect((await metadata(date))?.d1_cleaned).toBe(0);

    expect(await deliverCleanup(message, env, 2)).toBe("ack");
    [chunk] = await chunksOf(run.run_id);
    // The retry goes through every window of the archive again; the first two find nothing left to
    // delete, together or then row by row (two statements each).
    expect(chunk).toMatchObject({
      cleanup_state: "cleaned",
      rows_deleted: 500,
      rows_left: 0,
      delete_statements: 2 + Math.ceil(500 / BATCH) + 2,
    });
    expect(await count(date)).toBe(0);
    expect([await count("2026-07-07"), await count("2026-07-09")]).toEqual(neighbours);
    expect((await metadata(date))?.d1_cleaned).toBe(1);
  });

  it("deletes each row once when a range is delivered twice at the same moment", async () => {
    const date = "2026-07-11";
    await insertEvents(Array.from({ length: 400 }, (_, i) => event(date, i)));
    const run = await archive(date);
    const [message] = await planHeldCleanup(date);
    expect(await Promise.all([deliverCleanup(message), deliverCleanup(message)])).toEqual(["ack", "ack"]);
    const [chunk] = await chunksOf(run.run_id);
    expect(chunk).toMatchObject({ cleanup_state: "cleaned", rows_deleted: 400 });
    expect(await count(date)).toBe(0);
    expect((await metadata(date))?.d1_cleaned).toBe(1);
  });

  it("leaves late rows, archives them in a second run, removes them in a second cleanup", async () => {
    const date = "2026-07-12";
    await insertEvents(Array.from({ length: 200 }, (_, i) => event(date, i)));
    const first = await archive(date);
    await insertEvents([event(date, 900, { path: "/late-1" }), event(date, 901, { path: "/late-2" })]);

    for (const m of await planHeldCleanup(date)) expect(await deliverCleanup(m)).toBe("ack");
    expect(await count(date)).toBe(2);
    expect((await metadata(date))?.d1_cleaned).toBe(0);

    const second = await archive(date);
    expect(second.rowid_lo).toBeGreaterThan(first.rowid_hi);
    expect(second.archived_rows).toBe(2);
    // Only the second run's range is left to clean.
    const messages = await planHeldCleanup(date);
    expect(messages.map((m) => m.runId)).toEqual([second.run_id]);
    for (const m of messages) expect(await deliverCleanup(m)).toBe("ack");
    expect(await count(date)).toBe(0);
    expect(await metadata(date)).toMatchObject({ d1_cleaned: 1, event_count: 202 });

    // A row arriving after that makes the day not cleaned, at once.
    await insertEvents([event(date, 902, { path: "/late-3" })]);
    expect(await metadata(date)).toMatchObject({ d1_cleaned: 0, cleaned_at: null });
  });

  it("refuses a day whose latest run failed", async () => {
    const date = "2026-07-13";
    await insertEvents(Array.from({ length: 10 }, (_, i) => event(date, i)));
    await archive(date);
    await insertEvents([event(date, 50)]);
    const planned = await planArchive({ ...env, ARCHIVE_QUEUE: capturingQueue() }, date, NOW);
    await env.D1.prepare("UPDATE archive_runs SET status = 'failed', error = 'injected' WHERE run_id = ?1")
      .bind(planned.run?.run_id ?? "")
      .run();
    await expect(planCleanup(env, date, NOW)).rejects.toMatchObject({ code: "run_failed" });
    expect(await count(date)).toBe(11);
  });
});
