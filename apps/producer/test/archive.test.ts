import { env } from "cloudflare:workers";
import { InvalidDateError } from "@path-stats/shared";
import { describe, expect, it } from "vitest";
import { planArchive } from "../src/plan-archive.ts";
import { deliverAll } from "./faults.ts";
import { archiveLines, d1Rows, event, insertEvents, manifestOf, noise, random, runsOf, waitForRun } from "./helpers.ts";

const NOW = new Date("2026-03-10T08:00:00Z");
const PART_SIZE = Number(env.PART_SIZE_BYTES);

describe("archiving a day", () => {
  it("writes one gzip object of exactly the day's rows across several equal parts", async () => {
    const date = "2026-03-01";
    const next = random(1);
    // ~2.2 KiB of gzip per row: 9000 rows make about 4 parts of 5 MiB.
    const rows = Array.from({ length: 9000 }, (_, i) => event(date, i, { user_agent: noise(next, 2900) }));
    await insertEvents(rows);

    const planned = await planArchive(env, date, NOW);
    expect(planned.outcome).toBe("planned");
    const run = await waitForRun(planned.run?.run_id ?? "");
    expect(run.status).toBe("archived");

    const lines = await archiveLines(run.object_key);
    const expected = await d1Rows(date);
    expect(lines.length).toBe(9000);
    expect(lines.map((l) => JSON.parse(l))).toEqual(expected);

    const manifest = await manifestOf(run);
    const parts = manifest.chunks.flatMap((c) => c.parts).sort((a, b) => a.partNumber - b.partNumber);
    expect(parts.length).toBeGreaterThanOrEqual(3);
    for (const part of parts.slice(0, -1)) expect(part.size).toBe(PART_SIZE);
    expect(parts.at(-1)?.size).toBeLessThanOrEqual(PART_SIZE);
    const head = await env.R2_ARCHIVE.head(run.object_key);
    expect(head?.size).toBe(manifest.objectBytes);
    expect(manifest.rows).toBe(9000);
    expect(manifest.chunks.reduce((s, c) => s + c.rows, 0)).toBe(9000);
    expect(manifest.rowidLo).toBe(run.rowid_lo);
    expect(manifest.rowidHi).toBe(run.rowid_hi);
    expect(manifest.columns).toEqual(Object.keys(expected[0] ?? {}));
    expect(manifest.chunks.length).toBeGreaterThanOrEqual(3);

    const meta = await env.D1.prepare("SELECT * FROM archive_metadata WHERE date = ?1").bind(date).first();
    expect(meta).toMatchObject({
      r2_path: run.object_key,
      event_count: 9000,
      file_size: manifest.objectBytes,
      d1_cleaned: 0,
    });
    // D1 rows read by the chunks, from D1's own result metadata.
    expect(run.rows_read).toBeGreaterThanOrEqual(9000);
    expect(run.rows_read).toBeLessThanOrEqual(9000 * 1.05);
    // Memory: what a chunk held stays within one part plus its pages.
    const { results } = await env.D1.prepare("SELECT peak_buffered_bytes FROM archive_chunks WHERE run_id = ?1")
      .bind(run.run_id)
      .all<{ peak_buffered_bytes: number }>();
    for (const c of results) expect(c.peak_buffered_bytes).toBeLessThanOrEqual(PART_SIZE + 2 * 500 * 4096);
  });

  it("archives only the date's rows up to the plan, byte-for-byte, whatever the text", async () => {
    const date = "2026-03-02";
    const tricky = [
      'quote " and backslash \\ and slash /',
      "new\nline and tab\t and CR\r",
      "emoji 😀🎉 and 4-byte 𝄞, 2-byte é ß ñ, 3-byte 中文 €",
      "nul-ish \u0001 control \u001f",
      "",
    ];
    const rows = [];
    for (let i = 0; i < 300; i++) {
      rows.push(
        event(date, i, {
          path: `/p/${tricky[i % tricky.length]}`,
          referrer: i % 3 ? (tricky[(i + 1) % 5] ?? null) : null,
        }),
      );
      // Rows of neighbouring dates interleaved inside the day's rowid range.
      if (i % 10 === 0) rows.push(event("2026-03-01", i), event("2026-03-03", i));
    }
    await insertEvents(rows);

    const planned = await planArchive(env, date, NOW);
    expect(planned.outcome).toBe("planned");
    // Rows arriving for the date after planning belong to a later run.
    await insertEvents([event(date, 9999, { path: "/late" })]);
    const run = await waitForRun(planned.run?.run_id ?? "");

    const lines = await archiveLines(run.object_key);
    const expected = await d1Rows(date, 0, run.rowid_hi);
    expect(lines.length).toBe(300);
    expect(lines.map((l) => JSON.parse(l))).toEqual(expected);
    expect(lines.some((l) => l.includes("/late"))).toBe(false);
    expect(lines.every((l) => JSON.parse(l).event_date === date)).toBe(true);

    // The late row is picked up by the next run, into its own object.
    const second = await planArchive(env, date, NOW);
    expect(second.outcome).toBe("planned");
    const run2 = await waitForRun(second.run?.run_id ?? "");
    expect(run2.object_key).not.toBe(run.object_key);
    const late = await archiveLines(run2.object_key);
    expect(late.map((l) => JSON.parse(l).path)).toEqual(["/late"]);
    const meta = await env.D1.prepare("SELECT event_count FROM archive_metadata WHERE date = ?1").bind(date).first();
    expect(meta).toEqual({ event_count: 301 });

    // Nothing new since: a no-op.
    const third = await planArchive(env, date, NOW);
    expect(third.outcome).toBe("up_to_date");
    expect(await runsOf(date)).toHaveLength(2);
  });

  it("creates one run for two triggers of the same date", async () => {
    const date = "2026-03-04";
    await insertEvents(Array.from({ length: 50 }, (_, i) => event(date, i)));
    const [a, b] = await Promise.all([planArchive(env, date, NOW), planArchive(env, date, NOW)]);
    expect(a.run?.run_id).toBe(b.run?.run_id);
    expect([a.outcome, b.outcome].sort()).toEqual(["in_flight", "planned"]);
    expect(await runsOf(date)).toHaveLength(1);
    const run = await waitForRun(a.run?.run_id ?? "");
    expect((await archiveLines(run.object_key)).length).toBe(50);
  });

  it("creates nothing for an empty day", async () => {
    const date = "2026-02-20";
    const result = await planArchive(env, date, NOW);
    expect(result.outcome).toBe("empty");
    expect(await runsOf(date)).toHaveLength(0);
    const listed = await env.R2_ARCHIVE.list({ prefix: `traffic_events/event_date=${date}/` });
    expect(listed.objects).toHaveLength(0);
  });

  it("refuses today, the future and non-dates, writing nothing", async () => {
    await insertEvents([event("2026-03-10", 1), event("2026-03-11", 1)]);
    const before = await env.D1.prepare("SELECT COUNT(*) AS n FROM archive_runs").first();
    for (const bad of ["2026-03-10", "2026-03-11", "2026-02-30", "2026-03-01'; DROP TABLE x; --", "yesterday"]) {
      await expect(planArchive(env, bad, NOW)).rejects.toBeInstanceOf(InvalidDateError);
    }
    expect(await env.D1.prepare("SELECT COUNT(*) AS n FROM archive_runs").first()).toEqual(before);
    const listed = await env.R2_ARCHIVE.list({ prefix: "traffic_events/event_date=2026-03-1" });
    expect(listed.objects).toHaveLength(0);
  });
});

describe("reading each row about once", () => {
  /** D1 rows read for a day's archive, planning included, per archived row. */
  async function readsPerRow(date: string): Promise<number> {
    const planned = await planArchive(env, date, NOW);
    const run = await waitForRun(planned.run?.run_id ?? "");
    expect(run.status).toBe("archived");
    const chunks = await env.D1.prepare("SELECT SUM(rows_read) AS n FROM archive_chunks WHERE run_id = ?1")
      .bind(run.run_id)
      .first<{ n: number }>();
    expect(run.archived_rows).toBe((await d1Rows(date)).length);
    return (run.plan_rows_read + (chunks?.n ?? 0)) / (run.archived_rows ?? 1);
  }

  it("plans from the span and sampled density: at most 1.05 rows read per row, alone or interleaved 1:1", async () => {
    await insertEvents(Array.from({ length: 40_000 }, (_, i) => event("2026-02-11", i)));
    // Two days written at the same time: their ids alternate.
    await insertEvents(Array.from({ length: 80_000 }, (_, i) => event(i % 2 ? "2026-02-12" : "2026-02-13", i)));
    const alone = await readsPerRow("2026-02-11");
    const interleaved = await readsPerRow("2026-02-12");
    console.log(`D1 rows read per archived row: ${alone.toFixed(4)} alone, ${interleaved.toFixed(4)} interleaved 1:1`);
    expect(alone).toBeLessThanOrEqual(1.05);
    expect(interleaved).toBeLessThanOrEqual(1.05);
    expect(alone).toBeGreaterThanOrEqual(1);
  });
});

describe("within D1's queries per invocation", () => {
  it("cuts a day into chunks whose pages fit the invocation's queries (50: Workers Free)", async () => {
    const date = "2026-03-05";
    // Rows that compress well: one part would hold all of them, in 60 pages of PAGE_ROWS (500).
    await env.D1.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000)
       INSERT INTO traffic_events (event_date, ts, path, method, status, latency_ms, bytes)
       SELECT ?1, i, '/p/' || (i % 50), 'GET', 200, i % 250, i * 10 FROM n`,
    )
      .bind(date)
      .run();
    // Every message is delivered with a budget of 50 queries (the strict binding refuses the 51st):
    // a retried message fails the test.
    expect(
      await deliverAll((e) => planArchive(e, date, NOW), { D1_QUERIES_PER_INVOCATION: "50" }, "archive-chunks"),
    ).toBeGreaterThanOrEqual(3);
    const [run] = await runsOf(date);
    expect(run?.status).toBe("archived");
    expect(run?.archived_rows).toBe(30_000);
    const { results: chunks } = await env.D1.prepare("SELECT rows FROM archive_chunks WHERE run_id = ?1")
      .bind(run?.run_id)
      .all<{ rows: number }>();
    // 25 pages of 500 rows each at most.
    for (const chunk of chunks) expect(chunk.rows).toBeLessThanOrEqual(12_500);
    expect((await archiveLines(run?.object_key ?? "")).length).toBe(30_000);
  });
});
