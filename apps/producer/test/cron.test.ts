import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import { archiveLines, event, insertEvents, runsOf, waitForRun } from "./helpers.ts";
import worker from "./worker.ts";

const NOW = new Date("2026-05-05T00:15:00Z");

async function runCron(): Promise<void> {
  const ctx = createExecutionContext();
  await worker.scheduled(createScheduledController({ scheduledTime: NOW.getTime(), cron: "15 0 * * *" }), env);
  await waitOnExecutionContext(ctx);
}

it("archives every closed day with unarchived rows, cleans those past the hot window, leaves today alone", async () => {
  await insertEvents([
    ...Array.from({ length: 40 }, (_, i) => event("2026-05-01", i)),
    ...Array.from({ length: 30 }, (_, i) => event("2026-05-03", i)),
    ...Array.from({ length: 20 }, (_, i) => event("2026-05-05", i)),
  ]);
  await runCron();

  for (const [date, rows] of [
    ["2026-05-01", 40],
    ["2026-05-03", 30],
  ] as const) {
    const [run, ...more] = await runsOf(date);
    expect(more).toHaveLength(0);
    const done = await waitForRun(run?.run_id ?? "");
    expect(done.status).toBe("archived");
    expect(await archiveLines(done.object_key)).toHaveLength(rows);
  }
  expect(await runsOf("2026-05-05")).toHaveLength(0);
  expect(await runsOf("2026-05-02")).toHaveLength(0);

  // Nothing new: the next cron plans nothing; a late row gets a run of its own.
  await insertEvents([event("2026-05-01", 99)]);
  await runCron();
  expect(await runsOf("2026-05-03")).toHaveLength(1);
  const runs = await runsOf("2026-05-01");
  expect(runs).toHaveLength(2);
  const late = await waitForRun(runs[1]?.run_id ?? "");
  expect(await archiveLines(late.object_key)).toHaveLength(1);

  // HOT_DAYS = 3 on 2026-05-05: 05-02 .. 05-04 stay in D1, 05-01 is cleaned, both of its runs.
  await runCron();
  const meta = await pollRow<{ d1_cleaned: number }>(
    "SELECT d1_cleaned FROM archive_metadata WHERE date = '2026-05-01'",
    (row) => row?.d1_cleaned === 1,
  );
  expect(meta?.d1_cleaned).toBe(1);
  const left = await env.D1.prepare(
    "SELECT event_date, COUNT(*) AS n FROM traffic_events GROUP BY event_date ORDER BY event_date",
  ).all();
  expect(left.results).toEqual([
    { event_date: "2026-05-03", n: 30 },
    { event_date: "2026-05-05", n: 20 },
  ]);

  // The crons also sent archives to be scrubbed. Let those checks finish before the test ends: work
  // still on the queues at teardown was seen to keep this file's vitest process from exiting.
  const pending = await pollRow<{ n: number }>(
    "SELECT COUNT(*) AS n FROM archive_chunks WHERE verify_state = 'pending'",
    (row) => row?.n === 0,
  );
  expect(pending?.n).toBe(0);
});

/** Reads one row every 50 ms until `done` holds or a minute has passed; the last row read. */
async function pollRow<T>(sql: string, done: (row: T | null) => boolean): Promise<T | null> {
  const deadline = Date.now() + 60_000;
  let row: T | null = null;
  while (Date.now() < deadline) {
    row = await env.D1.prepare(sql).first<T>();
    if (done(row)) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return row;
}
