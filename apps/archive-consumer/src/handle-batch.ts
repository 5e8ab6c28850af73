import { ArchiveChunkMessage, errorMessage, logEvent, readConfig } from "@path-stats/shared";
import { archiveChunk, PermanentChunkError } from "./archive-chunk.ts";
import { failRun } from "./finalize-run.ts";

/** Retry delays grow with attempts, capped so a run does not stall for long. */
function retryDelaySeconds(attempts: number): number {
  return Math.min(300, 5 * 2 ** Math.max(0, attempts - 1));
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
      logEvent("archive.malformed_message", { messageId: message.id, error: parsed.error.message });
      await env.ARCHIVE_DLQ.send(message.body, { contentType: "json" });
      message.ack();
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
      if (error instanceof PermanentChunkError) {
        await failRun(env, body.runId, errorMessage(error), new Date());
        message.ack();
      } else {
        logEvent("archive.chunk_retry", { ...where, error: errorMessage(error) });
        message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
      }
    }
  }
}
