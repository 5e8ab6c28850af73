import { addDays, errorMessage, readConfig, utcDate } from "@path-stats/shared";
import { closedDaysInD1 } from "../days-in-d1.ts";

export type ProblemCode =
  | "day_not_archived"
  | "day_refused"
  | "run_failed"
  | "run_stalled"
  | "cleanup_refused"
  | "rows_unmatched"
  | "too_many_days_in_d1"
  | "dead_letters_pending"
  | "object_too_large"
  | "restore_failed"
  | "archive_verify_failed"
  | "table_unreadable"
  | "stats_mismatch";

/** Something an operator must look at. `key` names it stably across checks, so an alert is sent once. */
export interface Problem {
  key: string;
  code: ProblemCode;
  /** The archived table it is about; null for the archiver's own (dead letters). */
  table: string | null;
  date: string | null;
  runId: string | null;
  /** When the problem began, as far as D1 records tell (ISO 8601). */
  since: string;
  message: string;
  /** What to do about it. */
  action: string;
}

export interface Health {
  healthy: boolean;
  checkedAt: string;
  problems: Problem[];
  cost: { d1RowsRead: number };
}

/** Runs older than this many days are not looked at, unless they are still in flight. */
const WINDOW_DAYS = 35;
/** Below this, an archive's size per million rows says more about gzip headers than about the data. */
const MIN_ROWS_FOR_SIZE_CHECK = 10_000;

interface RunFacts {
  run_id: string;
  table_name: string;
  date: string;
  status: string;
  created_at: string;
  finalize_started_at: string | null;
  failed_at: string | null;
  archived_at: string | null;
  error: string | null;
  rowid_hi: number;
  archived_rows: number | null;
  object_bytes: number | null;
  verified_at: string | null;
  verify_error: string | null;
  last_progress: string | null;
}

/**
 * Evaluates the archiver's health from what D1 records, over every archived
 * table. Every query reads O(days + runs + chunks) rows, never a day's
 * events: the days still in D1 come from one index seek per day and table,
 * and each day's newest id from one more.
 */
export async function evaluateHealth(env: Env, now: Date): Promise<Health> {
  const config = readConfig(env);
  const db = env.D1;
  const today = utcDate(now);
  const [runsResult, refusedResult, lettersResult, restoreResult, dayRefusalsResult, unmatchedResult, statsResult] =
    await db.batch([
      // Each run of the window (and any older one still in flight), with its last sign of progress.
      db
        .prepare(
          `SELECT r.run_id, r.table_name, r.date, r.status, r.created_at, r.finalize_started_at, r.failed_at, r.archived_at,
                r.error, r.rowid_hi, r.archived_rows, r.object_bytes, r.verified_at, r.verify_error,
                CASE WHEN r.status IN ('archiving', 'finalizing') THEN
                  (SELECT MAX(MAX(IFNULL(c.claimed_at, ''), IFNULL(c.archived_at, '')))
                   FROM archive_chunks c WHERE c.run_id = r.run_id) END AS last_progress
         FROM archive_runs r
         WHERE r.date >= ?1 OR r.status IN ('archiving', 'finalizing')
         ORDER BY r.table_name, r.date, r.rowid`,
        )
        .bind(addDays(today, -WINDOW_DAYS)),
      db.prepare(
        `SELECT c.run_id, c.chunk_index, r.table_name, r.date, c.cleanup_error, c.cleanup_failed_at
       FROM archive_chunks c JOIN archive_runs r ON r.run_id = c.run_id
       WHERE c.cleanup_state = 'failed'`,
      ),
      db.prepare("SELECT COUNT(*) AS n, MIN(received_at) AS oldest FROM dead_letters WHERE replayed_at IS NULL"),
      db.prepare(
        `SELECT c.run_id, c.chunk_index, r.table_name, r.date, c.restore_error, c.restore_failed_at
       FROM archive_chunks c JOIN archive_runs r ON r.run_id = c.run_id
       WHERE c.restore_state = 'failed'`,
      ),
      db.prepare("SELECT table_name, date, reason, refused_at FROM archive_refusals ORDER BY table_name, date"),
      // Ranges of each day's latest committed run whose cleanup left rows that nothing changed since the
      // run was planned (the epoch never grew): rows cleanup cannot match, which every cron would archive again.
      db.prepare(
        `SELECT c.run_id, c.chunk_index, r.table_name, r.date, c.rows_left, c.cleaned_at
       FROM archive_chunks c JOIN archive_runs r ON r.run_id = c.run_id
       WHERE c.cleanup_state = 'cleaned' AND c.rows_left > 0 AND c.cleanup_epoch = 0
         AND r.rowid = (
           SELECT MAX(rowid) FROM archive_runs WHERE table_name = r.table_name AND date = r.date AND status = 'archived')`,
      ),
      // Days whose path statistics, counted as current, do not count the rows their committed archives hold:
      // only days none of whose runs hold newer content of another's rows, where the archives' rows add up.
      db
        .prepare(
          `SELECT s.table_name, s.date, s.requests, m.event_count, s.updated_at
         FROM path_stats_days s LEFT JOIN archive_metadata m ON m.table_name = s.table_name AND m.date = s.date
         WHERE s.date >= ?1 AND s.state = 'current' AND m.event_count IS NOT s.requests
           AND NOT EXISTS (
             SELECT 1 FROM archive_runs ra JOIN archive_chunks a ON a.run_id = ra.run_id
               JOIN archive_chunks b ON b.rowid_lo <= a.rowid_hi AND b.rowid_hi >= a.rowid_lo AND b.run_id <> a.run_id
               JOIN archive_runs rb ON rb.run_id = b.run_id
             WHERE ra.table_name = s.table_name AND ra.date = s.date AND ra.status = 'archived'
               AND rb.table_name = s.table_name AND rb.date = s.date AND rb.status = 'archived'
               AND a.rows > 0 AND b.rows > 0)`,
        )
        .bind(addDays(today, -WINDOW_DAYS)),
    ]);
  const runs = (runsResult?.results ?? []) as RunFacts[];
  const refused = (refusedResult?.results ?? []) as {
    run_id: string;
    chunk_index: number;
    table_name: string;
    date: string;
    cleanup_error: string | null;
    cleanup_failed_at: string | null;
  }[];
  const letters = (lettersResult?.results[0] ?? { n: 0, oldest: null }) as { n: number; oldest: string | null };
  const restoreFailures = (restoreResult?.results ?? []) as {
    run_id: string;
    chunk_index: number;
    table_name: string;
    date: string;
    restore_error: string | null;
    restore_failed_at: string | null;
  }[];
  const dayRefusals = (dayRefusalsResult?.results ?? []) as {
    table_name: string;
    date: string;
    reason: string;
    refused_at: string;
  }[];
  const unmatched = (unmatchedResult?.results ?? []) as {
    run_id: string;
    chunk_index: number;
    table_name: string;
    date: string;
    rows_left: number;
    cleaned_at: string | null;
  }[];
  const statsMismatches = (statsResult?.results ?? []) as {
    table_name: string;
    date: string;
    requests: number;
    event_count: number | null;
    updated_at: string;
  }[];
  let d1RowsRead = [
    runsResult,
    refusedResult,
    lettersResult,
    restoreResult,
    dayRefusalsResult,
    unmatchedResult,
    statsResult,
  ].reduce((sum, r) => sum + (r?.meta.rows_read ?? 0), 0);

  const problems: Problem[] = [];
  const byDay = new Map<string, RunFacts[]>();
  const dayKey = (table: string, date: string) => `${table}:${date}`;
  for (const run of runs) {
    const key = dayKey(run.table_name, run.date);
    byDay.set(key, [...(byDay.get(key) ?? []), run]);
  }
  const daysInD1 = new Map<string, string[]>();

  for (const table of config.tables) {
    let inD1: Awaited<ReturnType<typeof closedDaysInD1>>;
    try {
      inD1 = await closedDaysInD1(db, table, today);
    } catch (error) {
      // A table configured but not readable (dropped, renamed, misnamed) is a problem to report, not a failed check.
      problems.push({
        key: `table_unreadable:${table.name}`,
        code: "table_unreadable",
        table: table.name,
        date: null,
        runId: null,
        since: now.toISOString(),
        message: `D1 cannot read ${table.name}, an archived table: ${errorMessage(error)}`,
        action: "check ARCHIVE_TABLES (or ARCHIVE_TABLE) against the database: was the table dropped or renamed?",
      });
      continue;
    }
    daysInD1.set(
      table.name,
      inD1.days.map((d) => d.date),
    );
    d1RowsRead += inD1.rowsRead;
    for (const { date, newestId } of inD1.days) {
      const deadline = new Date(Date.parse(`${addDays(date, 1)}T00:00:00Z`) + config.ARCHIVE_DEADLINE_HOURS * 3600_000);
      if (now < deadline) continue;
      const dayRuns = byDay.get(dayKey(table.name, date)) ?? [];
      if (dayRuns.some((r) => r.status === "archiving" || r.status === "finalizing")) continue;
      if (dayRuns.at(-1)?.status === "failed") continue; // reported as run_failed
      const archivedUpTo = Math.max(
        ...dayRuns.filter((r) => r.status === "archived").map((r) => r.rowid_hi),
        -Infinity,
      );
      if (newestId <= archivedUpTo) continue;
      problems.push({
        key: `day_not_archived:${dayKey(table.name, date)}`,
        code: "day_not_archived",
        table: table.name,
        date,
        runId: null,
        since: deadline.toISOString(),
        message: `${table.name} ${date} has rows in D1 that no archive holds, ${config.ARCHIVE_DEADLINE_HOURS} h after the day closed`,
        action: `check the cron's logs, then POST /admin/trigger-archive?table=${table.name}&date=${date}`,
      });
    }
  }

  for (const refusal of dayRefusals) {
    problems.push({
      key: `day_refused:${dayKey(refusal.table_name, refusal.date)}`,
      code: "day_refused",
      table: refusal.table_name,
      date: refusal.date,
      runId: null,
      since: refusal.refused_at,
      message: refusal.reason,
      action: `give the row an id within ±2^53 (or move it out of ${refusal.date}), then POST /admin/trigger-archive?table=${refusal.table_name}&date=${refusal.date}`,
    });
  }

  for (const dayRuns of byDay.values()) {
    const latest = dayRuns.at(-1);
    if (latest?.status !== "failed") continue;
    problems.push({
      key: `run_failed:${latest.run_id}`,
      code: "run_failed",
      table: latest.table_name,
      date: latest.date,
      runId: latest.run_id,
      since: latest.failed_at ?? latest.created_at,
      message: `the latest run of ${latest.table_name} ${latest.date} failed: ${latest.error ?? "no reason recorded"}`,
      action: `fix the cause, then POST /admin/trigger-archive?table=${latest.table_name}&date=${latest.date} (the cron does not retry a failed day)`,
    });
  }

  const leaseMs = config.LEASE_SECONDS * 1000;
  for (const run of runs) {
    if (run.status !== "archiving" && run.status !== "finalizing") continue;
    const progress = [run.created_at, run.finalize_started_at, run.last_progress]
      .filter((t): t is string => Boolean(t))
      .sort()
      .at(-1) as string;
    if (now.getTime() - Date.parse(progress) <= leaseMs) continue;
    problems.push({
      key: `run_stalled:${run.run_id}`,
      code: "run_stalled",
      table: run.table_name,
      date: run.date,
      runId: run.run_id,
      since: progress,
      message: `run ${run.run_id} of ${run.date} is ${run.status} with no progress since ${progress}`,
      // A finalizing run may have its manifest written: it is finalized again, never failed.
      action:
        run.status === "finalizing"
          ? `POST /admin/trigger-archive?table=${run.table_name}&date=${run.date} sends its finalization again; a run that may have written its manifest is never failed`
          : `POST /admin/trigger-archive?table=${run.table_name}&date=${run.date} re-sends its stalled chunks; if it stays stuck, POST /admin/runs/${run.run_id}/fail`,
    });
  }

  for (const range of refused) {
    problems.push({
      key: `cleanup_refused:${range.run_id}:${range.chunk_index}`,
      code: "cleanup_refused",
      table: range.table_name,
      date: range.date,
      runId: range.run_id,
      since: range.cleanup_failed_at ?? now.toISOString(),
      message: `cleanup refused range ${range.chunk_index} of run ${range.run_id} (${range.date}): ${range.cleanup_error ?? "no reason recorded"}`,
      action:
        "nothing was deleted; the reason says what differs: check the archive (`pnpm verify-archive`, docs/archive-format.md) and D1, fix what it names, then trigger cleanup again",
    });
  }

  for (const range of unmatched) {
    problems.push({
      key: `rows_unmatched:${range.run_id}:${range.chunk_index}`,
      code: "rows_unmatched",
      table: range.table_name,
      date: range.date,
      runId: range.run_id,
      since: range.cleaned_at ?? now.toISOString(),
      message: `cleanup of range ${range.chunk_index} of run ${range.run_id} (${range.date}) left ${range.rows_left} row(s) in D1 that nothing changed since they were archived: cleanup cannot match them, and each new run would archive them again`,
      action: `compare those rows in D1 with the archive (verify-archive) and report it; they stay in D1 and nothing is lost`,
    });
  }

  for (const run of runs) {
    if (run.status !== "archived" || !run.verify_error) continue;
    problems.push({
      key: `archive_verify_failed:${run.run_id}`,
      code: "archive_verify_failed",
      table: run.table_name,
      date: run.date,
      runId: run.run_id,
      since: run.verified_at ?? now.toISOString(),
      message: `the archive of run ${run.run_id} (${run.date}) read back from R2 differs from its manifest: ${run.verify_error}`,
      action: `cleanup refuses such ranges; if D1 still holds the day, fail nothing and archive it again after moving the object aside; then POST /admin/verify?table=${run.table_name}&date=${run.date}`,
    });
  }

  for (const range of restoreFailures) {
    problems.push({
      key: `restore_failed:${range.run_id}:${range.chunk_index}`,
      code: "restore_failed",
      table: range.table_name,
      date: range.date,
      runId: range.run_id,
      since: range.restore_failed_at ?? now.toISOString(),
      message: `restoring range ${range.chunk_index} of run ${range.run_id} (${range.date}) stopped: ${range.restore_error ?? "no reason recorded"}`,
      action: `nothing was overwritten; resolve the rows it names, then POST /admin/restore?table=${range.table_name}&date=${range.date}&runId=${range.run_id} again`,
    });
  }

  for (const table of config.tables) {
    const days = daysInD1.get(table.name) ?? [];
    const allowed = table.hotDays + 1; // the hot days plus the day being cleaned
    if (days.length <= allowed) continue;
    const oldest = days[0] as string;
    problems.push({
      key: `too_many_days_in_d1:${table.name}`,
      code: "too_many_days_in_d1",
      table: table.name,
      date: oldest,
      runId: null,
      since: `${addDays(oldest, allowed + 1)}T00:00:00.000Z`,
      message: `D1 holds ${days.length} closed days of ${table.name} (${oldest} … ${days.at(-1)}); its ${table.hotDays} hot days allow ${allowed}`,
      action: "look at the other problems: a day that is not archived or not cleaned stays in D1",
    });
  }

  if (letters.n > 0) {
    problems.push({
      key: "dead_letters_pending",
      code: "dead_letters_pending",
      table: null,
      date: null,
      runId: null,
      since: letters.oldest ?? now.toISOString(),
      message: `${letters.n} dead letter(s) not replayed`,
      action: "GET /admin/dead-letters?replayed=false, fix the cause, then POST /admin/dead-letters/replay",
    });
  }

  for (const day of statsMismatches) {
    problems.push({
      key: `stats_mismatch:${dayKey(day.table_name, day.date)}`,
      code: "stats_mismatch",
      table: day.table_name,
      date: day.date,
      runId: null,
      since: day.updated_at,
      message: `the path statistics of ${day.table_name} ${day.date} count ${day.requests} requests where its committed archives hold ${day.event_count ?? 0} rows`,
      action: `do not rely on /admin/stats for ${day.date}; report it with GET /admin/archive-status?table=${day.table_name}&date=${day.date}`,
    });
  }

  const maxBytesPerMillion = config.MAX_OBJECT_MIB_PER_MILLION_ROWS * 1024 * 1024;
  for (const run of runs) {
    if (run.status !== "archived" || !run.archived_rows || run.archived_rows < MIN_ROWS_FOR_SIZE_CHECK) continue;
    const perMillion = ((run.object_bytes ?? 0) / run.archived_rows) * 1_000_000;
    if (perMillion <= maxBytesPerMillion) continue;
    problems.push({
      key: `object_too_large:${run.run_id}`,
      code: "object_too_large",
      table: run.table_name,
      date: run.date,
      runId: run.run_id,
      since: run.archived_at ?? run.created_at,
      message: `the archive of run ${run.run_id} (${run.date}) is ${(perMillion / 1024 / 1024).toFixed(1)} MiB per million rows; MAX_OBJECT_MIB_PER_MILLION_ROWS is ${config.MAX_OBJECT_MIB_PER_MILLION_ROWS}`,
      action: "look at the day's rows (wider than usual?) and its padding in /admin/archive-status",
    });
  }

  return { healthy: problems.length === 0, checkedAt: now.toISOString(), problems, cost: { d1RowsRead } };
}
