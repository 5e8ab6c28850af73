import { z } from "zod";
import { isCalendarDate } from "./dates.ts";

const calendarDate = z.string().refine(isCalendarDate, "must be a real calendar date YYYY-MM-DD");
const runId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);

/** One chunk of an archive run: the consumer reads its range and parts from D1. */
export const ArchiveChunkMessage = z.object({
  version: z.literal(1),
  runId,
  date: calendarDate,
  chunkIndex: z.number().int().min(0),
});
export type ArchiveChunkMessage = z.infer<typeof ArchiveChunkMessage>;

/**
 * One range of a committed run for the cleanup-ranges consumer: to delete
 * from D1 (the default, and every message written before `action` existed),
 * to restore into D1 from the archive, or to read back and verify (scrub).
 */
export const CleanupRangeMessage = ArchiveChunkMessage.extend({
  action: z.enum(["delete", "restore", "verify", "recount"]).optional(),
  /** A recount of the day's path statistics (`action: "recount"`): which, and this range's place in it. */
  recount: z.object({ id: runId, seq: z.number().int().min(0) }).optional(),
  /**
   * A delete that goes on where an earlier invocation stopped, its D1 queries
   * spent (D1_QUERIES_PER_INVOCATION): the pass it was in, the range's
   * cleanup epoch when that pass began, and the last id of the windows it
   * had done.
   */
  resume: z
    .object({ pass: z.number().int().min(1), epoch: z.number().int().min(0), afterId: z.number().int() })
    .optional(),
});
export type CleanupRangeMessage = z.infer<typeof CleanupRangeMessage>;

const ManifestPart = z.object({
  partNumber: z.number().int().min(1).max(10_000),
  etag: z.string(),
  size: z.number().int().positive(),
});

export const ManifestChunk = z.object({
  index: z.number().int().min(0),
  rowidLo: z.number().int(),
  rowidHi: z.number().int(),
  rows: z.number().int().min(0),
  rawBytes: z.number().int().min(0),
  gzBytes: z.number().int().min(0),
  paddingBytes: z.number().int().min(0),
  partNumbers: z.array(z.number().int()),
  parts: z.array(ManifestPart),
  /** SHA-256 (hex) of the chunk's JSON Lines bytes, recomputable from D1. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
export type ManifestChunk = z.infer<typeof ManifestChunk>;

export const Manifest = z.object({
  version: z.literal(1),
  table: z.string(),
  /**
   * The table's id column, which every line holds (ARCHIVE_ID_COLUMN when the
   * run committed). Manifests written before it existed archived a column
   * named "id".
   */
  idColumn: z.string().default("id"),
  /** Where the table's rows had their day (ARCHIVE_DAY_COLUMN and ARCHIVE_DAY_FORM); absent before it existed. */
  day: z.object({ column: z.string(), form: z.string() }).optional(),
  date: calendarDate,
  runId,
  objectKey: z.string(),
  format: z.literal("jsonl+gzip"),
  partSize: z.number().int().positive(),
  rows: z.number().int().min(0),
  rawBytes: z.number().int().min(0),
  objectBytes: z.number().int().min(0),
  rowidLo: z.number().int(),
  rowidHi: z.number().int(),
  columns: z.array(z.string()),
  createdAt: z.string(),
  completedAt: z.string(),
  chunks: z.array(ManifestChunk),
  /**
   * The earlier committed runs of the same date whose id ranges this run's
   * ranges overlap: for an id this archive holds within [rowidLo, rowidHi],
   * this archive has its current content, and the earlier one an older
   * content (docs/archive-format.md, "One row, one current content"). Absent
   * in manifests written before it existed, which supersede nothing.
   */
  supersedes: z.array(z.object({ runId, rowidLo: z.number().int(), rowidHi: z.number().int() })).optional(),
});
export type Manifest = z.infer<typeof Manifest>;
