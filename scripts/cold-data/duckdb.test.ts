/**
 * The cold-data recipe of docs/archive-format.md, run: several days
 * archived by a local stack, their objects and manifests downloaded into a
 * hive-partitioned folder, one day archived twice for rows that changed, and
 * DuckDB answering hits per path per day exactly as D1 did before cleanup,
 * each row once.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
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

/** The query of docs/archive-format.md ("Querying the cold data"), as written there. */
const README_QUERY = readFileSync(join(ROOT, "docs", "archive-format.md"), "utf8").match(
  /```sql\n(-- hits per path per day, each row once[\s\S]*?)```/,
)?.[1] as string;

let stack: BackgroundStack;
let folder: string;

beforeAll(async () => {
  rmSync(STATE, { recursive: true, force: true });
  stack = await startBackgroundStack(STATE);
  folder = mkdtempSync(join(tmpdir(), "cold-data-"));
});

afterAll(async () => {
  await stack?.stop();
  rmSync(STATE, { recursive: true, force: true });
  if (folder) rmSync(folder, { recursive: true, force: true });
});

type Status = {
  status: string;
  runs: { objectKey: string; manifestKey: string; chunks: { total: number; cleaned: number } }[];
};

const byDateAndPath = (a: { date: string; path: string }, b: { date: string; path: string }) =>
  a.date < b.date ? -1 : a.date > b.date ? 1 : a.path < b.path ? -1 : a.path > b.path ? 1 : 0;

/** Polls a day's status until `done` says so. */
async function until(date: string, done: (status: Status) => boolean): Promise<Status> {
  let status = await archiveStatus<Status>(date);
  for (let tries = 0; !done(status) && tries < 600; tries++) {
    await sleep(500);
    status = await archiveStatus<Status>(date);
  }
  expect(done(status)).toBe(true);
  return status;
}

/** As the README's download recipe lays them out: event_date=<date>/<runId>.jsonl.gz and its manifest. */
async function download(date: string, run: Status["runs"][number]): Promise<void> {
  const dir = join(folder, `event_date=${date}`);
  mkdirSync(dir, { recursive: true });
  for (const key of [run.objectKey, run.manifestKey]) {
    await fetchLocalObject(key, join(dir, key.split("/").at(-1) as string), STATE);
  }
}

it("DuckDB reads several downloaded days and counts hits per path per day as D1 did, each row once", async () => {
  for (const date of DAYS) await seedInWorker(date, ROWS_PER_DAY, localD1File(STATE));
  for (const date of DAYS) {
    expect((await admin("POST", `/admin/trigger-archive?date=${date}`, undefined, { idempotent: true })).status).toBe(
      202,
    );
    const status = await until(date, (s) => s.status === "archived");
    for (const run of status.runs) await download(date, run);
  }

  // Rows of the first day change after it was archived; cleanup leaves them, a second run archives
  // them again. Both archives hold those ids: the recipe counts each once, with its current content.
  const changedDay = DAYS[0] as string;
  const writer = new DatabaseSync(localD1File(STATE));
  writer
    .prepare(
      `UPDATE traffic_events SET path = '/changed' WHERE id IN
         (SELECT id FROM traffic_events WHERE event_date = ? ORDER BY id LIMIT 10)`,
    )
    .run(changedDay);
  const expected = writer
    .prepare(
      `SELECT event_date AS date, path, COUNT(*) AS hits FROM traffic_events
       WHERE event_date IN (?, ?, ?) GROUP BY event_date, path`,
    )
    .all(...DAYS)
    .map((r) => ({ date: String(r.date), path: String(r.path), hits: Number(r.hits) }))
    .sort(byDateAndPath);
  writer.close();
  expect((await admin("POST", `/admin/trigger-cleanup?date=${changedDay}`)).status).toBe(202);
  await until(changedDay, (s) => s.runs.every((r) => r.chunks.cleaned === r.chunks.total));
  expect((await admin("POST", `/admin/trigger-archive?date=${changedDay}`)).status).toBe(202);
  const again = await until(changedDay, (s) => s.status === "archived" && s.runs.length === 2);
  await download(changedDay, again.runs[1] as Status["runs"][number]);

  // verify-archive reads the twice-archived day the same way: each id once, ten of them superseded.
  const day = spawnSync(
    process.execPath,
    [
      "--no-warnings=ExperimentalWarning",
      join(ROOT, "scripts", "verify-archive.ts"),
      "--day",
      join(folder, `event_date=${changedDay}`),
    ],
    { encoding: "utf8" },
  );
  expect(day.stdout).toContain(
    `2 archive(s), ${ROWS_PER_DAY + 10} rows, 10 superseded by later runs, ${ROWS_PER_DAY} current rows (each id once)`,
  );
  expect(day.status).toBe(0);

  const duck = await DuckDBInstance.create(":memory:");
  const connection = await duck.connect();
  const reader = await connection.runAndReadAll(README_QUERY.replaceAll("cold/", `${folder}/`));
  const answered = reader
    .getRowObjects()
    .map((r) => ({ date: String(r.date), path: String(r.path), hits: Number(r.hits) }))
    .sort(byDateAndPath);
  connection.closeSync();
  duck.closeSync();

  expect(expected.length).toBeGreaterThan(DAYS.length);
  expect(expected.reduce((sum, r) => sum + r.hits, 0)).toBe(DAYS.length * ROWS_PER_DAY);
  expect(expected.find((r) => r.path === "/changed")).toEqual({ date: changedDay, path: "/changed", hits: 10 });
  expect(answered).toEqual(expected);
});
