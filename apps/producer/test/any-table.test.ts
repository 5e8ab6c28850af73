import { env } from "cloudflare:workers";
import {
  type ArchivedTable,
  addDays,
  installStatements,
  quoteIdentifier,
  type RunRow,
  readConfig,
  tableOf,
  uninstallStatements,
} from "@path-stats/shared";
import { describe, expect, it } from "vitest";
import { closedDaysInD1 } from "../src/days-in-d1.ts";
import { planArchive } from "../src/plan-archive.ts";
import { planCleanup } from "../src/plan-cleanup.ts";
import { planRestore } from "../src/restore/plan-restore.ts";
import { planScrub } from "../src/scrub/plan-scrub.ts";
import { dayStatus } from "../src/status.ts";
import { deliverAll } from "./faults.ts";
import { archiveLines, manifestOf, readsPerRow } from "./helpers.ts";
import { type ColumnType, columnsOf, exactRows, TYPES, valueSql } from "./mixed-columns.ts";

/**
 * An operator's own table, not traffic_events: another name, a primary key
 * called request_id that is not the first column, 40 columns of mixed types
 * (REALs and NULLs among them), and the day in each form ARCHIVE_DAY_FORM
 * takes. Installed with install-table's statements, configured through the
 * vars alone, and archived, scrubbed, cleaned and restored through the strict
 * D1 binding. Rows of the days around it, some written to look like the day
 * (an ISO time with an offset), must stay where they are.
 */

const NOW = new Date("2026-11-28T12:00:00Z");
const ROWS = 20_000;
const EXTRA_COLUMNS = 35; // with at, request_id, path, status and latency_ms: 40

/** The day column's declared type, and its value for a row `s` seconds after the day's midnight (SQL over ?1, the day). */
const FORMS = {
  date: { type: "TEXT", at: () => "?1" },
  epoch_ms: { type: "INTEGER", at: (s: string) => `(unixepoch(?1) + ${s}) * 1000 + i % 1000` },
  epoch_s: { type: "INTEGER", at: (s: string) => `unixepoch(?1) + ${s}` },
  // UTC with Z, or local time two hours ahead with its offset: the same instant.
  iso: {
    type: "TEXT",
    at: (s: string) =>
      `CASE WHEN i % 2 THEN strftime('%Y-%m-%dT%H:%M:%SZ', unixepoch(?1) + ${s}, 'unixepoch')
       ELSE strftime('%Y-%m-%dT%H:%M:%S', unixepoch(?1) + ${s} + 7200, 'unixepoch') || '+02:00' END`,
  },
} as const;
type Form = keyof typeof FORMS;

/** Rows of the days before and after, at the edges of the day: the last and first second of each. */
function neighbourRows(form: Form, day: string): { at: string | number; label: string }[] {
  const midnight = Date.parse(`${day}T00:00:00Z`) / 1000;
  const next = midnight + 86_400;
  switch (form) {
    case "date":
      return [
        { at: addDays(day, -1), label: "day before" },
        { at: addDays(day, 1), label: "day after" },
      ];
    case "epoch_ms":
      return [
        { at: midnight * 1000 - 1, label: "last ms before" },
        { at: next * 1000, label: "first ms after" },
      ];
    case "epoch_s":
      return [
        { at: midnight - 1, label: "last second before" },
        { at: next, label: "first second after" },
      ];
    case "iso":
      return [
        // Written with the day's date, yet 23:30 UTC of the day before.
        { at: `${day}T01:30:00+02:00`, label: "the day's date, offset into the day before" },
        { at: `${addDays(day, 1)}T00:00:00Z`, label: "midnight after" },
      ];
  }
}

function tableFor(form: Form): { vars: Record<string, string>; table: ArchivedTable } {
  const vars = {
    ARCHIVE_TABLE: `request_log_${form}`,
    ARCHIVE_ID_COLUMN: "request_id",
    ARCHIVE_DAY_COLUMN: "at",
    ARCHIVE_DAY_FORM: form,
    // The request_log tables have no path column: no statistics.
    ARCHIVE_STATS: "",
  };
  return { vars, table: tableOf(readConfig({ ...env, ...vars })) };
}

async function createTable(form: Form, table: ArchivedTable, day: string): Promise<string[]> {
  const extra = Array.from({ length: EXTRA_COLUMNS }, (_, k) => `x${k}`);
  const types = extra.map((_, k) => TYPES[k % TYPES.length] as ColumnType);
  const name = quoteIdentifier(table.name);
  await env.D1.prepare(
    `CREATE TABLE ${name} (at ${FORMS[form].type} NOT NULL, request_id INTEGER PRIMARY KEY, path TEXT NOT NULL,
       status INTEGER, latency_ms REAL, ${extra.map((c, k) => `${c} ${types[k]}`).join(", ")})`,
  ).run();
  await env.D1.batch(installStatements(table).map((sql) => env.D1.prepare(sql)));
  const neighbours = neighbourRows(form, day);
  // The day's rows, spread over its seconds, between a neighbour row before and one after.
  await env.D1.prepare(`INSERT INTO ${name} (at, path, status) VALUES (?1, '/before', 200)`)
    .bind(neighbours[0]?.at)
    .run();
  await env.D1.prepare(
    `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
     INSERT INTO ${name} (at, path, status, latency_ms, ${extra.join(", ")})
     SELECT ${FORMS[form].at("(i * 86399 / ?2)")}, '/p/' || (i % 40), 200 + i % 4 * 100,
       CASE WHEN i % 9 THEN i / 7.0 END, ${types.map((t, k) => valueSql(t, k)).join(", ")} FROM n`,
  )
    .bind(day, ROWS)
    .run();
  await env.D1.prepare(`INSERT INTO ${name} (at, path, status) VALUES (?1, '/after', 200)`)
    .bind(neighbours[1]?.at)
    .run();
  return columnsOf(table.name);
}

/** The rows of the table whose path says which day they were written for. */
function rowsOf(table: ArchivedTable, columns: readonly string[], which: "day" | "neighbours"): Promise<unknown[]> {
  const where = which === "day" ? "path NOT IN ('/before', '/after')" : "path IN ('/before', '/after')";
  return exactRows(table.name, columns, where, "request_id");
}

describe("any table, with its day in any form", () => {
  const days: Record<Form, string> = {
    date: "2026-11-12",
    epoch_ms: "2026-11-13",
    epoch_s: "2026-11-14",
    iso: "2026-11-15",
  };
  for (const form of Object.keys(FORMS) as Form[]) {
    it(`${form}: a 40-column table keyed by request_id, archived, scrubbed, cleaned and restored exactly`, async () => {
      const day = days[form];
      const { vars, table } = tableFor(form);
      const columns = await createTable(form, table, day);
      try {
        expect(columns).toHaveLength(40);
        const before = await rowsOf(table, columns, "day");
        const neighbours = await rowsOf(table, columns, "neighbours");
        expect(before).toHaveLength(ROWS);

        // The day, and the days around it, found through the index install-table made: a few seeks.
        const inD1 = await closedDaysInD1(env.D1, table, "2026-11-28");
        expect(inD1.days.map((d) => d.date)).toEqual([addDays(day, -1), day, addDays(day, 1)]);
        expect(inD1.rowsRead).toBeLessThan(20);

        expect(await deliverAll((e) => planArchive(e, day, NOW), vars, "archive-chunks")).toBeGreaterThan(0);
        const run = (await env.D1.prepare("SELECT * FROM archive_runs WHERE date = ?1")
          .bind(day)
          .first<RunRow>()) as RunRow;
        expect(run.error).toBeNull();
        expect(run.status).toBe("archived");
        expect(run.archived_rows).toBe(ROWS);
        expect(await readsPerRow(run)).toBeLessThanOrEqual(1.05);
        expect(run.object_key.startsWith(`request_log_${form}/at=${day}/`)).toBe(true);
        const manifest = await manifestOf(run);
        expect(manifest).toMatchObject({ table: table.name, idColumn: "request_id", day: { column: "at", form } });
        const lines = await archiveLines(run.object_key);
        expect(lines).toHaveLength(ROWS);
        expect(Object.keys(JSON.parse(lines[0] as string))).toEqual(columns);

        expect(await deliverAll((e) => planScrub(e, day, NOW), vars)).toBeGreaterThan(0);
        const scrubbed = await env.D1.prepare("SELECT verify_error, verified_at FROM archive_runs WHERE run_id = ?1")
          .bind(run.run_id)
          .first<{ verify_error: string | null; verified_at: string | null }>();
        expect(scrubbed).toMatchObject({ verify_error: null, verified_at: expect.any(String) });

        expect(await deliverAll((e) => planCleanup(e, day, NOW), vars)).toBeGreaterThan(0);
        expect(await rowsOf(table, columns, "day")).toEqual([]);
        expect(await rowsOf(table, columns, "neighbours")).toEqual(neighbours);
        const status = await dayStatus(env.D1, table, day, { countLive: true });
        expect(status).toMatchObject({ table: table.name, status: "cleaned", d1Cleaned: true, d1Remaining: 0 });

        expect(await deliverAll((e) => planRestore(e, day, null, NOW), vars)).toBeGreaterThan(0);
        expect(await rowsOf(table, columns, "day")).toEqual(before);

        // The triggers see the day through the same expression: a row of it arriving now makes it not cleaned.
        await deliverAll((e) => planCleanup(e, day, NOW), vars);
        const late = neighbourRows(form, addDays(day, 1))[0]?.at; // the day's last instant, in this form
        await env.D1.prepare(`INSERT INTO ${quoteIdentifier(table.name)} (at, path) VALUES (?1, '/late')`)
          .bind(late)
          .run();
        const flag = await env.D1.prepare("SELECT d1_cleaned FROM archive_metadata WHERE date = ?1")
          .bind(day)
          .first<number>("d1_cleaned");
        expect(flag).toBe(0);
      } finally {
        await env.D1.batch(uninstallStatements(table).map((sql) => env.D1.prepare(sql)));
        const left = await env.D1.prepare(
          "SELECT name FROM sqlite_master WHERE tbl_name = ?1 AND name LIKE 'archiver_%'",
        )
          .bind(table.name)
          .all();
        expect(left.results).toEqual([]);
        await env.D1.prepare(`DROP TABLE ${quoteIdentifier(table.name)}`).run();
      }
    }, 300_000);
  }
});
