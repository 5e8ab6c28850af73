import { errorMessage, logEvent, utcDate } from "@path-stats/shared";
import { planArchive } from "./plan-archive.ts";

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

/** The cron: archive every closed day that still has unarchived rows. */
export async function archiveClosedDays(env: Env, now: Date): Promise<void> {
  const dates = await closedDatesWithRows(env.D1, utcDate(now));
  let failures = 0;
  for (const date of dates) {
    try {
      const result = await planArchive(env, date, now);
      logEvent("cron.archive", { date, outcome: result.outcome, runId: result.run?.run_id ?? null });
    } catch (error) {
      failures++;
      logEvent("cron.archive_failed", { date, error: errorMessage(error) });
    }
  }
  // One failed date must not stop the others, but the invocation must still fail loudly.
  if (failures > 0) throw new Error(`archive planning failed for ${failures} of ${dates.length} dates`);
}
