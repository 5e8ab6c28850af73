import { ArchiveChunkMessage, errorMessage, logEvent, readConfig } from "@path-stats/shared";
import { archiveChunk, PermanentChunkError, UndeliverableMessageError } from "./archive-chunk.ts";
import { failRun } from "./finalize-run.ts";

/** Retry delays grow with attempts, capped so a run does not stall for long. */
function retryDelaySeconds(attempts: number): number {
  return Math.min(300, 5 * 2 ** Math.max(0, attempts - 1));
}

/** Sends a message no retry can help straight to the dead letters, so it is kept and can be inspected. */
async function deadLetter(env: Env, message: Message, reason: string): Promise<void> {
  logEvent("archive.dead_lettered", { messageId: message.id, error: reason });
  await env.ARCHIVE_DLQ.send(message.body, { contentType: "json" });
  message.ack();
}

/**
 * The archive-chunks consumer. Each message is acked only once its chunk's
 * result is durable in D1 (or the chunk needs nothing more); a transient
 * failure is retried with a delay; a malformed message goes straight to the
 * dead letters.
 */
export async function handleArchiveBatch(batch: MessageBatch, env: Env): Promise<void> {
  const config = readConfig(env);
  for (const message of batch.messages) {
    const parsed = ArchiveChunkMessage.safeParse(message.body);
    if (!parsed.success) {
      await deadLetter(env, message, `malformed message: ${parsed.error.message}`);
      continue;
    }
    const body = parsed.data;
    const where = { runId: body.runId, date: body.date, chunk: body.chunkIndex, attempt: message.attempts };
    try {
      const result = await archiveChunk(env, config, body, new Date());
      if (result.kind === "busy") {
        message.retry({ delaySeconds: result.retryAfterSeconds });
      } else {
        message.ack();
      }
    } catch (error) {
      if (error instanceof UndeliverableMessageError) {
        await deadLetter(env, message, error.message);
      } else if (error instanceof PermanentChunkError) {
        await failRun(env, body.runId, errorMessage(error), new Date());
        message.ack();
      } else {
        logEvent("archive.chunk_retry", { ...where, error: errorMessage(error) });
        message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
      }
    }
  }
}
