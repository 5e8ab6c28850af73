import { describe, expect, it } from "vitest";
import { PLAIN_NAME, parseArchivedTables } from "../archived-table/archived-table.ts";
import { parseStatsColumns, type StatsColumns, statsTupleSql, valuesOfRow, valuesOfTuple } from "./stats-columns.ts";

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
    expect(statsTupleSql(stats, "t")).toBe(
      `json_array(CASE WHEN typeof(t."route") <> 'blob' THEN t."route" END, NULL, CASE WHEN typeof(t."code") <> 'blob' THEN t."code" END, NULL, NULL, NULL)`,
    );
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
});
