import { logEvent } from "@path-stats/shared";

/** Each dead-letter queue and the queue its messages were meant for. */
export const ORIGINAL_QUEUE: Record<string, "archive-chunks" | "cleanup-ranges"> = {
  "archive-chunks-dlq": "archive-chunks",
  "cleanup-ranges-dlq": "cleanup-ranges",
};

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
  const queue = ORIGINAL_QUEUE[batch.queue];
  if (!queue) throw new Error(`not a dead-letter queue: ${batch.queue}`);
  for (const message of batch.messages) {
    const body = (typeof message.body === "object" && message.body !== null ? message.body : {}) as LetterBody;
    const runId = typeof body.runId === "string" ? body.runId : null;
    const chunkIndex = typeof body.chunkIndex === "number" ? body.chunkIndex : null;
    const chunk =
      runId !== null && chunkIndex !== null
        ? await env.D1.prepare(
            "SELECT attempts, last_error, cleanup_error FROM archive_chunks WHERE run_id = ?1 AND chunk_index = ?2",
          )
            .bind(runId, chunkIndex)
            .first<{ attempts: number; last_error: string | null; cleanup_error: string | null }>()
        : null;
    const lastError = queue === "archive-chunks" ? chunk?.last_error : chunk?.cleanup_error;
    await env.D1.prepare(
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
    logEvent("dead_letter.recorded", {
      queue,
      messageId: message.id,
      runId,
      date: body.date ?? null,
      chunk: chunkIndex,
    });
    message.ack();
  }
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

/**
 * Re-sends the chosen dead letters (or every one not replayed yet) to their
 * original queue and marks them replayed. Consumers are idempotent, so
 * replaying a letter twice is harmless.
 */
export async function replayDeadLetters(env: Env, ids: number[] | "pending", now: Date) {
  const { results } =
    ids === "pending"
      ? await env.D1.prepare(
          "SELECT id, queue, body FROM dead_letters WHERE replayed_at IS NULL ORDER BY id",
        ).all<Letter>()
      : await env.D1.prepare(
          `SELECT id, queue, body FROM dead_letters WHERE id IN (${ids.map(() => "?").join(", ")}) ORDER BY id`,
        )
          .bind(...ids)
          .all<Letter>();
  for (const letter of results) {
    const target = letter.queue === "archive-chunks" ? env.ARCHIVE_QUEUE : env.CLEANUP_QUEUE;
    await target.send(JSON.parse(letter.body), { contentType: "json" });
    await env.D1.prepare("UPDATE dead_letters SET replayed_at = ?1, replay_count = replay_count + 1 WHERE id = ?2")
      .bind(now.toISOString(), letter.id)
      .run();
  }
  return {
    replayed: results.map((l) => l.id),
    missing: ids === "pending" ? [] : ids.filter((id) => !results.some((l) => l.id === id)),
  };
}

interface Letter {
  id: number;
  queue: string;
  body: string;
}
