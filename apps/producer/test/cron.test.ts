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

it("archives every closed day with unarchived rows, and leaves today alone", async () => {
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
});
