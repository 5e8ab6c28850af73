import {
  ArchiveReadError,
  type ChunkRow,
  type CleanupRangeMessage,
  chunkBytes,
  jsonLineSql,
  Manifest,
  type RunRow,
  toHex,
} from "@path-stats/shared";

/** A message that names no range of a committed run: it goes to the dead letters. */
export class UndeliverableMessageError extends Error {
  override name = "UndeliverableMessageError";
}

/** The run and range a message names; a message naming no range of the run for its date is undeliverable. */
export async function loadRange(
  db: D1Database,
  message: CleanupRangeMessage,
): Promise<{ run: RunRow; chunk: ChunkRow }> {
  const run = await db.prepare("SELECT * FROM archive_runs WHERE run_id = ?1").bind(message.runId).first<RunRow>();
  const chunk = await db
    .prepare("SELECT * FROM archive_chunks WHERE run_id = ?1 AND chunk_index = ?2")
    .bind(message.runId, message.chunkIndex)
    .first<ChunkRow>();
  if (!run || !chunk || run.date !== message.date) {
    throw new UndeliverableMessageError(`no range ${message.chunkIndex} of run ${message.runId} for ${message.date}`);
  }
  return { run, chunk };
}

/**
 * Most bytes of archived lines passed to one statement (a DELETE or a
 * restore's INSERT): D1 takes a string parameter of up to 2 MB, and the
 * statement's work grows with it.
 */
export const MAX_BATCH_BYTES = 1024 * 1024;

/** A window of archived lines (joined by newlines) as one JSON array of their objects, for ARCHIVED_ROWS. */
export function asJsonArray(lines: string): string {
  return `[${lines.replaceAll("\n", ",")}]`;
}

/**
 * The archived lines passed as a statement's JSON parameter ?1, as rows `j`
 * whose `j.value` is one line's object, parsed once into SQLite's binary
 * JSON: matching or inserting reads every column of it, and on text SQLite
 * would parse the line again for each column (measured with node:sqlite on
 * 200 000 seeded rows in batches of 5 000: the DELETE took 1.9 s instead of
 * 3.7 s). `LIMIT -1 OFFSET 0` keeps SQLite from flattening the subquery,
 * which would call jsonb() at every use.
 */
export const ARCHIVED_ROWS = "(SELECT jsonb(value) AS value FROM json_each(?1) LIMIT -1 OFFSET 0)";

/**
 * Deletes the date's rows with id in [?3, ?4] only if, together and in id
 * order, SQLite writes them as exactly the archived lines ?1 (joined by
 * newlines, as archived): then each of them is an archived line and no other
 * row is there. Otherwise it deletes nothing, and the window is matched row
 * by row. The check runs once per statement (MATERIALIZED), not per row.
 * Measured with node:sqlite on 300 000 seeded rows in windows of about 1 MiB:
 * 1.4 s, against 2.8-3.3 s matched row by row and 0.9 s deleted by id range
 * with no check at all.
 */
export function deleteIfSameLinesSql(columns: readonly string[]): string {
  return `WITH same AS MATERIALIZED (
      SELECT group_concat(line, char(10)) = ?1 AS yes FROM (
        SELECT ${jsonLineSql(columns)} AS line FROM traffic_events
        WHERE event_date = ?2 AND id >= ?3 AND id <= ?4 ORDER BY id))
    DELETE FROM traffic_events WHERE event_date = ?2 AND id >= ?3 AND id <= ?4 AND (SELECT yes FROM same)`;
}

/**
 * SQL that holds when D1's row `t` equals the archived row `j` (an ARCHIVED_ROWS
 * row of archived lines) in every column; `IS` matches NULLs too.
 */
export function matchArchivedRow(columns: readonly string[]): string {
  return columns.map((c) => `t."${c}" IS j.value ->> '$.${c}'`).join(" AND ");
}

const NEWLINE = 0x0a;

/** Column names are put into the DELETE's SQL: only plain identifiers are accepted. */
const PLAIN_COLUMN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Why the range must not be deleted, or what the deletes need: the manifest
 * in R2 must list this exact range with the checksum D1 recorded, and the
 * chunk's member, read from the object, must decompress to exactly its rows
 * and checksum.
 */
export async function verifyRange(
  env: Env,
  run: RunRow,
  chunk: ChunkRow,
): Promise<string | { manifest: Manifest; etag: string; columns: string[] }> {
  const object = await env.R2_ARCHIVE.get(run.manifest_key);
  if (!object) return `manifest ${run.manifest_key} is missing`;
  const parsed = Manifest.safeParse(await object.json().catch(() => null));
  if (!parsed.success) return `manifest ${run.manifest_key} is not a valid manifest`;
  const manifest = parsed.data;
  if (manifest.runId !== run.run_id || manifest.date !== run.date || manifest.objectKey !== run.object_key) {
    return `manifest ${run.manifest_key} describes another run`;
  }
  const listed = manifest.chunks.find((c) => c.index === chunk.chunk_index);
  if (!listed || listed.rowidLo !== chunk.rowid_lo || listed.rowidHi !== chunk.rowid_hi) {
    return `manifest does not list range ${chunk.rowid_lo}..${chunk.rowid_hi} as chunk ${chunk.chunk_index}`;
  }
  if (listed.rows !== chunk.rows || listed.sha256 !== chunk.sha256) {
    return `manifest and D1 disagree on chunk ${chunk.chunk_index} (rows or checksum)`;
  }
  const odd = manifest.columns.find((c) => !PLAIN_COLUMN.test(c));
  if (odd !== undefined || (listed.rows > 0 && !manifest.columns.includes("id"))) {
    return `manifest columns ${JSON.stringify(manifest.columns)} cannot be matched (need "id" and plain names)`;
  }
  const head = await env.R2_ARCHIVE.head(manifest.objectKey);
  if (head?.size !== manifest.objectBytes) {
    return `archive object ${manifest.objectKey} is ${head ? `${head.size} bytes, not ${manifest.objectBytes}` : "missing"}`;
  }

  // The archived bytes themselves: rows (newlines) and checksum of what the member decompresses to.
  // Equal to what was recorded at archive time, they are the lines that were archived.
  const digest = new crypto.DigestStream("SHA-256");
  const writer = digest.getWriter();
  let rows = 0;
  try {
    for await (const bytes of chunkBytes(env.R2_ARCHIVE, manifest, chunk.chunk_index, { etag: head.etag })) {
      for (let at = bytes.indexOf(NEWLINE); at !== -1; at = bytes.indexOf(NEWLINE, at + 1)) rows++;
      await writer.write(bytes);
    }
  } catch (error) {
    if (error instanceof ArchiveReadError) return error.message;
    throw error;
  }
  await writer.close();
  const sha256 = toHex(await digest.digest);
  if (rows !== listed.rows || sha256 !== listed.sha256) {
    return `the archived bytes of chunk ${chunk.chunk_index} do not match its manifest (${rows} rows read back, ${listed.rows} listed; checksum ${sha256 === listed.sha256 ? "equal" : "differs"})`;
  }
  return { manifest, etag: head.etag, columns: manifest.columns };
}
