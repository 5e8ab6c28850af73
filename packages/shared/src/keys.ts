import type { ArchivedTable } from "./archived-table/archived-table.ts";

/** R2 layout (ARCHITECTURE §5): one object and one manifest per archive run, under the table's key prefix. */
export function datePrefix(table: ArchivedTable, date: string): string {
  return `${table.keyPrefix}${date}/`;
}

export function objectKey(table: ArchivedTable, date: string, runId: string): string {
  return `${datePrefix(table, date)}${runId}.jsonl.gz`;
}

/** The manifest is the commit point: readers and cleanup trust only what it lists. */
export function manifestKey(table: ArchivedTable, date: string, runId: string): string {
  return `${datePrefix(table, date)}${runId}.manifest.json`;
}
