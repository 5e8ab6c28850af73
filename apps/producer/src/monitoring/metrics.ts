import { type ArchivedTable, utcDate } from "@path-stats/shared";
import { closedDaysInD1 } from "../days-in-d1.ts";
import type { Health } from "./health.ts";

type Sample = [labels: Record<string, string>, value: number];

/** One metric family in the Prometheus text format (0.0.4), which OpenMetrics scrapers read too. */
function family(name: string, type: "counter" | "gauge", help: string, samples: Sample[]): string {
  const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];
  for (const [labels, value] of samples) {
    const pairs = Object.entries(labels).map(([k, v]) => `${k}="${v.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`);
    lines.push(`${name}${pairs.length ? `{${pairs.join(",")}}` : ""} ${Number.isFinite(value) ? value : 0}`);
  }
  return lines.join("\n");
}

/**
 * The archiver's counters and gauges, from what D1 records: one aggregate
 * over the runs, one over the chunks (a few per day: about 4000 rows a year
 * at 1M events a day), one index seek per closed day still in D1 (of each
 * table) and one per dead-letter count. Health's problems come in as a gauge
 * per code. Totals are over all archived tables.
 */
export async function metricsText(db: D1Database, tables: ArchivedTable[], now: Date, health: Health): Promise<string> {
  const [runsResult, chunksResult, lettersResult] = await db.batch([
    db.prepare(
      `SELECT status, COUNT(*) AS runs, IFNULL(SUM(archived_rows), 0) AS rows, IFNULL(SUM(object_bytes), 0) AS bytes,
              IFNULL(SUM(raw_bytes), 0) AS raw
       FROM archive_runs GROUP BY status`,
    ),
    db.prepare(
      `SELECT IFNULL(SUM(rows_deleted), 0) AS rows_deleted, IFNULL(SUM(rows_left), 0) AS rows_left,
              IFNULL(SUM(padding_bytes), 0) AS padding,
              IFNULL(SUM(duration_ms), 0) / 1000.0 AS chunk_seconds, COUNT(duration_ms) AS chunks_archived,
              IFNULL(SUM(CASE WHEN cleanup_state = 'cleaned' THEN cleanup_ms END), 0) / 1000.0 AS range_seconds,
              IFNULL(SUM(cleanup_state = 'cleaned'), 0) AS ranges_cleaned,
              IFNULL(SUM(cleanup_state = 'failed'), 0) AS ranges_refused
       FROM archive_chunks`,
    ),
    db.prepare(
      `SELECT (SELECT IFNULL(MAX(id), 0) FROM dead_letters) AS total,
              (SELECT COUNT(*) FROM dead_letters WHERE replayed_at IS NULL) AS pending`,
    ),
  ]);
  const runs = (runsResult?.results ?? []) as {
    status: string;
    runs: number;
    rows: number;
    bytes: number;
    raw: number;
  }[];
  const chunks = (chunksResult?.results[0] ?? {}) as Record<string, number>;
  const letters = (lettersResult?.results[0] ?? {}) as { total: number; pending: number };
  const daysInD1: Sample[] = [];
  for (const table of tables) {
    daysInD1.push([{ table: table.name }, (await closedDaysInD1(db, table, utcDate(now))).days.length]);
  }
  const archived = runs.find((r) => r.status === "archived");
  const problemCodes = new Map<string, number>();
  for (const p of health.problems) problemCodes.set(p.code, (problemCodes.get(p.code) ?? 0) + 1);

  return `${[
    family("path_stats_runs", "gauge", "Archive runs by status (a run is counted once, in its current status).", [
      ...["archiving", "finalizing", "archived", "failed"].map(
        (status): Sample => [{ status }, runs.find((r) => r.status === status)?.runs ?? 0],
      ),
    ]),
    family("path_stats_rows_archived_total", "counter", "Rows in committed archives.", [[{}, archived?.rows ?? 0]]),
    family("path_stats_rows_deleted_total", "counter", "Rows cleanup deleted from D1.", [
      [{}, chunks.rows_deleted ?? 0],
    ]),
    family("path_stats_rows_left_in_ranges", "gauge", "Rows cleanup left in archived ranges (not in the archive).", [
      [{}, chunks.rows_left ?? 0],
    ]),
    family("path_stats_archive_raw_bytes_total", "counter", "JSON Lines bytes of committed archives.", [
      [{}, archived?.raw ?? 0],
    ]),
    family("path_stats_archive_object_bytes_total", "counter", "Bytes of committed archive objects.", [
      [{}, archived?.bytes ?? 0],
    ]),
    family("path_stats_archive_padding_bytes_total", "counter", "Padding bytes written to fill parts.", [
      [{}, chunks.padding ?? 0],
    ]),
    family("path_stats_chunk_duration_seconds_sum", "counter", "Time spent archiving chunks.", [
      [{}, chunks.chunk_seconds ?? 0],
    ]),
    family("path_stats_chunk_duration_seconds_count", "counter", "Chunks archived.", [
      [{}, chunks.chunks_archived ?? 0],
    ]),
    family("path_stats_range_cleanup_seconds_sum", "counter", "Time spent deleting cleaned ranges.", [
      [{}, chunks.range_seconds ?? 0],
    ]),
    family("path_stats_range_cleanup_seconds_count", "counter", "Ranges cleaned.", [[{}, chunks.ranges_cleaned ?? 0]]),
    family("path_stats_ranges_refused", "gauge", "Ranges cleanup refused to delete.", [
      [{}, chunks.ranges_refused ?? 0],
    ]),
    family("path_stats_dead_letters_total", "counter", "Messages ever recorded as dead letters.", [
      [{}, letters.total ?? 0],
    ]),
    family("path_stats_dead_letters_pending", "gauge", "Dead letters not replayed.", [[{}, letters.pending ?? 0]]),
    family("path_stats_closed_days_in_d1", "gauge", "Closed days that still have rows in D1, by table.", daysInD1),
    family("path_stats_health_problems", "gauge", "Health problems now, by code (see /admin/health).", [
      ...[...problemCodes].map(([code, n]): Sample => [{ code }, n]),
    ]),
    family("path_stats_healthy", "gauge", "1 when /admin/health reports no problem.", [[{}, health.healthy ? 1 : 0]]),
  ].join("\n")}\n`;
}
