import { type ArchiveChunkMessage, batchesOf, logEvent, type RunRow } from "@path-stats/shared";

/** Sends chunk messages and stamps them enqueued, so stalled ones can be found later. */
export async function enqueueArchiveChunks(env: Env, messages: ArchiveChunkMessage[], now: Date): Promise<void> {
  for (const batch of batchesOf(messages)) {
    await env.ARCHIVE_QUEUE.sendBatch(batch.map((body) => ({ body, contentType: "json" as const })));
    await env.D1.batch(
      batch.map((m) =>
        env.D1.prepare("UPDATE archive_chunks SET enqueued_at = ?1 WHERE run_id = ?2 AND chunk_index = ?3").bind(
          now.toISOString(),
          m.runId,
          m.chunkIndex,
        ),
      ),
    );
  }
}

/**
 * Re-sends the unfinished work of an in-flight run that has made no progress
 * for a lease: chunks never enqueued, enqueued but never claimed, or claimed
 * by a consumer that died. When every chunk is in but the run never
 * finalized, one chunk is re-sent: its consumer finds the chunk archived and
 * finalizes. Consumers are idempotent, so a re-send is harmless.
 */
export async function resumeStalledRun(env: Env, run: RunRow, now: Date, leaseSeconds: number): Promise<number> {
  const cutoff = new Date(now.getTime() - leaseSeconds * 1000).toISOString();
  const stalled = await env.D1.prepare(
    `SELECT chunk_index FROM archive_chunks
     WHERE run_id = ?1 AND state = 'pending'
       AND (enqueued_at IS NULL
            OR (claim_token IS NULL AND enqueued_at < ?2)
            OR (claim_token IS NOT NULL AND claimed_at < ?2))
     ORDER BY chunk_index`,
  )
    .bind(run.run_id, cutoff)
    .all<{ chunk_index: number }>();
  let indexes = stalled.results.map((r) => r.chunk_index);
  if (indexes.length === 0) {
    const progress = await env.D1.prepare(
      "SELECT SUM(state = 'pending') AS pending, MAX(archived_at) AS last FROM archive_chunks WHERE run_id = ?1",
    )
      .bind(run.run_id)
      .first<{ pending: number; last: string | null }>();
    const since = run.status === "archiving" ? progress?.last : run.finalize_started_at;
    const finalizeStalled = progress?.pending === 0 && (since ?? "") < cutoff;
    if (finalizeStalled) indexes = [0];
  }
  if (indexes.length === 0) return 0;
  await enqueueArchiveChunks(
    env,
    indexes.map((chunkIndex) => ({ version: 1, runId: run.run_id, date: run.date, chunkIndex })),
    now,
  );
  logEvent("archive.resumed", { runId: run.run_id, date: run.date, chunks: indexes.length });
  return indexes.length;
}
