import { batchesOf, errorMessage, logEvent } from "@path-stats/shared";

/**
 * The queue a dead-letter queue's messages were meant for, by the names the
 * environment's config gives its dead-letter queues (vars ARCHIVE_DLQ_NAME,
 * CLEANUP_DLQ_NAME: each environment names its queues its own way, staging
 * with a suffix), or null for a queue that is neither.
 */
export function originalQueueOf(
  env: { ARCHIVE_DLQ_NAME?: string; CLEANUP_DLQ_NAME?: string },
  deadLetterQueue: string,
): "archive-chunks" | "cleanup-ranges" | null {
  if (deadLetterQueue === (env.ARCHIVE_DLQ_NAME || "archive-chunks-dlq")) return "archive-chunks";
  if (deadLetterQueue === (env.CLEANUP_DLQ_NAME || "cleanup-ranges-dlq")) return "cleanup-ranges";
  return null;
}

interface LetterBody {
  runId?: unknown;
  date?: unknown;
  chunkIndex?: unknown;
}

/**
 * Consumes a dead-letter queue into `dead_letters`, with the original queue,
 * the body, the attempts and the last error recorded for that chunk, so it
 * can be listed and replayed. Recording a letter twice keeps one row.
 */
export async function recordDeadLetters(batch: MessageBatch, env: Env, now: Date): Promise<void> {
  const queue = originalQueueOf(env, batch.queue);
  if (!queue) {
    throw new Error(
      `not a dead-letter queue of this environment: ${batch.queue} (ARCHIVE_DLQ_NAME and CLEANUP_DLQ_NAME name them)`,
    );
  }
  for (const message of batch.messages) {
    try {
      await recordDeadLetter(env.D1, queue, message, now);
      message.ack();
    } catch (error) {
      // Never acked unrecorded: retried later, delays doubling from 30 s to an hour.
      const delaySeconds = Math.min(3600, 30 * 2 ** Math.max(0, message.attempts - 1));
      logEvent("dead_letter.record_failed", { queue, messageId: message.id, error: errorMessage(error), delaySeconds });
      message.retry({ delaySeconds });
    }
  }
}

async function recordDeadLetter(
  db: D1Database,
  queue: "archive-chunks" | "cleanup-ranges",
  message: Message,
  now: Date,
): Promise<void> {
  const body = (typeof message.body === "object" && message.body !== null ? message.body : {}) as LetterBody;
  const runId = typeof body.runId === "string" ? body.runId : null;
  const chunkIndex = typeof body.chunkIndex === "number" ? body.chunkIndex : null;
  const chunk =
    runId !== null && chunkIndex !== null
      ? await db
          .prepare(
            "SELECT attempts, last_error, cleanup_error FROM archive_chunks WHERE run_id = ?1 AND chunk_index = ?2",
          )
          .bind(runId, chunkIndex)
          .first<{ attempts: number; last_error: string | null; cleanup_error: string | null }>()
      : null;
  const lastError =
    runId !== null && chunkIndex !== null && !chunk
      ? `run ${runId} has no chunk ${chunkIndex} in D1`
      : queue === "archive-chunks"
        ? chunk?.last_error
        : chunk?.cleanup_error;
  await db
    .prepare(
      `INSERT INTO dead_letters (queue, message_id, body, attempts, date, run_id, last_error, received_at)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (queue, message_id) DO NOTHING`,
    )
    .bind(
      queue,
      message.id,
      JSON.stringify(message.body),
      chunk?.attempts ?? message.attempts,
      typeof body.date === "string" ? body.date : null,
      runId,
      lastError ?? null,
      now.toISOString(),
    )
    .run();
  logEvent("dead_letter.recorded", { queue, messageId: message.id, runId, date: body.date ?? null, chunk: chunkIndex });
}

export interface DeadLetterFilter {
  queue?: string | undefined;
  date?: string | undefined;
  replayed?: boolean | undefined;
  limit: number;
}

export async function listDeadLetters(db: D1Database, filter: DeadLetterFilter) {
  const { results } = await db
    .prepare(
      `SELECT * FROM dead_letters
       WHERE (?1 IS NULL OR queue = ?1) AND (?2 IS NULL OR date = ?2)
         AND (?3 IS NULL OR (replayed_at IS NOT NULL) = ?3)
       ORDER BY id DESC LIMIT ?4`,
    )
    .bind(
      filter.queue ?? null,
      filter.date ?? null,
      filter.replayed === undefined ? null : Number(filter.replayed),
      filter.limit,
    )
    .all<{ body: string } & Record<string, unknown>>();
  return results.map((row) => ({ ...row, body: JSON.parse(row.body) as unknown }));
}

/** Letters re-sent per sendBatch (Queues takes at most 100 messages and 256 KB per call). */
const REPLAY_PAGE = 100;
/** Letters one replay request re-sends at most; the answer says how many are left for the next one. */
export const MAX_REPLAY_PER_REQUEST = 5000;

/**
 * Re-sends the chosen dead letters (or the oldest pending ones, up to
 * MAX_REPLAY_PER_REQUEST) to their original queue in pages of sendBatch, and
 * marks each page replayed once it is sent. Consumers are idempotent, so a
 * letter replayed twice is harmless.
 */
export async function replayDeadLetters(env: Env, ids: number[] | "pending", now: Date) {
  const replayed: number[] = [];
  const pickPending = env.D1.prepare(
    "SELECT id, queue, body FROM dead_letters WHERE replayed_at IS NULL AND id > ?1 ORDER BY id LIMIT ?2",
  );
  let after = 0;
  let chosen: Letter[] = [];
  if (ids !== "pending") {
    const { results } = await env.D1.prepare(
      `SELECT id, queue, body FROM dead_letters WHERE id IN (${ids.map(() => "?").join(", ")}) ORDER BY id`,
    )
      .bind(...ids)
      .all<Letter>();
    chosen = results;
  }
  for (let offset = 0; ; offset += REPLAY_PAGE) {
    const page =
      ids === "pending"
        ? (await pickPending.bind(after, Math.min(REPLAY_PAGE, MAX_REPLAY_PER_REQUEST - replayed.length)).all<Letter>())
            .results
        : chosen.slice(offset, offset + REPLAY_PAGE);
    if (page.length === 0) break;
    for (const queue of ["archive-chunks", "cleanup-ranges"] as const) {
      const letters = page.filter((l) => l.queue === queue);
      if (letters.length === 0) continue;
      const target = queue === "archive-chunks" ? env.ARCHIVE_QUEUE : env.CLEANUP_QUEUE;
      for (const batch of batchesOf(letters)) {
        await target.sendBatch(batch.map((l) => ({ body: JSON.parse(l.body), contentType: "json" as const })));
      }
    }
    await env.D1.prepare(
      `UPDATE dead_letters SET replayed_at = ?1, replay_count = replay_count + 1
       WHERE id IN (SELECT value FROM json_each(?2))`,
    )
      .bind(now.toISOString(), JSON.stringify(page.map((l) => l.id)))
      .run();
    replayed.push(...page.map((l) => l.id));
    after = page.at(-1)?.id ?? after;
    if (replayed.length >= MAX_REPLAY_PER_REQUEST) break;
  }
  const left =
    ids === "pending"
      ? ((
          await env.D1.prepare("SELECT COUNT(*) AS n FROM dead_letters WHERE replayed_at IS NULL").first<{
            n: number;
          }>()
        )?.n ?? 0)
      : 0;
  return {
    replayed,
    missing: ids === "pending" ? [] : ids.filter((id) => !chosen.some((l) => l.id === id)),
    pendingLeft: left,
  };
}

interface Letter {
  id: number;
  queue: string;
  body: string;
}
