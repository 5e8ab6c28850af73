import { handleArchiveBatch } from "./handle-batch.ts";

export { handleArchiveBatch } from "./handle-batch.ts";

export default {
  async queue(batch, env) {
    await handleArchiveBatch(batch, env);
  },
} satisfies ExportedHandler<Env>;
