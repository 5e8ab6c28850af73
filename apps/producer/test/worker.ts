import archiveConsumer from "@path-stats/archive-consumer";
import cleanupConsumer from "@path-stats/cleanup-consumer";
import producer from "../src/index.ts";

/**
 * Faults a test puts on the consumers' bindings while messages travel through
 * the real local queues. Production code never sees this: only this test
 * Worker wraps the env it hands over.
 */
export const consumerFaults: { archive?: (env: Env) => Env } = {};

/** Routes each queue's batches to the Worker that consumes that queue in production. */
export default {
  fetch: producer.fetch,
  scheduled: producer.scheduled,
  async queue(batch, env) {
    // By the names the config in use gives the queues (the default one, or staging's).
    if (batch.queue === env.ARCHIVE_DLQ_NAME || batch.queue === env.CLEANUP_DLQ_NAME) return producer.queue(batch, env);
    if (batch.queue.startsWith("archive-chunks")) {
      return archiveConsumer.queue(batch, consumerFaults.archive ? consumerFaults.archive(env) : env);
    }
    if (batch.queue.startsWith("cleanup-ranges")) return cleanupConsumer.queue(batch, env);
    throw new Error(`no consumer for queue ${batch.queue}`);
  },
} satisfies ExportedHandler<Env>;
