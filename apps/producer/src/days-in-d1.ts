/** A closed day that still has rows in D1, with the newest id among them. */
export interface DayInD1 {
  date: string;
  newestId: number;
}

/**
 * The dates that still have rows in D1, before `today`, each with its newest
 * id, in one statement: one index seek per date to find it (a recursive
 * skip-scan) and one more for its newest id, never a scan of every row.
 * `rowsRead` is D1's own count.
 */
export async function closedDaysInD1(db: D1Database, today: string): Promise<{ days: DayInD1[]; rowsRead: number }> {
  const result = await db
    .prepare(
      `WITH RECURSIVE dates(d) AS (
         SELECT MIN(event_date) FROM traffic_events
         UNION ALL
         SELECT (SELECT MIN(event_date) FROM traffic_events WHERE event_date > d) FROM dates WHERE d IS NOT NULL
       )
       SELECT d AS date, (SELECT MAX(id) FROM traffic_events WHERE event_date = d) AS newestId
       FROM dates WHERE d IS NOT NULL AND d < ?1`,
    )
    .bind(today)
    .all<DayInD1>();
  return { days: result.results, rowsRead: result.meta.rows_read };
}
