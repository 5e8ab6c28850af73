import { describe, expect, it } from "vitest";
import { type ArchivedTable, dayRangeSql, daySql, parseArchivedTable } from "./archived-table.ts";
import { installSql, uninstallSql } from "./install-sql.ts";

const VARS = { ARCHIVE_TABLE: "request_log", ARCHIVE_ID_COLUMN: "request_id", ARCHIVE_DAY_COLUMN: "at" };

function parsed(vars: Record<string, string>): ArchivedTable {
  const table = parseArchivedTable(vars);
  if (Array.isArray(table)) throw new Error(table.join("; "));
  return table;
}

describe("parseArchivedTable", () => {
  it("takes the day as YYYY-MM-DD text and keys under <table>/<day column>= unless told otherwise", () => {
    expect(parsed(VARS)).toEqual({
      name: "request_log",
      id: "request_id",
      dayColumn: "at",
      dayForm: "date",
      keyPrefix: "request_log/at=",
    });
    expect(parsed({ ...VARS, ARCHIVE_DAY_FORM: "epoch_ms", ARCHIVE_KEY_PREFIX: "cold/requests/day=" })).toMatchObject({
      dayForm: "epoch_ms",
      keyPrefix: "cold/requests/day=",
    });
  });

  it("names every var that is wrong, at once", () => {
    const problems = parseArchivedTable({
      ARCHIVE_TABLE: "request log",
      ARCHIVE_DAY_COLUMN: "at",
      ARCHIVE_DAY_FORM: "epoch_us",
      ARCHIVE_KEY_PREFIX: "../elsewhere/",
    });
    expect(problems).toEqual([
      expect.stringMatching(/^ARCHIVE_TABLE: must be a plain SQL name/),
      "ARCHIVE_ID_COLUMN: must be set",
      expect.stringMatching(/^ARCHIVE_DAY_FORM: must be one of date, epoch_ms, epoch_s, iso/),
      expect.stringMatching(/^ARCHIVE_KEY_PREFIX: must be a relative R2 key prefix/),
    ]);
    expect(parseArchivedTable({ ...VARS, ARCHIVE_DAY_COLUMN: "request_id" })).toEqual([
      "ARCHIVE_DAY_COLUMN: must not be the id column",
    ]);
  });
});

describe("the day of a row in SQL", () => {
  it("is one expression per form, qualified when asked", () => {
    const form = (dayForm: string) => parsed({ ...VARS, ARCHIVE_DAY_FORM: dayForm });
    expect(daySql(form("date"))).toBe(`"at"`);
    expect(daySql(form("epoch_ms"), "NEW")).toBe(`date(NEW."at" / 1000.0, 'unixepoch')`);
    expect(daySql(form("epoch_s"))).toBe(`date("at", 'unixepoch')`);
    expect(daySql(form("iso"), "t")).toBe(`date(t."at")`);
    expect(dayRangeSql(form("epoch_s"), 2)).toBe(
      `date("at", 'unixepoch') = ?2 AND "request_id" >= ?3 AND "request_id" <= ?4`,
    );
    expect(dayRangeSql(form("date"), 1, "(]")).toBe(`"at" = ?1 AND "request_id" > ?2 AND "request_id" <= ?3`);
  });
});

describe("install-table's SQL", () => {
  const table = parsed({ ...VARS, ARCHIVE_DAY_FORM: "epoch_ms" });

  it("indexes the very expression the archiver selects by, with the id", () => {
    expect(installSql(table)).toContain(
      `CREATE INDEX IF NOT EXISTS "archiver_request_log_day_id" ON "request_log" (${daySql(table)}, "request_id");`,
    );
  });

  it("refuses to run before the archiver's own tables exist, and is undone by uninstall", () => {
    const install = installSql(table);
    expect(install.indexOf("FROM archive_runs, archive_chunks, archive_metadata")).toBeLessThan(
      install.indexOf("CREATE "),
    );
    const created = [...install.matchAll(/CREATE (INDEX|TRIGGER) IF NOT EXISTS "([^"]+)"/g)].map((m) => m[2]);
    const dropped = [...uninstallSql(table).matchAll(/DROP (INDEX|TRIGGER) IF EXISTS "([^"]+)"/g)].map((m) => m[2]);
    expect(created).toHaveLength(5);
    expect([...dropped].sort()).toEqual([...created].sort());
  });
});
