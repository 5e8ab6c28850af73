import {
  type ArchivedTable,
  type ChunkRow,
  type Config,
  chunkWindows,
  type RunRow,
  windowIds,
} from "@path-stats/shared";
import { loadRange, MAX_BATCH_BYTES, verifyRange } from "./verify-range.ts";

/**
 * The ids that later committed runs of the date hold inside this range: for
 * those, a later archive has the current content (a row changed or added a
 * column after this run archived it, and was archived again), so this
 * range's older content of them is not restored, whichever range's message
 * comes first. Read by merging the later runs' members, all in id order,
 * alongside this range's windows: memory is a window, not the range.
 */
export async function newerContent(
  env: Env,
  config: Config,
  table: ArchivedTable,
  run: RunRow,
  chunk: ChunkRow,
): Promise<{ withoutSuperseded(text: string): Promise<string>; close(): Promise<void> } | string> {
  const { results: later } = await env.D1.prepare(
    `SELECT c.* FROM archive_chunks c JOIN archive_runs r ON r.run_id = c.run_id
     WHERE r.table_name = ?5 AND r.date = ?1 AND r.status = 'archived' AND c.rows > 0
       AND c.rowid_lo <= ?3 AND c.rowid_hi >= ?2 AND r.rowid > (SELECT rowid FROM archive_runs WHERE run_id = ?4)`,
  )
    .bind(run.date, chunk.rowid_lo, chunk.rowid_hi, run.run_id, run.table_name)
    .all<ChunkRow>();
  const cursors: {
    next: () => Promise<IteratorResult<number>>;
    close: () => Promise<unknown>;
    head: number | null;
  }[] = [];
  for (const newer of later) {
    const { run: newerRun } = await loadRange(env.D1, {
      version: 1,
      runId: newer.run_id,
      date: run.date,
      chunkIndex: newer.chunk_index,
    });
    const verified = await verifyRange(env, newerRun, newer);
    if (typeof verified === "string") {
      await Promise.all(cursors.map((c) => c.close().catch(() => {})));
      return `the later archive of run ${newer.run_id}, which supersedes rows of this range, fails its check: ${verified}`;
    }
    const ids = (async function* () {
      for await (const { text } of chunkWindows(env.R2_ARCHIVE, verified.manifest, newer.chunk_index, {
        maxLines: config.DELETE_BATCH_ROWS,
        maxBytes: MAX_BATCH_BYTES,
        etag: verified.etag,
      })) {
        yield* windowIds(text, verified.manifest.idColumn);
      }
    })();
    const cursor = { next: () => ids.next(), close: () => ids.return(undefined), head: null as number | null };
    const first = await cursor.next();
    cursor.head = first.done ? null : first.value;
    cursors.push(cursor);
  }
  return {
    async close() {
      await Promise.all(cursors.map((c) => c.close().catch(() => {})));
    },
    async withoutSuperseded(text: string): Promise<string> {
      if (cursors.length === 0) return text;
      const ids = windowIds(text, table.id);
      const lo = ids[0] as number;
      const hi = ids.at(-1) as number;
      const superseded = new Set<number>();
      for (const cursor of cursors) {
        while (cursor.head !== null && cursor.head <= hi) {
          if (cursor.head >= lo) superseded.add(cursor.head);
          const next = await cursor.next();
          cursor.head = next.done ? null : next.value;
        }
      }
      if (superseded.size === 0) return text;
      return text
        .split("\n")
        .filter((_, i) => !superseded.has(ids[i] as number))
        .join("\n");
    },
  };
}
