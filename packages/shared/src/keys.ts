/** R2 layout (ARCHITECTURE §5): one object and one manifest per archive run. */
export const ARCHIVE_TABLE = "traffic_events";

export function datePrefix(date: string): string {
  return `${ARCHIVE_TABLE}/event_date=${date}/`;
}

export function objectKey(date: string, runId: string): string {
  return `${datePrefix(date)}${runId}.jsonl.gz`;
}

/** The manifest is the commit point: readers and cleanup trust only what it lists. */
export function manifestKey(date: string, runId: string): string {
  return `${datePrefix(date)}${runId}.manifest.json`;
}
