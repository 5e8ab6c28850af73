import { describe, expect, it } from "vitest";
import type { ArchivedTable } from "./archived-table/archived-table.ts";
import { affinityOf, exactMatch, exactNumber, exactRowsJson, type TableColumn } from "./exact-rows.ts";

/** Doubles from random bit patterns: every exponent, subnormals included. */
function randomDoubles(n: number, seed: number): number[] {
  let x = seed;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  const view = new DataView(new ArrayBuffer(8));
  const out: number[] = [];
  while (out.length < n) {
    view.setUint32(0, next());
    view.setUint32(4, next());
    const d = view.getFloat64(0);
    if (Number.isFinite(d)) out.push(d);
  }
  return out;
}

describe("exactNumber", () => {
  it("keeps safe integers as they are", () => {
    for (const n of [0, 1, -1, 42, 2 ** 53 - 1, -(2 ** 53 - 1)]) expect(exactNumber(n)).toBe(n);
  });

  it("writes any other double as m * 2^k, exactly, with m odd and of at most 53 bits", () => {
    const cases = [0.3, 0.1 + 0.2, 1e-101, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 2 ** 60, -1.5];
    for (const x of [...cases, ...randomDoubles(20_000, 7)]) {
      if (Number.isSafeInteger(x)) continue;
      const [m, k] = exactNumber(x) as [number, number];
      expect(Number.isSafeInteger(m) && Math.abs(m) % 2 === 1).toBe(true);
      expect(Number.isInteger(k) && k >= -1074 && k <= 1023).toBe(true);
      // Scaling by a power of two is exact in IEEE arithmetic while the result is representable.
      expect(Object.is(m * 2 ** k, x)).toBe(true);
    }
  });

  it("tells 0.3 from 0.30000000000000004", () => {
    expect(exactNumber(0.3)).not.toEqual(exactNumber(0.1 + 0.2));
  });
});

describe("exactRowsJson", () => {
  it("turns a window of lines into one array, numbers that are not safe integers as [m, k]", () => {
    const text = '{"id":1,"x":0.5,"s":"a\\nb","n":null}\n{"id":2,"x":3,"s":"0.25","n":1e300}';
    expect(JSON.parse(exactRowsJson(text))).toEqual([
      { id: 1, x: [1, -1], s: "a\nb", n: null },
      { id: 2, x: 3, s: "0.25", n: exactNumber(1e300) },
    ]);
  });
});

describe("affinityOf", () => {
  it("follows SQLite's rules in their order", () => {
    expect(
      [
        "INTEGER",
        "BIGINT",
        "TEXT",
        "VARCHAR(20)",
        "CHARINT",
        "",
        "BLOB",
        "REAL",
        "DOUBLE",
        "FLOAT",
        "DECIMAL(10,5)",
        "BOOLEAN",
      ].map(affinityOf),
    ).toEqual([
      "INTEGER",
      "INTEGER",
      "TEXT",
      "TEXT",
      "INTEGER",
      "BLOB",
      "BLOB",
      "REAL",
      "REAL",
      "REAL",
      "NUMERIC",
      "NUMERIC",
    ]);
  });
});

describe("exactMatch", () => {
  const target: ArchivedTable = {
    name: "events",
    id: "id",
    dayColumn: "event_date",
    dayForm: "date",
    keyPrefix: "events/event_date=",
    hotDays: 3,
    stats: null,
  };
  const table: TableColumn[] = [
    { name: "id", affinity: "INTEGER", defaultSql: null },
    { name: "event_date", affinity: "TEXT", defaultSql: null },
    { name: "region", affinity: "TEXT", defaultSql: "'eu'" },
  ];

  it("refuses an archive with a column the table lost, naming it", () => {
    const refusal = exactMatch(target, table, ["id", "event_date", "country"]);
    expect(typeof refusal).toBe("string");
    expect(refusal).toMatch(/"country"/);
  });

  it("holds a column the archive lacks to what a restore would put there", () => {
    const match = exactMatch(target, table, ["id", "event_date"]);
    if (typeof match === "string") throw new Error(match);
    expect(match.rowIsArchived).toContain(`t."region" IS ('eu')`);
    expect(match.deleteIfSameLines).toContain(`NOT ("region" IS ('eu'))`);
    expect(match.insertColumns).toBe(`"id", "event_date"`);
  });

  it("refuses an archive without the table's id column", () => {
    const other = { ...target, id: "event_id" };
    expect(
      exactMatch(other, [{ name: "event_id", affinity: "INTEGER", defaultSql: null }, ...table], ["id", "event_date"]),
    ).toMatch(/"event_id"/);
  });

  it("refuses names that cannot go into a JSON path", () => {
    expect(
      typeof exactMatch(target, [...table, { name: "a.b", affinity: "TEXT", defaultSql: null }], ["id", "a.b"]),
    ).toBe("string");
  });
});
