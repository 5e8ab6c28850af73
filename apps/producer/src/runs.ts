import { type ArchivedTable, failRun, type RunRow } from "@path-stats/shared";

export function findInFlightRun(db: D1Database, table: ArchivedTable, date: string): Promise<RunRow | null> {
  return db
    .prepare("SELECT * FROM archive_runs WHERE table_name = ?2 AND date = ?1 AND status IN ('archiving', 'finalizing')")
    .bind(date, table.name)
    .first<RunRow>();
}

/** A run that an operator asked to fail but that cannot be: unknown, or not archiving. */
export class RunNotFailableError extends Error {
  override name = "RunNotFailableError";
  constructor(
    readonly status: 404 | 409,
    readonly code: "run_not_found" | "run_not_archiving" | "run_committed",
    message: string,
  ) {
    super(message);
  }
}

/**
 * Ends a stuck run on an operator's word: the run is failed with the reason,
 * its upload aborted, nothing deleted from D1; the next trigger of the date
 * plans a new run over its rows. Only a run that is archiving and has no
 * manifest in R2: a finalizing one may be writing its manifest, a run whose
 * manifest exists is committed, and an archived or failed one is over.
 */
export async function failRunByOperator(env: Env, runId: string, reason: string, now: Date): Promise<RunRow> {
  const run = await env.D1.prepare("SELECT * FROM archive_runs WHERE run_id = ?1").bind(runId).first<RunRow>();
  if (!run) throw new RunNotFailableError(404, "run_not_found", `no run ${runId}`);
  if (run.status !== "archiving") {
    throw new RunNotFailableError(
      409,
      "run_not_archiving",
      `run ${runId} is ${run.status}; only a run that is archiving can be failed`,
    );
  }
  // A run whose manifest is in R2 is committed, whatever D1 says: its finalizer completes it.
  if (await env.R2_ARCHIVE.head(run.manifest_key)) {
    throw new RunNotFailableError(
      409,
      "run_committed",
      `run ${runId} has its manifest in R2: it is committed and is never failed; POST /admin/trigger-archive?table=${run.table_name}&date=${run.date} finalizes it`,
    );
  }
  const failed = await failRun(env, runId, `failed by an operator: ${reason}`, now);
  if (failed) return failed;
  const current = await env.D1.prepare("SELECT status FROM archive_runs WHERE run_id = ?1").bind(runId).first<RunRow>();
  throw new RunNotFailableError(
    409,
    "run_not_archiving",
    `run ${runId} is ${current?.status ?? run.status}; only a run that is archiving can be failed`,
  );
}
