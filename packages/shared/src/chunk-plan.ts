/** R2 part numbers run from 1 to 10 000. */
export const MAX_PART_NUMBER = 10_000;

/**
 * A chunk aims at this share of its parts: the rest absorbs the error of the
 * bytes-per-row estimate. Every non-final chunk pads its last part to a full
 * part, so the object grows by roughly (1 - CHUNK_FILL) of its size plus the
 * estimate's error; a chunk that overshoots spills into one more part.
 */
export const CHUNK_FILL = 0.97;

/** How many rows make one chunk, from the measured gzip bytes per row. */
export function rowsPerChunk(options: { partSize: number; partsPerChunk: number; gzBytesPerRow: number }): number {
  const target = options.partSize * options.partsPerChunk * CHUNK_FILL;
  return Math.max(1, Math.floor(target / Math.max(options.gzBytesPerRow, 1e-6)));
}

/**
 * Most rows one chunk may hold for its pages to stay within D1's queries per
 * invocation (ARCHITECTURE §3a): a page is about `pageBytes` of JSON Lines or
 * `pageRows` rows, whichever is less, and half of the queries go to pages
 * (the rest: claim renewals, pages read again as rows, wide rows, the
 * finalization of a run's last chunk).
 */
export function rowsWithinQueries(options: {
  queriesPerInvocation: number;
  rawBytesPerRow: number;
  pageRows: number;
  pageBytes: number;
}): number {
  const byBytes = Math.floor(options.pageBytes / Math.max(options.rawBytesPerRow, 1));
  const rowsPerPage = Math.max(1, Math.min(options.pageRows, byBytes));
  return Math.max(1, Math.floor(options.queriesPerInvocation / 2) * rowsPerPage);
}

/**
 * Parts each chunk of a day aims to fill: `maxPartsPerChunk`, or fewer when
 * the day fills fewer than `parallelChunks` such chunks, so that many
 * consumers archive it at once. Chunks stay whole parts (a non-final chunk
 * pads its last part), never less than one.
 */
export function partsPerChunkFor(options: {
  estimatedRows: number;
  gzBytesPerRow: number;
  partSize: number;
  maxPartsPerChunk: number;
  parallelChunks: number;
}): number {
  const parts = (options.estimatedRows * options.gzBytesPerRow) / (options.partSize * CHUNK_FILL);
  const balanced = Math.ceil(parts / Math.max(options.parallelChunks, 1));
  return Math.max(1, Math.min(options.maxPartsPerChunk, balanced));
}

/**
 * Part numbers reserved per chunk: chunk i owns i * maxParts + 1 ..
 * (i + 1) * maxParts. Spreading all 10 000 numbers over the chunks gives each
 * chunk as much room to spill as the run allows.
 */
export function partsPerChunkReserved(chunkCount: number): number {
  return Math.floor(MAX_PART_NUMBER / Math.max(chunkCount, 1));
}

export function firstPartOf(chunkIndex: number, reservedParts: number): number {
  return chunkIndex * reservedParts + 1;
}

/*
 * Planning a day from its id span. A few short probes spread over the span
 * say where the date's rows lie; the span is cut where the estimated count
 * reaches each chunk's share. Chunks then hold about, not exactly, the
 * planned rows (a larger one spills into its reserved parts), and planning
 * reads a couple of thousand index entries whatever the day's size. The D1
 * queries live in the producer (plan-archive.ts); this is what they feed.
 */

/** What one probe saw: the first `PROBE_ROWS` ids of the date at or after `start` (at most `hi`). */
export interface DensityProbe {
  start: number;
  /** Rows found (fewer than asked: the probe saw every row of the date up to hi). */
  rows: number;
  first: number | null;
  last: number | null;
}

/**
 * Rows per probe, and probes per interval: one per 6 400 ids (reading at most
 * 1% of the span), at least 8 and at most 32 (about 2 000 index entries
 * however large the day).
 */
export const PROBE_ROWS = 64;
export const MIN_PROBES = 8;
export const MAX_PROBES = 32;

/** Where the probes of [lo, hi] start: evenly spread, the first at lo. */
export function probeStarts(lo: number, hi: number): number[] {
  const span = hi - lo + 1;
  const probes = Math.min(MAX_PROBES, Math.max(MIN_PROBES, Math.floor(span / (100 * PROBE_ROWS))));
  const starts = new Set<number>();
  for (let p = 0; p < probes; p++) starts.add(lo + Math.floor((p * span) / probes));
  return [...starts];
}

/** A stretch of ids holding about `rows` of the date, spread evenly over it. */
export interface Piece {
  lo: number;
  hi: number;
  rows: number;
}

/**
 * The span [lo, hi] as consecutive pieces with estimated rows. A probe tells
 * three things: no row of the date lies between its start and the first id it
 * found; its rows lie between that first and last id; and, until the next
 * probe's start, rows continue at the density it saw from its own start
 * (the empty stretch included, so a day broken by many gaps is not counted
 * as dense). Stretches a probe already covered are not counted again.
 */
export function estimatePieces(
  lo: number,
  hi: number,
  probes: readonly DensityProbe[],
  probeRows = PROBE_ROWS,
): Piece[] {
  const sorted = [...probes].sort((a, b) => a.start - b.start);
  const pieces: Piece[] = [];
  let next = lo; // first id not yet in a piece
  const push = (pieceLo: number, pieceHi: number, rows: number) => {
    if (pieceHi >= pieceLo) pieces.push({ lo: pieceLo, hi: pieceHi, rows });
  };
  for (const [i, probe] of sorted.entries()) {
    if (probe.start < next) continue; // inside what an earlier probe saw
    // Probes start at lo and each one's density reaches the next: nothing lies between them.
    push(next, probe.start - 1, 0);
    if (probe.rows === 0 || probe.first === null || probe.last === null) {
      push(probe.start, hi, 0);
      next = hi + 1;
      break;
    }
    push(probe.start, probe.first - 1, 0);
    push(probe.first, probe.last, probe.rows);
    next = probe.last + 1;
    if (probe.rows < probeRows) {
      // It saw every row up to hi.
      push(next, hi, 0);
      next = hi + 1;
      break;
    }
    // Density from the probe's start, empty stretch included, until the next probe that starts beyond
    // what this one saw.
    const density = probe.rows / (probe.last - probe.start + 1);
    const following = sorted.slice(i + 1).find((q) => q.start > next)?.start ?? hi + 1;
    const until = Math.min(hi, following - 1);
    if (until >= next) {
      push(next, until, density * (until - next + 1));
      next = until + 1;
    }
  }
  push(next, hi, 0);
  return pieces;
}

export interface SpanChunk {
  rowidLo: number;
  rowidHi: number;
  /** Estimated rows of the date in the range. */
  rows: number;
}

/**
 * Cuts [lo, hi] into consecutive ranges of about `perChunk` estimated rows
 * each (the last takes the rest), tiling the span with no gap or overlap.
 */
export function cutSpan(lo: number, hi: number, perChunk: number, pieces: readonly Piece[]): SpanChunk[] {
  const chunks: SpanChunk[] = [];
  let chunkLo = lo;
  let filled = 0;
  for (const piece of pieces) {
    let at = piece.lo; // first id of the piece not yet in a chunk
    let left = piece.rows; // its estimated rows from `at` on
    const density = piece.rows / (piece.hi - piece.lo + 1);
    while (filled + left >= perChunk && density > 0) {
      // The chunk ends where its share is reached, inside this piece.
      const ids = Math.max(1, Math.ceil((perChunk - filled) / density));
      const end = Math.min(piece.hi, at + ids - 1);
      if (end >= hi) break;
      chunks.push({ rowidLo: chunkLo, rowidHi: end, rows: perChunk });
      left -= Math.min(left, (end - at + 1) * density);
      chunkLo = end + 1;
      at = end + 1;
      filled = 0;
      if (at > piece.hi) break;
    }
    filled += left;
  }
  chunks.push({ rowidLo: chunkLo, rowidHi: hi, rows: Math.max(0, Math.round(filled)) });
  return chunks;
}
