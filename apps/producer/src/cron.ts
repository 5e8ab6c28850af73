import {
  type ArchivedTable,
  addDays,
  type Config,
  errorMessage,
  logEvent,
  readConfig,
  utcDate,
} from "@path-stats/shared";
import { closedDaysInD1 } from "./days-in-d1.ts";
import { announceChanges } from "./monitoring/alerts.ts";
import { evaluateHealth } from "./monitoring/health.ts";
import { planArchive } from "./plan-archive.ts";
import { CleanupRefusedError, planCleanup } from "./plan-cleanup.ts";
import { daysDueForScrub, planScrub } from "./scrub/plan-scrub.ts";
import { daysDueForRecount, planRecount } from "./stats/plan-recount.ts";

/** A cleanup range sent this long ago and not finished is sent again by the cron (its message may be lost). */
const CLEANUP_RESEND_AFTER_MS = 30 * 60 * 1000;

/** The latest run's status of each of `dates` of a table that has runs. */
async function latestRunStatus(db: D1Database, table: ArchivedTable, dates: string[]): Promise<Map<string, string>> {
  const { results } = await db
    .prepare(
      `SELECT date, status FROM archive_runs
       WHERE table_name = ?2 AND date IN (SELECT value FROM json_each(?1)) ORDER BY date, rowid`,
    )
    .bind(JSON.stringify(dates), table.name)
    .all<{ date: string; status: string }>();
  return new Map(results.map((r) => [r.date, r.status]));
}

/**
 * The cron, every 15 minutes, for each archived table in turn: archive
 * closed days with unarchived rows, clean archived days older than the hot
 * window (the table's hot days stay in D1; a restored day until its
 * keep_until); then scrub the archives checked longest ago
 * (SCRUB_DAYS_PER_CRON days over all tables), count the path statistics of
 * stale days and of days archived before they were kept again from their
 * archives (STATS_RECOUNT_DAYS_PER_CRON), evaluate health and announce what
 * changed.
 *
 * Never work twice: a day with a run in flight only gets its stalled chunks
 * re-sent (those whose claim lapsed), and a cleanup range sent less than 30
 * minutes ago is left to its message. A day whose latest run failed is not
 * retried here: its cause needs a person (health reports it). Per table, at
 * most CRON_MAX_DAYS days start archiving and CRON_MAX_DAYS are sent to
 * cleanup per run, oldest first, so a backlog left by an older archiver is
 * worked off over several runs.
 */
export async function runCron(env: Env, now: Date): Promise<void> {
  const config = readConfig(env);
  const failures: string[] = [];
  for (const table of config.tables) {
    try {
      await archiveAndClean(env, config, table, now, failures);
    } catch (error) {
      // A table that cannot be read (dropped, renamed) must not stop the others.
      failures.push(table.name);
      logEvent("cron.table_failed", { table: table.name, error: errorMessage(error) });
    }
  }

  // Scrub: read back the archives checked longest ago (never checked first).
  try {
    const due = await daysDueForScrub(env.D1, now, config.SCRUB_EVERY_DAYS, config.SCRUB_DAYS_PER_CRON);
    for (const { tableName, date } of due) {
      if (!config.tables.some((t) => t.name === tableName)) continue; // archives of a table no longer configured
      const result = await planScrub(env, date, now, tableName);
      logEvent("cron.scrub", { table: tableName, date, ranges: result.ranges });
    }
  } catch (error) {
    failures.push("scrub");
    logEvent("cron.scrub_failed", { error: errorMessage(error) });
  }

  // Path statistics counted again from the archives: stale days, and days archived before they were kept.
  try {
    for (const { tableName, date } of await daysDueForRecount(
      env.D1,
      config,
      now,
      config.STATS_RECOUNT_DAYS_PER_CRON,
    )) {
      const result = await planRecount(env, date, now, tableName);
      logEvent("cron.stats_recount", { table: tableName, date, recountId: result.recountId, ranges: result.ranges });
    }
  } catch (error) {
    failures.push("stats recount");
    logEvent("cron.stats_recount_failed", { error: errorMessage(error) });
  }

  // After the work, so neither a slow webhook nor a failing check delays it.
  try {
    const health = await evaluateHealth(env, now);
    logEvent("cron.health", { healthy: health.healthy, problems: health.problems.map((p) => p.key) });
    await announceChanges(env, health.problems, now);
  } catch (error) {
    failures.push("health");
    logEvent("cron.health_failed", { error: errorMessage(error) });
  }

  // One failed date must not stop the others, but the invocation must still fail loudly.
  if (failures.length > 0) throw new Error(`cron failed for: ${failures.join(", ")}`);
}

/** One table's share of the cron: archive its closed days, then clean those past its hot days. */
async function archiveAndClean(
  env: Env,
  config: Config,
  table: ArchivedTable,
  now: Date,
  failures: string[],
): Promise<void> {
  const today = utcDate(now);
  const name = table.name;
  const closed = (await closedDaysInD1(env.D1, table, today)).days.map((d) => d.date);
  const latest = await latestRunStatus(env.D1, table, closed);
  let planned = 0;
  for (const date of closed) {
    if (latest.get(date) === "failed") {
      logEvent("cron.archive_skipped", { table: name, date, reason: "its latest run failed; see /admin/health" });
      continue;
    }
    const inFlight = latest.get(date) === "archiving" || latest.get(date) === "finalizing";
    if (!inFlight && planned >= config.CRON_MAX_DAYS) continue;
    try {
      const result = await planArchive(env, date, now, name);
      if (result.outcome === "planned") planned++;
      logEvent("cron.archive", { table: name, date, outcome: result.outcome, runId: result.run?.run_id ?? null });
    } catch (error) {
      failures.push(`archive ${name} ${date}`);
      logEvent("cron.archive_failed", { table: name, date, error: errorMessage(error) });
    }
  }

  const oldestHot = addDays(today, -table.hotDays);
  // A restored day is kept in D1 until its keep_until.
  const { results } = await env.D1.prepare(
    `SELECT date FROM archive_metadata
     WHERE table_name = ?3 AND d1_cleaned = 0 AND date < ?1 AND (keep_until IS NULL OR keep_until <= ?2)
     ORDER BY date`,
  )
    .bind(oldestHot, now.toISOString(), name)
    .all<{ date: string }>();
  let cleaning = 0;
  for (const { date } of results) {
    if (cleaning >= config.CRON_MAX_DAYS) break;
    try {
      const result = await planCleanup(env, date, now, { resendAfterMs: CLEANUP_RESEND_AFTER_MS }, name);
      if (result.outcome === "enqueued") cleaning++;
      logEvent("cron.cleanup", { table: name, date, outcome: result.outcome, ranges: result.ranges });
    } catch (error) {
      // A run in flight (late rows being archived) is normal: a later cron cleans. A failed run is health's.
      if (error instanceof CleanupRefusedError && error.code !== "not_archived") {
        logEvent("cron.cleanup_deferred", { table: name, date, reason: error.message });
        continue;
      }
      failures.push(`cleanup ${name} ${date}`);
      logEvent("cron.cleanup_failed", { table: name, date, error: errorMessage(error) });
    }
  }
}
