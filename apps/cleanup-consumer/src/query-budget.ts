import type { CleanupRangeMessage, Config } from "@path-stats/shared";

/**
 * D1 queries of a range besides its windows' statements (loading, the
 * read-back check, the epoch, the count of what is left, marking it done,
 * closing the run and the day), with room to spare.
 */
const QUERIES_BESIDES_WINDOWS = 25;

/**
 * The queries a range's windows may make in one invocation: D1 allows a
 * Worker invocation D1_QUERIES_PER_INVOCATION (1000 on Workers Paid, 50 on
 * Free). A range that needs more goes on in a message of its own.
 */
export function windowQueries(config: Config): number {
  return config.D1_QUERIES_PER_INVOCATION - QUERIES_BESIDES_WINDOWS;
}

/** Sends the range again, to go on in the next invocation where this one stopped. */
export async function continueLater(
  env: Env,
  message: CleanupRangeMessage,
  resume: NonNullable<CleanupRangeMessage["resume"]>,
): Promise<void> {
  await env.CLEANUP_QUEUE.send({ ...message, resume });
}
