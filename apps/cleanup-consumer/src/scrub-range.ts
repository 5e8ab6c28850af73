import {
  type ChunkRow,
  type CleanupRangeMessage,
  chunkMemberRange,
  emptyMembersProblem,
  logEvent,
  type RunRow,
} from "@path-stats/shared";
import { loadRange, verifyRange } from "./verify-range.ts";

export type ScrubOutcome = "ok" | "failed";

/**
 * Reads one range of a committed archive back from R2 and checks it against
 * its manifest, as cleanup does before a delete (the manifest lists the
 * range; the chunk's gzip member decompresses to exactly its rows and
 * SHA-256), and also what a reader of the whole object meets: the padding
 * after the member is empty gzip members, and every part of the chunk but
 * the object's last has the manifest's part size. Records the result on the
 * range and, once every range of the run is checked, on the run. Reads only;
 * D1's events are not touched.
 */
export async function scrubRange(env: Env, message: CleanupRangeMessage, now: Date): Promise<ScrubOutcome> {
  const db = env.D1;
  const { run, chunk } = await loadRange(db, message);
  const problem = await check(env, run, chunk);
  await db.batch([
    db
      .prepare(
        `UPDATE archive_chunks SET verify_state = ?1, verify_error = ?2, verified_at = ?3
         WHERE run_id = ?4 AND chunk_index = ?5`,
      )
      .bind(problem ? "failed" : "ok", problem, now.toISOString(), run.run_id, chunk.chunk_index),
    // The run's result, once none of its ranges is left to check: when, and the first difference found.
    db
      .prepare(
        `UPDATE archive_runs SET verified_at = ?1,
           verify_error = (SELECT 'chunk ' || chunk_index || ': ' || verify_error FROM archive_chunks
                           WHERE run_id = ?2 AND verify_state = 'failed' ORDER BY chunk_index LIMIT 1)
         WHERE run_id = ?2 AND NOT EXISTS (SELECT 1 FROM archive_chunks WHERE run_id = ?2 AND verify_state = 'pending')`,
      )
      .bind(now.toISOString(), run.run_id),
  ]);
  logEvent(problem ? "scrub.range_differs" : "scrub.range_ok", {
    runId: run.run_id,
    date: run.date,
    chunk: chunk.chunk_index,
    ...(problem ? { problem } : {}),
  });
  return problem ? "failed" : "ok";
}

/** What differs between the range in R2 and its manifest, or null. */
async function check(env: Env, run: RunRow, chunk: ChunkRow): Promise<string | null> {
  if (run.status !== "archived") return `run is ${run.status}, not archived`;
  const verified = await verifyRange(env, run, chunk);
  if (typeof verified === "string") return verified;
  const { manifest, etag } = verified;
  const listed = manifest.chunks.find((c) => c.index === chunk.chunk_index);
  if (!listed) return `manifest does not list chunk ${chunk.chunk_index}`;
  const lastPart = Math.max(...manifest.chunks.flatMap((c) => c.parts.map((p) => p.partNumber)));
  const unequal = listed.parts.filter((p) => p.partNumber !== lastPart && p.size !== manifest.partSize);
  if (unequal.length > 0) {
    return `part(s) ${unequal.map((p) => p.partNumber).join(", ")} are not ${manifest.partSize} bytes (R2's equal-size rule)`;
  }
  const member = chunkMemberRange(manifest, chunk.chunk_index);
  if (!member || listed.paddingBytes === 0) return null;
  const padding = await env.R2_ARCHIVE.get(manifest.objectKey, {
    range: { offset: member.offset + member.length, length: listed.paddingBytes },
    onlyIf: { etagMatches: etag },
  });
  if (!padding || !("body" in padding) || !padding.body) return "the archive object changed while it was read";
  const problem = emptyMembersProblem(new Uint8Array(await padding.arrayBuffer()));
  return problem ? `padding after chunk ${chunk.chunk_index}: ${problem}` : null;
}
