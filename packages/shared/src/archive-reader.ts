import { once } from "node:events";
import { createGunzip } from "node:zlib";
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
 *
 * Decompressed with node:zlib (nodejs_compat), not DecompressionStream:
 * measured in the local runtime on 38 MB of JSON Lines, DecompressionStream
 * took 230-260 ms and gave 4 KiB pieces (9 200 of them, each a round through
 * every reader above it), node:zlib 125-150 ms in 64 KiB pieces.
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
  const compressed = object.body.getReader();
  const gunzip = createGunzip({ chunkSize: 64 * 1024 });
  // The member's compressed bytes into the decompressor, as fast as it takes them.
  const feeding = (async () => {
    for (let piece = await compressed.read(); !piece.done; piece = await compressed.read()) {
      if (!gunzip.write(piece.value)) await once(gunzip, "drain");
    }
    gunzip.end();
  })().catch((error: unknown) => {
    gunzip.destroy(error instanceof Error ? error : new Error(String(error)));
  });
  let finished = false;
  let sinceYield = 0;
  try {
    try {
      for await (const piece of gunzip) {
        const bytes = piece as Uint8Array;
        sinceYield += bytes.byteLength;
        if (sinceYield >= YIELD_EVERY_BYTES) {
          sinceYield = 0;
          await yieldToEventLoop();
        }
        yield bytes;
      }
    } catch (error) {
      throw new ArchiveReadError(
        `chunk ${chunkIndex} of ${manifest.objectKey} does not decompress: ${error instanceof Error ? error.message : error}`,
      );
    }
    await feeding;
    finished = true;
  } finally {
    // Stopped early (a failed delete, a caller that has what it needs): stop the download too.
    if (!finished) {
      gunzip.destroy();
      await compressed.cancel().catch(() => {});
    }
  }
}

/**
 * A chunk's JSON Lines (see `chunkBytes`) in windows of whole lines: at most
 * `maxLines` lines and `maxBytes` bytes each (a longer line comes alone).
 * A window's text is its lines joined by newlines, as archived, without the
 * last newline; nothing is split into one string per line.
 */
export async function* chunkWindows(
  source: RangeSource,
  manifest: Manifest,
  chunkIndex: number,
  options: { maxLines: number; maxBytes: number; etag?: string },
): AsyncGenerator<{ text: string; lines: number }> {
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const label = `chunk ${chunkIndex} of ${manifest.objectKey}`;
  for await (const window of lineWindows(chunkBytes(source, manifest, chunkIndex, options), { ...options, label })) {
    let text: string;
    try {
      text = decoder.decode(window.bytes);
    } catch {
      throw new ArchiveReadError(`${label} is not UTF-8`);
    }
    yield { text, lines: window.lines };
  }
}

/** The id (in column `idColumn`, the manifest's) of an archived line; a line without a numeric id is no archive of ours. */
export function archivedLineId(line: string, idColumn: string): number {
  let id: unknown;
  try {
    id = (JSON.parse(line) as Record<string, unknown> | null)?.[idColumn];
  } catch {}
  if (typeof id !== "number") {
    throw new ArchiveReadError(`an archived line has no numeric ${idColumn}: ${line.slice(0, 80)}`);
  }
  return id;
}

/** The ids of a window's lines (joined by newlines), in order. */
export function windowIds(text: string, idColumn: string): number[] {
  const ids: number[] = [];
  for (let start = 0; start <= text.length; ) {
    const end = text.indexOf("\n", start);
    ids.push(archivedLineId(text.slice(start, end === -1 ? text.length : end), idColumn));
    if (end === -1) break;
    start = end + 1;
  }
  return ids;
}

const NEWLINE = 0x0a;

/**
 * Cuts JSON Lines bytes, arriving in pieces of any size, into windows of
 * whole lines (see `chunkWindows`). A window's bytes are a view of the
 * cutter's buffer, valid until the next window is asked for (no copy: at a
 * mebibyte per window, copies were half the garbage a cleanup made).
 */
export async function* lineWindows(
  pieces: AsyncIterable<Uint8Array>,
  options: { maxLines: number; maxBytes: number; label: string },
): AsyncGenerator<{ bytes: Uint8Array; lines: number }> {
  let buffer = new Uint8Array(2 * options.maxBytes + 65_536);
  let length = 0;
  /** Newlines before `scanned` are counted: `lines` of them, the last one just before `end`. */
  let scanned = 0;
  let lines = 0;
  let end = 0;
  for await (const piece of pieces) {
    if (length + piece.byteLength > buffer.byteLength) {
      const grown = new Uint8Array(Math.max(2 * buffer.byteLength, length + piece.byteLength));
      grown.set(buffer.subarray(0, length));
      buffer = grown;
    }
    buffer.set(piece, length);
    length += piece.byteLength;
    for (;;) {
      let full = lines >= options.maxLines;
      while (!full) {
        const at = buffer.indexOf(NEWLINE, scanned);
        if (at === -1 || at >= length) {
          scanned = length;
          break;
        }
        // This line would make the window too big: it starts the next one.
        if (lines > 0 && at > options.maxBytes) {
          full = true;
          break;
        }
        lines++;
        end = at + 1;
        scanned = end;
        full = lines >= options.maxLines || end > options.maxBytes;
      }
      if (!full) break;
      yield { bytes: buffer.subarray(0, end - 1), lines };
      buffer.copyWithin(0, end, length);
      length -= end;
      scanned -= end;
      lines = 0;
      end = 0;
    }
  }
  if (length > end) throw new ArchiveReadError(`${options.label} does not end with a newline`);
  if (lines > 0) yield { bytes: buffer.subarray(0, end - 1), lines };
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
