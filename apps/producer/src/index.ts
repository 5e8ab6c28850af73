import { Hono } from "hono";
import { runCron } from "./cron.ts";

export { planArchive } from "./plan-archive.ts";
export { CleanupRefusedError, planCleanup } from "./plan-cleanup.ts";

const app = new Hono<{ Bindings: Env }>()
  .get("/healthz", (c) => c.json({ ok: true }))
  .notFound((c) => c.json({ error: { code: "not_found", message: "no such route" } }, 404));

export default {
  fetch: app.fetch,
  async scheduled(controller, env) {
    await runCron(env, new Date(controller.scheduledTime));
  },
} satisfies ExportedHandler<Env>;
