import { handleCleanupBatch } from "./handle-batch.ts";

export { handleCleanupBatch } from "./handle-batch.ts";

export default {
  async queue(batch, env) {
    await handleCleanupBatch(batch, env);
  },
} satisfies ExportedHandler<Env>;
