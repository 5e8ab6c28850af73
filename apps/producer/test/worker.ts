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
    switch (batch.queue) {
      case "archive-chunks":
        return archiveConsumer.queue(batch, consumerFaults.archive ? consumerFaults.archive(env) : env);
      case "cleanup-ranges":
        return cleanupConsumer.queue(batch, env);
      case "archive-chunks-dlq":
      case "cleanup-ranges-dlq":
        return producer.queue(batch, env);
      default:
        throw new Error(`no consumer for queue ${batch.queue}`);
    }
  },
} satisfies ExportedHandler<Env>;
