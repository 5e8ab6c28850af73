import { once } from "node:events";
import { createGzip } from "node:zlib";
import {
  type ArchivedTable,
  type ChunkRow,
  type PageSource,
  PartCutter,
  rangePages,
  type StatsSink,
  toHex,
  type UploadedPart,
} from "@path-stats/shared";

export interface ChunkResult {
  rows: number;
  rawBytes: number;
  gzBytes: number;
  paddingBytes: number;
  parts: UploadedPart[];
  columns: string[];
  sha256: string;
  rowsRead: number;
  /** Rows written by SQLite (text pages) and encoded here (row pages: REALs, BLOBs, very long lines). */
  textRows: number;
  peakBufferedBytes: number;
  stages: ChunkStages;
}

/**
 * Where a chunk's time went, in milliseconds. The reading side (D1, encoding,
 * checksum, handing bytes to the compressor) and the uploading side (reading
 * compressed bytes, uploading parts) run at the same time, so the stages add
 * up to more than `total`. In production Workers, `Date.now()` advances only
 * across I/O: CPU-only stages (encode) then read as 0 there.
 */
export interface ChunkStages {
  /** Waiting for D1's pages (after the fetch-ahead), the pacer's waits after each included (D1_MS_PER_SECOND). */
  d1Wait: number;
  /**
   * D1's own time running the page queries, as it reports it (`meta.duration`).
   * In production this is spent on D1's side while the consumer works; the
   * local runtime runs D1 on the consumer's thread, so there the two add up.
   */
  d1Query: number;
  /** D1's own time for the longest of those queries: the longest an API statement waits behind the chunk's. */
  d1Longest: number;
  /** Rows to JSON Lines bytes (for text pages, SQLite's string to bytes). */
  encode: number;
  /** Bytes into the SHA-256. */
  digest: number;
  /** The reading side waiting for the compressor to take a page. */
  compressWait: number;
  /** Part uploads to R2. */
  upload: number;
  total: number;
}

/** `db`, adding the time D1 reports for each page query to `stages.d1Query`. */
function timedQueries(db: D1Database, stages: ChunkStages): PageSource {
  return {
    prepare(query) {
      const statement = db.prepare(query);
      return {
        bind(...values) {
          const bound = statement.bind(...values);
          return {
            async all<T>() {
              const result = await bound.all<T>();
              stages.d1Query += result.meta.duration;
              stages.d1Longest = Math.max(stages.d1Longest, result.meta.duration);
              return result;
            },
          };
        },
      };
    },
  };
}

/**
 * Streams a chunk's rows from D1 as JSON Lines through gzip into its parts.
 *
 * Memory: one part buffer (PartCutter), the page being compressed and the
 * next page being fetched (fetching it while this one compresses is where
 * local time is won), whatever the chunk's size. No row array or string
 * outlives its page.
 */
export async function streamChunkToParts(options: {
  db: D1Database;
  upload: R2MultipartUpload;
  table: ArchivedTable;
  date: string;
  chunk: Pick<ChunkRow, "rowid_lo" | "rowid_hi" | "first_part" | "max_parts">;
  partSize: number;
  pageRows: number;
  isLastChunk: boolean;
  /** Called at every page and before every part upload; throws to stop the chunk (its claim is gone). */
  heartbeat: () => Promise<void>;
  /** Where the chunk's rows are counted for the path statistics, when the table keeps them. */
  stats?: StatsSink;
}): Promise<ChunkResult> {
  const { db, upload, table, date, chunk, partSize, pageRows, isLastChunk, heartbeat, stats } = options;
  let rows = 0;
  let rawBytes = 0;
  let rowsRead = 0;
  let textRows = 0;
  let peakPageBytes = 0;
  let columns: string[] = [];
  const started = Date.now();
  const stages: ChunkStages = {
    d1Wait: 0,
    d1Query: 0,
    d1Longest: 0,
    encode: 0,
    digest: 0,
    compressWait: 0,
    upload: 0,
    total: 0,
  };
  const digest = new crypto.DigestStream("SHA-256");
  const digestWriter = digest.getWriter();

  const pages = rangePages(timedQueries(db, stages), {
    table,
    date,
    rowidLo: chunk.rowid_lo,
    rowidHi: chunk.rowid_hi,
    maxPageRows: pageRows,
    ...(stats ? { stats } : {}),
  });
  /** The next page with rows, after counting what every page read. */
  const nextBytes = async (): Promise<Uint8Array | null> => {
    for (let page = await pages.next(); !page.done; page = await pages.next()) {
      await heartbeat();
      rowsRead += page.value.rowsRead;
      stages.d1Wait += page.value.waitMs;
      stages.encode += page.value.encodeMs;
      if (page.value.rows === 0) continue;
      if (columns.length === 0) columns = page.value.columns;
      rows += page.value.rows;
      if (page.value.kind === "text") textRows += page.value.rows;
      rawBytes += page.value.bytes.byteLength;
      peakPageBytes = Math.max(peakPageBytes, page.value.bytes.byteLength);
      const digestStarted = Date.now();
      await digestWriter.write(page.value.bytes);
      stages.digest += Date.now() - digestStarted;
      return page.value.bytes;
    }
    return null;
  };

  const cutter = new PartCutter({
    partSize,
    firstPart: chunk.first_part,
    maxParts: chunk.max_parts,
    upload: async (partNumber, bytes) => {
      await heartbeat();
      const uploadStarted = Date.now();
      const { etag } = await upload.uploadPart(partNumber, bytes);
      stages.upload += Date.now() - uploadStarted;
      return etag;
    },
  });
  const first = await nextBytes();
  if (first) {
    // Only a chunk with rows writes a gzip member: an empty one adds no bytes and no part.
    // node:zlib rather than CompressionStream: the same zlib at the same level (level 6,
    // identical bytes), measured 6-19% faster in the runtime and handing out 64 KiB
    // pieces instead of a few KiB each.
    const gzip = createGzip({ chunkSize: 64 * 1024 });
    /** Aborted when the compressed side fails: the reading side then stops too. */
    const stop = new AbortController();
    const pump = (async () => {
      for (let bytes: Uint8Array | null = first; bytes && !stop.signal.aborted; bytes = await nextBytes()) {
        const writeStarted = Date.now();
        if (!gzip.write(bytes)) await once(gzip, "drain", { signal: stop.signal });
        stages.compressWait += Date.now() - writeStarted;
      }
      if (!stop.signal.aborted) gzip.end();
    })().catch((error: unknown) => {
      // A failed D1 read must fail the compressed side too, or its reader waits forever.
      gzip.destroy(error instanceof Error ? error : new Error(String(error)));
      throw error;
    });
    // Observed now, awaited below: it may fail while the compressed side is still being read.
    pump.catch(() => {});
    try {
      for await (const piece of gzip) await cutter.write(piece as Uint8Array);
    } catch (error) {
      // A failed upload (or D1 read, arriving as the compressor's error) stops both sides.
      stop.abort();
      gzip.destroy();
      await pages.return(undefined).catch(() => {});
      throw error;
    }
    await pump;
  }
  await cutter.finish(isLastChunk);
  await digestWriter.close();

  return {
    rows,
    rawBytes,
    gzBytes: cutter.gzBytes,
    paddingBytes: cutter.paddingBytes,
    parts: cutter.parts,
    columns,
    sha256: toHex(await digest.digest),
    rowsRead,
    textRows,
    // The part buffer's fill plus the page being compressed and the one being fetched.
    peakBufferedBytes: cutter.peakBufferedBytes + 2 * peakPageBytes,
    stages: { ...stages, total: Date.now() - started },
  };
}
