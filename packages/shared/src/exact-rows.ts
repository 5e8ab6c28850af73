import {
  type ArchivedTable,
  dayRangeSql,
  daySql,
  idSql,
  PLAIN_NAME,
  tableSql,
} from "./archived-table/archived-table.ts";
import { jsonLineSql, quoteIdentifier } from "./jsonl.ts";
import { balanced } from "./wide-sql.ts";

/**
 * The rule every delete and restore follows: a row may leave D1 only if
 * restoring its archive would give back exactly that row, every current
 * column of the table, same type and same value. This module writes the SQL
 * that enforces it, in the statements that delete or insert, from the
 * table's columns as they are now and the archive's columns as they were.
 *
 * - A column the archive lacks (added after archiving) must hold what a
 *   restore would put there: its default, or NULL.
 * - A column the archive has and the table lost (dropped, renamed) cannot be
 *   restored: the range is refused, nothing matched.
 * - A REAL is compared and restored exactly. SQLite's text-to-REAL and
 *   REAL-to-text conversions are each a unit in the last place off for about
 *   one double in six (see migrations/0006), so archived numbers that are not
 *   safe integers reach SQLite as [m, k], x = m * 2^k, rebuilt with an exact
 *   multiplication by a power of two from `archive_powers_of_two`.
 */

/** SQLite's column affinities (https://sqlite.org/datatype3.html §3.1). */
export type Affinity = "INTEGER" | "TEXT" | "BLOB" | "REAL" | "NUMERIC";

export interface TableColumn {
  name: string;
  affinity: Affinity;
  /** The column's DEFAULT as SQL (as PRAGMA table_info gives it), or null: what an INSERT without it stores. */
  defaultSql: string | null;
}

/** The part of D1's API reading columns needs; a D1Database is one. */
export interface ColumnSource {
  prepare(query: string): {
    bind(...values: unknown[]): { all<T>(): Promise<{ results: T[] }> };
  };
}

/** SQLite's affinity rules for a declared type, in their order. */
export function affinityOf(declaredType: string): Affinity {
  const t = declaredType.toUpperCase();
  if (t.includes("INT")) return "INTEGER";
  if (/CHAR|CLOB|TEXT/.test(t)) return "TEXT";
  if (t.includes("BLOB") || t.trim() === "") return "BLOB";
  if (/REAL|FLOA|DOUB/.test(t)) return "REAL";
  return "NUMERIC";
}

/** The archived table's columns in table order, as `SELECT *` returns them. */
export async function readTableColumns(db: ColumnSource, table: ArchivedTable): Promise<TableColumn[]> {
  const { results } = await db
    .prepare(`PRAGMA table_info(${tableSql(table)})`)
    .bind()
    .all<{ name: string; type: string; dflt_value: string | null }>();
  return results.map((c) => ({ name: c.name, affinity: affinityOf(c.type), defaultSql: c.dflt_value }));
}

/** A number as SQLite can take it exactly: a safe integer as it is, any other double as [m, k] with x = m * 2^k. */
export function exactNumber(x: number): number | [number, number] {
  if (Number.isSafeInteger(x) || !Number.isFinite(x)) return x;
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const high = view.getUint32(0);
  const exponent = (high >>> 20) & 0x7ff;
  // The 52 fraction bits, as an exact integer (below 2^53).
  let m = (high & 0xfffff) * 2 ** 32 + view.getUint32(4);
  let k: number;
  if (exponent === 0) {
    k = -1074; // subnormal: no implicit leading bit
  } else {
    m += 2 ** 52;
    k = exponent - 1075;
  }
  while (m % 2 === 0) {
    m /= 2;
    k++;
  }
  return [x < 0 ? -m : m, k];
}

/**
 * A window of archived lines (joined by newlines) as one JSON array of their
 * objects, each number that is not a safe integer written as [m, k]. Values
 * of archived rows are never arrays, so an array is always such a number.
 */
export function exactRowsJson(lines: string): string {
  return JSON.stringify(JSON.parse(`[${lines.replaceAll("\n", ",")}]`), (_key, value: unknown) =>
    typeof value === "number" ? exactNumber(value) : value,
  );
}

/**
 * The archived lines passed as a statement's JSON parameter ?1 (from
 * exactRowsJson), as rows `j` whose `j.value` is one row's object, parsed
 * once into SQLite's binary JSON: matching or inserting reads every column of
 * it, and on text SQLite would parse the row again for each column (measured
 * with node:sqlite on 200 000 seeded rows in batches of 5 000: the DELETE took
 * 1.9 s instead of 3.7 s). `LIMIT -1 OFFSET 0` keeps SQLite from flattening
 * the subquery, which would call jsonb() at every use.
 */
export const ARCHIVED_ROWS = "(SELECT jsonb(value) AS value FROM json_each(?1) LIMIT -1 OFFSET 0)";

/** The SQL for one table's rows against one archive's columns. */
export interface ExactMatch {
  /**
   * Deletes the rows of day ?2 with id in [?3, ?4] only if, together and in id
   * order, SQLite writes them as exactly the archived lines ?1 (joined by
   * newlines, as archived) and each of them is one SQLite writes exactly (no
   * REAL, no integer beyond ±2^53) with every column the archive lacks at
   * its restored value: then each is an archived row and no other row is
   * there. Otherwise it deletes nothing, and the window is matched row by
   * row. The check runs once per statement (MATERIALIZED), not per row.
   * Measured with node:sqlite on 300 000 seeded rows in windows of about
   * 1 MiB: 1.4 s, against 2.8-3.3 s matched row by row and 0.9 s deleted by
   * id range with no check at all.
   */
  deleteIfSameLines: string;
  /** Deletes the rows of day ?2 with id in [?3, ?4] that equal an archived row of ?1 (exactRowsJson). */
  deleteArchived: string;
  /** SQL that holds when D1's row `t` is exactly what restoring the ARCHIVED_ROWS row `j` gives. */
  rowIsArchived: string;
  /** The id of the ARCHIVED_ROWS row `j`, as SQL. */
  archivedId: string;
  /** Restore: the archived columns, and their exact values from `j`, for an INSERT … SELECT. */
  insertColumns: string;
  insertValues: string;
}

/**
 * The exact-match SQL for the table's current columns and an archive's
 * columns, or why no row of that archive can be matched.
 */
export function exactMatch(
  target: ArchivedTable,
  table: readonly TableColumn[],
  archived: readonly string[],
): ExactMatch | string {
  const byName = new Map(table.map((c) => [c.name, c]));
  const gone = archived.filter((name) => !byName.has(name));
  if (gone.length > 0) {
    return `the table ${target.name} has no column ${gone.map((c) => JSON.stringify(c)).join(", ")} any more, which the archive holds: a restore could not put it back, so no row of it is deleted. Add the column back (or rename it back), then trigger cleanup again`;
  }
  // Archived names go into JSON paths: only plain identifiers are accepted.
  if (archived.some((c) => !PLAIN_NAME.test(c)) || !archived.includes(target.id)) {
    return `the archive's columns ${JSON.stringify(archived)} cannot be matched (need the id column ${JSON.stringify(target.id)} and plain names)`;
  }
  const t = (c: string) => `t.${quoteIdentifier(c)}`;
  const plain = (c: string) => quoteIdentifier(c);
  const path = (c: string) => `'$.${c}'`;
  // x = m * 2^k, both exact: m has at most 53 bits, 2^k comes from a table of exact powers.
  const exactReal = (c: string) =>
    `CAST(j.value ->> '$.${c}[0]' AS REAL) * (SELECT v FROM archive_powers_of_two WHERE k = j.value ->> '$.${c}[1]')`;
  const extra = table.filter((c) => !archived.includes(c.name));
  /** A column the archive lacks holds what an INSERT without it stores. */
  const atRestoredValue = (c: TableColumn, row: (name: string) => string) =>
    `${row(c.name)} IS (${c.defaultSql ?? "NULL"})`;

  const matchColumn = (name: string): string => {
    const column = byName.get(name) as TableColumn;
    const archivedValue = `j.value ->> ${path(name)}`;
    // Without affinity a column keeps REAL 3.0 apart from INTEGER 3; an archived 3 restores as the integer.
    const sameType =
      column.affinity === "BLOB"
        ? ` AND NOT (typeof(${t(name)}) = 'real' AND json_type(j.value, ${path(name)}) = 'integer')`
        : "";
    return `CASE json_type(j.value, ${path(name)}) WHEN 'array' THEN typeof(${t(name)}) = 'real' AND ${t(name)} = ${exactReal(name)}
      ELSE ${t(name)} IS ${archivedValue}${sameType} END`;
  };
  // Balanced: a chain of 100 columns' terms would be deeper than D1's 100 levels.
  const rowIsArchived = balanced(
    [...archived.map(matchColumn), ...extra.map((c) => atRestoredValue(c, t))],
    "AND",
    "1",
  );

  const notWrittenExactly = [
    ...archived.flatMap((c) =>
      byName.get(c)?.affinity === "TEXT"
        ? [`typeof(${plain(c)}) = 'blob'`]
        : [`${plain(c)} > 9007199254740991`, `${plain(c)} < -9007199254740991`, `typeof(${plain(c)}) = 'real'`],
    ),
    ...extra.map((c) => `NOT (${atRestoredValue(c, plain)})`),
  ];
  const from = tableSql(target);
  const id = idSql(target);
  const deleteIfSameLines = `WITH same AS MATERIALIZED (
      SELECT count(*) = count(line) AND group_concat(line, char(10)) = ?1 AS yes FROM (
        SELECT CASE WHEN ${balanced(notWrittenExactly, "OR", "0")} THEN NULL ELSE ${jsonLineSql(archived)} END AS line
        FROM ${from} WHERE ${dayRangeSql(target, 2)} ORDER BY ${id}))
    DELETE FROM ${from} WHERE ${dayRangeSql(target, 2)} AND (SELECT yes FROM same)`;
  // CROSS JOIN keeps the archived rows as the outer loop, one primary-key lookup each: left to itself,
  // SQLite walks the whole range by the day index and scans the JSON for every row (quadratic).
  const tId = idSql(target, "t");
  const archivedId = `j.value ->> ${path(target.id)}`;
  const deleteArchived = `DELETE FROM ${from} WHERE ${id} IN (
       SELECT ${tId} FROM ${ARCHIVED_ROWS} j CROSS JOIN ${from} t ON ${tId} = ${archivedId}
       WHERE ${daySql(target, "t")} = ?2 AND ${tId} >= ?3 AND ${tId} <= ?4 AND ${rowIsArchived})`;
  return {
    deleteIfSameLines,
    deleteArchived,
    rowIsArchived,
    archivedId,
    insertColumns: archived.map(plain).join(", "),
    insertValues: archived
      .map(
        (c) => `CASE json_type(j.value, ${path(c)}) WHEN 'array' THEN ${exactReal(c)} ELSE j.value ->> ${path(c)} END`,
      )
      .join(", "),
  };
}
