import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { PLAIN_NAME, parseArchivedTables } from "../archived-table/archived-table.ts";
import { DayRollup } from "./path-rollup.ts";
import { countLines, parseStatsColumns, type StatsColumns, valuesOfRow, valuesOfTuple } from "./stats-columns.ts";

const parse = (entry: unknown) => parseStatsColumns(entry, "stats", PLAIN_NAME);

describe("stats columns", () => {
  it("takes the columns by role, leaves out what is not given, and compiles the path rules", () => {
    const stats = parse({ path: "route", status: "code", pathRules: [["/[0-9]+(?=/|$)", "/:id"]] }) as StatsColumns;
    expect(stats).toMatchObject({
      path: "route",
      method: null,
      status: "code",
      latencyMs: null,
      bytes: null,
      at: null,
    });
    expect(valuesOfTuple(stats, ["/users/12/orders/345", null, 200, null, null, null])).toEqual({
      path: "/users/:id/orders/:id",
      method: null,
      status: 200,
      latencyMs: null,
      bytes: null,
      at: null,
    });
    // The rule applies on every call: a global RegExp's lastIndex must not carry over.
    expect(valuesOfRow(stats, { route: "/users/7", code: "200" })).toMatchObject({ path: "/users/:id", status: null });
    expect(parse(undefined)).toBeNull();
    expect(parse(false)).toBeNull();
    expect(parse(JSON.stringify({ path: "p" }))).toMatchObject({ path: "p", pathRules: [] });
  });

  it("names every wrong key at once", () => {
    expect(parse({ method: "m", status: "a b", colour: 1, pathRules: [["(", "x"], "y"] })).toEqual([
      "stats: unknown key(s) colour; known: path, method, status, latencyMs, bytes, at, pathRules",
      "stats.path: must be set: the column statistics are grouped by",
      'stats.status: must be a plain SQL name ([A-Za-z_][A-Za-z0-9_]*), got "a b"',
      expect.stringMatching(/^stats\.pathRules\[0\]: not a regular expression/),
      'stats.pathRules[1]: must be ["pattern", "replacement"]',
    ]);
    expect(parse("{")).toEqual([expect.stringMatching(/^stats: must be a JSON object/)]);
  });

  it("comes with a table's entry, or with ARCHIVE_STATS for the one-table vars", () => {
    const one = parseArchivedTables(
      { ARCHIVE_TABLE: "t", ARCHIVE_ID_COLUMN: "id", ARCHIVE_DAY_COLUMN: "d", ARCHIVE_STATS: '{"path": "p"}' },
      3,
    );
    expect(one).toMatchObject([{ name: "t", stats: { path: "p" } }]);
    const listed = parseArchivedTables(
      { ARCHIVE_TABLES: [{ table: "t", idColumn: "id", dayColumn: "d", stats: { path: 1 } }] },
      3,
    );
    expect(listed).toEqual(["ARCHIVE_TABLES[0].stats.path: must be a plain SQL name ([A-Za-z_][A-Za-z0-9_]*), got 1"]);
    expect(
      parseArchivedTables({ ARCHIVE_TABLES: [{ table: "t", idColumn: "id", dayColumn: "d" }], ARCHIVE_STATS: {} }, 3),
    ).toEqual(["ARCHIVE_TABLES: set it or ARCHIVE_STATS, not both"]);
  });

  it("counts a page's lines as it counts the same rows as objects", () => {
    const stats = parse({
      path: "p",
      method: "m",
      status: "s",
      at: "t",
      pathRules: [["/[0-9]+", "/:id"]],
    }) as StatsColumns;
    const rows = [
      { id: 1, p: "/users/1", m: "GET", s: 200, t: 5, other: "x" },
      { id: 2, p: "/users/2", m: "GET", s: 404, t: 3, other: null },
      { id: 3, p: "/users/3", m: "POST", s: 500, t: "x", other: 7 },
    ];
    const scanned = new DayRollup(10);
    const read = new DayRollup(10);
    const text = rows.map((row) => JSON.stringify(row)).join("\n");
    expect(countLines(stats, ["id", "p", "m", "s", "t", "other"], text, scanned)).toBe(3);
    for (const row of rows) read.add(valuesOfRow(stats, row));
    expect(scanned.toJSON()).toStrictEqual(read.toJSON());
  });

  it("keeps no page's text alive through the paths and times its rollup keeps", () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const stats = parse({ path: "p", at: "t" }) as StatsColumns;
    const rollup = new DayRollup(1000);
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let page = 0; page < 200; page++) {
      // About 150 KB of lines; the first row's path is new, and long enough that V8 would make a cut of it a view.
      const lines = Array.from({ length: 2000 }, (_, i) =>
        JSON.stringify({
          p: i === 0 ? `/a/path/first/seen/on/page/${page}` : "/the/path/of/every/other/row",
          t: `2026-05-17T00:00:00.${String(page * 2000 + i).padStart(6, "0")}Z`,
        }),
      );
      countLines(stats, ["p", "t"], lines.join("\n"), rollup);
    }
    gc();
    // 200 pages kept alive would be about 30 MB.
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(4 * 1024 * 1024);
    expect(rollup.requests).toBe(400_000);
  });
});
