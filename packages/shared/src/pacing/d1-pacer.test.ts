import { describe, expect, it } from "vitest";
import { seededRandom } from "../seeded-random.ts";
import { D1Pacer, MAX_PACING_WAIT_MS, PACING_OFF, type PacerClock } from "./d1-pacer.ts";

/** A clock that moves only when told: by a statement's own time, other work, or the waits the pacer asks for. */
function fakeClock(): PacerClock & { at: number; advance(ms: number): void; waits: number[] } {
  const clock = {
    at: 1_000_000,
    waits: [] as number[],
    now: () => clock.at,
    advance(ms: number) {
      clock.at += ms;
    },
    async sleep(ms: number) {
      clock.waits.push(ms);
      clock.at += ms;
    },
  };
  return clock;
}

/** One statement: D1 runs it for `d1Ms` (the clock moves by that), then the pacer is told. */
async function statement(pacer: D1Pacer, clock: ReturnType<typeof fakeClock>, d1Ms: number) {
  const started = clock.at;
  clock.advance(d1Ms);
  const ended = clock.at;
  await pacer.spent(d1Ms);
  return { d1Ms, started, ended, paidAt: clock.at };
}

describe("D1 pacer", () => {
  it("keeps the D1 share within the budget over a long sequence of statements of varying durations", async () => {
    for (const budget of [10, 50, 100, 250, 400]) {
      const clock = fakeClock();
      const pacer = new D1Pacer(budget, clock, Number.POSITIVE_INFINITY);
      const next = seededRandom(budget);
      const done = [];
      for (let i = 0; i < 2000; i++) {
        // Mostly short statements, some long ones, with other work (gzip, R2) between some of them.
        const d1Ms = next() < 0.05 ? 20 + 200 * next() : 8 * next();
        if (next() < 0.3) clock.advance(50 * next());
        done.push(await statement(pacer, clock, d1Ms));
      }
      // Over every stretch from the end of one statement to the end of the wait after a later one:
      // at most the budget's rate, plus one second's budget taken at once.
      let worst = Number.NEGATIVE_INFINITY;
      for (let i = 0; i < done.length; i++) {
        let d1 = 0;
        for (let j = i; j < done.length; j++) {
          d1 += (done[j] as { d1Ms: number }).d1Ms;
          const wall = (done[j] as { paidAt: number }).paidAt - (done[i] as { ended: number }).ended;
          worst = Math.max(worst, d1 - (budget * wall) / 1000);
        }
      }
      expect(worst).toBeLessThanOrEqual(budget + 1e-6);
      // Over the whole sequence the share is the budget's (and that second), and not much below it:
      // the pacer does not over-wait.
      const wall = clock.at - (done[0] as { started: number }).started;
      expect(pacer.totals.d1Ms).toBeLessThanOrEqual(budget * (wall / 1000 + 1));
      expect((pacer.totals.d1Ms * 1000) / wall).toBeGreaterThan(budget * 0.95);
      expect(pacer.totals.statements).toBe(2000);
      expect(pacer.totals.waitMs).toBe(clock.waits.reduce((a, b) => a + b, 0));
    }
  });

  it("lets statements through unpaced while they are within the budget", async () => {
    const clock = fakeClock();
    const pacer = new D1Pacer(100, clock);
    // 5 ms of D1 time every 100 ms of other work: 50 ms/s, half the budget.
    for (let i = 0; i < 100; i++) {
      clock.advance(100);
      await statement(pacer, clock, 5);
    }
    expect(clock.waits).toEqual([]);
    expect(pacer.totals).toMatchObject({ statements: 100, d1Ms: 500, waits: 0, waitMs: 0 });
  });

  it("never waits when off, and still counts D1's time", async () => {
    const clock = fakeClock();
    const pacer = new D1Pacer(PACING_OFF, clock);
    expect(pacer.off).toBe(true);
    for (let i = 0; i < 500; i++) await statement(pacer, clock, i % 3 === 0 ? 2500 : 40);
    expect(clock.waits).toEqual([]);
    expect(pacer.totals.waits).toBe(0);
    expect(pacer.totals.d1Ms).toBe(167 * 2500 + 333 * 40);
  });

  it("pays for a single statement longer than a second with a wait that brings the share to the budget", async () => {
    const clock = fakeClock();
    const pacer = new D1Pacer(200, clock, 60_000);
    const s = await statement(pacer, clock, 1500);
    // One second's budget (200 ms) was there to take; the other 1300 ms take 6500 ms at 200 ms/s.
    expect(clock.waits).toEqual([6500]);
    expect((s.d1Ms * 1000) / (s.paidAt - s.started)).toBeCloseTo(1500 / 8, 6);
    // After a wait no second's budget is left to take: a statement straight after it is paid at the rate
    // (1 ms: 5 ms of wall time, less its own 1 ms).
    await statement(pacer, clock, 1);
    expect(clock.waits).toEqual([6500, 4]);
  });

  it("bounds each wait, and pays what a statement owes beyond it in the waits after the next statements", async () => {
    const clock = fakeClock();
    const pacer = new D1Pacer(10, clock);
    // D1's 30 s statement limit, at 10 ms/s: far more owed than one wait may last.
    await statement(pacer, clock, 30_000);
    expect(clock.waits).toEqual([MAX_PACING_WAIT_MS]);
    for (let i = 0; i < 700; i++) await statement(pacer, clock, 0);
    expect(Math.max(...clock.waits)).toBe(MAX_PACING_WAIT_MS);
    // Every wait bounded; together, exactly what was owed: 30 s at 10 ms/s is 3000 s of wall time, less
    // the one second's budget that was there to take (from a full budget, the statement's own 30 s are not counted).
    expect(clock.waits.reduce((a, b) => a + b, 0)).toBe(2_999_000);
    expect(clock.waits.filter((w) => w === MAX_PACING_WAIT_MS)).toHaveLength(599);
    expect(pacer.totals.longestWaitMs).toBe(MAX_PACING_WAIT_MS);
  });

  it("treats a missing or nonsensical duration as no D1 time", async () => {
    const clock = fakeClock();
    const pacer = new D1Pacer(10, clock);
    for (const d of [Number.NaN, -5, Number.POSITIVE_INFINITY]) await pacer.spent(d);
    expect(clock.waits).toEqual([]);
    expect(pacer.totals).toMatchObject({ statements: 3, d1Ms: 0 });
  });
});
