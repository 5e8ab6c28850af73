import { quoteIdentifier } from "../jsonl.ts";
import { type ArchivedTable, daySql, idSql, tableSql } from "./archived-table.ts";

/**
 * What the archiver needs on the operator's table, as SQL for a migration
 * the operator reviews and applies with wrangler (`pnpm install-table`), and
 * the SQL that removes it again (`pnpm uninstall-table`). Nothing else of the
 * archiver touches the operator's schema.
 *
 * - An index on (the row's day, id): every page, count and delete of a day is
 *   a keyset read on it, about one D1 row read per archived row.
 * - Triggers that keep the archiver's state true while the API writes: a row
 *   arriving for a day already cleaned makes the day not cleaned
 *   (d1_cleaned = 1 must always mean no row of the day is in D1), and a row
 *   inserted or changed in an archived range bumps that range's epoch, so
 *   cleanup never deletes a row its archive does not hold (ARCHITECTURE §8).
 *   For the API's ordinary inserts (today's rows: no run of today) each
 *   trigger costs one index probe on archive_runs or archive_metadata. They
 *   look only at the archiver's rows of this table.
 *
 * Applying a newer version's migration over an older one replaces the
 * triggers (each is dropped first); the index stays.
 */

/** Names of the objects installed on a table: `archiver_<table>_…`, so that an operator sees whose they are. */
export function installedNames(table: ArchivedTable) {
  const base = `archiver_${table.name}`;
  return {
    index: `${base}_day_id`,
    lateRow: `${base}_late_row`,
    movedRow: `${base}_moved_row`,
    rowInserted: `${base}_row_into_archived_range`,
    rowChanged: `${base}_row_changed_in_archived_range`,
  };
}

const IN_FLIGHT_OR_ARCHIVED = "status IN ('archiving', 'finalizing', 'archived')";

/** The statements installSql writes, in order: what a test applies, or a tool that cannot read a migration. */
export function installStatements(table: ArchivedTable): string[] {
  const names = installedNames(table);
  const t = tableSql(table);
  const newDay = daySql(table, "NEW");
  const oldDay = daySql(table, "OLD");
  const newId = idSql(table, "NEW");
  // The archiver's rows of this table; PLAIN_NAME makes the name safe in a string.
  const ofTable = `table_name = '${table.name}'`;
  const bumpEpoch = `UPDATE archive_chunks SET cleanup_epoch = cleanup_epoch + 1,
    cleanup_state = CASE cleanup_state WHEN 'cleaned' THEN 'none' ELSE cleanup_state END,
    cleaned_at = NULL
  WHERE rowid_lo <= ${newId} AND rowid_hi >= ${newId}
    AND run_id IN (SELECT run_id FROM archive_runs WHERE ${ofTable} AND date = ${newDay} AND ${IN_FLIGHT_OR_ARCHIVED});`;
  const whenArchived = `WHEN EXISTS (SELECT 1 FROM archive_runs WHERE ${ofTable} AND date = ${newDay} AND ${IN_FLIGHT_OR_ARCHIVED})`;
  const dayNotCleaned = `UPDATE archive_metadata SET d1_cleaned = 0, cleaned_at = NULL
  WHERE ${ofTable} AND date = ${newDay} AND d1_cleaned = 1;`;
  // Each trigger is dropped before it is created, so the migration of a newer version replaces an older one's.
  const trigger = (name: string, body: string) => [
    `DROP TRIGGER IF EXISTS ${quoteIdentifier(name)};`,
    `CREATE TRIGGER ${quoteIdentifier(name)} ${body}`,
  ];
  return [
    // Fails, changing nothing, if the archiver's own tables are not there yet (or are of a version
    // before several tables): the triggers below would otherwise make every INSERT of the API fail.
    "SELECT archive_runs.table_name, archive_metadata.table_name FROM archive_runs, archive_chunks, archive_metadata WHERE 0;",
    `CREATE INDEX IF NOT EXISTS ${quoteIdentifier(names.index)} ON ${t} (${daySql(table)}, ${idSql(table)});`,
    ...trigger(
      names.lateRow,
      `AFTER INSERT ON ${t}
BEGIN
  ${dayNotCleaned}
END;`,
    ),
    ...trigger(
      names.movedRow,
      `AFTER UPDATE OF ${quoteIdentifier(table.dayColumn)} ON ${t}
WHEN ${newDay} IS NOT ${oldDay}
BEGIN
  ${dayNotCleaned}
END;`,
    ),
    ...trigger(
      names.rowInserted,
      `AFTER INSERT ON ${t}
${whenArchived}
BEGIN
  ${bumpEpoch}
END;`,
    ),
    ...trigger(
      names.rowChanged,
      `AFTER UPDATE ON ${t}
${whenArchived}
BEGIN
  ${bumpEpoch}
END;`,
    ),
  ];
}

/** The migration `pnpm install-table` writes. */
export function installSql(table: ArchivedTable): string {
  return `-- The path-stats archiver on ${table.name}: its index and triggers (docs/adopting.md).
-- Written by \`pnpm install-table\`; apply after the archiver's own migrations.
-- Table ${table.name}, id ${table.id}, day ${table.dayColumn} (${table.dayForm}).

${installStatements(table).join("\n\n")}
`;
}

/**
 * Removes what installSql created. Stop the archiver's cron first: without
 * the triggers, a cleanup could delete a row changed after it was archived.
 */
export function uninstallStatements(table: ArchivedTable): string[] {
  const names = installedNames(table);
  return [
    `DROP TRIGGER IF EXISTS ${quoteIdentifier(names.rowChanged)};`,
    `DROP TRIGGER IF EXISTS ${quoteIdentifier(names.rowInserted)};`,
    `DROP TRIGGER IF EXISTS ${quoteIdentifier(names.movedRow)};`,
    `DROP TRIGGER IF EXISTS ${quoteIdentifier(names.lateRow)};`,
    `DROP INDEX IF EXISTS ${quoteIdentifier(names.index)};`,
  ];
}

/** The migration `pnpm uninstall-table` writes. */
export function uninstallSql(table: ArchivedTable): string {
  return `-- Removes the path-stats archiver's index and triggers from ${table.name} (docs/adopting.md).
-- Written by \`pnpm uninstall-table\`. Stop the archiver's cron before applying it.
${uninstallStatements(table).join("\n")}
`;
}
