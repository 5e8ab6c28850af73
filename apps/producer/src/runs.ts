import type { RunRow } from "@path-stats/shared";

export function findInFlightRun(db: D1Database, date: string): Promise<RunRow | null> {
  return db
    .prepare("SELECT * FROM archive_runs WHERE date = ?1 AND status IN ('archiving', 'finalizing')")
    .bind(date)
    .first<RunRow>();
}
