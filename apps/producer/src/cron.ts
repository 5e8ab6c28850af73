import { addDays, errorMessage, logEvent, readConfig, utcDate } from "@path-stats/shared";
import { planArchive } from "./plan-archive.ts";
import { CleanupRefusedError, planCleanup } from "./plan-cleanup.ts";

/**
 * The dates that still have rows in D1, before `today`, found with one index
 * seek per date (a recursive skip-scan) instead of a scan of every row.
 */
export async function closedDatesWithRows(db: D1Database, today: string): Promise<string[]> {
  const result = await db
    .prepare(
      `WITH RECURSIVE dates(d) AS (
         SELECT MIN(event_date) FROM traffic_events
         UNION ALL
         SELECT (SELECT MIN(event_date) FROM traffic_events WHERE event_date > d) FROM dates WHERE d IS NOT NULL
       )
       SELECT d AS date FROM dates WHERE d IS NOT NULL AND d < ?1`,
    )
    .bind(today)
    .all<{ date: string }>();
  return result.results.map((r) => r.date);
}

/**
 * The cron: archive every closed day that still has unarchived rows, then
 * clean every archived day older than the hot window (HOT_DAYS closed days
 * stay in D1).
 */
export async function runCron(env: Env, now: Date): Promise<void> {
  const today = utcDate(now);
  const failures: string[] = [];
  for (const date of await closedDatesWithRows(env.D1, today)) {
    try {
      const result = await planArchive(env, date, now);
      logEvent("cron.archive", { date, outcome: result.outcome, runId: result.run?.run_id ?? null });
    } catch (error) {
      failures.push(`archive ${date}`);
      logEvent("cron.archive_failed", { date, error: errorMessage(error) });
    }
  }

  const oldestHot = addDays(today, -readConfig(env).HOT_DAYS);
  const { results } = await env.D1.prepare(
    "SELECT date FROM archive_metadata WHERE d1_cleaned = 0 AND date < ?1 ORDER BY date",
  )
    .bind(oldestHot)
    .all<{ date: string }>();
  for (const { date } of results) {
    try {
      const result = await planCleanup(env, date, now);
      logEvent("cron.cleanup", { date, outcome: result.outcome, ranges: result.ranges });
    } catch (error) {
      // A run in flight (late rows being archived) is normal: the next cron cleans.
      if (error instanceof CleanupRefusedError && error.code === "run_in_flight") {
        logEvent("cron.cleanup_deferred", { date, reason: error.message });
        continue;
      }
      failures.push(`cleanup ${date}`);
      logEvent("cron.cleanup_failed", { date, error: errorMessage(error) });
    }
  }
  // One failed date must not stop the others, but the invocation must still fail loudly.
  if (failures.length > 0) throw new Error(`cron failed for: ${failures.join(", ")}`);
}
