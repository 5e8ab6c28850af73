/**
 * `pnpm bench:triggers [-- --rows N --runs R]`: what the archiver's index and
 * triggers on the archived table (install-sql.ts) cost each INSERT of the
 * API, measured in SQLite itself (node:sqlite, in memory: SQLite's own work,
 * without D1's network and durability, which are the same with or without
 * them). The database holds the archiver's tables as after 30 archived days
 * (30 runs of 8 ranges, 30 metadata rows), and the example table.
 *
 * Each variant inserts N rows one statement each, as an API does, R times;
 * it reports microseconds per INSERT (min and median of the runs):
 * - plain: the table with its primary key alone;
 * - index: with the (day, id) index;
 * - installed: index and the four triggers, rows of today (no run for today:
 *   each INSERT trigger probes an index and stops);
 * - installed, late rows: rows of an archived day (each INSERT resets its
 *   day's cleaned flag and bumps its range's epoch).
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { parseArgs } from "node:util";
import { installStatements } from "../packages/shared/src/archived-table/install-sql.ts";
import { ROOT } from "../scripts/lib.ts";

const TABLE = {
  name: "traffic_events",
  id: "id",
  dayColumn: "event_date",
  dayForm: "date",
  keyPrefix: "x/",
  hotDays: 3,
  stats: null,
} as const;

function database(variant: "plain" | "index" | "installed"): DatabaseSync {
  const db = new DatabaseSync(":memory:");
  for (const file of readdirSync(join(ROOT, "migrations")).sort()) {
    db.exec(readFileSync(join(ROOT, "migrations", file), "utf8"));
  }
  db.exec(readFileSync(join(ROOT, "examples", "traffic-events", "migrations", "0001_init.sql"), "utf8"));
  const [, index, ...triggers] = installStatements(TABLE); // triggers: each DROP TRIGGER IF EXISTS, then its CREATE
  if (variant !== "plain") db.exec(index as string);
  if (variant === "installed") for (const trigger of triggers) db.exec(trigger);
  // 30 archived days of 1M rows each, 8 ranges per run.
  for (let d = 1; d <= 30; d++) {
    const date = `2026-10-${String(d).padStart(2, "0")}`;
    const lo = (d - 1) * 1_000_000 + 1;
    db.prepare(
      `INSERT INTO archive_runs (run_id, date, status, object_key, manifest_key, upload_id, part_size, rowid_lo, rowid_hi,
         planned_rows, chunk_count, est_gz_bytes_per_row, plan_rows_read, created_at)
       VALUES (?1, ?2, 'archived', 'k', 'm', 'u', 5242880, ?3, ?4, 1000000, 8, 25, 5000, '2026-11-01')`,
    ).run(`run-${d}`, date, lo, lo + 999_999);
    for (let c = 0; c < 8; c++) {
      db.prepare(
        `INSERT INTO archive_chunks (run_id, chunk_index, rowid_lo, rowid_hi, planned_rows, first_part, max_parts, state, cleanup_state)
         VALUES (?1, ?2, ?3, ?4, 125000, ?5, 4, 'archived', 'cleaned')`,
      ).run(`run-${d}`, c, lo + c * 125_000, lo + c * 125_000 + 124_999, c * 4 + 1);
    }
    db.prepare(
      `INSERT INTO archive_metadata (table_name, date, r2_path, event_count, file_size, archived_at, d1_cleaned)
       VALUES ('traffic_events', ?1, 'k', 1000000, 25000000, '2026-11-01', 1)`,
    ).run(date);
  }
  return db;
}

/** Microseconds per INSERT of `rows` rows of `date`, one statement each (ids chosen by SQLite, or from `firstId`). */
function insertCost(db: DatabaseSync, date: string, rows: number, firstId?: number): number {
  const insert = db.prepare(
    `INSERT INTO traffic_events (id, event_date, ts, path, method, status, country, latency_ms, bytes)
     VALUES (?1, ?2, ?3, ?4, 'GET', 200, 'DE', 42, 1234)`,
  );
  const started = process.hrtime.bigint();
  for (let i = 0; i < rows; i++) {
    insert.run(firstId === undefined ? null : firstId + i, date, 1764547200000 + i, `/api/items/${i % 97}`);
  }
  return Number(process.hrtime.bigint() - started) / 1000 / rows;
}

const { values } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "--"),
  options: { rows: { type: "string", default: "50000" }, runs: { type: "string", default: "5" } },
});
const rows = Number(values.rows);
const runs = Number(values.runs);
const variants: [string, () => number][] = [
  ["plain", () => insertCost(database("plain"), "2026-12-01", rows)],
  ["index", () => insertCost(database("index"), "2026-12-01", rows)],
  ["installed", () => insertCost(database("installed"), "2026-12-01", rows)],
  // Explicit ids inside the archived ranges of 2026-10-15: the rare path of a late row.
  ["installed, late rows", () => insertCost(database("installed"), "2026-10-15", rows, 14_000_001)],
];
console.log(`µs per INSERT, ${rows} rows one statement each, ${runs} runs (min / median); node:sqlite, in memory`);
const plain: number[] = [];
for (const [name, measure] of variants) {
  const times = Array.from({ length: runs }, measure).sort((a, b) => a - b);
  const median = times[Math.floor(runs / 2)] as number;
  if (name === "plain") plain.push(median);
  const ratio = median / (plain[0] as number);
  console.log(
    `  ${name.padEnd(22)} ${(times[0] as number).toFixed(2)} / ${median.toFixed(2)}  (${ratio.toFixed(2)}× plain)`,
  );
}
