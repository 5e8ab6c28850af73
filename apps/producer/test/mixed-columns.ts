import { env } from "cloudflare:workers";
import { concatSql, quoteIdentifier } from "@path-stats/shared";

/**
 * Columns of every type for wide-table tests: declared types in turn
 * (INTEGER, REAL, TEXT, NUMERIC and none, which has BLOB affinity), and
 * each one's value in row `i` as SQL.
 */
export const TYPES = ["INTEGER", "REAL", "TEXT", "NUMERIC", ""] as const;
export type ColumnType = (typeof TYPES)[number];

/** Column k's value in row i, as SQL: NULLs, REALs of any exponent, integers near 2^53, unicode text. */
export function valueSql(type: ColumnType, k: number): string {
  const value = {
    INTEGER: `CASE WHEN i % 5 = 0 THEN 9007199254740991 - i ELSE i * ${k} - 5000 END`,
    REAL: `(random() / 9.2233720368547758e18) * pow(10, (i * 31 + ${k}) % 600 - 300)`,
    TEXT: `'v' || i || '-${k} ' || substr('äß€😀''"\\' || char(10), 1, (i + ${k}) % 9)`,
    NUMERIC: "CASE WHEN i % 2 THEN i + 0.25 ELSE i END",
    // No affinity: text or integers (an integral REAL there would fail the run: JSON restores it as an INTEGER).
    "": "CASE WHEN i % 2 THEN 't' || i ELSE i * 3 END",
  }[type];
  return `CASE WHEN (i + ${k}) % 7 = 0 THEN NULL ELSE ${value} END`;
}

/**
 * Rows exactly as D1 holds them: values as D1 returns them (a REAL is the
 * same double), with each value's SQLite type beside them, so that 3 and
 * 3.0, or '3' and 3, differ. `where` selects them (SQL over the table),
 * `orderBy` orders them.
 */
export async function exactRows(
  table: string,
  columns: readonly string[],
  where: string,
  orderBy: string,
  ...params: unknown[]
): Promise<unknown[]> {
  const types = concatSql(columns.map((c) => `substr(typeof(${quoteIdentifier(c)}), 1, 1)`));
  const from = `FROM ${quoteIdentifier(table)} WHERE ${where} ORDER BY ${orderBy}`;
  const { results: values } = await env.D1.prepare(`SELECT * ${from}`)
    .bind(...params)
    .all();
  const { results: typed } = await env.D1.prepare(`SELECT ${types} AS types ${from}`)
    .bind(...params)
    .all<{ types: string }>();
  return values.map((row, i) => ({ ...row, types: typed[i]?.types }));
}

export async function columnsOf(table: string): Promise<string[]> {
  const { results } = await env.D1.prepare(`PRAGMA table_info(${quoteIdentifier(table)})`).all<{ name: string }>();
  return results.map((c) => c.name);
}
