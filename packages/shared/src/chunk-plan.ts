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
