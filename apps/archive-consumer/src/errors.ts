/** A failure that no retry can fix: the run is failed at once and its upload aborted. */
export class PermanentChunkError extends Error {
  override name = "PermanentChunkError";
}

/** A message that names no chunk of a run: nothing to fail, so it goes to the dead letters. */
export class UndeliverableMessageError extends Error {
  override name = "UndeliverableMessageError";
}

/** This delivery's claim on its chunk ended (taken over after its lease, or the run was failed): stop uploading. */
export class ClaimLostError extends Error {
  override name = "ClaimLostError";
}

/**
 * R2 answers NoSuchUpload (10024) for an upload that was completed or
 * aborted, by us or by R2 itself after an incomplete upload's lifetime (7
 * days by default): no retry can bring it back.
 */
export function isUploadGone(error: unknown): boolean {
  return /NoSuchUpload|\b10024\b/.test(error instanceof Error ? error.message : String(error));
}

/**
 * R2 answers InvalidPart (10025) at complete() when a part it keeps has
 * another etag than the one recorded: a consumer whose claim was taken over
 * wrote the part after the new owner did.
 */
export function isPartOverwritten(error: unknown): boolean {
  return /InvalidPart|\b10025\b/.test(error instanceof Error ? error.message : String(error));
}

/** complete() found a part overwritten behind the run's back: its chunks are archived again. */
export class PartsOverwrittenError extends Error {
  override name = "PartsOverwrittenError";
}
