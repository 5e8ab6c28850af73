import { adminApp } from "./admin/app.ts";
import { runCron } from "./cron.ts";
import { recordDeadLetters } from "./dead-letters.ts";

export { planArchive } from "./plan-archive.ts";
export { CleanupRefusedError, planCleanup } from "./plan-cleanup.ts";

export default {
  fetch: adminApp.fetch,
  async scheduled(controller, env) {
    await runCron(env, new Date(controller.scheduledTime));
  },
  // The producer consumes both dead-letter queues.
  async queue(batch, env) {
    await recordDeadLetters(batch, env, new Date());
  },
} satisfies ExportedHandler<Env>;
