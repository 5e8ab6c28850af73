import { env } from "cloudflare:workers";
import type { ChunkRow, RunRow } from "@path-stats/shared";
import { afterEach, describe, expect, it, vi } from "vitest";
import { planArchive } from "../src/plan-archive.ts";
import { capturingQueue, deliver, faultyD1, faultyR2, gatedUploadParts, PAGE_READ } from "./faults.ts";
import { archiveLines, d1Rows, event, insertEvents, manifestOf, noise, random, waitForRun } from "./helpers.ts";

const NOW = new Date("2026-04-10T08:00:00Z");

/** Plans a date without sending: the test delivers the chunk messages itself. */
async function planHeld(date: string) {
  const queue = capturingQueue();
  const planned = await planArchive({ ...env, ARCHIVE_QUEUE: queue }, date, NOW);
  if (planned.outcome !== "planned") throw new Error(`expected a new run, got ${planned.outcome}`);
  return { run: planned.run, messages: queue.sent };
}

async function runRow(runId: string): Promise<RunRow> {
  return (await env.D1.prepare("SELECT * FROM archive_runs WHERE run_id = ?1").bind(runId).first<RunRow>()) as RunRow;
}

async function chunkRows(runId: string): Promise<ChunkRow[]> {
  const { results } = await env.D1.prepare("SELECT * FROM archive_chunks WHERE run_id = ?1 ORDER BY chunk_index")
    .bind(runId)
    .all<ChunkRow>();
  return results;
}

/** Rows big enough that a day spans two 5 MiB parts. */
async function seedTwoPartDay(date: string, seed: number) {
  const next = random(seed);
  await insertEvents(Array.from({ length: 3000 }, (_, i) => event(date, i, { user_agent: noise(next, 2900) })));
}

function finalizations(spy: { mock: { calls: unknown[][] } }, runId: string): number {
  return spy.mock.calls.filter(
    ([line]) => typeof line === "string" && line.includes('"archive.finalized"') && line.includes(runId),
  ).length;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("delivery at least once", () => {
  it("gives one object and one finalization when every chunk arrives twice, at once and again later", async () => {
    const date = "2026-04-01";
    await seedTwoPartDay(date, 11);
    const { run, messages } = await planHeld(date);
    expect(messages.length).toBeGreaterThanOrEqual(2);
    const log = vi.spyOn(console, "log");

    // Every chunk twice at the same moment: the last two chunks race to finalize.
    const outcomes = await Promise.all(messages.flatMap((m) => [deliver(m), deliver(m)]));
    // A delivery that found its chunk claimed by its twin is retried; deliver those again.
    for (const [i, outcome] of outcomes.entries()) {
      if (outcome === "retry") expect(await deliver(messages[Math.floor(i / 2)])).toBe("ack");
    }
    // And once more, long after: acked, nothing changes.
    for (const m of messages) expect(await deliver(m)).toBe("ack");

    const done = await runRow(run.run_id);
    expect(done.status).toBe("archived");
    expect(finalizations(log, run.run_id)).toBe(1);
    const lines = await archiveLines(done.object_key);
    expect(lines.map((l) => JSON.parse(l))).toEqual(await d1Rows(date));
    const listed = await env.R2_ARCHIVE.list({ prefix: `traffic_events/event_date=${date}/` });
    expect(listed.objects.map((o) => o.key).sort()).toEqual([done.manifest_key, done.object_key].sort());
  });

  it("holds back a duplicate that arrives while the first delivery is still uploading", async () => {
    const date = "2026-04-09";
    await seedTwoPartDay(date, 14);
    const { run, messages } = await planHeld(date);
    let open = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    // The first delivery claims chunk 0 and stops before its upload.
    const first = deliver(messages[0], gatedUploadParts(gate));
    while ((await chunkRows(run.run_id))[0]?.claim_token == null) await new Promise((r) => setTimeout(r, 5));
    // Its duplicate must not upload the same part behind its back (the etag it
    // recorded would then not match the part R2 keeps): it is retried later.
    expect(await deliver(messages[0])).toBe("retry");
    open();
    expect(await first).toBe("ack");
    for (const m of messages.slice(1)) expect(await deliver(m)).toBe("ack");
    const done = await runRow(run.run_id);
    expect(done.status).toBe("archived");
    expect((await archiveLines(done.object_key)).map((l) => JSON.parse(l))).toEqual(await d1Rows(date));
  });

  it("recovers by itself when a consumer whose lease ran out writes its part after the one that took over", async () => {
    const date = "2026-03-30";
    await seedTwoPartDay(date, 15);
    const { run, messages } = await planHeld(date);
    expect(messages.length).toBeGreaterThanOrEqual(2);
    const shortLease = { LEASE_SECONDS: "1" };
    let open = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    // A claims chunk 0 and its part upload hangs past the lease: A renews its claim while it reads pages,
    // so the lease is counted from the moment its upload is held, not from its claim.
    let held = () => {};
    const uploadHeld = new Promise<void>((resolve) => {
      held = resolve;
    });
    const slow = deliver(messages[0], { ...gatedUploadParts(gate, held), ...shortLease });
    await uploadHeld;
    await new Promise((r) => setTimeout(r, 1100));
    // B takes the chunk over, uploads the part and records its etag.
    expect(await deliver(messages[0], { ...env, ...shortLease })).toBe("ack");
    // Then A's upload lands: R2 keeps A's part, whose etag no one recorded.
    open();
    expect(await slow).toBe("ack");
    // The last chunk finalizes: complete() refuses B's etag; the run must recover with no operator.
    for (const m of messages.slice(1)) await deliver(m, { ...env, ...shortLease });
    const done = await waitForRun(run.run_id);
    expect(done.status).toBe("archived");
    expect((await archiveLines(done.object_key)).map((l) => JSON.parse(l))).toEqual(await d1Rows(date));
  });

  it("retries a chunk whose D1 read fails midway, and the retry archives it whole", async () => {
    const date = "2026-04-02";
    await insertEvents(Array.from({ length: 2000 }, (_, i) => event(date, i)));
    const { run, messages } = await planHeld(date);
    expect(messages).toHaveLength(1);

    // Page reads: the first succeeds, the second (mid-chunk) fails.
    expect(await deliver(messages[0], { ...env, D1: faultyD1([{ match: PAGE_READ, skip: 1, times: 1 }]) })).toBe(
      "retry",
    );
    const [chunk] = await chunkRows(run.run_id);
    expect(chunk?.state).toBe("pending");
    expect(chunk?.claim_token).toBeNull();
    expect(chunk?.last_error).toContain("injected D1 failure");

    expect(await deliver(messages[0], env, 2)).toBe("ack");
    const done = await runRow(run.run_id);
    expect(done.status).toBe("archived");
    expect((await archiveLines(done.object_key)).map((l) => JSON.parse(l))).toEqual(await d1Rows(date));
  });

  it("retries a chunk whose uploadPart fails, and overwrites the part on retry", async () => {
    const date = "2026-04-03";
    await seedTwoPartDay(date, 12);
    const { run, messages } = await planHeld(date);
    expect(await deliver(messages[0], { ...env, R2_ARCHIVE: faultyR2({ uploadPart: 1 }) })).toBe("retry");
    for (const m of messages) expect(await deliver(m, env, 2)).toBe("ack");
    const done = await runRow(run.run_id);
    expect(done.status).toBe("archived");
    expect((await archiveLines(done.object_key)).map((l) => JSON.parse(l))).toEqual(await d1Rows(date));
  });

  it("fails a run that cannot complete: records why and aborts its upload", async () => {
    const date = "2026-04-04";
    await seedTwoPartDay(date, 13);
    const { run, messages } = await planHeld(date);
    // A chunk with no room left in its reserved part numbers can never be written.
    await env.D1.prepare("UPDATE archive_chunks SET max_parts = 0 WHERE run_id = ?1 AND chunk_index = 0")
      .bind(run.run_id)
      .run();
    expect(await deliver(messages[0])).toBe("ack");
    const failed = await runRow(run.run_id);
    expect(failed.status).toBe("failed");
    expect(failed.error).toContain("reserved parts");
    // The upload is gone: no part can be added to it any more.
    const upload = env.R2_ARCHIVE.resumeMultipartUpload(failed.object_key, failed.upload_id);
    await expect(upload.uploadPart(1, new Uint8Array(10))).rejects.toThrow();
    // Later deliveries of its chunks are acked and do nothing.
    expect(await deliver(messages[1])).toBe("ack");
    expect(await env.R2_ARCHIVE.head(failed.object_key)).toBeNull();
    // The rows are all still in D1, and a new trigger plans a fresh run.
    expect((await d1Rows(date)).length).toBe(3000);
    const again = await planArchive({ ...env, ARCHIVE_QUEUE: capturingQueue() }, date, NOW);
    expect(again.outcome).toBe("planned");
  });

  it("sends a malformed message to the dead letters without touching anything", async () => {
    const sent: unknown[] = [];
    const dlq = { send: async (body: unknown) => void sent.push(body) } as unknown as Queue;
    const bad = { version: 1, runId: "x", date: "2026-02-30", chunkIndex: 0 };
    expect(await deliver(bad, { ...env, ARCHIVE_DLQ: dlq })).toBe("ack");
    expect(sent).toEqual([bad]);
  });

  it("sends a message for a run that does not exist, or of another date, to the dead letters", async () => {
    const date = "2026-04-05";
    await insertEvents([event(date, 1)]);
    const { run } = await planHeld(date);
    const sent: unknown[] = [];
    const dlq = { send: async (body: unknown) => void sent.push(body) } as unknown as Queue;
    const unknownRun = { version: 1, runId: "no-such-run", date, chunkIndex: 0 };
    const otherDate = { version: 1, runId: run.run_id, date: "2026-04-06", chunkIndex: 0 };
    const noChunk = { version: 1, runId: run.run_id, date, chunkIndex: 7 };
    for (const body of [unknownRun, otherDate, noChunk])
      expect(await deliver(body, { ...env, ARCHIVE_DLQ: dlq })).toBe("ack");
    expect(sent).toEqual([unknownRun, otherDate, noChunk]);
    expect((await runRow(run.run_id)).status).toBe("archiving");
    // None of them took a claim on the run's chunk.
    expect((await chunkRows(run.run_id))[0]).toMatchObject({ claim_token: null, attempts: 0 });
  });
});

describe("chunks larger than planned", () => {
  it("spill into the chunk's next reserved part numbers and still make equal parts", async () => {
    const date = "2026-04-07";
    const next = random(21);
    // The planner samples three windows of 100 rows at the start, a third and two
    // thirds of the range: make those rows compress twice as well as the rest, so
    // the estimate is half the truth and the first chunk needs two parts, not one.
    const sampled = (i: number) => i % 2333 < 100;
    await insertEvents(
      Array.from({ length: 7000 }, (_, i) =>
        event(date, i, { user_agent: sampled(i) ? noise(next, 1450) + "a".repeat(1450) : noise(next, 2900) }),
      ),
    );
    const { run, messages } = await planHeld(date);
    expect(messages.length).toBeGreaterThanOrEqual(2);
    for (const m of messages) expect(await deliver(m)).toBe("ack");
    const done = await runRow(run.run_id);
    expect(done.status).toBe("archived");

    const chunks = await chunkRows(run.run_id);
    const first = JSON.parse(chunks[0]?.parts ?? "[]") as { partNumber: number; size: number }[];
    expect(first.length).toBeGreaterThanOrEqual(2);
    expect(first.map((p) => p.partNumber)).toEqual(first.map((_, k) => (chunks[0]?.first_part ?? 0) + k));
    const manifest = await manifestOf(done);
    const parts = manifest.chunks.flatMap((c) => c.parts);
    for (const part of parts.slice(0, -1)) expect(part.size).toBe(Number(env.PART_SIZE_BYTES));
    expect((await archiveLines(done.object_key)).map((l) => JSON.parse(l))).toEqual(await d1Rows(date));
  });
});

describe("stalled runs", () => {
  it("are resumed by the next trigger once their lease is over, re-sending only unfinished chunks", async () => {
    const date = "2026-04-08";
    await seedTwoPartDay(date, 31);
    // Planned, but its messages are lost (a purged queue, a restarted local stack).
    const { run, messages } = await planHeld(date);
    expect(await deliver(messages[0])).toBe("ack");

    // Within the lease: the run is in flight, nothing is re-sent.
    const soon = await planArchive(env, date, NOW);
    expect(soon).toMatchObject({ outcome: "in_flight", resentChunks: 0 });

    // After it: the unfinished chunks go out again, through the real queue, and the run completes.
    const later = new Date(NOW.getTime() + (Number(env.LEASE_SECONDS) + 1) * 1000);
    const resumed = await planArchive(env, date, later);
    expect(resumed).toMatchObject({ outcome: "in_flight", resentChunks: messages.length - 1 });
    const done = await waitForRun(run.run_id);
    expect(done.status).toBe("archived");
    expect((await archiveLines(done.object_key)).map((l) => JSON.parse(l))).toEqual(await d1Rows(date));
  });
});
