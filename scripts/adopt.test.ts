import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PRODUCER_CONFIG, ROOT } from "./lib.ts";
import {
  ARCHIVER_MIGRATIONS,
  applyMigrations,
  carryOverMigrationHistory,
  EXAMPLE_CONFIG,
  query,
  type Target,
} from "./migrations.ts";

/**
 * Installing the archiver into a database that has a life of its own, with
 * wrangler's own migration commands on local D1: an operator's table and
 * migrations whose file names are the archiver's, then the archiver's
 * migrations, then install-table's and uninstall-table's. And a database
 * whose archiver migrations were recorded in d1_migrations, before the
 * archiver had a table of its own for them.
 */
const dir = mkdtempSync(join(tmpdir(), "adopt-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const DB = "path-stats-db";
const archiverNames = readdirSync(ARCHIVER_MIGRATIONS).filter((f) => f.endsWith(".sql"));

/** An operator's project: a wrangler config naming the database, its migrations and the table vars. */
function operatorProject(): { config: string; migrations: string } {
  const project = join(dir, "operator");
  const migrations = join(project, "migrations");
  mkdirSync(migrations, { recursive: true });
  const config = join(project, "wrangler.jsonc");
  writeFileSync(
    config,
    JSON.stringify({
      name: "operator-api",
      compatibility_date: "2026-08-01",
      d1_databases: [
        {
          binding: "DB",
          database_name: DB,
          database_id: "00000000-0000-0000-0000-000000000000",
          migrations_dir: "migrations",
        },
      ],
      vars: {
        ARCHIVE_TABLE: "request_log",
        ARCHIVE_ID_COLUMN: "request_id",
        ARCHIVE_DAY_COLUMN: "at",
        ARCHIVE_DAY_FORM: "epoch_ms",
      },
    }),
  );
  // Named like the archiver's first two migrations.
  writeFileSync(
    join(migrations, "0001_init.sql"),
    `CREATE TABLE request_log (at INTEGER NOT NULL, request_id INTEGER PRIMARY KEY, path TEXT NOT NULL);
     INSERT INTO request_log (at, path) VALUES (1764547200000, '/before');`,
  );
  writeFileSync(join(migrations, "0002_exact_cleanup.sql"), "ALTER TABLE request_log ADD COLUMN status INTEGER;");
  return { config, migrations };
}

function tableCommand(mode: "install" | "uninstall", config: string, out: string): void {
  const result = spawnSync(
    process.execPath,
    ["--no-warnings=ExperimentalWarning", "scripts/install-table.ts", mode, "--config", config, "--out", out],
    { cwd: ROOT, encoding: "utf8" },
  );
  expect(result.stderr).toMatch(/^wrote /);
  expect(result.status).toBe(0);
}

const names = async (target: Target, sql: string) =>
  (await query<{ name: string }>(DB, target, PRODUCER_CONFIG, sql)).map((r) => r.name);

describe("adopting the archiver on an existing database", () => {
  it("keeps the operator's migrations and the archiver's apart, though their file names are the same", async () => {
    const target = { local: join(dir, "state") };
    const operator = operatorProject();
    await applyMigrations(DB, target, operator.config);

    expect(await carryOverMigrationHistory(DB, target)).toEqual([]);
    await applyMigrations(DB, target, PRODUCER_CONFIG);
    expect(await names(target, "SELECT name FROM archiver_migrations ORDER BY id")).toEqual(archiverNames);
    expect(await names(target, "SELECT name FROM d1_migrations ORDER BY id")).toEqual([
      "0001_init.sql",
      "0002_exact_cleanup.sql",
    ]);

    tableCommand("install", operator.config, join(operator.migrations, "0003_archiver_request_log.sql"));
    await applyMigrations(DB, target, operator.config);
    const installed =
      "SELECT name FROM sqlite_master WHERE tbl_name = 'request_log' AND name LIKE 'archiver_%' ORDER BY name";
    expect(await names(target, installed)).toEqual([
      "archiver_request_log_day_id",
      "archiver_request_log_late_row",
      "archiver_request_log_moved_row",
      "archiver_request_log_row_changed_in_archived_range",
      "archiver_request_log_row_into_archived_range",
    ]);
    // The API's writes go on, through the triggers; its rows are untouched.
    await query(
      DB,
      target,
      PRODUCER_CONFIG,
      "INSERT INTO request_log (at, path, status) VALUES (1764633600000, '/after', 200)",
    );
    expect(await names(target, "SELECT path AS name FROM request_log ORDER BY request_id")).toEqual([
      "/before",
      "/after",
    ]);

    tableCommand("uninstall", operator.config, join(operator.migrations, "0004_archiver_request_log_removed.sql"));
    await applyMigrations(DB, target, operator.config);
    expect(await names(target, installed)).toEqual([]);
    expect(await names(target, "SELECT name FROM sqlite_master WHERE name = 'archive_runs'")).toEqual(["archive_runs"]);
  }, 180_000);

  it("carries the records of a database set up before archiver_migrations over, so nothing runs twice", async () => {
    const target = { local: join(dir, "legacy-state") };
    // The archiver's migrations recorded in d1_migrations, as every config did before.
    const legacy = join(dir, "legacy.jsonc");
    writeFileSync(
      legacy,
      JSON.stringify({
        name: "legacy",
        compatibility_date: "2026-08-01",
        d1_databases: [
          {
            binding: "D1",
            database_name: DB,
            database_id: "00000000-0000-0000-0000-000000000000",
            migrations_dir: ARCHIVER_MIGRATIONS,
          },
        ],
      }),
    );
    await applyMigrations(DB, target, legacy);

    expect(await carryOverMigrationHistory(DB, target)).toEqual(archiverNames);
    await applyMigrations(DB, target, PRODUCER_CONFIG); // would fail on "table archive_runs already exists"
    expect(await carryOverMigrationHistory(DB, target)).toEqual([]);
    expect(await names(target, "SELECT name FROM archiver_migrations ORDER BY id")).toEqual(archiverNames);
  }, 180_000);

  it("upgrades a database installed by the one-table version: its triggers keep working, then say the table", async () => {
    const target = { local: join(dir, "upgrade-state") };
    // The archiver's migrations and the example's as they were before several tables (0001–0006, 0001–0003).
    const olderConfig = (name: string, from: string, upTo: string, migrationsTable: string) => {
      const migrations = join(dir, `${name}-migrations`);
      mkdirSync(migrations, { recursive: true });
      for (const file of readdirSync(from).filter((f) => f.endsWith(".sql") && f <= upTo)) {
        copyFileSync(join(from, file), join(migrations, file));
      }
      const config = join(dir, `${name}.jsonc`);
      const database = { binding: "D1", database_name: DB, database_id: "00000000-0000-0000-0000-000000000000" };
      writeFileSync(
        config,
        JSON.stringify({
          name,
          compatibility_date: "2026-08-01",
          d1_databases: [{ ...database, migrations_dir: migrations, migrations_table: migrationsTable }],
        }),
      );
      return config;
    };
    const exampleMigrations = join(ROOT, "examples", "traffic-events", "migrations");
    await applyMigrations(
      DB,
      target,
      olderConfig("archiver-0006", ARCHIVER_MIGRATIONS, "0006~", "archiver_migrations"),
    );
    await applyMigrations(DB, target, olderConfig("example-0003", exampleMigrations, "0003~", "d1_migrations"));
    const run = (sql: string) => query(DB, target, PRODUCER_CONFIG, sql);
    // A cleaned day, as the one-table version left it.
    await run(
      `INSERT INTO archive_metadata (date, r2_path, event_count, file_size, archived_at, d1_cleaned, cleaned_at)
       VALUES ('2026-11-01', 'traffic_events/event_date=2026-11-01/r1.jsonl.gz', 10, 100, '2026-11-02T00:00:00Z', 1, '2026-11-05T00:00:00Z')`,
    );

    // The archiver's new migration rebuilds archive_metadata under the old triggers (SQLite's own
    // ALTER TABLE would refuse: "error in trigger …: no such table").
    await applyMigrations(DB, target, PRODUCER_CONFIG);
    const days = "SELECT table_name || ' ' || date || ' ' || d1_cleaned AS name FROM archive_metadata";
    expect(await names(target, days)).toEqual(["traffic_events 2026-11-01 1"]);
    await run(
      "INSERT INTO traffic_events (event_date, ts, method, path, status) VALUES ('2026-11-01', 0, 'GET', '/late', 200)",
    );
    expect(await names(target, days)).toEqual(["traffic_events 2026-11-01 0"]);

    // The example's newest migration (install-table's output now) replaces the triggers with ones that say the table.
    await applyMigrations(DB, target, EXAMPLE_CONFIG);
    const triggers = await names(
      target,
      "SELECT sql AS name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'traffic_events' ORDER BY name",
    );
    expect(triggers).toHaveLength(4);
    for (const sql of triggers) expect(sql).toContain("table_name = 'traffic_events'");
    await run("UPDATE archive_metadata SET d1_cleaned = 1");
    await run(
      `INSERT INTO archive_metadata (table_name, date, r2_path, event_count, file_size, archived_at, d1_cleaned)
       VALUES ('request_log', '2026-11-01', 'request_log/at=2026-11-01/r2.jsonl.gz', 5, 50, '2026-11-02T00:00:00Z', 1)`,
    );
    await run(
      "INSERT INTO traffic_events (event_date, ts, method, path, status) VALUES ('2026-11-01', 0, 'GET', '/later', 200)",
    );
    expect(await names(target, `${days} ORDER BY table_name`)).toEqual([
      "request_log 2026-11-01 1",
      "traffic_events 2026-11-01 0",
    ]);
  }, 240_000);
});
