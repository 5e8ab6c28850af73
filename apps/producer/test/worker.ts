import archiveConsumer from "@path-stats/archive-consumer";
import cleanupConsumer from "@path-stats/cleanup-consumer";
import producer from "../src/index.ts";
import { QueryBudget, strictD1 } from "./strict-d1/strict-d1.ts";

/**
 * Faults a test puts on the consumers' bindings while messages travel through
 * the real local queues. Production code never sees this: only this test
 * Worker wraps the env it hands over.
 */
export const consumerFaults: { archive?: (env: Env) => Env } = {};

/**
 * The env of one invocation: D1 with production's limits, its queries
 * counted against this invocation's budget: D1_QUERIES_PER_INVOCATION when
 * the env sets one (50 is Workers Free's), else Workers Paid's 1000.
 */
export function invocationEnv(env: Env): Env {
  const configured = Number((env as { D1_QUERIES_PER_INVOCATION?: string }).D1_QUERIES_PER_INVOCATION);
  const budget = Number.isInteger(configured) && configured > 0 ? new QueryBudget(configured) : new QueryBudget();
  return { ...env, D1: strictD1(env.D1, budget) };
}

/** Routes each queue's batches to the Worker that consumes that queue in production. */
export default {
  fetch: (request: Request, env: Env, ctx?: ExecutionContext) => producer.fetch(request, invocationEnv(env), ctx),
  scheduled: (controller: ScheduledController, env: Env) => producer.scheduled(controller, invocationEnv(env)),
  async queue(batch, invoked) {
    const env = invocationEnv(invoked);
    // By the names the config in use gives the queues (the default one, or staging's).
    if (batch.queue === env.ARCHIVE_DLQ_NAME || batch.queue === env.CLEANUP_DLQ_NAME) return producer.queue(batch, env);
    if (batch.queue.startsWith("archive-chunks")) {
      return archiveConsumer.queue(batch, consumerFaults.archive ? consumerFaults.archive(env) : env);
    }
    if (batch.queue.startsWith("cleanup-ranges")) return cleanupConsumer.queue(batch, env);
    throw new Error(`no consumer for queue ${batch.queue}`);
  },
} satisfies ExportedHandler<Env>;
