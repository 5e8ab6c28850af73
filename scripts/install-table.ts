/**
 * `pnpm install-table [-- --env <name>] [--table <name>] [--out <file>]`
 * writes the migration that puts the archiver's index and triggers on a
 * table it is configured to archive; `pnpm uninstall-table` (same options)
 * the one that takes them off. The table comes from the producer's config
 * for that environment (ARCHIVE_TABLES, or ARCHIVE_TABLE and the vars beside
 * it, in apps/producer/wrangler.jsonc; the top level without --env; --table
 * says which when several are archived), the SQL from packages/shared's
 * install-sql.ts. Applied over an older version's migration, the new one
 * replaces its triggers.
 * Review the file, then apply it with wrangler (docs/adopting.md). The
 * migration is printed when no --out is given; an existing --out file is
 * never overwritten.
 */
import { existsSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { unstable_readConfig } from "wrangler";
import { parseArchivedTables } from "../packages/shared/src/archived-table/archived-table.ts";
import { installSql, uninstallSql } from "../packages/shared/src/archived-table/install-sql.ts";
import { cliArgs, PRODUCER_CONFIG } from "./lib.ts";

function fail(message: string): never {
  console.error(`install-table: ${message}; nothing was written`);
  process.exit(1);
}

const [mode, ...rest] = cliArgs();
if (mode !== "install" && mode !== "uninstall") fail(`the first argument must be install or uninstall, got ${mode}`);
function options(args: string[]) {
  try {
    return parseArgs({
      args: args.filter((a) => a !== "--"), // pnpm passes on the "--" before its options
      options: {
        env: { type: "string" },
        table: { type: "string" },
        out: { type: "string" },
        config: { type: "string" },
      },
    }).values;
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error));
  }
}
const values = options(rest);
const configPath = values.config ?? PRODUCER_CONFIG;
const config = unstable_readConfig({ config: configPath, env: values.env });
const where = `${configPath}${values.env ? ` (env ${values.env})` : ""}`;
// Hot days do not matter here: the SQL is the same whatever they are.
const tables = parseArchivedTables(config.vars, 0);
if (tables.some((t) => typeof t === "string")) fail(`${where}: ${tables.join("; ")}`);
const archived = tables.filter((t) => typeof t !== "string");
const names = archived.map((t) => t.name).join(", ");
if (values.table === undefined && archived.length > 1) fail(`${where} archives ${names}: say which with --table`);
const table = values.table === undefined ? archived[0] : archived.find((t) => t.name === values.table);
if (!table) fail(`${where} does not archive ${values.table}; it archives ${names}`);

const sql = mode === "install" ? installSql(table) : uninstallSql(table);
if (!values.out) {
  process.stdout.write(sql);
} else {
  if (existsSync(values.out)) fail(`${values.out} exists already`);
  writeFileSync(values.out, sql);
  console.error(
    `wrote ${values.out}: ${mode === "install" ? "the index and triggers the archiver needs on" : "removes the archiver's index and triggers from"} ${table.name}. Review it, then apply it (docs/adopting.md).`,
  );
}
