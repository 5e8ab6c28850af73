import { z } from "zod";
import { type ArchivedTable, type ArchivedTableVars, parseArchivedTables } from "./archived-table/archived-table.ts";

const MiB = 1024 * 1024;

const intVar = (fallback: number, min: number, max: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === "") return fallback;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max) {
        ctx.addIssue({ code: "custom", message: `must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}` });
        return z.NEVER;
      }
      return n;
    });

/** Wrangler vars shared by the three Workers; every one has a default. */
const ConfigVars = z.object({
  /**
   * Bytes per multipart part. R2 needs at least 5 MiB for every part but the
   * last. A multiple of 64 KiB keeps every chunk's gzip member starting on a
   * 32 KiB boundary of the object: DuckDB 1.5 was seen to drop a small member
   * that starts 14 bytes before such a boundary.
   */
  PART_SIZE_BYTES: intVar(5 * MiB, 5 * MiB, 100 * MiB).refine(
    (n) => n % (64 * 1024) === 0,
    "must be a multiple of 65536",
  ),
  /** Parts one chunk aims to fill: bigger chunks mean fewer messages and less padding overall. */
  PARTS_PER_CHUNK: intVar(4, 1, 100),
  /**
   * A day is cut into at least this many chunks while each still fills a
   * whole part, so that many archive consumers work on it at once (a 1M-row
   * day of 5 parts: 3 + 2 parts, not 4 + 1).
   */
  PARALLEL_CHUNKS: intVar(2, 1, 100),
  /**
   * Most rows in one chunk, whatever the compression ratio: one chunk is one
   * consumer invocation, and its D1 reads (one per page), part uploads and
   * CPU time must stay inside an invocation's limits (ARCHITECTURE §3a) even
   * for rows that compress to a few bytes each.
   */
  MAX_CHUNK_ROWS: intVar(1_000_000, 1, 5_000_000),
  /** Rows per D1 keyset page. */
  PAGE_ROWS: intVar(5000, 1, 50_000),
  /**
   * A claim on a chunk or a finalization not renewed for this long belongs to
   * a dead consumer and is taken over. A live consumer renews its claim every
   * quarter lease (at pages and before each part upload), so the lease must
   * exceed one D1 page read plus one part upload; 60 s leaves room for D1's
   * 30 s statement limit. Tests use 1 s to outlive a dead consumer quickly.
   */
  LEASE_SECONDS: intVar(60, 1, 3600),
  /**
   * D1 queries one Worker invocation may make (ARCHITECTURE §3a): 1000 on
   * Workers Paid, 50 on Free. Planning sizes archive chunks so that their
   * pages take half of it; a cleanup or restore range that needs more goes on
   * in a message of its own.
   */
  D1_QUERIES_PER_INVOCATION: intVar(1000, 50, 100_000),
  /**
   * The most of D1's own time (ms, as D1 reports it per statement) one
   * consumer invocation may take per second of wall time. D1 runs a
   * database's queries one at a time, so the web API's writes wait behind
   * the archiver's; after each statement or batch the archive and cleanup
   * consumers wait until they are within this (pacing/d1-pacer.ts), and
   * 1000 turns pacing off. 10 (1%) keeps a few invocations at once to a few
   * percent of D1, whatever their statements' length. An invocation then
   * takes at least its D1 time × 1000 / this: at 10, 9 s of D1 time fill
   * the 15 minutes a queue consumer may run, hence no lower.
   */
  D1_MS_PER_SECOND: intVar(10, 10, 1000),
  /**
   * Rows one DELETE statement removes (with its check against the archive):
   * the longest statement cleanup runs, so what an API write to the same D1
   * may wait behind.
   */
  DELETE_BATCH_ROWS: intVar(2000, 1, 50_000),
  /** First retry delay of a failed message; each further attempt doubles it, up to 5 minutes. */
  RETRY_DELAY_SECONDS: intVar(5, 0, 300),
  /** Closed days kept in D1 before cleanup, for each table that does not set its own hotDays. */
  HOT_DAYS: intVar(3, 0, 365),
  /**
   * Most days the cron starts archiving, and most days it sends to cleanup,
   * per run: a backlog of weeks is worked off oldest first over several runs,
   * each inside a cron invocation's limits.
   */
  CRON_MAX_DAYS: intVar(3, 1, 100),
  /** Hours a restored day stays in D1 before the cron cleans it again (an operator's cleanup is not held). */
  RESTORE_KEEP_HOURS: intVar(24, 0, 24 * 365),
  /** Days after which the cron reads a committed archive back from R2 and checks it again (scrub). */
  SCRUB_EVERY_DAYS: intVar(30, 1, 3650),
  /** Most days the cron sends to be scrubbed per run, those checked longest ago first. */
  SCRUB_DAYS_PER_CRON: intVar(2, 0, 100),
  /** Hours after a day closes (midnight UTC) by which health expects it archived. */
  ARCHIVE_DEADLINE_HOURS: intVar(6, 1, 168),
  /**
   * Health reports an archive larger than this per million rows (MiB). The
   * original plan expected 15–20 MB; the demo's realistic rows make 24 MiB.
   */
  MAX_OBJECT_MIB_PER_MILLION_ROWS: intVar(32, 1, 10_000),
  /**
   * Path statistics rows kept per table and day: the busiest (path, method)
   * pairs, then one `(other)` row with the rest, so the day's totals stay
   * exact. A chunk counts up to ten times this many pairs by name (at
   * most 2000, at least twice this) before the rest go to its `(other)`
   * (trackedPairs in stats/stats-table.ts).
   */
  STATS_MAX_PATHS: intVar(200, 1, 1000),
  /**
   * Most days the cron sends to have their path statistics counted again
   * from their archives per run: days whose statistics are stale (a run
   * holding newer content of archived rows committed), and days archived
   * before statistics were kept, oldest first. 0 leaves it to the operator.
   */
  STATS_RECOUNT_DAYS_PER_CRON: intVar(2, 0, 100),
});
export type Config = z.output<typeof ConfigVars> & {
  /** The tables archived (ARCHIVE_TABLES, or ARCHIVE_TABLE and the vars beside it), in the order configured. */
  tables: ArchivedTable[];
};

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Reads the configuration from a Worker's env, refusing bad values loudly. */
export function readConfig(env: Partial<Record<keyof z.input<typeof ConfigVars>, string>> & ArchivedTableVars): Config {
  const parsed = ConfigVars.safeParse(env);
  const tables = parseArchivedTables(env, parsed.success ? parsed.data.HOT_DAYS : 0);
  const refused = tables.filter((t): t is string => typeof t === "string");
  const problems = [
    ...(parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`)),
    ...refused,
  ];
  if (!parsed.success || refused.length > 0) throw new ConfigError(`invalid configuration: ${problems.join("; ")}`);
  return { ...parsed.data, tables: tables as ArchivedTable[] };
}

/** A table an operator or a message named that the configuration does not say, or no table where one is needed. */
export class TableChoiceError extends Error {
  override name = "TableChoiceError";
  constructor(
    readonly code: "unknown_table" | "table_required",
    message: string,
  ) {
    super(message);
  }
}

/**
 * The configured table called `name`. With one table configured, `name` may
 * be left out (null or undefined); with several it must be given.
 */
export function tableOf(config: Config, name?: string | null): ArchivedTable {
  const names = config.tables.map((t) => t.name).join(", ");
  if (name === undefined || name === null || name === "") {
    if (config.tables.length === 1) return config.tables[0] as ArchivedTable;
    throw new TableChoiceError("table_required", `several tables are archived (${names}): say which, with table=`);
  }
  const table = config.tables.find((t) => t.name === name);
  if (!table) throw new TableChoiceError("unknown_table", `table ${name} is not archived here; archived: ${names}`);
  return table;
}
