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
