import {
  CleanupRangeMessage,
  errorMessage,
  logEvent,
  type NewPacer,
  pacedEnv,
  readConfig,
  retryDelaySeconds,
  sendToDeadLetters,
} from "@path-stats/shared";
import { cleanRange } from "./clean-range.ts";
import { restoreRange } from "./restore-range.ts";
import { scrubRange } from "./scrub-range.ts";
import { recountRange } from "./stats/recount-range.ts";
import { UndeliverableMessageError } from "./verify-range.ts";

/**
 * The cleanup-ranges consumer: deletes archived ranges from D1, restores
 * them into D1 (`action: "restore"`), reads them back from R2 and checks
 * them against the manifest (`action: "verify"`, scrub), or counts their
 * path statistics again from R2 (`action: "recount"`). A range is acked once it is done (or was
 * refused, with the reason recorded); a transient failure is retried with a
 * delay and continues where it stopped; a message naming no range goes to
 * the dead letters. Every D1 statement of the invocation goes through one
 * pacer (D1_MS_PER_SECOND): the web API's writes wait behind it on D1's primary.
 * `newPacer` makes it (tests pass one with a clock of their own).
 */
export async function handleCleanupBatch(batch: MessageBatch, invoked: Env, newPacer?: NewPacer): Promise<void> {
  const config = readConfig(invoked);
  const { env, pacer } = pacedEnv(invoked, config.D1_MS_PER_SECOND, newPacer);
  for (const message of batch.messages) {
    const parsed = CleanupRangeMessage.safeParse(message.body);
    if (!parsed.success) {
      await sendToDeadLetters(env.CLEANUP_DLQ, message, "cleanup.dead_lettered", `malformed: ${parsed.error.message}`);
      continue;
    }
    const body = parsed.data;
    try {
      if (body.action === "restore") await restoreRange(env, config, body, new Date());
      else if (body.action === "verify") await scrubRange(env, body, new Date());
      else if (body.action === "recount") await recountRange(env, config, body, new Date());
      else await cleanRange(env, config, body, new Date());
      message.ack();
    } catch (error) {
      if (error instanceof UndeliverableMessageError) {
        await sendToDeadLetters(env.CLEANUP_DLQ, message, "cleanup.dead_lettered", error.message);
        continue;
      }
      const what = { restore: "restore", verify: "scrub", recount: "stats", delete: "cleanup" }[
        body.action ?? "delete"
      ];
      logEvent(`${what}.range_retry`, {
        runId: body.runId,
        date: body.date,
        chunk: body.chunkIndex,
        attempt: message.attempts,
        error: errorMessage(error),
      });
      message.retry({ delaySeconds: retryDelaySeconds(message.attempts, config.RETRY_DELAY_SECONDS) });
    }
  }
  logEvent("cleanup.d1_paced", { msPerSecond: pacer.msPerSecond, ...pacer.totals });
}
