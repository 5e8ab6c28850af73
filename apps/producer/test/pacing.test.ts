import { env } from "cloudflare:workers";
import { D1Pacer, MAX_PACING_WAIT_MS, type PacerClock, type RunRow } from "@path-stats/shared";
import { describe, expect, it } from "vitest";
import { planArchive } from "../src/plan-archive.ts";
import { planCleanup } from "../src/plan-cleanup.ts";
import { planRestore } from "../src/restore/plan-restore.ts";
import { deliverAll } from "./faults.ts";
import { event, insertEvents } from "./helpers.ts";

const NOW = new Date("2025-11-20T08:00:00Z");

/** One statement or batch as the pacer saw it: D1's own time for it, and the wait the pacer asked for after it. */
interface Step {
  d1Ms: number;
  waitMs: number;
}

/**
 * An invocation's pacer whose clock moves only by the waits it asks for
 * (nothing waits for real, and the invocation's own wall time is not counted
 * in its favour), noting each statement's D1 time and the wait after it.
 */
class RecordingPacer extends D1Pacer {
  constructor(
    msPerSecond: number,
    readonly steps: Step[] = [],
  ) {
    const clock: PacerClock = {
      now: () => steps.reduce((ms, s) => ms + s.waitMs, 0),
      async sleep(ms) {
        // The pacer asks for the wait in the same turn as it is told the statement's time: it is the last step's.
        (steps.at(-1) as Step).waitMs += ms;
      },
    };
    super(msPerSecond, clock);
  }

  override spent(d1Ms: number): Promise<void> {
    this.steps.push({ d1Ms, waitMs: 0 });
    return super.spent(d1Ms);
  }
}

/** Every invocation's pacer, in the order the invocations ran. */
function recordingPacers() {
  const pacers: RecordingPacer[] = [];
  const newPacer = (msPerSecond: number) => {
    const pacer = new RecordingPacer(msPerSecond);
    pacers.push(pacer);
    return pacer;
  };
  return { pacers, newPacer };
}

/**
 * How far one invocation's statements went beyond the budget, at worst: over
 * every stretch from the end of statement i to the end of the wait after a
 * later statement j, with only the waits counted as wall time, D1's time less
 * what the budget allows for those waits. The pacer keeps it within one
 * second's budget at every j after which it owes nothing; a wait cut to
 * MAX_PACING_WAIT_MS leaves the rest owed, paid in the waits after the next
 * statements, so stretches ending at such a wait are not counted.
 */
function worstStretch(steps: readonly Step[], msPerSecond: number): number {
  let worst = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < steps.length; i++) {
    let d1 = 0;
    let waited = 0;
    for (let j = i; j < steps.length; j++) {
      const step = steps[j] as Step;
      d1 += step.d1Ms;
      waited += step.waitMs;
      if (step.waitMs < MAX_PACING_WAIT_MS) worst = Math.max(worst, d1 - (msPerSecond * waited) / 1000);
    }
  }
  return worst;
}

async function rowsOf(date: string): Promise<number> {
  const row = await env.D1.prepare("SELECT COUNT(*) AS n FROM traffic_events WHERE event_date = ?1")
    .bind(date)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

async function runOf(date: string): Promise<RunRow> {
  return (await env.D1.prepare("SELECT * FROM archive_runs WHERE date = ?1").bind(date).first<RunRow>()) as RunRow;
}

describe("pacing the consumers' D1 time (D1_MS_PER_SECOND)", () => {
  it("archives, cleans and restores a day with every invocation's D1 time within a small budget", async () => {
    const date = "2025-11-10";
    const budget = 10;
    const vars = { D1_MS_PER_SECOND: String(budget) };
    // Enough rows that every invocation takes more than one second's budget of D1 time, locally too.
    const rows = 30_000;
    await insertEvents(Array.from({ length: rows }, (_, i) => event(date, i)));
    const archiving = recordingPacers();
    const cleaning = recordingPacers();

    expect(await deliverAll((e) => planArchive(e, date, NOW), vars, "archive-chunks", archiving.newPacer)).toBe(1);
    expect((await runOf(date)).status).toBe("archived");
    expect(await deliverAll((e) => planCleanup(e, date, NOW), vars, "cleanup-ranges", cleaning.newPacer)).toBe(1);
    expect(await rowsOf(date)).toBe(0);
    expect(await deliverAll((e) => planRestore(e, date, null, NOW), vars, "cleanup-ranges", cleaning.newPacer)).toBe(1);
    expect(await rowsOf(date)).toBe(rows);

    const pacers = [...archiving.pacers, ...cleaning.pacers];
    expect(pacers).toHaveLength(3);
    for (const pacer of pacers) {
      expect(pacer.msPerSecond).toBe(budget);
      const { steps } = pacer;
      // What the pacer was told is what it counted, and it counted the invocation's pages or deletes.
      expect(pacer.totals.statements).toBe(steps.length);
      expect(pacer.totals.d1Ms).toBeCloseTo(
        steps.reduce((ms, s) => ms + s.d1Ms, 0),
        6,
      );
      expect(pacer.totals.waitMs).toBe(steps.reduce((ms, s) => ms + s.waitMs, 0));
      // Each invocation took more than one second's budget of D1 time, so it had to wait...
      expect(pacer.totals.d1Ms).toBeGreaterThan(budget);
      expect(pacer.totals.waits).toBeGreaterThan(0);
      // ...and within every stretch of its statements, its D1 time stayed within the budget for the waits.
      expect(worstStretch(steps, budget)).toBeLessThanOrEqual(budget + 1e-6);
      // Waits bounded; together, what the budget asks for the invocation's D1 time less one second's budget
      // (everything owed was paid by its end), and no more (1 ms of rounding up per wait at most).
      expect(Math.max(...steps.map((s) => s.waitMs))).toBeLessThanOrEqual(MAX_PACING_WAIT_MS);
      expect(pacer.totals.waitMs).toBeGreaterThanOrEqual((pacer.totals.d1Ms * 1000) / budget - 1000);
      expect(pacer.totals.waitMs).toBeLessThanOrEqual((pacer.totals.d1Ms * 1000) / budget - 1000 + pacer.totals.waits);
    }
    // The cleanup's deletes and the restore's inserts (600 windows of DELETE_BATCH_ROWS = 50) each went through it.
    for (const pacer of cleaning.pacers) {
      expect(pacer.totals.statements).toBeGreaterThanOrEqual(rows / Number(env.DELETE_BATCH_ROWS));
    }
  });

  it("asks for no wait when pacing is off (1000), and still sees every statement's D1 time", async () => {
    const date = "2025-11-11";
    const vars = { D1_MS_PER_SECOND: "1000" };
    await insertEvents(Array.from({ length: 2000 }, (_, i) => event(date, i)));
    const { pacers, newPacer } = recordingPacers();

    await deliverAll((e) => planArchive(e, date, NOW), vars, "archive-chunks", newPacer);
    await deliverAll((e) => planCleanup(e, date, NOW), vars, "cleanup-ranges", newPacer);
    expect(await rowsOf(date)).toBe(0);

    expect(pacers).toHaveLength(2);
    for (const pacer of pacers) {
      expect(pacer.off).toBe(true);
      expect(pacer.totals.statements).toBeGreaterThan(10);
      expect(pacer.totals.waits).toBe(0);
      expect(pacer.steps.every((s) => s.waitMs === 0)).toBe(true);
    }
  });
});
