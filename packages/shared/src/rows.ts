/** A row of archive_runs. */
export interface RunRow {
  run_id: string;
  /** The archived table the run is of (ArchivedTable.name). */
  table_name: string;
  date: string;
  status: "archiving" | "finalizing" | "archived" | "failed";
  object_key: string;
  manifest_key: string;
  upload_id: string;
  part_size: number;
  rowid_lo: number;
  rowid_hi: number;
  planned_rows: number;
  chunk_count: number;
  est_gz_bytes_per_row: number;
  plan_rows_read: number;
  archived_rows: number | null;
  raw_bytes: number | null;
  object_bytes: number | null;
  part_count: number | null;
  rows_read: number | null;
  finalize_started_at: string | null;
  created_at: string;
  archived_at: string | null;
  failed_at: string | null;
  error: string | null;
  rows_deleted: number | null;
  cleaned_at: string | null;
  cleanup_error: string | null;
  verify_requested_at: string | null;
  verified_at: string | null;
  verify_error: string | null;
}

/** A row of archive_chunks. */
export interface ChunkRow {
  run_id: string;
  chunk_index: number;
  rowid_lo: number;
  rowid_hi: number;
  planned_rows: number;
  first_part: number;
  max_parts: number;
  state: "pending" | "archived";
  claim_token: string | null;
  claimed_at: string | null;
  enqueued_at: string | null;
  attempts: number;
  last_error: string | null;
  rows: number | null;
  raw_bytes: number | null;
  gz_bytes: number | null;
  padding_bytes: number | null;
  parts: string | null;
  columns: string | null;
  sha256: string | null;
  rows_read: number | null;
  peak_buffered_bytes: number | null;
  duration_ms: number | null;
  archived_at: string | null;
  cleanup_state: "none" | "pending" | "cleaned" | "failed";
  cleanup_verified_at: string | null;
  rows_deleted: number;
  delete_statements: number;
  cleanup_rows_written: number;
  cleanup_ms: number;
  cleanup_error: string | null;
  cleaned_at: string | null;
  rows_left: number | null;
  cleanup_failed_at: string | null;
  cleanup_enqueued_at: string | null;
  /** Grows whenever a row enters or changes in the range while it is being cleaned or is cleaned. */
  cleanup_epoch: number;
  restore_state: "none" | "pending" | "restored" | "failed";
  rows_restored: number;
  restore_error: string | null;
  restored_at: string | null;
  restore_failed_at: string | null;
  verify_state: "none" | "pending" | "ok" | "failed";
  verify_error: string | null;
  verified_at: string | null;
}
