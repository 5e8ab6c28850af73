/** @jsxImportSource hono/jsx */
import type { StatsAnswerRow } from "@path-stats/shared";
import type { DayRequests } from "../stats/path-stats.ts";

/**
 * The path statistics on the operator page: requests per day as an SVG bar
 * chart (drawn here, no script or CDN; colours in app.css), and a day's
 * busiest paths with their status mix and latency percentiles.
 */

const WIDTH = 640;
const HEIGHT = 160;
const AXIS = 64; // room for the labels below and to the left

function count(n: number): string {
  return n.toLocaleString("en-US");
}

/** Requests per day from the rollups; a day without current statistics is a short grey mark, saying why. */
export function RequestsChart({ table, days }: { table: string; days: DayRequests[] }) {
  const max = Math.max(1, ...days.map((d) => d.requests ?? 0));
  const slot = (WIDTH - AXIS) / Math.max(1, days.length);
  const plot = HEIGHT - AXIS;
  const why = { stale: "statistics stale, being counted again", none: "no statistics (not archived yet)" };
  return (
    <figure class="requests-chart">
      <figcaption>
        {table}: requests per day, from the archived days' statistics (max {count(max)})
      </figcaption>
      <svg
        viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
        role="img"
        aria-label={`Requests per day of ${table}, ${days[0]?.date ?? ""} to ${days.at(-1)?.date ?? ""}`}
      >
        <line class="axis" x1={AXIS} y1={plot} x2={WIDTH} y2={plot} />
        <text class="label" x={AXIS - 4} y={10} text-anchor="end">
          {count(max)}
        </text>
        <text class="label" x={AXIS - 4} y={plot} text-anchor="end">
          0
        </text>
        {days.map((d, i) => {
          const x = AXIS + i * slot + slot * 0.15;
          const w = slot * 0.7;
          if (d.requests === null) {
            return (
              <rect class={`bar bar-${d.state}`} x={x} y={plot - 3} width={w} height={3} data-date={d.date}>
                <title>
                  {d.date}: {why[d.state === "current" ? "none" : d.state]}
                </title>
              </rect>
            );
          }
          const h = Math.max(1, (d.requests / max) * (plot - 12));
          return (
            <rect class="bar" x={x} y={plot - h} width={w} height={h} data-date={d.date}>
              <title>
                {d.date}: {count(d.requests)} requests
              </title>
            </rect>
          );
        })}
        <text class="label" x={AXIS} y={HEIGHT - 8}>
          {days[0]?.date ?? ""}
        </text>
        <text class="label" x={WIDTH} y={HEIGHT - 8} text-anchor="end">
          {days.at(-1)?.date ?? ""}
        </text>
      </svg>
    </figure>
  );
}

const percent = (part: number, whole: number) => (whole === 0 ? "–" : `${((100 * part) / whole).toFixed(1)} %`);
const ms = (v: number | null) => (v === null ? "–" : v < 10 ? v.toFixed(2) : v.toFixed(0));

/** A day's busiest paths: requests, status mix, latency percentiles (within the sketch's 1%), bytes. */
export function TopPaths(props: {
  date: string;
  top: { rows: StatsAnswerRow[]; requests: number; pathsExact: boolean; kept: number } | null;
}) {
  if (!props.top) {
    return (
      <section class="top-paths">
        <h3>Top paths</h3>
        <p>No statistics for {props.date} yet: they are counted when the day is archived.</p>
      </section>
    );
  }
  const { rows, requests, pathsExact, kept } = props.top;
  return (
    <section class="top-paths">
      <h3>
        Top paths: {count(requests)} requests, {kept} rows kept
        {pathsExact ? "" : " (named rows may miss some requests)"}
      </h3>
      <table>
        <thead>
          <tr>
            <th scope="col">Path</th>
            <th scope="col">Method</th>
            <th scope="col">Requests</th>
            <th scope="col">2xx</th>
            <th scope="col">4xx</th>
            <th scope="col">5xx</th>
            <th scope="col">p50 ms</th>
            <th scope="col">p95 ms</th>
            <th scope="col">p99 ms</th>
            <th scope="col">Bytes</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr>
              <td>
                <code>{r.path}</code>
              </td>
              <td>{r.method}</td>
              <td class="number">{count(r.requests)}</td>
              <td class="number">{percent(r.status["2xx"], r.requests)}</td>
              <td class="number">{percent(r.status["4xx"], r.requests)}</td>
              <td class="number">{percent(r.status["5xx"], r.requests)}</td>
              <td class="number">{ms(r.latency.p50Ms)}</td>
              <td class="number">{ms(r.latency.p95Ms)}</td>
              <td class="number">{ms(r.latency.p99Ms)}</td>
              <td class="number">{count(r.bytes.sum)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
