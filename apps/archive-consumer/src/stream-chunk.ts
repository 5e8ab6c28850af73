import { type ChunkRow, jsonLine, PartCutter, type UploadedPart } from "@path-stats/shared";

export interface ChunkResult {
  rows: number;
  rawBytes: number;
  gzBytes: number;
  paddingBytes: number;
  parts: UploadedPart[];
  columns: string[];
  sha256: string;
  rowsRead: number;
  peakBufferedBytes: number;
}

type Row = Record<string, unknown> & { id: number };

const encoder = new TextEncoder();

/**
 * Pages start small and grow toward PAGE_ROWS, but never past PAGE_TARGET_BYTES
 * of JSON: a page's size in memory follows its rows' width, so wide rows get
 * fewer of them and memory stays bounded whatever the table holds.
 */
const FIRST_PAGE_ROWS = 100;
const PAGE_TARGET_BYTES = 4 * 1024 * 1024;

function nextPageRows(current: number, bytesPerRow: number, maxRows: number): number {
  const byBytes = Math.floor(PAGE_TARGET_BYTES / Math.max(bytesPerRow, 1));
  return Math.max(1, Math.min(maxRows, current * 4, byBytes));
}

/**
 * Keyset pages of the chunk's rows of `date`: never OFFSET, which reads every
 * skipped row again. Rows of other dates inside the range are not selected.
 */
const PAGE_SQL = "SELECT * FROM traffic_events WHERE event_date = ?1 AND id > ?2 AND id <= ?3 ORDER BY id LIMIT ?4";

/**
 * Streams a chunk's rows from D1 as JSON Lines through gzip into its parts.
 *
 * Memory: one part buffer (PartCutter), the page being compressed and the
 * next page being fetched (fetching it while this one compresses is where
 * local time is won), whatever the chunk's size. No row array outlives its
 * page and no string outlives its page.
 */
export async function streamChunkToParts(options: {
  db: D1Database;
  upload: R2MultipartUpload;
  date: string;
  chunk: Pick<ChunkRow, "rowid_lo" | "rowid_hi" | "first_part" | "max_parts">;
  partSize: number;
  pageRows: number;
  isLastChunk: boolean;
}): Promise<ChunkResult> {
  const { db, upload, date, chunk, partSize, pageRows, isLastChunk } = options;
  const statement = db.prepare(PAGE_SQL);
  const fetchPage = (after: number, limit: number) => {
    const page = statement.bind(date, after, chunk.rowid_hi, limit).all<Row>();
    // The next page is fetched ahead; its failure surfaces when it is awaited, not as an unhandled rejection.
    page.catch(() => {});
    return page;
  };

  let rows = 0;
  let rawBytes = 0;
  let rowsRead = 0;
  let peakPageBytes = 0;
  let columns: string[] = [];
  const digest = new crypto.DigestStream("SHA-256");
  const digestWriter = digest.getWriter();

  let limit = Math.min(FIRST_PAGE_ROWS, pageRows);
  let next: Promise<D1Result<Row>> | null = fetchPage(chunk.rowid_lo - 1, limit);
  const jsonl = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const page = next ? await next : null;
        const results = page?.results ?? [];
        rowsRead += page?.meta.rows_read ?? 0;
        const last = results.at(-1);
        if (!last) {
          controller.close();
          return;
        }
        if (columns.length === 0) columns = Object.keys(results[0] as Row);
        let text = "";
        for (const row of results) text += jsonLine(row);
        const bytes = encoder.encode(text);
        rows += results.length;
        rawBytes += bytes.byteLength;
        peakPageBytes = Math.max(peakPageBytes, bytes.byteLength);
        // A short page is the last one; otherwise fetch the next while this one compresses.
        const full = results.length === limit;
        limit = nextPageRows(limit, bytes.byteLength / results.length, pageRows);
        next = full ? fetchPage(last.id, limit) : null;
        await digestWriter.write(bytes);
        controller.enqueue(bytes);
      },
    },
    { highWaterMark: 0 },
  );

  const cutter = new PartCutter({
    partSize,
    firstPart: chunk.first_part,
    maxParts: chunk.max_parts,
    upload: async (partNumber, bytes) => (await upload.uploadPart(partNumber, bytes)).etag,
  });
  const reader = jsonl.getReader();
  // Errors reach us through read() and write(); the closed promises would only report them twice.
  reader.closed.catch(() => {});
  const first = await reader.read();
  if (!first.done) {
    // Only a chunk with rows writes a gzip member: an empty one adds no bytes and no part.
    const gzip = new CompressionStream("gzip");
    const writer = gzip.writable.getWriter();
    writer.closed.catch(() => {});
    const pump = (async () => {
      try {
        await writer.write(first.value);
        for (let r = await reader.read(); !r.done; r = await reader.read()) await writer.write(r.value);
        await writer.close();
      } catch (error) {
        // A failed D1 read must fail the compressed side too, or its reader waits forever.
        await writer.abort(error).catch(() => {});
        throw error;
      }
    })();
    // Observed now, awaited below: it may fail while the compressed side is still being read.
    pump.catch(() => {});
    const compressed = gzip.readable.getReader();
    compressed.closed.catch(() => {});
    try {
      for (let c = await compressed.read(); !c.done; c = await compressed.read()) await cutter.write(c.value);
    } catch (error) {
      // A failed upload stops the reading side as well.
      await compressed.cancel(error).catch(() => {});
      await reader.cancel(error).catch(() => {});
      throw error;
    }
    await pump;
  }
  await cutter.finish(isLastChunk);
  await digestWriter.close();
  const sha256 = [...new Uint8Array(await digest.digest)].map((b) => b.toString(16).padStart(2, "0")).join("");

  return {
    rows,
    rawBytes,
    gzBytes: cutter.gzBytes,
    paddingBytes: cutter.paddingBytes,
    parts: cutter.parts,
    columns,
    sha256,
    rowsRead,
    // The part buffer's fill plus the page being compressed and the one being fetched.
    peakBufferedBytes: cutter.peakBufferedBytes + 2 * peakPageBytes,
  };
}
