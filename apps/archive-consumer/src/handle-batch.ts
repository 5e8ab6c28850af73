import {
  ArchiveChunkMessage,
  errorMessage,
  failRun,
  logEvent,
  type NewPacer,
  pacedEnv,
  readConfig,
  retryDelaySeconds,
  sendToDeadLetters,
} from "@path-stats/shared";
import { archiveChunk } from "./archive-chunk.ts";
import { PermanentChunkError, UndeliverableMessageError } from "./errors.ts";

/**
 * The archive-chunks consumer. Each message is acked only once its chunk's
 * result is durable in D1 (or the chunk needs nothing more); a transient
 * failure is retried with a delay; a malformed message goes straight to the
 * dead letters. Every D1 statement of the invocation goes through one pacer
 * (D1_MS_PER_SECOND): the web API's writes wait behind it on D1's primary.
 * `newPacer` makes it (tests pass one with a clock of their own).
 */
export async function handleArchiveBatch(batch: MessageBatch, invoked: Env, newPacer?: NewPacer): Promise<void> {
  const config = readConfig(invoked);
  const { env, pacer } = pacedEnv(invoked, config.D1_MS_PER_SECOND, newPacer);
  for (const message of batch.messages) {
    const parsed = ArchiveChunkMessage.safeParse(message.body);
    if (!parsed.success) {
      await sendToDeadLetters(env.ARCHIVE_DLQ, message, "archive.dead_lettered", `malformed: ${parsed.error.message}`);
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
        await sendToDeadLetters(env.ARCHIVE_DLQ, message, "archive.dead_lettered", error.message);
      } else if (error instanceof PermanentChunkError) {
        await failRun(env, body.runId, errorMessage(error), new Date());
        message.ack();
      } else {
        logEvent("archive.chunk_retry", { ...where, error: errorMessage(error) });
        message.retry({ delaySeconds: retryDelaySeconds(message.attempts, config.RETRY_DELAY_SECONDS) });
      }
    }
  }
  logEvent("archive.d1_paced", { msPerSecond: pacer.msPerSecond, ...pacer.totals });
}
