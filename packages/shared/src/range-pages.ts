import { encodeRows } from "./jsonl.ts";

/** The part of D1's API the reader needs; a D1Database is one. */
export interface PageSource {
  prepare(query: string): {
    bind(...values: unknown[]): {
      all<T = Record<string, unknown>>(): Promise<{ results: T[]; meta: { rows_read: number } }>;
    };
  };
}

/** One page of a range as archived bytes. */
export interface RangePage {
  /** The page's rows as UTF-8 JSON Lines. */
  bytes: Uint8Array;
  rows: number;
  /** D1's own count of rows read for the page. */
  rowsRead: number;
  /** Column names in order, as D1 returned them. */
  columns: string[];
}

/**
 * Keyset pages: never OFFSET, which reads every skipped row again. Rows of
 * other dates inside the range are not selected.
 */
const PAGE_SQL = "SELECT * FROM traffic_events WHERE event_date = ?1 AND id > ?2 AND id <= ?3 ORDER BY id LIMIT ?4";

/**
 * Pages start small and grow toward the page row limit, but never past
 * PAGE_TARGET_BYTES of JSON: a page's size in memory follows its rows' width,
 * so wide rows come fewer at a time and memory stays bounded whatever the
 * table holds.
 */
const FIRST_PAGE_ROWS = 100;
export const PAGE_TARGET_BYTES = 4 * 1024 * 1024;

function nextPageRows(current: number, bytesPerRow: number, maxRows: number): number {
  const byBytes = Math.floor(PAGE_TARGET_BYTES / Math.max(bytesPerRow, 1));
  return Math.max(1, Math.min(maxRows, current * 4, byBytes));
}

/**
 * The rows of `date` with rowid in [rowidLo, rowidHi], as JSON Lines pages,
 * in id order. The next page is fetched while the caller works on this one.
 * The archiver and cleanup's verification both read through here, so they
 * see the same bytes.
 */
export async function* rangePages(
  db: PageSource,
  range: { date: string; rowidLo: number; rowidHi: number; maxPageRows: number },
): AsyncGenerator<RangePage> {
  const statement = db.prepare(PAGE_SQL);
  type Page = { results: (Record<string, unknown> & { id: number })[]; meta: { rows_read: number } };
  const fetchPage = (after: number, limit: number): Promise<Page> => {
    const page = statement
      .bind(range.date, after, range.rowidHi, limit)
      .all<Record<string, unknown> & { id: number }>();
    // Fetched ahead: a failure surfaces when the page is awaited, not as an unhandled rejection.
    page.catch(() => {});
    return page;
  };
  let limit = Math.min(FIRST_PAGE_ROWS, range.maxPageRows);
  let next: Promise<Page> | null = fetchPage(range.rowidLo - 1, limit);
  while (next) {
    // Yield to the event loop once a page. The next page is usually fetched
    // already, so without this a chunk runs as one long chain of microtasks:
    // measured locally, any request arriving meanwhile was dropped ("Network
    // connection lost") and the whole wrangler dev stack died.
    await new Promise((resolve) => setTimeout(resolve, 0));
    const page: Page = await next;
    const last = page.results.at(-1);
    if (!last) {
      if (page.meta.rows_read > 0)
        yield { bytes: new Uint8Array(0), rows: 0, rowsRead: page.meta.rows_read, columns: [] };
      return;
    }
    const bytes = encodeRows(page.results);
    // A short page is the last one.
    const full = page.results.length === limit;
    limit = nextPageRows(limit, bytes.byteLength / page.results.length, range.maxPageRows);
    next = full ? fetchPage(last.id, limit) : null;
    yield {
      bytes,
      rows: page.results.length,
      rowsRead: page.meta.rows_read,
      columns: Object.keys(page.results[0] ?? {}),
    };
  }
}
