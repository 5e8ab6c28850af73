import { encodeRows, UnencodableValueError } from "./jsonl.ts";

/** The part of D1's API the reader needs; a D1Database is one. */
export interface PageSource {
  prepare(query: string): {
    bind(...values: unknown[]): {
      all<T = Record<string, unknown>>(): Promise<{ results: T[]; meta: { rows_read: number } }>;
    };
  };
}

/** A piece of a range as archived bytes: a page, or part of one. */
export interface RangePage {
  /** The piece's rows as UTF-8 JSON Lines. */
  bytes: Uint8Array;
  rows: number;
  /** D1's own count of rows read for the piece. */
  rowsRead: number;
  /** Column names in order, as the table declares them. */
  columns: string[];
  /** Milliseconds spent waiting for D1's answers, and encoding rows as JSON Lines, for this piece. */
  waitMs: number;
  encodeMs: number;
}

/**
 * A page holds at most about PAGE_TARGET_BYTES of values, whatever the rows'
 * width: pages start small and grow toward the page row limit while rows are
 * narrow, and a row wider than the page's share (PAGE_TARGET_BYTES / page
 * rows) comes back from the page query as its id and width alone, to be
 * read in a batch of wide rows bounded the same way. So 5000 narrow rows
 * followed by rows with 10 KB user agents never make a 50 MB answer.
 */
const FIRST_PAGE_ROWS = 100;
export const PAGE_TARGET_BYTES = 4 * 1024 * 1024;

/** Extra columns of the page query; never archived. */
const WIDTH = "__width";
const NULLS = "__nulls";

type Row = Record<string, unknown> & { id: number };
type PageRow = Row & { [WIDTH]: number; [NULLS]: number };
type Result<T> = { results: T[]; meta: { rows_read: number } };

function quote(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * The page query. Per row, SQLite also returns its width (characters of
 * all values as text) and how many of its values are NULL; a row wider than
 * ?5 has every value but its id replaced by NULL. `OFFSET 0` keeps SQLite
 * from flattening the subquery, which would compute the width once per
 * column. The NULL count finds non-finite REALs: D1 answers ±Infinity as
 * null, so a row with more nulls in JS than in SQLite held one.
 */
function pageSql(columns: readonly string[]): string {
  const width = columns.map((c) => `ifnull(length(${quote(c)}), 0)`).join(" + ");
  const nulls = columns.map((c) => `(${quote(c)} IS NULL)`).join(" + ");
  const select = columns.map((c) =>
    c === "id" ? "id" : `CASE WHEN ${WIDTH} <= ?5 THEN ${quote(c)} END AS ${quote(c)}`,
  );
  return `SELECT ${select.join(", ")}, ${WIDTH}, ${NULLS} FROM (
    SELECT *, ${width} AS ${WIDTH}, ${nulls} AS ${NULLS} FROM traffic_events
    WHERE event_date = ?1 AND id > ?2 AND id <= ?3 ORDER BY id LIMIT ?4 OFFSET 0)`;
}

/** Wide rows of one page by id (a JSON array), in id order. */
function wideRowsSql(columns: readonly string[]): string {
  const nulls = columns.map((c) => `(t.${quote(c)} IS NULL)`).join(" + ");
  return `SELECT t.*, ${nulls} AS ${NULLS}
    FROM json_each(?2) AS j CROSS JOIN traffic_events AS t ON t.id = j.value
    WHERE t.event_date = ?1 ORDER BY t.id`;
}

/** traffic_events' columns in table order, as `SELECT *` returns them. */
async function tableColumns(db: PageSource): Promise<string[]> {
  const { results } = await db.prepare("PRAGMA table_info(traffic_events)").bind().all<{ name: string }>();
  return results.map((c) => c.name);
}

/** The widest row a page of `limit` rows returns whole, in characters. */
function widthLimitFor(limit: number): number {
  return Math.max(1, Math.floor(PAGE_TARGET_BYTES / limit));
}

function nextPageRows(current: number, bytesPerRow: number, maxRows: number): number {
  const byBytes = Math.floor(PAGE_TARGET_BYTES / Math.max(bytesPerRow, 1));
  return Math.max(1, Math.min(maxRows, current * 4, byBytes));
}

/** Drops the query's extra columns, after checking no value became null on its way out of D1. */
function checked(row: Row & { [NULLS]?: number }, columns: readonly string[]): Row {
  let nulls = 0;
  for (const column of columns) if (row[column] === null) nulls++;
  if (nulls !== row[NULLS]) {
    throw new UnencodableValueError(
      `row id ${row.id} has a non-finite number (D1 returns ±Infinity as null) in one of its columns`,
    );
  }
  // Undefined properties are left out by JSON.stringify, and cost less than `delete`.
  (row as Record<string, unknown>)[WIDTH] = undefined;
  (row as Record<string, unknown>)[NULLS] = undefined;
  return row;
}

/**
 * The rows of `date` with rowid in [rowidLo, rowidHi], as JSON Lines pieces
 * of at most about PAGE_TARGET_BYTES, in id order. The next page is fetched
 * while the caller works on this one. A value JSON cannot carry exactly
 * fails with UnencodableValueError, naming the row.
 */
export async function* rangePages(
  db: PageSource,
  range: { date: string; rowidLo: number; rowidHi: number; maxPageRows: number },
): AsyncGenerator<RangePage> {
  const columns = await tableColumns(db);
  const pageStatement = db.prepare(pageSql(columns));
  const wideStatement = db.prepare(wideRowsSql(columns));
  const fetchPage = (after: number, limit: number): Promise<Result<PageRow>> => {
    const page = pageStatement.bind(range.date, after, range.rowidHi, limit, widthLimitFor(limit)).all<PageRow>();
    // Fetched ahead: a failure surfaces when the page is awaited, not as an unhandled rejection.
    page.catch(() => {});
    return page;
  };

  let limit = Math.min(FIRST_PAGE_ROWS, range.maxPageRows);
  let next: Promise<Result<PageRow>> | null = fetchPage(range.rowidLo - 1, limit);
  while (next) {
    // Yield to the event loop once a page. The next page is usually fetched
    // already, so without this a chunk runs as one long chain of microtasks:
    // measured locally, any request arriving meanwhile was dropped ("Network
    // connection lost") and the whole wrangler dev stack died.
    await new Promise((resolve) => setTimeout(resolve, 0));
    const waitStarted = Date.now();
    const page: Result<PageRow> = await next;
    const waitMs = Date.now() - waitStarted;
    const rows = page.results;
    const last = rows.at(-1);
    if (!last) {
      if (page.meta.rows_read > 0) {
        yield { bytes: new Uint8Array(0), rows: 0, rowsRead: page.meta.rows_read, columns, waitMs, encodeMs: 0 };
      }
      return;
    }
    const widthLimit = widthLimitFor(limit);
    let widthSum = 0;
    for (const row of rows) widthSum += row[WIDTH];
    // A short page is the last one. The next page's size follows this one's
    // width, wide rows included.
    const full = rows.length === limit;
    limit = nextPageRows(limit, widthSum / rows.length, range.maxPageRows);
    next = full ? fetchPage(last.id, limit) : null;

    if (rows.every((r) => r[WIDTH] <= widthLimit)) {
      const encodeStarted = Date.now();
      const bytes = encodeRows(rows.map((r) => checked(r, columns)));
      const encodeMs = Date.now() - encodeStarted;
      yield { bytes, rows: rows.length, rowsRead: page.meta.rows_read, columns, waitMs, encodeMs };
    } else {
      yield* withWideRows(rows, widthLimit, page.meta.rows_read, waitMs);
    }
  }

  /**
   * A page with wide rows, in id order: its narrow rows as they came, its
   * wide rows read again in batches of at most PAGE_TARGET_BYTES of width
   * (one row at least); a piece is yielded whenever it reaches that size.
   */
  async function* withWideRows(
    rows: PageRow[],
    widthLimit: number,
    pageRowsRead: number,
    pageWaitMs: number,
  ): AsyncGenerator<RangePage> {
    const wideIds = rows.filter((r) => r[WIDTH] > widthLimit);
    let nextWide = 0; // the first wide row not yet asked for
    let batch: Row[] = [];
    let inBatch = 0; // cursor in batch: both are in id order
    let batchLastId = Number.NEGATIVE_INFINITY;
    let rowsRead = pageRowsRead;
    let waitMs = pageWaitMs;
    let pending: Row[] = [];
    let pendingWidth = 0;
    const flush = (): RangePage => {
      const encodeStarted = Date.now();
      const bytes = encodeRows(pending);
      const piece = { bytes, rows: pending.length, rowsRead, columns, waitMs, encodeMs: Date.now() - encodeStarted };
      pending = [];
      pendingWidth = 0;
      rowsRead = 0;
      waitMs = 0;
      return piece;
    };
    const readWideBatch = async (): Promise<void> => {
      const ids: number[] = [];
      let width = 0;
      for (; nextWide < wideIds.length; nextWide++) {
        const row = wideIds[nextWide] as PageRow;
        if (ids.length > 0 && width + row[WIDTH] > PAGE_TARGET_BYTES) break;
        ids.push(row.id);
        width += row[WIDTH];
      }
      batchLastId = ids.at(-1) ?? batchLastId;
      const waitStarted = Date.now();
      const fetched = await wideStatement.bind(range.date, JSON.stringify(ids)).all<Row>();
      waitMs += Date.now() - waitStarted;
      rowsRead += fetched.meta.rows_read;
      batch = fetched.results;
      inBatch = 0;
    };
    for (const row of rows) {
      if (row[WIDTH] <= widthLimit) {
        pending.push(checked(row, columns));
      } else {
        if (row.id > batchLastId) await readWideBatch();
        while (inBatch < batch.length && (batch[inBatch] as Row).id < row.id) inBatch++;
        // A wide row deleted or moved to another date since its page was read is not archived.
        const found = batch[inBatch];
        if (found?.id === row.id) pending.push(checked(found, columns));
      }
      pendingWidth += row[WIDTH];
      if (pendingWidth >= PAGE_TARGET_BYTES) yield flush();
    }
    if (pending.length > 0 || rowsRead > 0) yield flush();
  }
}
