import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { Manifest, RunRow } from "@path-stats/shared";
import { describe, expect, it } from "vitest";
import { planArchive } from "../src/plan-archive.ts";
import { capturingQueue, deliver, deliverCleanup, faultyD1, faultyR2 } from "./faults.ts";
import { archiveLines, d1Rows, event, insertEvents, insertEventWithId, waitForRun } from "./helpers.ts";
import worker from "./worker.ts";

/** A lease of one second, so a test can outlive a dead consumer's claim. */
const SHORT_LEASE = { LEASE_SECONDS: "1" };

async function planHeld(date: string, extra: Partial<Env> = {}) {
  const queue = capturingQueue();
  const planned = await planArchive({ ...env, ...extra, ARCHIVE_QUEUE: queue }, date, new Date());
  if (planned.outcome !== "planned") throw new Error(`expected a new run, got ${planned.outcome}`);
  return { run: planned.run, messages: queue.sent };
}

async function runRow(runId: string): Promise<RunRow> {
  return (await env.D1.prepare("SELECT * FROM archive_runs WHERE run_id = ?1").bind(runId).first<RunRow>()) as RunRow;
}

const leaseOver = () => new Promise((resolve) => setTimeout(resolve, 1100));

/** Every event is in D1 or in exactly one committed archive of its date, with its exact values. */
async function expectArchivedOnce(date: string, run: RunRow) {
  const listed = await env.R2_ARCHIVE.list({ prefix: `traffic_events/event_date=${date}/` });
  expect(listed.objects.map((o) => o.key).sort()).toEqual([run.manifest_key, run.object_key].sort());
  const manifest = (await (await env.R2_ARCHIVE.get(run.manifest_key))?.json()) as Manifest;
  const lines = await archiveLines(run.object_key);
  expect(manifest.rows).toBe(lines.length);
  expect(lines.map((l) => JSON.parse(l))).toEqual(await d1Rows(date, 0, run.rowid_hi));
  const meta = await env.D1.prepare("SELECT event_count FROM archive_metadata WHERE date = ?1").bind(date).first();
  expect(meta).toEqual({ event_count: lines.length });
}

describe("a Worker dying between two steps", () => {
  it("after uploadPart, before the chunk's result is recorded: the claim holds until its lease ends, then a retry archives it once", async () => {
    const date = "2026-08-01";
    await insertEvents(Array.from({ length: 300 }, (_, i) => event(date, i)));
    const { run, messages } = await planHeld(date);
    const dying = { ...env, D1: faultyD1([{ match: /SET state = 'archived'/, times: 1 }]) };
    expect(await deliver(messages[0], dying)).toBe("retry");
    const chunk = await env.D1.prepare("SELECT state, claim_token FROM archive_chunks WHERE run_id = ?1")
      .bind(run.run_id)
      .first();
    expect(chunk?.state).toBe("pending");
    expect(chunk?.claim_token).not.toBeNull();

    // Redelivered at once: the dead invocation's claim is still live, so it waits.
    expect(await deliver(messages[0], { ...env, ...SHORT_LEASE })).toBe("retry");
    await leaseOver();
    expect(await deliver(messages[0], { ...env, ...SHORT_LEASE })).toBe("ack");
    const done = await runRow(run.run_id);
    expect(done.status).toBe("archived");
    await expectArchivedOnce(date, done);
  });

  it("after complete(), before the manifest: a retry finds the object already complete and commits it", async () => {
    const date = "2026-08-02";
    await insertEvents(Array.from({ length: 300 }, (_, i) => event(date, i)));
    const { run, messages } = await planHeld(date);
    // The manifest write fails, and so does handing the run back: as if the Worker died right there.
    const dying = {
      ...env,
      R2_ARCHIVE: faultyR2({ put: 1 }),
      D1: faultyD1([{ match: /UPDATE archive_runs SET status = CASE WHEN/, times: 1 }]),
    };
    expect(await deliver(messages[0], dying)).toBe("retry");
    let state = await runRow(run.run_id);
    expect(state.status).toBe("finalizing");
    expect(await env.R2_ARCHIVE.head(run.object_key)).not.toBeNull();
    expect(await env.R2_ARCHIVE.head(run.manifest_key)).toBeNull();

    // A redelivery within the finalization's lease leaves it to its owner.
    expect(await deliver(messages[0], { ...env, ...SHORT_LEASE })).toBe("ack");
    state = await runRow(run.run_id);
    expect(state.status).toBe("finalizing");

    // Once the lease is over, the next trigger re-sends a chunk and its consumer takes over.
    await leaseOver();
    const queue = capturingQueue();
    const resumed = await planArchive({ ...env, ...SHORT_LEASE, ARCHIVE_QUEUE: queue }, date, new Date());
    expect(resumed).toMatchObject({ outcome: "in_flight", resentChunks: 1 });
    expect(await deliver(queue.sent[0], { ...env, ...SHORT_LEASE })).toBe("ack");
    const done = await runRow(run.run_id);
    expect(done.status).toBe("archived");
    await expectArchivedOnce(date, done);
  });

  it("after the manifest, before the run is marked archived: a retry commits it once", async () => {
    const date = "2026-08-03";
    await insertEvents(Array.from({ length: 300 }, (_, i) => event(date, i)));
    const { run, messages } = await planHeld(date);
    const dying = { ...env, D1: faultyD1([{ match: /SET status = 'archived'/, times: 1 }]) };
    expect(await deliver(messages[0], dying)).toBe("retry");
    expect(await env.R2_ARCHIVE.head(run.manifest_key)).not.toBeNull();
    // Committed in R2: handed back still finalizing (never failable), claimable at once.
    expect((await runRow(run.run_id)).status).toBe("finalizing");

    expect(await deliver(messages[0])).toBe("ack");
    const done = await runRow(run.run_id);
    expect(done.status).toBe("archived");
    await expectArchivedOnce(date, done);
  });

  it("a run whose messages were lost is resumed by the cron once its lease is over", async () => {
    const date = "2026-08-04";
    await insertEvents(Array.from({ length: 120 }, (_, i) => event(date, i)));
    const { run } = await planHeld(date);
    await leaseOver();
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ scheduledTime: Date.now() }), { ...env, ...SHORT_LEASE });
    await waitOnExecutionContext(ctx);
    const done = await waitForRun(run.run_id);
    expect(done.status).toBe("archived");
    await expectArchivedOnce(date, done);
  });
});

describe("cleanup racing a late insert", () => {
  it("deletes only archived rows; rows inserted inside and above the range meanwhile stay and keep the day from being cleaned", async () => {
    const date = "2026-08-05";
    await insertEvents(Array.from({ length: 600 }, (_, i) => event(date, i)));
    const planned = await planArchive(env, date, new Date());
    const run = await waitForRun(planned.run?.run_id ?? "");
    // Ten archived rows leave D1 another way, so their ids are free inside the range.
    const inside = (await d1Rows(date)).slice(100, 110).map((r) => r.id as number);
    await env.D1.prepare(`DELETE FROM traffic_events WHERE id IN (${inside.join(", ")})`).run();
    const queue = capturingQueue();
    const { planCleanup } = await import("../src/plan-cleanup.ts");
    await planCleanup({ ...env, CLEANUP_QUEUE: queue }, date, new Date());

    // While cleanup runs, a writer that assigns ids puts rows with other content at those ids, and late rows arrive.
    const [outcome] = await Promise.all([
      deliverCleanup(queue.sent[0]),
      (async () => {
        for (const id of inside) await insertEventWithId(id, event(date, id, { path: "/inside" }));
      })(),
      insertEvents(Array.from({ length: 25 }, (_, i) => event(date, 1000 + i, { path: "/late" }))),
    ]);
    expect(outcome).toBe("ack");
    const left = await d1Rows(date);
    expect(left).toHaveLength(35);
    expect(left.filter((r) => r.path === "/inside").map((r) => r.id)).toEqual(inside);
    expect(left.filter((r) => r.path === "/late").every((r) => Number(r.id) > run.rowid_hi)).toBe(true);
    const meta = await env.D1.prepare("SELECT d1_cleaned FROM archive_metadata WHERE date = ?1").bind(date).first();
    expect(meta).toEqual({ d1_cleaned: 0 });
  });
});
