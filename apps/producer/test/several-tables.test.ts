import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import {
  type ArchivedTable,
  installStatements,
  quoteIdentifier,
  type RunRow,
  readConfig,
  TableChoiceError,
  uninstallStatements,
} from "@path-stats/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCron } from "../src/cron.ts";
import { evaluateHealth } from "../src/monitoring/health.ts";
import { planArchive } from "../src/plan-archive.ts";
import { planRestore } from "../src/restore/plan-restore.ts";
import { deliverAll } from "./faults.ts";
import { archiveLines, manifestOf } from "./helpers.ts";
import { columnsOf, exactRows } from "./mixed-columns.ts";
import worker from "./worker.ts";

/**
 * Two tables archived by one deployment (ARCHIVE_TABLES), with rows of the
 * same day and the same ids: each table's runs, days, keys, triggers,
 * cleanup, restore and hot days are its own. Ids that overlap across tables
 * must never be taken for one another's (a later run of one table does not
 * supersede the other's rows; a row of one does not touch the other's
 * ranges).
 */

const DAY = "2026-10-20";
const ORDERS_ROWS = 300;
const VISITS_ROWS = 200;

const ENTRIES = [
  // Cleaned by the cron once DAY is more than 2 closed days old.
  { table: "shop_orders", idColumn: "id", dayColumn: "day", hotDays: 2 },
  // Kept for 30 closed days.
  { table: "shop_visits", idColumn: "visit_id", dayColumn: "at", dayForm: "epoch_s", hotDays: 30 },
];
// The one-table vars of the test config are emptied: ARCHIVE_TABLES names the tables.
const VARS = {
  ARCHIVE_TABLES: JSON.stringify(ENTRIES),
  ARCHIVE_TABLE: "",
  ARCHIVE_ID_COLUMN: "",
  ARCHIVE_DAY_COLUMN: "",
  ARCHIVE_DAY_FORM: "",
  ARCHIVE_KEY_PREFIX: "",
  ARCHIVE_STATS: "",
};
const testEnv = { ...env, ...VARS } as unknown as Env;
const [orders, visits] = readConfig(testEnv).tables as [ArchivedTable, ArchivedTable];
const NOW = new Date("2026-10-25T12:00:00Z"); // DAY is 4 closed days old

async function rowsOf(table: ArchivedTable): Promise<unknown[]> {
  return exactRows(table.name, await columnsOf(table.name), "1", quoteIdentifier(table.id));
}

async function runsOf(table: ArchivedTable): Promise<RunRow[]> {
  const { results } = await env.D1.prepare(
    "SELECT * FROM archive_runs WHERE table_name = ?1 AND date = ?2 ORDER BY rowid",
  )
    .bind(table.name, DAY)
    .all<RunRow>();
  return results;
}

async function dayRow(table: ArchivedTable) {
  return env.D1.prepare("SELECT * FROM archive_metadata WHERE table_name = ?1 AND date = ?2")
    .bind(table.name, DAY)
    .first<{ d1_cleaned: number; event_count: number; r2_path: string }>();
}

async function epochs(table: ArchivedTable): Promise<number[]> {
  const { results } = await env.D1.prepare(
    `SELECT c.cleanup_epoch AS e FROM archive_chunks c JOIN archive_runs r ON r.run_id = c.run_id
     WHERE r.table_name = ?1 AND r.date = ?2 ORDER BY r.rowid, c.chunk_index`,
  )
    .bind(table.name, DAY)
    .all<{ e: number }>();
  return results.map((r) => r.e);
}

async function admin(method: string, path: string) {
  const response = await worker.fetch(
    new Request(`http://archiver.test${path}`, { method, headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` } }),
    testEnv,
    createExecutionContext(),
  );
  return { status: response.status, body: (await response.json()) as Record<string, unknown> & { error?: unknown } };
}

beforeAll(async () => {
  await env.D1.batch([
    env.D1.prepare("CREATE TABLE shop_orders (id INTEGER PRIMARY KEY, day TEXT NOT NULL, total REAL, note TEXT)"),
    env.D1.prepare("CREATE TABLE shop_visits (visit_id INTEGER PRIMARY KEY, at INTEGER NOT NULL, path TEXT)"),
    ...[orders, visits].flatMap((t) => installStatements(t).map((sql) => env.D1.prepare(sql))),
    // The same ids in both tables, all on DAY.
    env.D1.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
       INSERT INTO shop_orders (id, day, total, note) SELECT i, ?1, i / 3.0, 'order ' || i FROM n`,
    ).bind(DAY, ORDERS_ROWS),
    env.D1.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
       INSERT INTO shop_visits (visit_id, at, path) SELECT i, unixepoch(?1) + i * 60, '/v/' || i FROM n`,
    ).bind(DAY, VISITS_ROWS),
  ]);
});

afterAll(async () => {
  for (const t of [orders, visits]) {
    await env.D1.batch(uninstallStatements(t).map((sql) => env.D1.prepare(sql)));
    await env.D1.prepare(`DROP TABLE ${quoteIdentifier(t.name)}`).run();
  }
});

describe("several tables in one deployment", () => {
  it("needs the table named, by the API and by planning, and changes nothing without it", async () => {
    await expect(planArchive(testEnv, DAY, NOW)).rejects.toThrow(TableChoiceError);
    const unsaid = await admin("POST", `/admin/trigger-archive?date=${DAY}`);
    expect(unsaid.status).toBe(400);
    expect(unsaid.body.error).toMatchObject({ code: "table_required" });
    const unknown = await admin("GET", `/admin/archive-status?table=orders&date=${DAY}`);
    expect(unknown.status).toBe(400);
    expect(unknown.body.error).toMatchObject({ code: "unknown_table" });
    expect(await runsOf(orders)).toEqual([]);
    expect(await runsOf(visits)).toEqual([]);
  });

  it("archives each table's day into its own runs, keys and day row", async () => {
    const ordersBefore = await rowsOf(orders);
    const visitsBefore = await rowsOf(visits);
    for (const t of [orders, visits]) {
      expect(await deliverAll((e) => planArchive(e, DAY, NOW, t.name), VARS, "archive-chunks")).toBeGreaterThan(0);
    }
    for (const [t, rows] of [
      [orders, ORDERS_ROWS],
      [visits, VISITS_ROWS],
    ] as const) {
      const [run, ...more] = await runsOf(t);
      expect(more).toEqual([]);
      expect(run).toMatchObject({ status: "archived", archived_rows: rows, rowid_lo: 1 });
      expect(run?.object_key.startsWith(t.keyPrefix + DAY)).toBe(true);
      const manifest = await manifestOf(run as RunRow);
      expect(manifest).toMatchObject({ table: t.name, idColumn: t.id, rows });
      // The other table's run of the day covers the same ids: it is not this one's earlier archive.
      expect(manifest.supersedes).toEqual([]);
      expect(await archiveLines((run as RunRow).object_key)).toHaveLength(rows);
      expect(await dayRow(t)).toMatchObject({ event_count: rows, d1_cleaned: 0 });
    }
    const status = await admin("GET", `/admin/archive-status?table=shop_visits&date=${DAY}`);
    expect(status.body).toMatchObject({ table: "shop_visits", date: DAY, status: "archived" });
    expect(await rowsOf(orders)).toEqual(ordersBefore);
    expect(await rowsOf(visits)).toEqual(visitsBefore);
  });

  it("has the cron clean each table past its own hot days only", async () => {
    const visitsBefore = await rowsOf(visits);
    await deliverAll((e) => runCron(e, NOW), VARS);
    expect(await rowsOf(orders)).toEqual([]);
    expect(await dayRow(orders)).toMatchObject({ d1_cleaned: 1 });
    expect(await rowsOf(visits)).toEqual(visitsBefore);
    expect(await dayRow(visits)).toMatchObject({ d1_cleaned: 0 });
  });

  it("keeps each table's triggers to its own day and ranges", async () => {
    const ordersEpochs = await epochs(orders);
    // A row of the day into shop_visits, with an id inside shop_orders' cleaned range.
    await env.D1.prepare("INSERT INTO shop_visits (visit_id, at, path) VALUES (?1, unixepoch(?2) + 5, '/late')")
      .bind(VISITS_ROWS + 1, DAY)
      .run();
    expect(await dayRow(orders)).toMatchObject({ d1_cleaned: 1 });
    expect(await epochs(orders)).toEqual(ordersEpochs);
    // One into shop_orders: its own day is not cleaned any more.
    await env.D1.prepare("INSERT INTO shop_orders (id, day, note) VALUES (?1, ?2, 'late')")
      .bind(ORDERS_ROWS + 50, DAY)
      .run();
    expect(await dayRow(orders)).toMatchObject({ d1_cleaned: 0 });
    await env.D1.prepare("DELETE FROM shop_orders WHERE id = ?1")
      .bind(ORDERS_ROWS + 50)
      .run();
  });

  it("restores one table's rows whatever a later run of the other holds for the same ids", async () => {
    // shop_visits' late row is archived by a second run: ids ORDERS_ROWS + 1 … of the day, a later run
    // than shop_orders' whose range it overlaps.
    await deliverAll((e) => planArchive(e, DAY, NOW, visits.name), VARS, "archive-chunks");
    const visitRuns = await runsOf(visits);
    expect(visitRuns.map((r) => r.status)).toEqual(["archived", "archived"]);
    expect(visitRuns[1]?.rowid_lo).toBe(VISITS_ROWS + 1);

    const [ordersRun] = await runsOf(orders);
    const archived = (await archiveLines((ordersRun as RunRow).object_key)).map((line) => JSON.parse(line));
    expect(await deliverAll((e) => planRestore(e, DAY, null, NOW, orders.name), VARS)).toBeGreaterThan(0);
    const restored = await env.D1.prepare("SELECT id, day, total, note FROM shop_orders ORDER BY id").all();
    expect(restored.results).toEqual(archived);
    expect(restored.results).toHaveLength(ORDERS_ROWS);
  });

  it("has the cron go on with the other tables when one cannot be read, and still fail loudly", async () => {
    const vars = {
      ...VARS,
      ARCHIVE_TABLES: JSON.stringify([
        { table: "no_such_table", idColumn: "id", dayColumn: "day" },
        { ...ENTRIES[1], hotDays: 2 },
      ]),
    };
    expect(await rowsOf(visits)).not.toEqual([]);
    await deliverAll(async (e) => {
      await expect(runCron(e, NOW)).rejects.toThrow(/cron failed for: no_such_table$/);
    }, vars);
    expect(await rowsOf(visits)).toEqual([]);
    // Health says so, and goes on with the other tables.
    const health = await evaluateHealth({ ...env, ...vars } as unknown as Env, NOW);
    expect(health.problems.find((p) => p.table === "no_such_table")).toMatchObject({
      key: "table_unreadable:no_such_table",
      message: expect.stringMatching(/no such table: no_such_table/),
    });
  });
});
