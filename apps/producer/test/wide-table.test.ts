import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { planArchive } from "../src/plan-archive.ts";
import { planCleanup } from "../src/plan-cleanup.ts";
import { planRestore } from "../src/restore/plan-restore.ts";
import { planScrub } from "../src/scrub/plan-scrub.ts";
import { deliverAll } from "./faults.ts";
import { archiveLines, readsPerRow, waitForRun } from "./helpers.ts";
import { type ColumnType, columnsOf, exactRows, TYPES, valueSql } from "./mixed-columns.ts";

/**
 * Tables as wide as D1 allows (100 columns), of every type, through the
 * strict D1 binding (strict-d1/): every SQL the archiver writes per column
 * must stay within D1's 32 arguments per function, 100 levels of expression
 * and 100 result columns. Before, json_object over more than 16 columns
 * failed every text page in production while every local test passed.
 */

const NOW = new Date("2026-11-25T12:00:00Z");
const BASE_COLUMNS = 11; // traffic_events, id included

/** Widens traffic_events to `total` columns and writes `rows` rows of the date into it; returns the added names. */
async function wideDay(date: string, rows: number, total: number): Promise<string[]> {
  const added = Array.from({ length: total - BASE_COLUMNS }, (_, k) => `x${k}`);
  for (const [k, name] of added.entries()) {
    await env.D1.exec(`ALTER TABLE traffic_events ADD COLUMN ${name} ${TYPES[k % TYPES.length]}`);
  }
  const values = added.map((_, k) => valueSql(TYPES[k % TYPES.length] as ColumnType, k));
  await env.D1.prepare(
    `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
     INSERT INTO traffic_events (event_date, ts, path, method, status, latency_ms, bytes, ${added.join(", ")})
     SELECT ?1, i, '/p/' || (i % 50), 'GET', 200, i % 250, i * 10, ${values.join(", ")} FROM n`,
  )
    .bind(date, rows)
    .run();
  return added;
}

async function narrow(added: readonly string[]): Promise<void> {
  for (const name of added) await env.D1.exec(`ALTER TABLE traffic_events DROP COLUMN ${name}`);
}

/** The date's rows exactly (mixed-columns.ts). */
function exactDayRows(date: string, columns: readonly string[]): Promise<unknown[]> {
  return exactRows("traffic_events", columns, "event_date = ?1", "id", date);
}

describe("a table as wide as D1 allows", () => {
  for (const total of [40, 100]) {
    it(`${total} columns of every type, REALs and NULLs: archived, scrubbed, cleaned and restored exactly`, async () => {
      const date = total === 40 ? "2026-11-10" : "2026-11-11";
      const rows = 25_000;
      const added = await wideDay(date, rows, total);
      try {
        const columns = await columnsOf("traffic_events");
        expect(columns).toHaveLength(total);
        const before = await exactDayRows(date, columns);

        const planned = await planArchive(env, date, NOW);
        const run = await waitForRun(planned.run?.run_id ?? "");
        expect(run.error).toBeNull();
        expect(run.status).toBe("archived");
        expect(run.archived_rows).toBe(rows);
        // Each row read once, although REAL values send their pages through the row path.
        expect(await readsPerRow(run)).toBeLessThanOrEqual(1.05);
        const lines = await archiveLines(run.object_key);
        expect(lines).toHaveLength(rows);
        expect(Object.keys(JSON.parse(lines[0] as string))).toEqual(columns);

        expect(await deliverAll((e) => planScrub(e, date, NOW))).toBeGreaterThan(0);
        const scrubbed = await env.D1.prepare("SELECT verify_error FROM archive_runs WHERE run_id = ?1")
          .bind(run.run_id)
          .first<{ verify_error: string | null }>();
        expect(scrubbed?.verify_error).toBeNull();

        // Matched row by row (REALs), in windows of 50 rows (DELETE_BATCH_ROWS): with D1's 50 queries per
        // invocation (Workers Free) each range goes on in messages of its own.
        const ranges = (await env.D1.prepare("SELECT count(*) AS n FROM archive_chunks WHERE run_id = ?1")
          .bind(run.run_id)
          .first<number>("n")) as number;
        expect(await deliverAll((e) => planCleanup(e, date, NOW), { D1_QUERIES_PER_INVOCATION: "50" })).toBeGreaterThan(
          ranges,
        );
        expect(await exactDayRows(date, columns)).toEqual([]);
        const cleaned = await env.D1.prepare("SELECT cleaned_at, rows_deleted FROM archive_runs WHERE run_id = ?1")
          .bind(run.run_id)
          .first<{ cleaned_at: string | null; rows_deleted: number }>();
        expect(cleaned?.cleaned_at).not.toBeNull();
        expect(cleaned?.rows_deleted).toBe(rows);

        // Restored in windows of 50 rows too, with 50 queries per invocation: in several invocations per range.
        expect(
          await deliverAll((e) => planRestore(e, date, null, NOW), { D1_QUERIES_PER_INVOCATION: "50" }),
        ).toBeGreaterThan(ranges);
        expect(await exactDayRows(date, columns)).toEqual(before);
      } finally {
        await env.D1.prepare("DELETE FROM traffic_events WHERE event_date = ?1").bind(date).run();
        await narrow(added);
      }
    });
  }
});
