import type { Manifest } from "./messages.ts";

/**
 * Reads an archive back from its own bytes: the one reader of the format
 * (ARCHITECTURE §3, §5), used wherever the archive is checked or its content
 * is needed.
 *
 * An object is its run's multipart parts in ascending part number. A chunk's
 * parts are consecutive in that order, and its data is ONE gzip member of
 * `gzBytes` bytes at the start of its first part, followed by empty padding
 * members. So a chunk's rows are a ranged read of exactly its member, which
 * decompresses as an ordinary single-member gzip stream.
 */

/** The part of R2's API the reader needs; an R2Bucket is one. */
export interface RangeSource {
  get(
    key: string,
    options: { range: { offset: number; length: number }; onlyIf?: { etagMatches: string } },
  ): Promise<{ body?: ReadableStream<Uint8Array>; etag: string } | null>;
}

/** Where a chunk's gzip member lies in the object, or null for a chunk that archived no rows. */
export function chunkMemberRange(manifest: Manifest, chunkIndex: number): { offset: number; length: number } | null {
  const chunk = manifest.chunks.find((c) => c.index === chunkIndex);
  if (!chunk || chunk.parts.length === 0 || chunk.gzBytes === 0) return null;
  const first = Math.min(...chunk.parts.map((p) => p.partNumber));
  let offset = 0;
  for (const c of manifest.chunks) for (const p of c.parts) if (p.partNumber < first) offset += p.size;
  return { offset, length: chunk.gzBytes };
}

export class ArchiveReadError extends Error {
  override name = "ArchiveReadError";
}

/**
 * A chunk's decompressed bytes, read from the object as a stream, in the
 * pieces the decompressor gives. With `etag`, the read fails unless the
 * object is still the one that was checked.
 */
export async function* chunkBytes(
  source: RangeSource,
  manifest: Manifest,
  chunkIndex: number,
  options: { etag?: string } = {},
): AsyncGenerator<Uint8Array> {
  const range = chunkMemberRange(manifest, chunkIndex);
  if (!range) return;
  const object = await source.get(manifest.objectKey, {
    range,
    ...(options.etag ? { onlyIf: { etagMatches: options.etag } } : {}),
  });
  if (!object) throw new ArchiveReadError(`archive object ${manifest.objectKey} is missing`);
  if (!object.body) throw new ArchiveReadError(`archive object ${manifest.objectKey} changed since it was verified`);
  const reader = object.body.pipeThrough(new DecompressionStream("gzip")).getReader();
  let finished = false;
  let sinceYield = 0;
  try {
    for (;;) {
      let piece: Awaited<ReturnType<typeof reader.read>>;
      try {
        piece = await reader.read();
      } catch (error) {
        throw new ArchiveReadError(
          `chunk ${chunkIndex} of ${manifest.objectKey} does not decompress: ${error instanceof Error ? error.message : error}`,
        );
      }
      if (piece.done) break;
      sinceYield += piece.value.byteLength;
      if (sinceYield >= YIELD_EVERY_BYTES) {
        sinceYield = 0;
        await yieldToEventLoop();
      }
      yield piece.value;
    }
    finished = true;
  } finally {
    // Stopped early (a failed delete, a caller that has what it needs): stop the download too.
    if (!finished) await reader.cancel().catch(() => {});
  }
}

/**
 * A chunk's JSON Lines (see `chunkBytes`), in batches of at most `maxLines`
 * lines and about `maxChars` characters (one line longer than that comes
 * alone).
 */
export async function* chunkLines(
  source: RangeSource,
  manifest: Manifest,
  chunkIndex: number,
  options: { maxLines: number; maxChars: number; etag?: string },
): AsyncGenerator<string[]> {
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  let rest = "";
  let batch: string[] = [];
  let chars = 0;
  for await (const bytes of chunkBytes(source, manifest, chunkIndex, options)) {
    let text: string;
    try {
      text = decoder.decode(bytes, { stream: true });
    } catch {
      throw new ArchiveReadError(`chunk ${chunkIndex} of ${manifest.objectKey} is not UTF-8`);
    }
    const lines = (rest + text).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) {
      if (batch.length > 0 && (batch.length >= options.maxLines || chars + line.length > options.maxChars)) {
        yield batch;
        batch = [];
        chars = 0;
      }
      batch.push(line);
      chars += line.length + 1;
    }
  }
  if (rest + decoder.decode() !== "") {
    throw new ArchiveReadError(`chunk ${chunkIndex} of ${manifest.objectKey} does not end with a newline`);
  }
  if (batch.length > 0) yield batch;
}

/**
 * Reading and decompressing a stream that is already there runs as one chain
 * of microtasks; seen locally, requests that arrive meanwhile are dropped
 * ("Network connection lost"). Once a mebibyte, other work gets its turn.
 */
const YIELD_EVERY_BYTES = 1024 * 1024;

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
