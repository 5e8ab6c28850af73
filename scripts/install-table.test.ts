import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT } from "./lib.ts";

/** `pnpm install-table` and `pnpm uninstall-table`, run as an operator runs them, on configs of the test's own. */
const dir = mkdtempSync(join(tmpdir(), "install-table-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function config(vars: Record<string, string>): string {
  const file = join(dir, `wrangler-${Math.random().toString(36).slice(2)}.jsonc`);
  writeFileSync(file, JSON.stringify({ name: "t", main: "x.ts", compatibility_date: "2026-08-01", vars }));
  return file;
}

function run(mode: "install" | "uninstall", args: string[]) {
  const result = spawnSync(
    process.execPath,
    ["--no-warnings=ExperimentalWarning", "scripts/install-table.ts", mode, "--", ...args],
    { cwd: ROOT, encoding: "utf8" },
  );
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const REQUEST_LOG = {
  ARCHIVE_TABLE: "request_log",
  ARCHIVE_ID_COLUMN: "request_id",
  ARCHIVE_DAY_COLUMN: "at",
  ARCHIVE_DAY_FORM: "epoch_ms",
};

// Each test runs the script as an operator does, in new Node.js processes (up to three, about 1-2 s
// each on a busy 2-core machine): vitest's default 5 s per test was seen to run out (6.1 s in CI).
describe("install-table", { timeout: 30_000 }, () => {
  it("writes the migration for the configured table, and uninstall-table the one removing it", () => {
    const file = config(REQUEST_LOG);
    const out = join(dir, "0007_archiver_request_log.sql");
    const installed = run("install", ["--config", file, "--out", out]);
    expect(installed.code).toBe(0);
    const sql = readFileSync(out, "utf8");
    expect(sql).toContain(
      `CREATE INDEX IF NOT EXISTS "archiver_request_log_day_id" ON "request_log" (date("at" / 1000.0, 'unixepoch'), "request_id");`,
    );
    expect(sql.match(/CREATE TRIGGER "archiver_request_log_/g)).toHaveLength(4);
    expect(
      sql.match(/WHERE table_name = 'request_log' AND date = date\(NEW\."at" \/ 1000\.0, 'unixepoch'\)/g),
    ).toHaveLength(6);
    const removed = run("uninstall", ["--config", file]);
    expect(removed.code).toBe(0);
    expect(removed.stdout.match(/DROP (TRIGGER|INDEX) IF EXISTS "archiver_request_log_/g)).toHaveLength(5);
  });

  it("refuses a config that names no valid table, or an --out that exists, and writes nothing", () => {
    const out = join(dir, "never.sql");
    const bad = run("install", ["--config", config({ ...REQUEST_LOG, ARCHIVE_DAY_FORM: "epoch_us" }), "--out", out]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/ARCHIVE_DAY_FORM: must be one of date, epoch_ms, epoch_s, iso.*nothing was written/);
    expect(existsSync(out)).toBe(false);

    writeFileSync(out, "-- the operator's own");
    const taken = run("install", ["--config", config(REQUEST_LOG), "--out", out]);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toMatch(/exists already/);
    expect(readFileSync(out, "utf8")).toBe("-- the operator's own");
  });

  it("reads each environment of the project's own config", () => {
    const production = run("install", ["--env", "production"]);
    expect(production.code).toBe(0);
    expect(production.stdout).toContain(`ON "traffic_events" ("event_date", "id")`);
  });

  it("says which table when several are archived", () => {
    const file = config({
      ARCHIVE_TABLES: JSON.stringify([
        { table: "request_log", idColumn: "request_id", dayColumn: "at", dayForm: "epoch_ms" },
        { table: "traffic_events", idColumn: "id", dayColumn: "event_date" },
      ]),
    });
    const unsaid = run("install", ["--config", file]);
    expect(unsaid.code).toBe(1);
    expect(unsaid.stderr).toMatch(/archives request_log, traffic_events: say which with --table; nothing was written/);
    const unknown = run("install", ["--config", file, "--table", "orders"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/does not archive orders/);
    const chosen = run("install", ["--config", file, "--table", "traffic_events"]);
    expect(chosen.code).toBe(0);
    expect(chosen.stdout).toContain(`ON "traffic_events" ("event_date", "id")`);
    expect(chosen.stdout).not.toContain("request_log");
  });

  it("wrote the example table's latest migration as it writes it now", () => {
    // 0002 is this project's earlier version of it; 0004 replaced its triggers with ones that say the table.
    const committed = readFileSync(
      join(ROOT, "examples", "traffic-events", "migrations", "0004_archiver_traffic_events_v2.sql"),
      "utf8",
    );
    expect(run("install", []).stdout).toBe(committed);
  });
});
