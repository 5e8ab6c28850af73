import { describe, expect, it } from "vitest";
import { type ArchivedTable, dayRangeSql, daySql, parseArchivedTables } from "./archived-table.ts";
import { installSql, uninstallSql } from "./install-sql.ts";

const VARS = { ARCHIVE_TABLE: "request_log", ARCHIVE_ID_COLUMN: "request_id", ARCHIVE_DAY_COLUMN: "at" };

const HOT_DAYS = 3;

function parsedAll(vars: Record<string, unknown>): ArchivedTable[] {
  const tables = parseArchivedTables(vars, HOT_DAYS);
  if (tables.some((t) => typeof t === "string")) throw new Error(tables.join("; "));
  return tables as ArchivedTable[];
}

function parsed(vars: Record<string, string>): ArchivedTable {
  const [table, ...more] = parsedAll(vars);
  if (!table || more.length > 0) throw new Error("expected one table");
  return table;
}

const parseArchivedTable = (vars: Record<string, unknown>) => parseArchivedTables(vars, HOT_DAYS);

describe("the one-table vars", () => {
  it("takes the day as YYYY-MM-DD text and keys under <table>/<day column>= unless told otherwise", () => {
    expect(parsed(VARS)).toEqual({
      name: "request_log",
      id: "request_id",
      dayColumn: "at",
      dayForm: "date",
      keyPrefix: "request_log/at=",
      hotDays: HOT_DAYS,
      stats: null,
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

describe("ARCHIVE_TABLES", () => {
  const requests = { table: "request_log", idColumn: "request_id", dayColumn: "at", dayForm: "epoch_ms", hotDays: 7 };
  const events = { table: "traffic_events", idColumn: "id", dayColumn: "event_date" };

  it("takes a list of tables, from wrangler's JSON or its text, each with its own hot days and prefix", () => {
    const expected = [
      {
        name: "request_log",
        id: "request_id",
        dayColumn: "at",
        dayForm: "epoch_ms",
        keyPrefix: "request_log/at=",
        hotDays: 7,
        stats: null,
      },
      {
        name: "traffic_events",
        id: "id",
        dayColumn: "event_date",
        dayForm: "date",
        keyPrefix: "traffic_events/event_date=",
        hotDays: HOT_DAYS,
        stats: null,
      },
    ];
    expect(parsedAll({ ARCHIVE_TABLES: [requests, events] })).toEqual(expected);
    expect(parsedAll({ ARCHIVE_TABLES: JSON.stringify([requests, events]) })).toEqual(expected);
  });

  it("names every entry that is wrong, at once, and refuses the list beside the one-table vars", () => {
    expect(
      parseArchivedTable({
        ARCHIVE_TABLES: [{ ...requests, hotDays: -1, dayForm: "epoch_us" }, { table: "x y" }, { ...events, colour: 1 }],
      }),
    ).toEqual([
      expect.stringMatching(/^ARCHIVE_TABLES\[0\]\.dayForm: must be one of/),
      expect.stringMatching(/^ARCHIVE_TABLES\[0\]\.hotDays: must be an integer from 0 to 365, got -1/),
      expect.stringMatching(/^ARCHIVE_TABLES\[1\]\.table: must be a plain SQL name/),
      "ARCHIVE_TABLES[1].idColumn: must be set",
      "ARCHIVE_TABLES[1].dayColumn: must be set",
      expect.stringMatching(/^ARCHIVE_TABLES\[2\]: unknown key\(s\) colour/),
    ]);
    expect(parseArchivedTable({ ARCHIVE_TABLES: [events], ARCHIVE_TABLE: "traffic_events" })).toEqual([
      "ARCHIVE_TABLES: set it or ARCHIVE_TABLE, not both",
    ]);
    expect(parseArchivedTable({ ARCHIVE_TABLES: "[not json" })).toEqual([
      "ARCHIVE_TABLES: must be a JSON list of tables",
    ]);
    expect(parseArchivedTable({ ARCHIVE_TABLES: [] })).toEqual([
      "ARCHIVE_TABLES: must be a list of at least one table",
    ]);
  });

  it("refuses a table listed twice, and key prefixes of which one begins the other", () => {
    expect(parseArchivedTable({ ARCHIVE_TABLES: [events, events] })).toEqual([
      "ARCHIVE_TABLES: traffic_events is listed twice",
    ]);
    expect(
      parseArchivedTable({
        ARCHIVE_TABLES: [
          { ...events, keyPrefix: "cold/" },
          { ...requests, keyPrefix: "cold/requests/" },
        ],
      }),
    ).toEqual([
      expect.stringMatching(/^ARCHIVE_TABLES: the key prefixes of traffic_events \(cold\/\) and request_log/),
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
    const created = [...install.matchAll(/CREATE (INDEX IF NOT EXISTS|TRIGGER) "([^"]+)"/g)].map((m) => m[2]);
    const dropped = [...uninstallSql(table).matchAll(/DROP (INDEX|TRIGGER) IF EXISTS "([^"]+)"/g)].map((m) => m[2]);
    expect(created).toHaveLength(5);
    expect([...dropped].sort()).toEqual([...created].sort());
  });

  it("has each trigger look only at the archiver's rows of its own table, and replace an older version's", () => {
    const install = installSql(table);
    const runLookups = [...install.matchAll(/FROM archive_runs WHERE ([^)]*?) AND date =/g)].map((m) => m[1]);
    expect(runLookups).toHaveLength(4);
    expect(new Set(runLookups)).toEqual(new Set(["table_name = 'request_log'"]));
    expect([
      ...install.matchAll(/UPDATE archive_metadata SET [^;]*WHERE table_name = 'request_log' AND date =/g),
    ]).toHaveLength(2);
    for (const [, name] of install.matchAll(/CREATE TRIGGER "([^"]+)"/g)) {
      expect(install.indexOf(`DROP TRIGGER IF EXISTS "${name}";`)).toBeLessThan(
        install.indexOf(`CREATE TRIGGER "${name}"`),
      );
    }
  });
});
