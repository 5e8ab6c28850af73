const encoder = new TextEncoder();

/**
 * One archived line: the row as a JSON object of all its columns, keys in
 * column order (D1 returns row objects with keys in column order), then "\n".
 * The same function serves the archiver and cleanup's checksum, so both see
 * the same bytes.
 */
export function jsonLine(row: Record<string, unknown>): string {
  return `${JSON.stringify(row)}\n`;
}

/** Rows as UTF-8 JSON Lines bytes. */
export function encodeRows(rows: readonly Record<string, unknown>[]): Uint8Array {
  let text = "";
  for (const row of rows) text += jsonLine(row);
  return encoder.encode(text);
}

/** Gzip size of `bytes` with the runtime's CompressionStream (zlib's default level, as the archiver uses). */
export async function gzipSize(bytes: Uint8Array): Promise<number> {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"));
  let size = 0;
  for await (const piece of stream) size += piece.byteLength;
  return size;
}
