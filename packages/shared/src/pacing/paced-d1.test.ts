import { describe, expect, it } from "vitest";
import { D1Pacer, type PacerClock } from "./d1-pacer.ts";
import { pacedD1 } from "./paced-d1.ts";

/** A D1 binding's shape: every statement answers `rows` and reports `duration` ms; batches are recorded. */
function fakeD1(duration: number, rows: Record<string, unknown>[] = [{ n: 1 }]) {
  const batches: unknown[][] = [];
  const statement = (sql: string, values: unknown[] = []) => ({
    sql,
    values,
    bind: (...v: unknown[]) => statement(sql, v),
    all: async () => ({ results: rows, meta: { duration } }),
    run: async () => ({ results: [], meta: { duration } }),
    first: async (_column?: string) => {
      throw new Error("a paced binding reads first() through all()");
    },
    raw: async () => [],
  });
  return {
    batches,
    prepare: (sql: string) => statement(sql),
    batch: async (statements: unknown[]) => {
      batches.push(statements);
      return statements.map(() => ({ results: [], meta: { duration } }));
    },
    exec: async (_query: string) => ({ count: 1, duration }),
  };
}

/** A clock that moves only by the waits asked of it. */
function stillClock(): PacerClock & { waits: number[] } {
  let at = 0;
  const waits: number[] = [];
  return {
    waits,
    now: () => at,
    async sleep(ms) {
      waits.push(ms);
      at += ms;
    },
  };
}

describe("paced D1 binding", () => {
  it("reports each statement's and each batch's D1 time to the pacer", async () => {
    const clock = stillClock();
    const pacer = new D1Pacer(10, clock);
    const db = pacedD1(fakeD1(20), pacer);
    const s = db.prepare("SELECT 1").bind(1);
    await s.all();
    await s.run();
    expect(await s.first()).toEqual({ n: 1 });
    expect(await s.first("n")).toBe(1);
    await db.batch([s, db.prepare("SELECT 2")]);
    await db.exec("SELECT 3");
    // Five statements of 20 ms and a batch of two (40 ms): 140 ms at 10 ms/s, less one second's budget.
    expect(pacer.totals).toMatchObject({ statements: 6, d1Ms: 140 });
    expect(clock.waits.reduce((a, b) => a + b, 0)).toBe(13_000);
  });

  it("hands a batch the binding's own statements, bound as given", async () => {
    const base = fakeD1(0);
    const db = pacedD1(base, new D1Pacer(100, stillClock()));
    await db.batch([db.prepare("DELETE FROM t WHERE id = ?1").bind(7)]);
    expect(base.batches[0]).toMatchObject([{ sql: "DELETE FROM t WHERE id = ?1", values: [7] }]);
    await expect(db.batch([base.prepare("SELECT 1")])).rejects.toThrow("another binding");
  });

  it("answers first() as D1 does: null without rows, an error for a column the row lacks", async () => {
    const db = pacedD1(fakeD1(0, []), new D1Pacer(100, stillClock()));
    expect(await db.prepare("SELECT 1").first()).toBeNull();
    expect(await db.prepare("SELECT 1").first("n")).toBeNull();
    const one = pacedD1(fakeD1(0), new D1Pacer(100, stillClock()));
    await expect(one.prepare("SELECT 1").first("missing")).rejects.toThrow("D1_COLUMN_NOTFOUND");
  });

  it("refuses what does not report D1's time, rather than leave it unpaced", () => {
    const db = pacedD1(fakeD1(0), new D1Pacer(100, stillClock()));
    expect(() => db.prepare("SELECT 1").raw()).toThrow("raw()");
    expect(() => (db as unknown as { withSession(): unknown }).withSession()).toThrow("sessions");
  });
});
