import { errorMessage, logEvent } from "@path-stats/shared";
import type { Problem } from "./health.ts";

/** The webhook is a secret (`wrangler secret put ALERT_WEBHOOK_URL`); without it nothing is posted. */
type AlertEnv = Env & { ALERT_WEBHOOK_URL?: string };

const ATTEMPTS = 3;
const ATTEMPT_TIMEOUT_MS = 10_000;
const BACKOFF_MS = [500, 2000];

interface OpenAlert {
  key: string;
  code: string;
  date: string | null;
  run_id: string | null;
  message: string;
  since: string;
}

export interface AlertOutcome {
  raised: string[];
  cleared: string[];
  /** Changes not posted (the webhook failed every attempt); the next cron run posts them. */
  unsent: string[];
}

/** The JSON posted for one change: `text` is what Slack-compatible webhooks show as is. */
function payload(status: "raised" | "cleared", problem: Problem | OpenAlert) {
  const what = "action" in problem ? `${problem.message}. To do: ${problem.action}` : problem.message;
  return {
    text: `[path-stats archiver] ${status === "raised" ? "PROBLEM" : "CLEARED"} ${problem.code}: ${what}`,
    status,
    problem,
  };
}

/** Posts one change, retrying a bounded number of times; true once the receiver answered 2xx. */
async function post(url: string, body: unknown): Promise<boolean> {
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
      });
      await response.body?.cancel();
      if (response.ok) return true;
      logEvent("alert.post_failed", { attempt, status: response.status });
    } catch (error) {
      logEvent("alert.post_failed", { attempt, error: errorMessage(error) });
    }
    const delay = BACKOFF_MS[attempt - 1];
    if (delay !== undefined && attempt < ATTEMPTS) await new Promise((resolve) => setTimeout(resolve, delay));
  }
  return false;
}

/**
 * Posts each problem that is new since the last check, and each that cleared,
 * once: the alerts table remembers what was announced. A change is recorded
 * only after the receiver accepted it, so a webhook that is down gets it on a
 * later run (a D1 failure between the post and the record may repeat one).
 * Once the webhook fails every attempt, the rest waits for the next run: an
 * unreachable receiver costs one change's retries, never the cron's work.
 */
export async function announceChanges(env: AlertEnv, problems: Problem[], now: Date): Promise<AlertOutcome> {
  const url = env.ALERT_WEBHOOK_URL?.trim();
  const outcome: AlertOutcome = { raised: [], cleared: [], unsent: [] };
  if (!url) return outcome;
  const db = env.D1;
  const { results: open } = await db
    .prepare("SELECT key, code, date, run_id, message, since FROM alerts WHERE cleared_at IS NULL")
    .all<OpenAlert>();
  const openKeys = new Set(open.map((a) => a.key));
  const current = new Set(problems.map((p) => p.key));
  const changes = [
    ...problems.filter((p) => !openKeys.has(p.key)).map((p) => ({ status: "raised" as const, problem: p })),
    ...open.filter((a) => !current.has(a.key)).map((a) => ({ status: "cleared" as const, problem: a })),
  ];

  let webhookDown = false;
  for (const change of changes) {
    if (webhookDown || !(await post(url, payload(change.status, change.problem)))) {
      webhookDown = true;
      outcome.unsent.push(change.problem.key);
      continue;
    }
    if (change.status === "raised") {
      const p = change.problem as Problem;
      await db
        .prepare(
          `INSERT INTO alerts (key, code, date, run_id, message, since, raised_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
           ON CONFLICT (key) DO UPDATE SET code = ?2, date = ?3, run_id = ?4, message = ?5, since = ?6,
             raised_at = ?7, cleared_at = NULL`,
        )
        .bind(p.key, p.code, p.date, p.runId, p.message, p.since, now.toISOString())
        .run();
      outcome.raised.push(p.key);
    } else {
      await db
        .prepare("UPDATE alerts SET cleared_at = ?1 WHERE key = ?2")
        .bind(now.toISOString(), change.problem.key)
        .run();
      outcome.cleared.push(change.problem.key);
    }
  }
  if (changes.length > 0) logEvent("alert.announced", { ...outcome });
  return outcome;
}
