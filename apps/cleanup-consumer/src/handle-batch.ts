import {
  CleanupRangeMessage,
  errorMessage,
  logEvent,
  readConfig,
  retryDelaySeconds,
  sendToDeadLetters,
} from "@path-stats/shared";
import { cleanRange, UndeliverableMessageError } from "./clean-range.ts";

/**
 * The cleanup-ranges consumer. A range is acked once it is deleted (or was
 * refused, with the reason recorded); a transient failure is retried with a
 * delay and continues where it stopped; a message naming no range goes to
 * the dead letters.
 */
export async function handleCleanupBatch(batch: MessageBatch, env: Env): Promise<void> {
  const config = readConfig(env);
  for (const message of batch.messages) {
    const parsed = CleanupRangeMessage.safeParse(message.body);
    if (!parsed.success) {
      await sendToDeadLetters(env.CLEANUP_DLQ, message, "cleanup.dead_lettered", `malformed: ${parsed.error.message}`);
      continue;
    }
    const body = parsed.data;
    try {
      await cleanRange(env, config, body, new Date());
      message.ack();
    } catch (error) {
      if (error instanceof UndeliverableMessageError) {
        await sendToDeadLetters(env.CLEANUP_DLQ, message, "cleanup.dead_lettered", error.message);
        continue;
      }
      logEvent("cleanup.range_retry", {
        runId: body.runId,
        date: body.date,
        chunk: body.chunkIndex,
        attempt: message.attempts,
        error: errorMessage(error),
      });
      message.retry({ delaySeconds: retryDelaySeconds(message.attempts, config.RETRY_DELAY_SECONDS) });
    }
  }
}
