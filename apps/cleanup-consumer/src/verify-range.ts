import {
  type ArchivedTable,
  ArchiveReadError,
  type ChunkRow,
  type CleanupRangeMessage,
  chunkBytes,
  type ExactMatch,
  exactMatch,
  Manifest,
  type RunRow,
  readTableColumns,
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

const NEWLINE = 0x0a;

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
): Promise<string | { manifest: Manifest; etag: string }> {
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
  return { manifest, etag: head.etag };
}

/**
 * The SQL that matches the table's rows, as they are now, against the
 * archive's exactly (exact-rows.ts), or why none can be: the archive is of
 * another table or id column than the one configured, or the table lost a
 * column the archive holds.
 */
export async function exactMatchFor(
  db: D1Database,
  table: ArchivedTable,
  run: RunRow,
  manifest: Manifest,
): Promise<ExactMatch | string> {
  if (manifest.table !== table.name || manifest.idColumn !== table.id) {
    return `run ${run.run_id} of ${run.date} archived table ${manifest.table} (id ${manifest.idColumn}), but its run is of ${table.name} (id ${table.id}) as configured: no row is matched against another table's archive`;
  }
  const match = exactMatch(table, await readTableColumns(db, table), manifest.columns);
  return typeof match === "string" ? `run ${run.run_id} of ${run.date}: ${match}` : match;
}
