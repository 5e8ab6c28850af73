import { env } from "cloudflare:workers";
import { addDays, utcDate } from "@path-stats/shared";
import { expect, it } from "vitest";
import { planArchive } from "../src/plan-archive.ts";
import { capturingQueue, countingD1 } from "./faults.ts";
import worker from "./worker.ts";

/**
 * Anything an operator or a scraper polls costs O(days + runs + chunks) D1
 * rows, not O(rows): measured with D1's own rows_read on a 5M-row day.
 */

const ROWS = 5_000_000;

it("status, overview, health and metrics of a 5M-row day each read fewer than 10 000 D1 rows", async () => {
  const date = addDays(utcDate(new Date()), -2);
  await env.D1.prepare(
    `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
     INSERT INTO traffic_events (event_date, ts, path, method, status, latency_ms, bytes)
     SELECT ?1, i, '/api/items/' || (i % 100), 'GET', 200, i % 250, 100 + i % 5000 FROM n`,
  )
    .bind(date, ROWS)
    .run();
  // A run in flight over the whole day, its chunks waiting in a queue.
  const planned = await planArchive({ ...env, ARCHIVE_QUEUE: capturingQueue() }, date);
  expect(planned.outcome).toBe("planned");
  expect(planned.run?.planned_rows).toBe(ROWS);

  const get = async (path: string) => {
    const db = countingD1();
    const response = await worker.fetch(
      new Request(`http://archiver${path}`, { headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` } }),
      { ...env, D1: db },
    );
    return { response, rowsRead: db.rowsRead, body: await response.text() };
  };

  const status = await get(`/admin/archive-status?date=${date}`);
  expect(status.response.status).toBe(200);
  expect(JSON.parse(status.body)).toMatchObject({ status: "archiving", d1Remaining: null });

  const overview = await get("/admin/overview");
  expect(overview.response.status).toBe(200);
  expect(JSON.parse(overview.body).days).toEqual([
    expect.objectContaining({ date, state: "archiving", unarchivedRowsInD1: true }),
  ]);

  const health = await get("/admin/health");
  expect([200, 503]).toContain(health.response.status);
  expect(JSON.parse(health.body)).toHaveProperty("problems");

  const metrics = await get("/admin/metrics");
  expect(metrics.response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  expect(metrics.body).toContain('path_stats_runs{status="archiving"} 1\n');
  expect(metrics.body).toContain(`path_stats_closed_days_in_d1{table="traffic_events"} 1\n`);

  const costs = Object.fromEntries(
    Object.entries({ status, overview, health, metrics }).map(([name, r]) => [name, r.rowsRead]),
  );
  console.log(`D1 rows read per call on a ${ROWS}-row day: ${JSON.stringify(costs)}`);
  for (const rowsRead of Object.values(costs)) {
    expect(rowsRead).toBeGreaterThan(0);
    expect(rowsRead).toBeLessThan(10_000);
  }
  // The live count is there when asked for, and costs what it says.
  const live = await get(`/admin/archive-status?date=${date}&count=live`);
  expect(JSON.parse(live.body).d1Remaining).toBe(ROWS);
  expect(live.rowsRead).toBeGreaterThanOrEqual(ROWS);
}, 300_000);
