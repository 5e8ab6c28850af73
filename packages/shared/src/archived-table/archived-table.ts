import { quoteIdentifier } from "../jsonl.ts";

/**
 * The table a deployment archives, as the operator configures it (wrangler
 * vars ARCHIVE_TABLE, ARCHIVE_ID_COLUMN, ARCHIVE_DAY_COLUMN, ARCHIVE_DAY_FORM,
 * ARCHIVE_KEY_PREFIX; see docs/adopting.md). Every statement the archiver runs
 * on the operator's table names it, its id and its day through this.
 */
export interface ArchivedTable {
  name: string;
  /** The INTEGER PRIMARY KEY column: SQLite's rowid, so id ranges are keyset reads. */
  id: string;
  /** The column a row's UTC day comes from, and how (DAY_FORMS). */
  dayColumn: string;
  dayForm: DayForm;
  /** Where the table's archives go in R2: `<keyPrefix>YYYY-MM-DD/`. */
  keyPrefix: string;
}

/**
 * How a row's UTC day is written in its day column, and the SQL that gives
 * it as YYYY-MM-DD. SQLite's date() takes ISO-8601 text with an offset (or Z)
 * and gives the UTC day; text without an offset is taken as UTC. A row whose
 * day is NULL (a value date() cannot read) belongs to no day: it is never
 * archived, so never deleted.
 */
export const DAY_FORMS = {
  /** YYYY-MM-DD text, as it is. */
  date: (column: string) => column,
  /** Milliseconds since 1970 (a real division: a negative timestamp falls on the day before). */
  epoch_ms: (column: string) => `date(${column} / 1000.0, 'unixepoch')`,
  epoch_s: (column: string) => `date(${column}, 'unixepoch')`,
  iso: (column: string) => `date(${column})`,
} as const;
export type DayForm = keyof typeof DAY_FORMS;

export function isDayForm(form: string): form is DayForm {
  return Object.hasOwn(DAY_FORMS, form);
}

/** The table's quoted name, for FROM and DELETE. */
export function tableSql(table: ArchivedTable): string {
  return quoteIdentifier(table.name);
}

/** The id column of the row in scope, quoted; `alias` (such as "t" or "NEW") qualifies it. */
export function idSql(table: ArchivedTable, alias?: string): string {
  return alias ? `${alias}.${quoteIdentifier(table.id)}` : quoteIdentifier(table.id);
}

/**
 * The UTC day of the row in scope, as YYYY-MM-DD. Statements that select by
 * day use exactly this expression, unqualified, so SQLite reads them through
 * the index install-table creates on (this expression, id).
 */
export function daySql(table: ArchivedTable, alias?: string): string {
  const column = alias ? `${alias}.${quoteIdentifier(table.dayColumn)}` : quoteIdentifier(table.dayColumn);
  return DAY_FORMS[table.dayForm](column);
}

/**
 * `WHERE` terms for the rows of day ?N with id in [?N+1, ?N+2] (`bounds`
 * "[]" inclusive, "(]" above the first bound), the form every range read and
 * delete takes.
 */
export function dayRangeSql(table: ArchivedTable, first: number, bounds: "[]" | "(]" = "[]"): string {
  const id = idSql(table);
  return `${daySql(table)} = ?${first} AND ${id} ${bounds === "[]" ? ">=" : ">"} ?${first + 1} AND ${id} <= ?${first + 2}`;
}

/** The wrangler vars that say which table is archived. */
export interface ArchivedTableVars {
  ARCHIVE_TABLE?: string;
  ARCHIVE_ID_COLUMN?: string;
  ARCHIVE_DAY_COLUMN?: string;
  ARCHIVE_DAY_FORM?: string;
  ARCHIVE_KEY_PREFIX?: string;
}

/**
 * Names go into SQL quoted, and into JSON paths and R2 keys as they are: only
 * plain identifiers are taken (for the archive's columns too: exact-rows.ts).
 */
export const PLAIN_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const KEY_PREFIX = /^[A-Za-z0-9_\-.=/]+$/;

/** The archived table from the vars, or the reasons they do not name one (each naming its var). */
export function parseArchivedTable(vars: ArchivedTableVars): ArchivedTable | string[] {
  const problems: string[] = [];
  const name = (key: "ARCHIVE_TABLE" | "ARCHIVE_ID_COLUMN" | "ARCHIVE_DAY_COLUMN"): string => {
    const value = vars[key]?.trim() ?? "";
    if (value === "") problems.push(`${key}: must be set`);
    else if (!PLAIN_NAME.test(value))
      problems.push(`${key}: must be a plain SQL name ([A-Za-z_][A-Za-z0-9_]*), got ${JSON.stringify(value)}`);
    return value;
  };
  const table = name("ARCHIVE_TABLE");
  const id = name("ARCHIVE_ID_COLUMN");
  const dayColumn = name("ARCHIVE_DAY_COLUMN");
  const form = vars.ARCHIVE_DAY_FORM?.trim() || "date";
  if (!isDayForm(form)) {
    problems.push(`ARCHIVE_DAY_FORM: must be one of ${Object.keys(DAY_FORMS).join(", ")}, got ${JSON.stringify(form)}`);
  }
  if (id !== "" && id === dayColumn) problems.push("ARCHIVE_DAY_COLUMN: must not be the id column");
  const keyPrefix = vars.ARCHIVE_KEY_PREFIX?.trim() || `${table}/${dayColumn}=`;
  if (!KEY_PREFIX.test(keyPrefix) || keyPrefix.startsWith("/") || keyPrefix.split("/").includes("..")) {
    problems.push(
      `ARCHIVE_KEY_PREFIX: must be a relative R2 key prefix of letters, digits and _-.=/, got ${JSON.stringify(keyPrefix)}`,
    );
  }
  if (problems.length > 0) return problems;
  return { name: table, id, dayColumn, dayForm: form as DayForm, keyPrefix };
}
