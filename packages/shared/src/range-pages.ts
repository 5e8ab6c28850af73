import { archivedLineId } from "./archive-reader.ts";
import { type ArchivedTable, dayRangeSql, daySql, idSql, tableSql } from "./archived-table/archived-table.ts";
import { readTableColumns, type TableColumn } from "./exact-rows.ts";
import { encodeRows, jsonLineSql, quoteIdentifier, UnencodableValueError } from "./jsonl.ts";
import type { DayRollup } from "./stats/path-rollup.ts";
import {
  countLines,
  type StatsColumns,
  StatsColumnsError,
  statsColumnNames,
  valuesOfRow,
} from "./stats/stats-columns.ts";
import { balanced, sqlString } from "./wide-sql.ts";

const encoder = new TextEncoder();

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
  /** Written by SQLite (a text page) or encoded here (a row page); see below. */
  kind: "text" | "rows";
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
 * Pages come in two kinds.
 *
 * A **text page** is JSON Lines written by SQLite: the page query builds each
 * row's line with json_object() and joins the page's lines with
 * group_concat(), so D1 answers one string per page and the Worker neither
 * builds row objects nor encodes them (measured locally on 300 000 rows,
 * reading, encoding and gzip: 4.4 s as row pages, 3.0-3.3 s as text pages).
 * json_object writes keys in column order and escapes strings as
 * JSON.stringify does, so for text and integers the lines are the same bytes
 * a row page would make (checked by checksum on the seeded day). D1 limits any string to
 * 2 MB, a computed one too (local D1 as well): text pages aim at
 * TEXT_PAGE_BYTES, and one that D1 refuses as too big is read again smaller.
 *
 * A **row page** is the rows as objects, encoded here. It reads a page that
 * holds a row SQLite cannot write exactly (a REAL: json_quote keeps 15
 * digits; an integer beyond ±2^53; a BLOB) and a row whose line alone is too
 * big for a text page, and the pages after it while such rows keep coming
 * (ROWS_AGAIN_FROM: a table with a REAL column would read each page twice),
 * and checks every value, so a value JSON cannot carry exactly fails with
 * UnencodableValueError naming the row. A row page holds
 * at most about PAGE_TARGET_BYTES of values, whatever the rows' width: a row
 * wider than the page's share (PAGE_TARGET_BYTES / page rows) comes back from
 * its query as its id and width alone, to be read in a batch of wide rows
 * bounded the same way.
 *
 * Pages start at FIRST_PAGE_ROWS rows and grow toward the page row limit as
 * long as their lines fit the byte target.
 */
const FIRST_PAGE_ROWS = 100;
/**
 * Row pages go on while at least one row in this many of the last one holds
 * a number SQLite cannot write exactly: a page of 100 rows or more then
 * almost surely holds one too, and would be read twice, as text and as rows.
 */
const ROWS_AGAIN_FROM = 50;
export const TEXT_PAGE_BYTES = 1_200_000;
export const PAGE_TARGET_BYTES = 4 * 1024 * 1024;

/** The text page query's name for a row's id, whatever the id column's name. */
const ID = "__id";
/** What the row page query says of each row besides its values (see pageSql); never archived. */
const WIDTH = "__width";
const INEXACT = "__inexact";

type Row = Record<string, unknown>;
type PageRow = Row & { [WIDTH]: number; [INEXACT]: string | null };

/** A text page's answer: the page's lines, or why it has none. */
interface TextPage {
  /** Rows the query read (at most its LIMIT), and how many of them have a line. */
  scanned: number;
  lines: number;
  /** The last row's id, and the lines joined by newlines. */
  last: number | null;
  text: string | null;
}

/**
 * Where a range read counts the path statistics of the rows it gives out:
 * each row once, as it is archived, from the values of its line (a text
 * page) or row (a row page): no row is read twice for them.
 */
export interface StatsSink {
  columns: StatsColumns;
  rollup: DayRollup;
}
type TextAnswer = (TextPage & { rowsRead: number }) | "too big";

/**
 * The text page query (see above). A row's line is NULL when one of its
 * numeric values (columns without TEXT affinity: only these hold numbers)
 * is a REAL or an integer beyond ±2^53 (a text or BLOB value there also
 * counts: it compares above any number), or a TEXT column holds a BLOB, so
 * `lines` < `scanned` says the page needs a row page. The conditions are a
 * balanced OR: a chain over 100 columns would be deeper than D1 allows.
 */
function textPageSql(target: ArchivedTable, columns: readonly TableColumn[]): string {
  const inexact = columns.flatMap((c) => {
    const q = quoteIdentifier(c.name);
    // A BLOB that looks like SQLite's binary JSON would be written as JSON, not refused.
    if (c.affinity === "TEXT") return [`typeof(${q}) = 'blob'`];
    return [`${q} > 9007199254740991`, `${q} < -9007199254740991`, `typeof(${q}) = 'real'`];
  });
  const id = idSql(target);
  return `SELECT count(*) AS scanned, count(line) AS lines, max(${ID}) AS last, group_concat(line, char(10)) AS text
    FROM (SELECT ${id} AS ${ID}, CASE WHEN ${balanced(inexact, "OR", "0")} THEN NULL ELSE ${jsonLineSql(columns.map((c) => c.name))} END AS line
      FROM ${tableSql(target)} WHERE ${dayRangeSql(target, 1, "(]")} ORDER BY ${id} LIMIT ?4)`;
}

/**
 * D1's error for a text page over its string limit. (A BLOB never reaches
 * the page's JSON: its row's line is NULL, see textPageSql.)
 */
function isTooBig(error: unknown): boolean {
  return /too big|TOOBIG/i.test(error instanceof Error ? error.message : String(error));
}

/**
 * The first value of a row that JSON cannot carry with its type, as
 * "column:why", or NULL. D1 returns integers as doubles, so one beyond ±2^53
 * may come back rounded; it returns ±Infinity as null; a column without type
 * affinity keeps REAL 3.0 apart from INTEGER 3, and JSON would restore it as
 * the integer. (A CASE, not a function: D1 allows 32 arguments per function.)
 */
function inexactSql(columns: readonly TableColumn[], prefix = ""): string {
  const whens = columns
    .filter((c) => c.affinity !== "TEXT")
    .map((c) => {
      const q = `${prefix}${quoteIdentifier(c.name)}`;
      const why = (kind: string) => sqlString(`${c.name}:${kind}`);
      const integral =
        c.affinity === "BLOB"
          ? ` WHEN typeof(${q}) = 'real' AND ${q} = CAST(${q} AS INTEGER) AND ${q} BETWEEN -9007199254740991 AND 9007199254740991 THEN ${why("real")}`
          : "";
      return ` WHEN typeof(${q}) = 'integer' AND (${q} > 9007199254740991 OR ${q} < -9007199254740991) THEN ${why("integer")} WHEN typeof(${q}) = 'real' AND ${q} IN (9e999, -9e999) THEN ${why("infinite")}${integral}`;
    });
  return whens.length > 0 ? `CASE${whens.join("")} END` : "NULL";
}

/**
 * A row's id slot in the row page and wide-row queries: "width id inexact",
 * its width (characters of all values as text), its id and its first value
 * JSON cannot carry (inexactSql; empty if none). Carried in the id column so
 * that the answer has as many columns as the table, at most D1's 100.
 */
function metaSql(target: ArchivedTable, table: readonly TableColumn[], width: string, prefix = ""): string {
  return `printf('%d %d %s', ${width}, ${prefix}${idSql(target)}, ${inexactSql(table, prefix)}) AS ${idSql(target)}`;
}

/** Reads a row's id slot (metaSql) into its id, width and inexact value. */
function unpack(row: Row, idColumn: string): PageRow {
  const meta = String(row[idColumn]);
  const first = meta.indexOf(" ");
  const second = meta.indexOf(" ", first + 1);
  const page = row as PageRow;
  page[WIDTH] = Number(meta.slice(0, first));
  page[idColumn] = Number(meta.slice(first + 1, second));
  page[INEXACT] = meta.slice(second + 1) || null;
  return page;
}

/**
 * The row page query. Each row's id slot holds its meta (metaSql); a row
 * wider than ?5 has every value but its id replaced by NULL. `OFFSET 0` keeps
 * SQLite from flattening the subquery, which would compute the meta once per
 * column; the subquery selects the table's columns with the id's slot
 * replaced by the meta, so it too has no more columns than the table.
 */
function pageSql(target: ArchivedTable, table: readonly TableColumn[]): string {
  const width = balanced(
    table.map((c) => `ifnull(length(${quoteIdentifier(c.name)}), 0)`),
    "+",
    "0",
  );
  const id = idSql(target);
  const inner = table.map((c) => (c.name === target.id ? metaSql(target, table, width) : quoteIdentifier(c.name)));
  const outer = table.map((c) =>
    c.name === target.id
      ? id
      : `CASE WHEN CAST(${id} AS INTEGER) <= ?5 THEN ${quoteIdentifier(c.name)} END AS ${quoteIdentifier(c.name)}`,
  );
  // Ordered by the table's id, qualified: the subquery's own id column is the meta.
  return `SELECT ${outer.join(", ")} FROM (
    SELECT ${inner.join(", ")} FROM ${tableSql(target)}
    WHERE ${dayRangeSql(target, 1, "(]")} ORDER BY ${tableSql(target)}.${id} LIMIT ?4 OFFSET 0)`;
}

/** Wide rows of one page by id (a JSON array), in id order, with their meta (width 0) in the id slot. */
function wideRowsSql(target: ArchivedTable, table: readonly TableColumn[]): string {
  const select = table.map((c) =>
    c.name === target.id ? metaSql(target, table, "0", "t.") : `t.${quoteIdentifier(c.name)}`,
  );
  return `SELECT ${select.join(", ")}
    FROM json_each(?2) AS j CROSS JOIN ${tableSql(target)} AS t ON ${idSql(target, "t")} = j.value
    WHERE ${daySql(target, "t")} = ?1 ORDER BY ${idSql(target, "t")}`;
}

/**
 * The rows of ids ?1 (a JSON array), each TEXT value as the hex of its bytes.
 * D1 answers text whose bytes are not UTF-8 with U+FFFD in their place, so
 * an archived U+FFFD may stand for bytes the archive does not hold: such a
 * row is read again here, as bytes, to tell.
 */
function textBytesSql(target: ArchivedTable, columns: readonly string[]): string {
  // Not the id: it is an integer, and a second id column would hide the first.
  const hex = columns
    .filter((c) => c !== target.id)
    .map((c) => {
      const q = quoteIdentifier(c);
      return `CASE typeof(${q}) WHEN 'text' THEN hex(CAST(${q} AS BLOB)) END AS ${q}`;
    });
  const id = idSql(target);
  return `SELECT ${id}, ${hex.join(", ")} FROM ${tableSql(target)} WHERE ${id} IN (SELECT value FROM json_each(?1))`;
}

const REPLACEMENT = "\uFFFD";
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Whether hex-encoded bytes are UTF-8. */
function isUtf8(hex: string): boolean {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  try {
    strictUtf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** The ids of the lines of `text` that hold a U+FFFD. */
function idsOfLinesWithReplacement(text: string, idColumn: string): number[] {
  const ids: number[] = [];
  for (let at = text.indexOf(REPLACEMENT); at !== -1; ) {
    const start = text.lastIndexOf("\n", at) + 1;
    const end = text.indexOf("\n", at);
    const line = text.slice(start, end === -1 ? text.length : end);
    ids.push(archivedLineId(line, idColumn));
    if (end === -1) break;
    at = text.indexOf(REPLACEMENT, end);
  }
  return ids;
}

/**
 * A text page's lines as UTF-8, each ending in a newline. Encoded as it is
 * and the newline added to the bytes: `${text}\n` would first copy the
 * page's megabyte of text into a new string, for each page.
 */
function linesBytes(text: string): Uint8Array {
  const encoded = encoder.encode(text);
  const bytes = new Uint8Array(encoded.byteLength + 1);
  bytes.set(encoded);
  bytes[encoded.byteLength] = 0x0a;
  return bytes;
}

/** Whether UTF-8 bytes hold U+FFFD (EF BF BD). */
function hasReplacementBytes(bytes: Uint8Array): boolean {
  for (let at = bytes.indexOf(0xef); at !== -1; at = bytes.indexOf(0xef, at + 1)) {
    if (bytes[at + 1] === 0xbf && bytes[at + 2] === 0xbd) return true;
  }
  return false;
}

/** The widest row a page of `limit` rows returns whole, in characters. */
function widthLimitFor(limit: number): number {
  return Math.max(1, Math.floor(PAGE_TARGET_BYTES / limit));
}

/** The next page's LIMIT: four times this one's, as far as the byte target holds at this page's line size. */
function nextPageRows(current: number, bytesPerLine: number, maxRows: number): number {
  const byBytes = Math.floor(TEXT_PAGE_BYTES / Math.max(bytesPerLine, 1));
  return Math.max(1, Math.min(maxRows, current * 4, byBytes));
}

/** Drops the row's meta, after checking that SQLite found no value JSON cannot carry with its type. */
function checked(row: PageRow, idColumn: string): Row {
  const inexact = row[INEXACT];
  if (inexact) {
    const at = inexact.lastIndexOf(":");
    const column = inexact.slice(0, at);
    const kind = inexact.slice(at + 1);
    throw new UnencodableValueError(
      kind === "integer"
        ? `row id ${row[idColumn]} has an integer beyond ±2^53 in column ${column}, which D1 may have rounded`
        : kind === "infinite"
          ? `row id ${row[idColumn]} has a non-finite number in column ${column} (D1 returns ±Infinity as null)`
          : `row id ${row[idColumn]} has an integral REAL (${String(row[column])}) in column ${column}, which has no type affinity: JSON would restore it as an INTEGER`,
    );
  }
  // Undefined properties are left out by JSON.stringify, and cost less than `delete`.
  (row as Record<string, unknown>)[WIDTH] = undefined;
  (row as Record<string, unknown>)[INEXACT] = undefined;
  return row;
}

/**
 * The rows of `table` of day `date` with id in [rowidLo, rowidHi], as JSON Lines pieces
 * of at most about TEXT_PAGE_BYTES (PAGE_TARGET_BYTES for row pages), in id
 * order. The next text page is fetched while the caller works on this one.
 * A value JSON cannot carry exactly fails with UnencodableValueError, naming
 * the row. With `stats`, each row given out is counted in its rollup.
 */
export async function* rangePages(
  db: PageSource,
  range: {
    table: ArchivedTable;
    date: string;
    rowidLo: number;
    rowidHi: number;
    maxPageRows: number;
    stats?: StatsSink;
  },
): AsyncGenerator<RangePage> {
  const target = range.table;
  const table = await readTableColumns(db, target);
  const columns = table.map((c) => c.name);
  const sink = range.stats ?? null;
  if (sink) {
    const missing = statsColumnNames(sink.columns).filter((name) => !columns.includes(name));
    if (missing.length > 0) {
      throw new StatsColumnsError(
        `the stats columns ${missing.join(", ")} are not columns of ${target.name}; fix its stats configuration`,
      );
    }
  }
  /** Counts rows as they are given out: once each, whichever kind of page holds them. */
  const countRows = (rows: readonly Row[]) => {
    if (sink) for (const row of rows) sink.rollup.add(valuesOfRow(sink.columns, row));
  };
  const countLinesOf = (text: string) => {
    if (sink) countLines(sink.columns, columns, text, sink.rollup);
  };
  const textStatement = db.prepare(textPageSql(target, table));
  const rowStatement = db.prepare(pageSql(target, table));
  const wideStatement = db.prepare(wideRowsSql(target, table));
  const textBytesStatement = db.prepare(textBytesSql(target, columns));
  /** A row's id, from its id column (unpack writes it there). */
  const idOf = (row: Row): number => row[target.id] as number;
  /**
   * Fails the chunk, naming the row and column, if a U+FFFD in these lines
   * stands for bytes that are not UTF-8: JSON cannot carry them, and the
   * archived row could never be matched by cleanup. Returns D1's rows read.
   */
  const checkText = async (text: string): Promise<number> => {
    if (!text.includes(REPLACEMENT)) return 0;
    const ids = idsOfLinesWithReplacement(text, target.id);
    const { results, meta } = await textBytesStatement.bind(JSON.stringify(ids)).all<Record<string, unknown>>();
    for (const row of results) {
      for (const column of columns) {
        const hex = row[column];
        if (typeof hex === "string" && !isUtf8(hex)) {
          throw new UnencodableValueError(
            `row id ${String(row[target.id])} has text that is not valid UTF-8 in column ${column}, which JSON cannot carry`,
          );
        }
      }
    }
    return meta.rows_read;
  };
  const checkBytes = (bytes: Uint8Array): Promise<number> =>
    // EF BF BD is U+FFFD in UTF-8; most pages have none, and are not decoded here.
    hasReplacementBytes(bytes) ? checkText(new TextDecoder().decode(bytes)) : Promise.resolve(0);
  const fetchText = (after: number, limit: number): Promise<TextAnswer> => {
    const page = textStatement
      .bind(range.date, after, range.rowidHi, limit)
      .all<TextPage>()
      .then(
        ({ results, meta }): TextAnswer => ({ ...(results[0] as TextPage), rowsRead: meta.rows_read }),
        (error: unknown): TextAnswer => {
          if (isTooBig(error)) return "too big";
          throw error;
        },
      );
    // Fetched ahead: a failure surfaces when the page is awaited, not as an unhandled rejection.
    page.catch(() => {});
    return page;
  };

  let after = range.rowidLo - 1;
  let limit = Math.min(FIRST_PAGE_ROWS, range.maxPageRows);
  /** Rows D1 read for pages that were read again: counted with the next piece. */
  let rereadRows = 0;
  let next: Promise<TextAnswer> | null = fetchText(after, limit);
  while (next) {
    // Yield to the event loop once a page. The next page is usually fetched
    // already, so without this a chunk runs as one long chain of microtasks:
    // measured locally, any request arriving meanwhile was dropped ("Network
    // connection lost") and the whole wrangler dev stack died.
    await new Promise((resolve) => setTimeout(resolve, 0));
    const waitStarted = Date.now();
    const page = await next;
    const waitMs = Date.now() - waitStarted;
    next = null;
    if (page === "too big") {
      // Over D1's string limit: the page again at a quarter of the rows, or one row as a row page.
      if (limit > 1) {
        limit = Math.ceil(limit / 4);
        next = fetchText(after, limit);
        continue;
      }
    } else if (page.lines === page.scanned && page.last !== null) {
      const encodeStarted = Date.now();
      const bytes = linesBytes(page.text as string);
      const encodeMs = Date.now() - encodeStarted;
      const checkReads = await checkText(page.text as string);
      const full = page.scanned === limit;
      after = page.last;
      limit = nextPageRows(limit, bytes.byteLength / page.lines, range.maxPageRows);
      if (full) next = fetchText(after, limit);
      const rowsRead = page.rowsRead + rereadRows + checkReads;
      countLinesOf(page.text as string);
      yield { kind: "text", bytes, rows: page.lines, rowsRead, columns, waitMs, encodeMs };
      rereadRows = 0;
      continue;
    } else if (page.scanned === 0) {
      if (page.rowsRead + rereadRows > 0) {
        const rowsRead = page.rowsRead + rereadRows;
        yield { kind: "text", bytes: new Uint8Array(0), rows: 0, rowsRead, columns, waitMs, encodeMs: 0 };
      }
      return;
    } else {
      rereadRows += page.rowsRead;
    }
    // A row SQLite cannot write exactly, or one line too big for a text page: this page as rows. The
    // next ones too, as long as such rows keep coming (a table with a REAL column has them on every
    // page: trying text first would read each page twice); then text again.
    for (let earlierReads = rereadRows; ; earlierReads = 0) {
      // Yield to the event loop once a page, as above.
      if (earlierReads === 0) await new Promise((resolve) => setTimeout(resolve, 0));
      const read = yield* rowPage(after, limit, earlierReads);
      if (!read.full) return;
      after = read.lastId;
      limit = nextPageRows(limit, read.widthPerRow, range.maxPageRows);
      if (read.inexactRows * ROWS_AGAIN_FROM < read.rows) break;
    }
    next = fetchText(after, limit);
  }

  /**
   * One row page of up to `limit` rows after id `after`, as pieces; its last
   * id, whether it was full, and its rows' mean width.
   */
  async function* rowPage(
    after: number,
    limit: number,
    earlierReads: number,
  ): AsyncGenerator<
    RangePage,
    { lastId: number; full: boolean; widthPerRow: number; rows: number; inexactRows: number }
  > {
    const widthLimit = widthLimitFor(limit);
    const waitStarted = Date.now();
    const page = await rowStatement.bind(range.date, after, range.rowidHi, limit, widthLimit).all<Row>();
    const waitMs = Date.now() - waitStarted;
    const rowsRead = page.meta.rows_read + earlierReads;
    const rows = page.results.map((row) => unpack(row, target.id));
    const last = rows.at(-1);
    if (!last) {
      if (rowsRead > 0)
        yield { kind: "rows", bytes: new Uint8Array(0), rows: 0, rowsRead, columns, waitMs, encodeMs: 0 };
      return { lastId: after, full: false, widthPerRow: 0, rows: 0, inexactRows: 0 };
    }
    // Before encoding, which drops each row's meta.
    const lastId = idOf(last);
    let width = 0;
    let inexactRows = 0;
    for (const row of rows) {
      width += row[WIDTH];
      for (const column of columns) {
        const value = row[column];
        if (typeof value === "number" && !Number.isSafeInteger(value)) {
          inexactRows++;
          break;
        }
      }
    }
    if (rows.every((r) => r[WIDTH] <= widthLimit)) {
      const encodeStarted = Date.now();
      const bytes = encodeRows(rows.map((row) => checked(row, target.id)));
      const encodeMs = Date.now() - encodeStarted;
      const checkReads = await checkBytes(bytes);
      countRows(rows);
      yield { kind: "rows", bytes, rows: rows.length, rowsRead: rowsRead + checkReads, columns, waitMs, encodeMs };
    } else {
      yield* withWideRows(rows, widthLimit, rowsRead, waitMs);
    }
    return {
      lastId,
      full: rows.length === limit,
      widthPerRow: width / rows.length,
      rows: rows.length,
      inexactRows,
    };
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
    let batch: PageRow[] = [];
    let inBatch = 0; // cursor in batch: both are in id order
    let batchLastId = Number.NEGATIVE_INFINITY;
    let rowsRead = pageRowsRead;
    let waitMs = pageWaitMs;
    let pending: Row[] = [];
    let pendingWidth = 0;
    const flush = async (): Promise<RangePage> => {
      const encodeStarted = Date.now();
      const bytes = encodeRows(pending);
      const checkReads = await checkBytes(bytes);
      countRows(pending);
      const piece: RangePage = {
        kind: "rows",
        bytes,
        rows: pending.length,
        rowsRead: rowsRead + checkReads,
        columns,
        waitMs,
        encodeMs: Date.now() - encodeStarted,
      };
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
        ids.push(idOf(row));
        width += row[WIDTH];
      }
      batchLastId = ids.at(-1) ?? batchLastId;
      const waitStarted = Date.now();
      const fetched = await wideStatement.bind(range.date, JSON.stringify(ids)).all<Row>();
      waitMs += Date.now() - waitStarted;
      rowsRead += fetched.meta.rows_read;
      batch = fetched.results.map((row) => unpack(row, target.id));
      inBatch = 0;
    };
    for (const row of rows) {
      // Taken before checked() drops the row's meta.
      const width = row[WIDTH];
      if (width <= widthLimit) {
        pending.push(checked(row, target.id));
      } else {
        if (idOf(row) > batchLastId) await readWideBatch();
        while (inBatch < batch.length && idOf(batch[inBatch] as PageRow) < idOf(row)) inBatch++;
        // A wide row deleted or moved to another date since its page was read is not archived.
        const found = batch[inBatch];
        if (found && idOf(found) === idOf(row)) pending.push(checked(found, target.id));
      }
      pendingWidth += width;
      if (pendingWidth >= PAGE_TARGET_BYTES) yield await flush();
    }
    if (pending.length > 0 || rowsRead > 0) yield await flush();
  }
}
