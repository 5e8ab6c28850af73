/**
 * The two sets of migrations one database holds: the archiver's own
 * (`migrations/`, recorded in archiver_migrations: the `migrations_table` of
 * the apps' wrangler configs) and the archived table's (for the demo, the
 * example's in examples/traffic-events/, recorded in wrangler's default
 * d1_migrations, as an operator's own are). File names may repeat between
 * the two sets; each table records only its own.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { unstable_readConfig } from "wrangler";
import { parseArchivedTables } from "../packages/shared/src/archived-table/archived-table.ts";
import { PRODUCER_CONFIG, ROOT, run } from "./lib.ts";

export const ARCHIVER_MIGRATIONS = join(ROOT, "migrations");
export const ARCHIVER_MIGRATIONS_TABLE = "archiver_migrations";
/** The example table's project: its wrangler config names its migrations. */
export const EXAMPLE_CONFIG = join(ROOT, "examples", "traffic-events", "wrangler.jsonc");
export const EXAMPLE_TABLE = "traffic_events";

/** Whether the archiver is configured for the example table (among the tables of the producer's top-level config). */
export function archivesExampleTable(): boolean {
  const tables = parseArchivedTables(unstable_readConfig({ config: PRODUCER_CONFIG }).vars, 0);
  return tables.some((t) => typeof t !== "string" && t.name === EXAMPLE_TABLE);
}

/** Where wrangler's d1 commands act: a local state folder, or a deployed environment's database. */
export type Target = { local: string } | { remote: string };

function targetArgs(target: Target): string[] {
  return "local" in target ? ["--local", "--persist-to", target.local] : ["--remote", "--env", target.remote];
}

/** The rows one SQL statement answers, through `wrangler d1 execute --json`. */
export async function query<T>(database: string, target: Target, config: string, sql: string): Promise<T[]> {
  const args = ["d1", "execute", database, ...targetArgs(target), "-c", config, "--json", "--command", sql];
  const stdout = await run("wrangler", args, { quiet: true, stdoutOnly: true });
  const answers = JSON.parse(stdout) as { results: T[] }[];
  return answers[0]?.results ?? [];
}

/**
 * A database set up before the archiver had a migrations table of its own
 * recorded the archiver's migrations in d1_migrations. Applied as they are
 * now, they would run a second time (and fail on tables that exist), so
 * their records are copied into archiver_migrations first. Does nothing on a
 * database without the archiver's tables, or with archiver_migrations.
 * Returns the names copied.
 */
export async function carryOverMigrationHistory(
  database: string,
  target: Target,
  config = PRODUCER_CONFIG,
): Promise<string[]> {
  const tables = await query<{ name: string }>(
    database,
    target,
    config,
    `SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('archive_runs', 'd1_migrations', '${ARCHIVER_MIGRATIONS_TABLE}')`,
  );
  const has = new Set(tables.map((t) => t.name));
  if (!has.has("archive_runs") || !has.has("d1_migrations") || has.has(ARCHIVER_MIGRATIONS_TABLE)) return [];
  const names = readdirSync(ARCHIVER_MIGRATIONS).filter((f) => f.endsWith(".sql"));
  const list = names.map((n) => `'${n.replaceAll("'", "''")}'`).join(", ");
  // The table as wrangler creates it (its getCreateMigrationsTableQuery).
  await query(
    database,
    target,
    config,
    `CREATE TABLE ${ARCHIVER_MIGRATIONS_TABLE} (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL);
     INSERT INTO ${ARCHIVER_MIGRATIONS_TABLE} (name, applied_at) SELECT name, applied_at FROM d1_migrations WHERE name IN (${list}) ORDER BY id;`,
  );
  const copied = await query<{ name: string }>(
    database,
    target,
    config,
    `SELECT name FROM ${ARCHIVER_MIGRATIONS_TABLE} ORDER BY id`,
  );
  return copied.map((c) => c.name);
}

/** Applies the migrations of one wrangler config's database (the archiver's, or a table's project). */
export async function applyMigrations(database: string, target: Target, config: string): Promise<void> {
  await run("wrangler", ["d1", "migrations", "apply", database, ...targetArgs(target), "-c", config], {
    quiet: true,
  });
}
