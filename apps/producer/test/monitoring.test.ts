import { env } from "cloudflare:workers";
import { addDays, type RunRow } from "@path-stats/shared";
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
import { runCron } from "../src/cron.ts";
import { replayDeadLetters } from "../src/dead-letters.ts";
import { announceChanges } from "../src/monitoring/alerts.ts";
import { evaluateHealth, type Problem } from "../src/monitoring/health.ts";
import { planArchive } from "../src/plan-archive.ts";
import { planCleanup } from "../src/plan-cleanup.ts";
import { capturingQueue, deliver, deliverCleanup } from "./faults.ts";
import { d1Rows, event, insertEvents, waitForRun } from "./helpers.ts";

/**
 * Health and alerts: each problem is created the way it happens, reported by
 * /admin/health's evaluation, announced to a local webhook receiver once,
 * then cleared the way an operator would clear it, and announced as cleared
 * once.
 */

const RECEIVER = inject("alertReceiverUrl");
const NOW = new Date("2026-10-20T12:00:00Z");
const YESTERDAY = addDays("2026-10-20", -1);
const alertEnv = { ...env, ALERT_WEBHOOK_URL: `${RECEIVER}/hook` };

type Received = { text: string; status: "raised" | "cleared"; problem: { key: string; code: string } };

async function received(): Promise<Received[]> {
  return (await (await fetch(`${RECEIVER}/received`)).json()) as Received[];
}

/** What the cron does after its work: evaluate health, announce what changed. */
async function check(testEnv: Env = env, now = NOW): Promise<Problem[]> {
  const health = await evaluateHealth(testEnv, now);
  await announceChanges({ ...testEnv, ALERT_WEBHOOK_URL: alertEnv.ALERT_WEBHOOK_URL }, health.problems, now);
  return health.problems;
}

/** Creates a problem, sees it reported and announced once, clears it, sees the clearing announced once. */
async function raiseThenClear(
  code: Problem["code"],
  create: () => Promise<Env | undefined>,
  clear: () => Promise<Env | undefined>,
): Promise<Problem> {
  const raisedEnv = (await create()) ?? env;
  const problems = await check(raisedEnv);
  expect(problems.map((p) => p.code)).toEqual([code]);
  const [problem] = problems as [Problem];
  expect(problem.message).not.toBe("");
  expect(problem.action).not.toBe("");
  expect(Number.isNaN(Date.parse(problem.since))).toBe(false);
  await check(raisedEnv); // still there: not announced again

  const clearedEnv = (await clear()) ?? env;
  expect(await check(clearedEnv)).toEqual([]);
  await check(clearedEnv);

  const posts = await received();
  expect(posts.map((p) => [p.status, p.problem.key])).toEqual([
    ["raised", problem.key],
    ["cleared", problem.key],
  ]);
  expect(posts[0]?.text).toContain(code);
  return problem;
}

async function archive(date: string, now = NOW): Promise<RunRow> {
  const planned = await planArchive(env, date, now);
  return waitForRun(planned.run?.run_id ?? "");
}

async function clean(date: string): Promise<void> {
  const queue = capturingQueue();
  await planCleanup({ ...env, CLEANUP_QUEUE: queue }, date, NOW);
  for (const m of queue.sent) await deliverCleanup(m);
}

beforeEach(async () => {
  await fetch(`${RECEIVER}/reset`, { method: "POST" });
});

afterEach(async () => {
  await env.D1.batch(
    [
      "traffic_events",
      "archive_chunks",
      "archive_runs",
      "archive_metadata",
      "dead_letters",
      "alerts",
      // The path statistics of the days just deleted: left alone, they would count rows no archive holds.
      "path_stats",
      "path_stats_days",
      "path_stats_chunks",
      "path_stats_recounts",
    ].map((t) => env.D1.prepare(`DELETE FROM ${t}`)),
  );
});

describe("each health problem is reported, announced once, then cleared", () => {
  it("day_not_archived: a closed day with rows no archive holds, past the deadline", async () => {
    await insertEvents(Array.from({ length: 30 }, (_, i) => event(YESTERDAY, i)));
    // Before the deadline (06:00 the day after), nothing is late.
    expect(await check(env, new Date("2026-10-20T05:59:00Z"))).toEqual([]);
    const problem = await raiseThenClear(
      "day_not_archived",
      async () => undefined,
      async () => {
        expect((await archive(YESTERDAY)).status).toBe("archived");
        return undefined;
      },
    );
    expect(problem.date).toBe(YESTERDAY);
    expect(problem.since).toBe("2026-10-20T06:00:00.000Z");
  });

  it("run_failed: the latest run of a day failed", async () => {
    await insertEvents(Array.from({ length: 30 }, (_, i) => event(YESTERDAY, i)));
    const [row] = await d1Rows(YESTERDAY);
    await env.D1.prepare("UPDATE traffic_events SET bytes = X'00ff' WHERE id = ?1").bind(row?.id).run();
    const problem = await raiseThenClear(
      "run_failed",
      async () => {
        expect((await archive(YESTERDAY)).status).toBe("failed");
        return undefined;
      },
      async () => {
        await env.D1.prepare("UPDATE traffic_events SET bytes = 1 WHERE id = ?1").bind(row?.id).run();
        expect((await archive(YESTERDAY)).status).toBe("archived");
        return undefined;
      },
    );
    expect(problem.message).toMatch(/BLOB/);
  });

  it("run_stalled: a run in flight with no progress for longer than its lease", async () => {
    await insertEvents(Array.from({ length: 30 }, (_, i) => event(YESTERDAY, i)));
    const queue = capturingQueue();
    let runId = "";
    await raiseThenClear(
      "run_stalled",
      async () => {
        // Planned two minutes ago (the lease is 60 s); its messages never arrive.
        const planned = await planArchive(
          { ...env, ARCHIVE_QUEUE: queue },
          YESTERDAY,
          new Date(NOW.getTime() - 120_000),
        );
        runId = planned.run?.run_id ?? "";
        return undefined;
      },
      async () => {
        for (const m of queue.sent) expect(await deliver(m)).toBe("ack");
        expect((await waitForRun(runId)).status).toBe("archived");
        return undefined;
      },
    );
  });

  it("cleanup_refused: cleanup found the archive's bytes altered and deleted nothing", async () => {
    const date = addDays(YESTERDAY, -5);
    await insertEvents(Array.from({ length: 200 }, (_, i) => event(date, i)));
    const run = await archive(date);
    const original = new Uint8Array(await ((await env.R2_ARCHIVE.get(run.object_key)) as R2ObjectBody).arrayBuffer());
    const problem = await raiseThenClear(
      "cleanup_refused",
      async () => {
        const altered = original.slice();
        altered[40] = (altered[40] as number) ^ 0xff; // inside the chunk's gzip member
        await env.R2_ARCHIVE.put(run.object_key, altered);
        await clean(date);
        expect((await d1Rows(date)).length).toBe(200);
        return undefined;
      },
      async () => {
        await env.R2_ARCHIVE.put(run.object_key, original);
        await clean(date);
        expect((await d1Rows(date)).length).toBe(0);
        return undefined;
      },
    );
    expect(problem.runId).toBe(run.run_id);
  });

  it("too_many_days_in_d1: more closed days in D1 than HOT_DAYS + 1", async () => {
    const oneHotDay = { ...env, HOT_DAYS: "0" }; // allows 1 closed day, plus none being cleaned
    const older = addDays(YESTERDAY, -1);
    for (const date of [older, YESTERDAY]) {
      await insertEvents(Array.from({ length: 20 }, (_, i) => event(date, i)));
      await archive(date);
    }
    const problem = await raiseThenClear(
      "too_many_days_in_d1",
      async () => oneHotDay,
      async () => {
        await clean(older);
        return oneHotDay;
      },
    );
    expect(problem.date).toBe(older);
  });

  it("dead_letters_pending: letters not replayed", async () => {
    await raiseThenClear(
      "dead_letters_pending",
      async () => {
        await env.D1.prepare(
          `INSERT INTO dead_letters (queue, message_id, body, attempts, received_at)
           VALUES ('archive-chunks', 'm-1', '{"version":1,"runId":"r1","date":"2026-10-19","chunkIndex":0}', 5, '2026-10-20T10:00:00Z')`,
        ).run();
        return undefined;
      },
      async () => {
        await replayDeadLetters({ ...env, ARCHIVE_QUEUE: capturingQueue() }, "pending", NOW);
        return undefined;
      },
    );
  });

  it("object_too_large: an archive larger per million rows than MAX_OBJECT_MIB_PER_MILLION_ROWS", async () => {
    await insertEvents(Array.from({ length: 10_000 }, (_, i) => event(YESTERDAY, i)));
    const run = await archive(YESTERDAY);
    const mibPerMillion = (((run.object_bytes ?? 0) / 10_000) * 1_000_000) / 1024 / 1024;
    await raiseThenClear(
      "object_too_large",
      async () => ({ ...env, MAX_OBJECT_MIB_PER_MILLION_ROWS: String(Math.floor(mibPerMillion) - 1) }),
      async () => ({ ...env, MAX_OBJECT_MIB_PER_MILLION_ROWS: String(Math.ceil(mibPerMillion) + 1) }),
    );
  });
});

describe("the alert webhook", () => {
  async function pendingLetter(): Promise<void> {
    await env.D1.prepare(
      `INSERT INTO dead_letters (queue, message_id, body, attempts, received_at)
       VALUES ('cleanup-ranges', 'm-2', '{}', 5, '2026-10-20T10:00:00Z')`,
    ).run();
  }

  it("is retried a bounded number of times, and a change it never took is posted by a later run", async () => {
    await pendingLetter();
    await fetch(`${RECEIVER}/reset?fail=2`, { method: "POST" });
    const health = await evaluateHealth(env, NOW);
    expect(await announceChanges(alertEnv, health.problems, NOW)).toEqual({
      raised: ["dead_letters_pending"],
      cleared: [],
      unsent: [],
    });
    expect(await received()).toHaveLength(1);

    // A receiver that is down: nothing recorded, so the clearing is posted once it is back.
    await replayDeadLetters({ ...env, CLEANUP_QUEUE: capturingQueue() }, "pending", NOW);
    await fetch(`${RECEIVER}/reset?fail=100`, { method: "POST" });
    expect((await announceChanges(alertEnv, [], NOW)).unsent).toEqual(["dead_letters_pending"]);
    await fetch(`${RECEIVER}/reset`, { method: "POST" });
    expect((await announceChanges(alertEnv, [], NOW)).cleared).toEqual(["dead_letters_pending"]);
    expect((await received()).map((p) => p.status)).toEqual(["cleared"]);
  });

  it("is posted to by the cron after its work, and not at all without ALERT_WEBHOOK_URL", async () => {
    await pendingLetter();
    await runCron(env, NOW);
    expect(await received()).toEqual([]);
    await runCron(alertEnv, NOW);
    await runCron(alertEnv, NOW);
    const posts = await received();
    expect(posts.map((p) => [p.status, p.problem.key])).toEqual([["raised", "dead_letters_pending"]]);
    expect(posts[0]?.text).toMatch(/^\[path-stats archiver\] PROBLEM dead_letters_pending: 1 dead letter/);
  });
});

describe("Analytics Engine data points", () => {
  it("are written per chunk, range and run when ANALYTICS is bound, and nothing breaks without it", async () => {
    const points: { blobs?: string[]; doubles?: number[] }[] = [];
    const analyticsEnv = { ...env, ANALYTICS: { writeDataPoint: (p: (typeof points)[number]) => points.push(p) } };
    const date = addDays(YESTERDAY, -4);
    await insertEvents(Array.from({ length: 50 }, (_, i) => event(date, i)));
    const queue = capturingQueue();
    const planned = await planArchive({ ...analyticsEnv, ARCHIVE_QUEUE: queue }, date, NOW);
    for (const m of queue.sent) expect(await deliver(m, analyticsEnv as Env)).toBe("ack");
    const run = await waitForRun(planned.run?.run_id ?? "");
    const cleanup = capturingQueue();
    await planCleanup({ ...env, CLEANUP_QUEUE: cleanup }, date, NOW);
    for (const m of cleanup.sent) expect(await deliverCleanup(m, analyticsEnv as Env)).toBe("ack");

    expect(points.map((p) => p.blobs?.slice(0, 3))).toEqual([
      ...queue.sent.map(() => ["chunk", "archived", date]),
      ["run", "archived", date],
      ...cleanup.sent.map(() => ["range", "cleaned", date]),
    ]);
    const runPoint = points.find((p) => p.blobs?.[0] === "run");
    expect(runPoint?.blobs?.[3]).toBe(run.run_id);
    expect(runPoint?.doubles?.slice(0, 3)).toEqual([50, run.object_bytes, run.part_count]);
    expect(points.filter((p) => p.blobs?.[0] === "range").reduce((n, p) => n + (p.doubles?.[0] ?? 0), 0)).toBe(50);
  });
});
