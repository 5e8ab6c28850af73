import { logEvent } from "@path-stats/shared";

/**
 * The cleanup-ranges consumer. Verified deletion is not built yet: until it
 * is, every message is retried (and so reaches the dead letters), never acked,
 * so no cleanup request is silently dropped and nothing is deleted.
 */
export async function handleCleanupBatch(batch: MessageBatch): Promise<void> {
  for (const message of batch.messages) {
    logEvent("cleanup.not_implemented", { messageId: message.id, attempt: message.attempts });
    message.retry({ delaySeconds: 60 });
  }
}

export default {
  async queue(batch) {
    await handleCleanupBatch(batch);
  },
} satisfies ExportedHandler<Env>;
