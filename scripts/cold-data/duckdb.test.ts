/**
 * The README's cold-data recipe, run: several days archived by a local
 * stack, their objects downloaded into a hive-partitioned folder, and DuckDB
 * answering hits per path per day exactly as D1 did before cleanup.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { DuckDBInstance } from "@duckdb/node-api";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type BackgroundStack, startBackgroundStack } from "../dev.ts";
import { admin, archiveStatus, fetchLocalObject, localD1File, ROOT, sleep } from "../lib.ts";
import { seedInWorker } from "../seed.ts";

const STATE = join(ROOT, ".wrangler", "cold-data-test-state");
const DAYS = [5, 4, 3].map((back) => new Date(Date.now() - back * 86_400_000).toISOString().slice(0, 10));
const ROWS_PER_DAY = 20_000;

let stack: BackgroundStack;
let download: string;

beforeAll(async () => {
  rmSync(STATE, { recursive: true, force: true });
  stack = await startBackgroundStack(STATE);
  download = mkdtempSync(join(tmpdir(), "cold-data-"));
});

afterAll(async () => {
  await stack?.stop();
  rmSync(STATE, { recursive: true, force: true });
  if (download) rmSync(download, { recursive: true, force: true });
});

type Status = { status: string; runs: { objectKey: string }[] };

it("DuckDB reads several downloaded days and counts hits per path per day as D1 did", async () => {
  for (const date of DAYS) await seedInWorker(date, ROWS_PER_DAY, localD1File(STATE));
  const db = new DatabaseSync(localD1File(STATE), { readOnly: true });
  const expected = db
    .prepare(
      `SELECT event_date AS date, path, COUNT(*) AS hits FROM traffic_events
       WHERE event_date IN (?, ?, ?) GROUP BY event_date, path ORDER BY date, path`,
    )
    .all(...DAYS)
    .map((r) => ({ date: String(r.date), path: String(r.path), hits: Number(r.hits) }));
  db.close();

  for (const date of DAYS) {
    expect((await admin("POST", `/admin/trigger-archive?date=${date}`, undefined, { idempotent: true })).status).toBe(
      202,
    );
    let status = await archiveStatus<Status>(date);
    for (let tries = 0; status.status !== "archived" && tries < 600; tries++) {
      await sleep(500);
      status = await archiveStatus<Status>(date);
    }
    expect(status.status).toBe("archived");
    // As the README's download recipe lays them out: event_date=<date>/<runId>.jsonl.gz
    for (const run of status.runs) {
      const dir = join(download, `event_date=${date}`);
      mkdirSync(dir, { recursive: true });
      await fetchLocalObject(run.objectKey, join(dir, run.objectKey.split("/").at(-1) as string), STATE);
    }
  }

  const duck = await DuckDBInstance.create(":memory:");
  const connection = await duck.connect();
  const reader = await connection.runAndReadAll(
    `SELECT CAST(event_date AS VARCHAR) AS date, path, COUNT(*) AS hits
     FROM read_json('${download}/event_date=*/*.jsonl.gz', format = 'newline_delimited', hive_partitioning = true)
     GROUP BY ALL ORDER BY date, path`,
  );
  const answered = reader
    .getRowObjects()
    .map((r) => ({ date: String(r.date), path: String(r.path), hits: Number(r.hits) }));
  connection.closeSync();
  duck.closeSync();

  expect(expected.length).toBeGreaterThan(DAYS.length);
  expect(expected.reduce((sum, r) => sum + r.hits, 0)).toBe(DAYS.length * ROWS_PER_DAY);
  expect(answered).toEqual(expected);
});
