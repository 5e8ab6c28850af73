import { errorMessage, logEvent } from "./log.ts";

/** The part of a Workers Analytics Engine dataset the archiver writes to. */
export interface AnalyticsSink {
  writeDataPoint(point: { indexes?: string[]; blobs?: string[]; doubles?: number[] }): void;
}

/**
 * One data point per chunk archived, per range cleaned or refused, and per
 * run archived or failed, in the `ANALYTICS` dataset when the binding is
 * configured (production and staging); without it nothing is written. The
 * layout, which the README's queries rely on:
 *
 * - blob1 kind (`chunk` | `range` | `run`), blob2 outcome, blob3 date, blob4 run id; index1 the date.
 * - chunk (outcome `archived`): double1 rows, double2 gzip bytes, double3 padding bytes, double4 ms.
 * - range (`cleaned` | `refused`): double1 rows deleted, double2 rows left, double3 ms.
 * - run (`archived` | `failed`): double1 rows, double2 object bytes, double3 parts, double4 seconds
 *   from the day's close (midnight UTC after it) to the outcome: the archive's lag.
 */
export type ArchiverPoint =
  | {
      kind: "chunk";
      outcome: "archived";
      date: string;
      runId: string;
      rows: number;
      gzBytes: number;
      paddingBytes: number;
      ms: number;
    }
  | {
      kind: "range";
      outcome: "cleaned" | "refused";
      date: string;
      runId: string;
      rowsDeleted: number;
      rowsLeft: number;
      ms: number;
    }
  | {
      kind: "run";
      outcome: "archived" | "failed";
      date: string;
      runId: string;
      rows: number;
      objectBytes: number;
      parts: number;
      at: Date;
    };

function doubles(point: ArchiverPoint): number[] {
  switch (point.kind) {
    case "chunk":
      return [point.rows, point.gzBytes, point.paddingBytes, point.ms];
    case "range":
      return [point.rowsDeleted, point.rowsLeft, point.ms];
    case "run":
      return [
        point.rows,
        point.objectBytes,
        point.parts,
        (point.at.getTime() - Date.parse(`${point.date}T00:00:00Z`) - 86_400_000) / 1000,
      ];
  }
}

/** Writes the point when `env` has an ANALYTICS binding; never throws (metrics must not fail the work). */
export function recordPoint(env: object, point: ArchiverPoint): void {
  const sink = (env as { ANALYTICS?: AnalyticsSink }).ANALYTICS;
  if (!sink) return;
  try {
    sink.writeDataPoint({
      indexes: [point.date],
      blobs: [point.kind, point.outcome, point.date, point.runId],
      doubles: doubles(point),
    });
  } catch (error) {
    logEvent("analytics.write_failed", { kind: point.kind, error: errorMessage(error) });
  }
}
