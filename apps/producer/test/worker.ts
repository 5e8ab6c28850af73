import archiveConsumer from "@path-stats/archive-consumer";
import cleanupConsumer from "@path-stats/cleanup-consumer";
import producer from "../src/index.ts";

/** Routes each queue's batches to the Worker that consumes that queue in production. */
export default {
  fetch: producer.fetch,
  scheduled: producer.scheduled,
  async queue(batch, env) {
    switch (batch.queue) {
      case "archive-chunks":
        return archiveConsumer.queue(batch, env);
      case "cleanup-ranges":
        return cleanupConsumer.queue(batch, env);
      default:
        throw new Error(`no consumer for queue ${batch.queue}`);
    }
  },
} satisfies ExportedHandler<Env>;
