import { quoteIdentifier } from "../jsonl.ts";
import { parseStatsColumns, type StatsColumns } from "../stats/stats-columns.ts";

/**
 * A table a deployment archives, as the operator configures it (the wrangler
 * var ARCHIVE_TABLES, or for one table ARCHIVE_TABLE, ARCHIVE_ID_COLUMN,
 * ARCHIVE_DAY_COLUMN, ARCHIVE_DAY_FORM, ARCHIVE_KEY_PREFIX; see
 * docs/adopting.md). Every statement the archiver runs on the operator's
 * table names it, its id and its day through this; the archiver's own rows
 * (runs, days, refusals) carry its name.
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
  /** Closed days kept in D1 before cleanup (HOT_DAYS unless the table says otherwise). */
  hotDays: number;
  /** The columns its path statistics are counted from, or null: none are kept (stats/stats-columns.ts). */
  stats: StatsColumns | null;
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

/** The wrangler vars that say which tables are archived: ARCHIVE_TABLES, or the one-table form. */
export interface ArchivedTableVars {
  /** A JSON list of TableEntry (a wrangler var may hold the list itself, or its JSON text). */
  ARCHIVE_TABLES?: unknown;
  ARCHIVE_TABLE?: string;
  ARCHIVE_ID_COLUMN?: string;
  ARCHIVE_DAY_COLUMN?: string;
  ARCHIVE_DAY_FORM?: string;
  ARCHIVE_KEY_PREFIX?: string;
  /** The one table's stats columns (a JSON object, or its text); see StatsColumns. */
  ARCHIVE_STATS?: unknown;
}

/** One table of ARCHIVE_TABLES, as written in wrangler.jsonc. */
export interface TableEntry {
  table: string;
  idColumn: string;
  dayColumn: string;
  dayForm?: string;
  keyPrefix?: string;
  hotDays?: number;
  stats?: unknown;
}
const ENTRY_KEYS: readonly string[] = [
  "table",
  "idColumn",
  "dayColumn",
  "dayForm",
  "keyPrefix",
  "hotDays",
  "stats",
] satisfies (keyof TableEntry)[];
const ONE_TABLE_VARS = [
  "ARCHIVE_TABLE",
  "ARCHIVE_ID_COLUMN",
  "ARCHIVE_DAY_COLUMN",
  "ARCHIVE_DAY_FORM",
  "ARCHIVE_KEY_PREFIX",
  "ARCHIVE_STATS",
] as const;
/** The one-table var each entry key is set by (hotDays has none: HOT_DAYS is every table's default). */
const ONE_TABLE_VAR_OF: Record<string, (typeof ONE_TABLE_VARS)[number]> = {
  table: "ARCHIVE_TABLE",
  idColumn: "ARCHIVE_ID_COLUMN",
  dayColumn: "ARCHIVE_DAY_COLUMN",
  dayForm: "ARCHIVE_DAY_FORM",
  keyPrefix: "ARCHIVE_KEY_PREFIX",
  stats: "ARCHIVE_STATS",
};

/**
 * Names go into SQL quoted, into SQL strings and JSON paths and R2 keys as
 * they are: only plain identifiers are taken (for the archive's columns too:
 * exact-rows.ts).
 */
export const PLAIN_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const KEY_PREFIX = /^[A-Za-z0-9_\-.=/]+$/;

/**
 * The archived tables from the vars, or the reasons they do not name them
 * (each naming its var). Two tables may not share a name, and neither's key
 * prefix may begin the other's: each table's archives are its own in R2.
 */
export function parseArchivedTables(vars: ArchivedTableVars, defaultHotDays: number): ArchivedTable[] | string[] {
  const listed = vars.ARCHIVE_TABLES;
  if (listed === undefined || (typeof listed === "string" && listed.trim() === "")) {
    const table = parseTable(
      {
        table: vars.ARCHIVE_TABLE,
        idColumn: vars.ARCHIVE_ID_COLUMN,
        dayColumn: vars.ARCHIVE_DAY_COLUMN,
        dayForm: vars.ARCHIVE_DAY_FORM,
        keyPrefix: vars.ARCHIVE_KEY_PREFIX,
        stats: vars.ARCHIVE_STATS,
      },
      (key) => ONE_TABLE_VAR_OF[key] ?? key,
      defaultHotDays,
    );
    return Array.isArray(table) ? table : [table];
  }
  const alsoSet = ONE_TABLE_VARS.filter((key) => {
    const value = vars[key];
    return value !== undefined && (typeof value !== "string" || value.trim() !== "");
  });
  if (alsoSet.length > 0) return [`ARCHIVE_TABLES: set it or ${alsoSet.join(", ")}, not both`];
  let entries: unknown = listed;
  if (typeof listed === "string") {
    try {
      entries = JSON.parse(listed);
    } catch {
      return ["ARCHIVE_TABLES: must be a JSON list of tables"];
    }
  }
  if (!Array.isArray(entries) || entries.length === 0) return ["ARCHIVE_TABLES: must be a list of at least one table"];
  const problems: string[] = [];
  const tables: ArchivedTable[] = [];
  entries.forEach((entry, i) => {
    const at = `ARCHIVE_TABLES[${i}]`;
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      problems.push(`${at}: must be an object such as {"table": …, "idColumn": …, "dayColumn": …}`);
      return;
    }
    const unknown = Object.keys(entry).filter((key) => !ENTRY_KEYS.includes(key));
    if (unknown.length > 0)
      problems.push(`${at}: unknown key(s) ${unknown.join(", ")}; known: ${ENTRY_KEYS.join(", ")}`);
    const table = parseTable(entry as Record<string, unknown>, (key) => `${at}.${key}`, defaultHotDays);
    if (Array.isArray(table)) problems.push(...table);
    else tables.push(table);
  });
  for (const [i, a] of tables.entries()) {
    for (const b of tables.slice(i + 1)) {
      if (a.name === b.name) problems.push(`ARCHIVE_TABLES: ${a.name} is listed twice`);
      else if (a.keyPrefix.startsWith(b.keyPrefix) || b.keyPrefix.startsWith(a.keyPrefix)) {
        problems.push(
          `ARCHIVE_TABLES: the key prefixes of ${a.name} (${a.keyPrefix}) and ${b.name} (${b.keyPrefix}) overlap; each table needs its own`,
        );
      }
    }
  }
  return problems.length > 0 ? problems : tables;
}

/** One table from its entry; `label` names where each key came from (a var, or a place in ARCHIVE_TABLES). */
function parseTable(
  entry: Record<string, unknown>,
  label: (key: string) => string,
  defaultHotDays: number,
): ArchivedTable | string[] {
  const problems: string[] = [];
  const text = (key: string): string => (typeof entry[key] === "string" ? (entry[key] as string).trim() : "");
  for (const key of ["dayForm", "keyPrefix"]) {
    if (entry[key] !== undefined && typeof entry[key] !== "string") problems.push(`${label(key)}: must be text`);
  }
  const name = (key: "table" | "idColumn" | "dayColumn"): string => {
    const value = text(key);
    if (value === "") problems.push(`${label(key)}: must be set`);
    else if (!PLAIN_NAME.test(value))
      problems.push(`${label(key)}: must be a plain SQL name ([A-Za-z_][A-Za-z0-9_]*), got ${JSON.stringify(value)}`);
    return value;
  };
  const table = name("table");
  const id = name("idColumn");
  const dayColumn = name("dayColumn");
  const form = text("dayForm") || "date";
  if (!isDayForm(form)) {
    problems.push(
      `${label("dayForm")}: must be one of ${Object.keys(DAY_FORMS).join(", ")}, got ${JSON.stringify(form)}`,
    );
  }
  if (id !== "" && id === dayColumn) problems.push(`${label("dayColumn")}: must not be the id column`);
  const keyPrefix = text("keyPrefix") || `${table}/${dayColumn}=`;
  // A prefix made from names already refused says nothing new.
  const derivedFromRefused = text("keyPrefix") === "" && problems.length > 0;
  if (
    !derivedFromRefused &&
    (!KEY_PREFIX.test(keyPrefix) || keyPrefix.startsWith("/") || keyPrefix.split("/").includes(".."))
  ) {
    problems.push(
      `${label("keyPrefix")}: must be a relative R2 key prefix of letters, digits and _-.=/, got ${JSON.stringify(keyPrefix)}`,
    );
  }
  const hotDays = entry.hotDays ?? defaultHotDays;
  if (typeof hotDays !== "number" || !Number.isInteger(hotDays) || hotDays < 0 || hotDays > 365) {
    problems.push(`${label("hotDays")}: must be an integer from 0 to 365, got ${JSON.stringify(hotDays)}`);
  }
  const stats = parseStatsColumns(entry.stats, label("stats"), PLAIN_NAME);
  if (Array.isArray(stats)) problems.push(...stats);
  if (problems.length > 0) return problems;
  return {
    name: table,
    id,
    dayColumn,
    dayForm: form as DayForm,
    keyPrefix,
    hotDays: hotDays as number,
    stats: stats as StatsColumns | null,
  };
}
