/** A closed day that still has rows in D1, with the newest id among them. */
export interface DayInD1 {
  date: string;
  newestId: number;
}

import { type ArchivedTable, daySql, idSql, tableSql } from "@path-stats/shared";

/**
 * The dates that still have rows in D1, before `today`, each with its newest
 * id, in one statement: one seek per date on the (day, id) index to find it
 * (a recursive skip-scan) and one more for its newest id, never a scan of
 * every row. Written with ORDER BY … LIMIT 1, not MIN/MAX, so that SQLite
 * seeks an index on an expression (a timestamp's day) as well as on a
 * column. `rowsRead` is D1's own count.
 */
export async function closedDaysInD1(
  db: D1Database,
  table: ArchivedTable,
  today: string,
): Promise<{ days: DayInD1[]; rowsRead: number }> {
  const from = tableSql(table);
  const day = daySql(table);
  const id = idSql(table);
  const result = await db
    .prepare(
      `WITH RECURSIVE dates(d) AS (
         SELECT (SELECT ${day} FROM ${from} WHERE ${day} IS NOT NULL ORDER BY ${day} LIMIT 1)
         UNION ALL
         SELECT (SELECT ${day} FROM ${from} WHERE ${day} > d ORDER BY ${day} LIMIT 1) FROM dates WHERE d IS NOT NULL
       )
       SELECT d AS date, (SELECT ${id} FROM ${from} WHERE ${day} = d ORDER BY ${id} DESC LIMIT 1) AS newestId
       FROM dates WHERE d IS NOT NULL AND d < ?1`,
    )
    .bind(today)
    .all<DayInD1>();
  return { days: result.results, rowsRead: result.meta.rows_read };
}
