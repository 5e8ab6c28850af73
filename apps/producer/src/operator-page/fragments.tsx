/** @jsxImportSource hono/jsx */
import type { Child } from "hono/jsx";
import type { Health } from "../monitoring/health.ts";
import type { overview } from "../monitoring/overview.ts";
import type { dayStatus } from "../status.ts";
import { ActionButton } from "./page.tsx";

type Overview = Awaited<ReturnType<typeof overview>>;
/** A row of dead_letters as the list returns it. */
export interface DeadLetterRow {
  id: number;
  queue: string;
  date: string | null;
  run_id: string | null;
  attempts: number;
  last_error: string | null;
  received_at: string;
  replayed_at: string | null;
  replay_count: number;
}
type DayStatus = Awaited<ReturnType<typeof dayStatus>>;

const STATE_LABEL: Record<string, string> = {
  none: "not archived",
  archiving: "archiving",
  archived: "archived",
  cleaning: "cleaning",
  cleaned: "cleaned",
  failed: "failed",
  refused: "refused",
  late: "late rows pending",
};

function mib(bytes: number | null | undefined): string {
  return bytes === null || bytes === undefined ? "–" : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function count(n: number | null | undefined): string {
  return n === null || n === undefined ? "–" : n.toLocaleString("en-US");
}

function when(iso: string | null | undefined): string {
  return iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "–";
}

export function HealthFragment({ health }: { health: Health }) {
  if (health.healthy) {
    return (
      <div class="health ok">
        <h2>Health: OK</h2>
        <p>No problems (checked {when(health.checkedAt)}).</p>
      </div>
    );
  }
  return (
    <div class="health problems">
      <h2>Health: {health.problems.length} problem(s)</h2>
      <ul>
        {health.problems.map((p) => (
          <li>
            <strong>{p.code}</strong> {p.message} <span class="since">since {when(p.since)}</span>
            <br />
            <span class="todo">To do: {p.action}</span>
          </li>
        ))}
      </ul>
    </div>
  );
}

/** The overview of the last days; `chart` (the requests per day) goes under the success rates. */
export function OverviewFragment({ data, chart }: { data: Overview; chart?: Child }) {
  const rate = (r: number | null) => (r === null ? "–" : `${(r * 100).toFixed(1)} %`);
  return (
    <div>
      <h2>
        {data.table}: last days ({data.from} … {data.to})
      </h2>
      {data.tables.length > 1 ? (
        <form class="tables">
          <label>
            Table{" "}
            <select name="table">
              {data.tables.map((name) => (
                <option value={name} selected={name === data.table}>
                  {name}
                </option>
              ))}
            </select>
          </label>
        </form>
      ) : null}
      <p class="rates">
        Archive success {rate(data.rates.archiveSuccess)} ({data.rates.runsArchived} archived, {data.rates.runsFailed}{" "}
        failed runs) · cleanup success {rate(data.rates.cleanupSuccess)} ({data.rates.rangesCleaned} ranges cleaned,{" "}
        {data.rates.rangesRefused} refused)
      </p>
      {chart}
      {data.days.length === 0 ? (
        <p>No day in the window has rows in D1 or an archive run.</p>
      ) : (
        <ol class="days">
          {data.days.map((d) => {
            const state =
              d.unarchivedRowsInD1 && d.state !== "none" && d.state !== "archiving" && d.state !== "refused"
                ? "late"
                : d.state;
            return (
              <li>
                <button type="button" class={`day state-${state}`} data-day={d.date} data-table={data.table}>
                  <span class="date">{d.date}</span>
                  <span class="state">{STATE_LABEL[state] ?? state}</span>
                  <span class="figures">
                    {d.rows === 0 ? "no archive yet" : `${count(d.rows)} rows · ${mib(d.objectBytes)}`}
                  </span>
                </button>
              </li>
            );
          })}
        </ol>
      )}
    </div>
  );
}

/** One day: its state, actions and runs; `topPaths` (its path statistics) goes under the actions. */
export function DayFragment({ status, topPaths }: { status: DayStatus; topPaths?: Child }) {
  const live = status.status === "archiving" || status.status === "cleaning";
  const date = status.date;
  return (
    <div class="day-detail" data-live={live ? "true" : undefined} data-date={date}>
      <h2>
        {status.table} {date}:{" "}
        <span class={`badge state-${status.status}`}>{STATE_LABEL[status.status] ?? status.status}</span>
        {live ? <span class="live"> (refreshing)</span> : null}
      </h2>
      {status.refusal ? <p class="error-text">Not archived: {status.refusal.reason}</p> : null}
      <p>
        D1: {count(status.d1ArchivedNotDeleted)} archived rows not deleted yet, {count(status.d1LeftNotArchived)} rows
        left for a later run; {status.d1Cleaned ? `cleaned ${when(status.cleanedAt)}` : "not cleaned"}.
      </p>
      <div class="actions">
        <ActionButton
          method="POST"
          path={`/admin/trigger-archive?table=${status.table}&date=${date}`}
          confirm={`Archive ${date}: plan a run for its rows that no archive holds yet (or resume the run in flight).`}
          refresh="day"
        >
          Archive {date}
        </ActionButton>
        <ActionButton
          method="POST"
          path={`/admin/trigger-cleanup?table=${status.table}&date=${date}`}
          confirm={`Clean up ${date}: delete from D1 the rows its committed archives hold, after checking the archive's bytes. Refused while a run is in flight or the latest run failed.`}
          refresh="day"
        >
          Clean up {date}
        </ActionButton>
        <output class="result" />
      </div>
      {topPaths}
      {status.runs.length === 0 ? <p>No archive run for this day.</p> : null}
      {status.runs.map((run) => (
        <article class="run">
          <h3>
            Run {run.runId}: {run.status}
          </h3>
          <p class="progress">
            <label>
              Chunks archived {run.chunks.done} / {run.chunks.total}
              <progress max={run.chunks.total} value={run.chunks.done} />
            </label>
            <label>
              Ranges deleted {run.chunks.cleaned} / {run.chunks.total}
              <progress max={run.chunks.total} value={run.chunks.cleaned} />
            </label>
          </p>
          <dl>
            <dt>Rows</dt>
            <dd>
              planned {count(run.rows.planned)}, archived {count(run.rows.archived)}, deleted {count(run.rows.deleted)},
              left {count(run.rows.leftNotArchived)}
            </dd>
            <dt>Bytes</dt>
            <dd>
              raw {mib(run.bytes.raw)}, object {mib(run.bytes.object)}, padding {mib(run.bytes.padding)}
              {run.bytes.raw && run.bytes.object ? `, ratio ${(run.bytes.raw / run.bytes.object).toFixed(1)}x` : ""}
            </dd>
            <dt>Keys</dt>
            <dd>
              <code>{run.objectKey}</code>
              <br />
              <code>{run.manifestKey}</code>
            </dd>
            <dt>Times</dt>
            <dd>
              planned {when(run.timings.createdAt)}, archived {when(run.timings.archivedAt)}, failed{" "}
              {when(run.timings.failedAt)}, cleaned {when(run.timings.cleanedAt)}
            </dd>
            {run.errors.run || run.errors.lastChunk || run.errors.cleanup ? (
              <>
                <dt>Errors</dt>
                <dd class="error-text">
                  {[run.errors.run, run.errors.lastChunk, run.errors.cleanup].filter(Boolean).join(" · ")}
                </dd>
              </>
            ) : null}
          </dl>
          {run.status === "archiving" ? (
            <div class="actions">
              <ActionButton
                method="POST"
                path={`/admin/runs/${run.runId}/fail`}
                body={{ reason: "failed from the operator page" }}
                confirm={`Fail run ${run.runId} of ${date}: abort its upload and mark it failed. Nothing is deleted from D1; a new archive of the day can then start.`}
                refresh="day"
              >
                Fail this run
              </ActionButton>
              <output class="result" />
            </div>
          ) : null}
        </article>
      ))}
    </div>
  );
}

export function DeadLettersFragment(props: {
  letters: DeadLetterRow[];
  queue: string | undefined;
  replayed: string | undefined;
}) {
  const pending = props.letters.filter((l) => !l.replayed_at);
  return (
    <div>
      <h2>Dead letters</h2>
      <form class="filters" data-fragment="dead-letters">
        <label>
          Queue{" "}
          <select name="queue">
            <option value="">all</option>
            {["archive-chunks", "cleanup-ranges"].map((q) => (
              <option value={q} selected={props.queue === q}>
                {q}
              </option>
            ))}
          </select>
        </label>
        <label>
          Replayed{" "}
          <select name="replayed">
            <option value="">all</option>
            <option value="false" selected={props.replayed === "false"}>
              not replayed
            </option>
            <option value="true" selected={props.replayed === "true"}>
              replayed
            </option>
          </select>
        </label>
      </form>
      {props.letters.length === 0 ? (
        <p>No dead letters.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Replay</th>
              <th scope="col">Id</th>
              <th scope="col">Queue</th>
              <th scope="col">Date</th>
              <th scope="col">Run</th>
              <th scope="col">Attempts</th>
              <th scope="col">Received</th>
              <th scope="col">Replayed</th>
              <th scope="col">Last error</th>
            </tr>
          </thead>
          <tbody>
            {props.letters.map((l) => (
              <tr>
                <td>
                  <input
                    type="checkbox"
                    name="letter"
                    value={String(l.id)}
                    aria-label={`select dead letter ${l.id}`}
                    disabled={Boolean(l.replayed_at)}
                  />
                </td>
                <td>{l.id}</td>
                <td>{l.queue}</td>
                <td>{l.date ?? "–"}</td>
                <td>{l.run_id ?? "–"}</td>
                <td>{l.attempts}</td>
                <td>{when(l.received_at)}</td>
                <td>{l.replayed_at ? `${when(l.replayed_at)} (${l.replay_count}×)` : "no"}</td>
                <td class="error-text">{l.last_error ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div class="actions">
        <button type="button" class="action" data-replay="selected" disabled={pending.length === 0}>
          Replay selected
        </button>
        <ActionButton
          method="POST"
          path="/admin/dead-letters/replay"
          body={{ pending: true }}
          confirm="Replay every dead letter not replayed yet: each is sent again to its queue (up to 5000 per click)."
          refresh="dead-letters"
        >
          Replay all pending
        </ActionButton>
        <output class="result" />
      </div>
    </div>
  );
}
