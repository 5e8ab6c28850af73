import { forEachLine } from "./line-scanner.ts";
import type { DayRollup, RequestValues } from "./path-rollup.ts";

/**
 * Which columns of an archived table the path statistics are counted from
 * (the `stats` of its ARCHIVE_TABLES entry, or ARCHIVE_STATS for one table;
 * docs/adopting.md). Only `path` is required; a column left out counts as
 * NULL in every row.
 */
export interface StatsColumns {
  path: string;
  method: string | null;
  /** An HTTP status, as an integer. */
  status: string | null;
  /** The request's latency in milliseconds (integer or REAL). */
  latencyMs: string | null;
  /** The response's size in bytes. */
  bytes: string | null;
  /** The request's time, as the table writes it (its first and last per path are kept). */
  at: string | null;
  /** Applied to each path in order before grouping: every match of `match` is replaced by `replace`. */
  pathRules: PathRule[];
}

export interface PathRule {
  match: RegExp;
  replace: string;
}

/** The value keys of StatsColumns, in the order of a row's tuple (valuesOfTuple). */
const VALUE_KEYS = ["path", "method", "status", "latencyMs", "bytes", "at"] as const;
const ENTRY_KEYS: readonly string[] = [...VALUE_KEYS, "pathRules"];

/**
 * The statistics of traffic_events, the example table, as the apps'
 * wrangler.jsonc configure them: query strings dropped and numeric path
 * segments grouped as `:id` (`/api/v1/items/123?page=2` → `/api/v1/items/:id`).
 */
export const TRAFFIC_EVENTS_STATS = {
  path: "path",
  method: "method",
  status: "status",
  latencyMs: "latency_ms",
  bytes: "bytes",
  at: "ts",
  pathRules: [
    ["\\?.*$", ""],
    ["/[0-9]+(?=/|$)", "/:id"],
  ],
} as const;

/**
 * A table's stats columns from its configuration (`label` names where it
 * came from), or the reasons it does not give them; undefined or false
 * means no statistics for the table.
 */
export function parseStatsColumns(entry: unknown, label: string, plainName: RegExp): StatsColumns | null | string[] {
  if (entry === undefined || entry === false || entry === null) return null;
  let value = entry;
  if (typeof entry === "string") {
    if (entry.trim() === "") return null;
    try {
      value = JSON.parse(entry);
    } catch {
      return [`${label}: must be a JSON object such as {"path": "path", "status": "status"}`];
    }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return [`${label}: must be an object such as {"path": "path", "status": "status"}`];
  }
  const given = value as Record<string, unknown>;
  const problems: string[] = [];
  const unknown = Object.keys(given).filter((key) => !ENTRY_KEYS.includes(key));
  if (unknown.length > 0)
    problems.push(`${label}: unknown key(s) ${unknown.join(", ")}; known: ${ENTRY_KEYS.join(", ")}`);
  const column = (key: (typeof VALUE_KEYS)[number]): string | null => {
    const name = given[key];
    if (name === undefined || name === null) {
      if (key === "path") problems.push(`${label}.path: must be set: the column statistics are grouped by`);
      return null;
    }
    if (typeof name !== "string" || !plainName.test(name)) {
      problems.push(`${label}.${key}: must be a plain SQL name ([A-Za-z_][A-Za-z0-9_]*), got ${JSON.stringify(name)}`);
      return null;
    }
    return name;
  };
  const columns = Object.fromEntries(VALUE_KEYS.map((key) => [key, column(key)])) as Record<
    (typeof VALUE_KEYS)[number],
    string | null
  >;
  const pathRules: PathRule[] = [];
  const rules = given.pathRules ?? [];
  if (!Array.isArray(rules)) problems.push(`${label}.pathRules: must be a list of ["pattern", "replacement"]`);
  else {
    rules.forEach((rule, i) => {
      const at = `${label}.pathRules[${i}]`;
      if (!Array.isArray(rule) || rule.length !== 2 || typeof rule[0] !== "string" || typeof rule[1] !== "string") {
        problems.push(`${at}: must be ["pattern", "replacement"]`);
        return;
      }
      try {
        pathRules.push({ match: new RegExp(rule[0], "g"), replace: rule[1] });
      } catch (error) {
        problems.push(`${at}: not a regular expression: ${(error as Error).message}`);
      }
    });
  }
  if (problems.length > 0) return problems;
  return { ...columns, path: columns.path as string, pathRules };
}

/** A table's stats configuration names a column the table does not have: its runs fail, naming it. */
export class StatsColumnsError extends Error {
  override name = "StatsColumnsError";
}

/** The columns the statistics read, for checking that the table has them. */
export function statsColumnNames(stats: StatsColumns): string[] {
  return VALUE_KEYS.map((key) => stats[key]).filter((name): name is string => name !== null);
}

const numberOrNull = (value: unknown): number | null => (typeof value === "number" ? value : null);

/** The path as grouped: text as it is (numbers as their text), after the rules; anything else is no path. */
function normalizedPath(stats: StatsColumns, value: unknown): string | null {
  if (typeof value !== "string" && typeof value !== "number") return null;
  let path = typeof value === "string" ? value : String(value);
  for (const rule of stats.pathRules) path = path.replace(rule.match, rule.replace);
  return path;
}

/**
 * One row's values from its tuple (the stats columns' values in VALUE_KEYS
 * order), written into `into` when given (a reader of many rows reuses one
 * object), else into a new object.
 */
export function valuesOfTuple(
  stats: StatsColumns,
  tuple: readonly unknown[],
  into: RequestValues = { path: null, method: null, status: null, latencyMs: null, bytes: null, at: null },
): RequestValues {
  const at = tuple[5];
  into.path = normalizedPath(stats, tuple[0]);
  into.method = typeof tuple[1] === "string" || typeof tuple[1] === "number" ? String(tuple[1]) : null;
  into.status = numberOrNull(tuple[2]);
  into.latencyMs = numberOrNull(tuple[3]);
  into.bytes = numberOrNull(tuple[4]);
  into.at = typeof at === "number" || typeof at === "string" ? at : null;
  return into;
}

/**
 * Counts a text page's rows in `rollup` from the page's lines, as archived
 * (`columns`: the table's, in order), reading only the stats columns'
 * values (line-scanner.ts). Returns the rows counted.
 */
export function countLines(stats: StatsColumns, columns: readonly string[], text: string, rollup: DayRollup): number {
  const positions = VALUE_KEYS.map((key) => {
    const name = stats[key];
    return name === null ? -1 : columns.indexOf(name);
  });
  const values = valuesOfTuple(stats, []);
  return forEachLine(text, columns.length, positions, (tuple) => rollup.add(valuesOfTuple(stats, tuple, values)));
}

/** One row's values from the row as D1 returns it (a row page's rows). */
export function valuesOfRow(stats: StatsColumns, row: Record<string, unknown>): RequestValues {
  return valuesOfTuple(
    stats,
    VALUE_KEYS.map((key) => {
      const name = stats[key];
      return name === null ? null : row[name];
    }),
  );
}
