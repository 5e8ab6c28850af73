/**
 * Reads chosen columns' values out of a text page's JSON Lines, as the
 * archive's UTF-8 bytes, a row at a time, into one reused array: the path
 * statistics of a text page are counted from the very bytes it archives,
 * and nothing else is built.
 *
 * A text page's lines are written by SQLite (jsonLineSql: json_object(), or
 * json_quote() pieces for a wide table, the same text): one object per line,
 * its keys the table's columns in order, its values strings, integers and
 * null (a page with a REAL or a BLOB is a row page), no whitespace. So a line's k-th value is
 * column k's, and only the chosen ones are made into values; the others are
 * stepped over. Anything else is refused with the offset where it was met.
 *
 * Why bytes, not D1's string: V8's young generation grows by what its
 * collections find alive, and a page's megabyte of text found alive by one
 * made it grow. The string is encoded as soon as D1 answers and dropped
 * (range-pages.ts), so the garbage the statistics make per row meets no page
 * in a collection: measured in the archive consumer (`pnpm heap-profile --
 * --rows 5000000 --max-heap-mb 16`), scanning the string peaked at 34 MiB of
 * used heap, against 15 MiB without statistics. Why not JSON.parse: it would
 * build every row of a page as an object with all its strings.
 */

export type LineValue = string | number | null;

const QUOTE = 34; // "
const BACKSLASH = 92;
const COMMA = 44;
const COLON = 58;
const OPEN = 123; // {
const CLOSE = 125; // }
const NEWLINE = 10;
const MINUS = 45;
const ZERO = 48;
const NINE = 57;
const N = 110; // the n of null
const U = 117;
const L = 108;
/** What a number is written with, its fraction and exponent included. */
const NUMBER_BYTES = new Set(Array.from("0123456789.eE+-", (c) => c.charCodeAt(0)));
/** Integers of up to this many digits add up exactly digit by digit (below 2^53); longer ones are parsed by Number. */
const EXACT_DIGITS = 15;

const decoder = new TextDecoder();

export class LineScanError extends Error {
  override name = "LineScanError";
}

/**
 * Calls `onRow` for each line of `bytes` (UTF-8 lines, each ending in a
 * newline, the last one's newline optional), with the values of the columns
 * at positions `picked` (values[i] is the value of column picked[i]; a
 * position of -1 gives null). The array passed is reused for the next line:
 * read it, do not keep it. Each line must have `columnCount` values. Returns
 * the number of lines.
 */
export function forEachLine(
  bytes: Uint8Array,
  columnCount: number,
  picked: readonly number[],
  onRow: (values: readonly LineValue[]) => void,
): number {
  /** For each column position, where its value goes in `values`, or -1. */
  const slotOf = new Array<number>(columnCount).fill(-1);
  picked.forEach((position, slot) => {
    if (position >= columnCount) throw new RangeError(`column ${position} of ${columnCount} picked`);
    if (position >= 0) slotOf[position] = slot;
  });
  const values: LineValue[] = picked.map(() => null);
  /** Where each slot's value in the line before lay, when it was a string without escapes: [start, end). */
  const beforeStart: number[] = picked.map(() => -1);
  const beforeEnd: number[] = picked.map(() => -1);
  const length = bytes.length;
  let at = 0;
  let lines = 0;

  const fail = (what: string): never => {
    throw new LineScanError(`page lines: ${what} at offset ${at} of ${length}`);
  };
  const expect = (code: number, what: string) => {
    if (bytes[at] !== code) fail(`expected ${what}`);
    at++;
  };

  /** Where the next backslash is (length if none), looked up again once `at` passes it: a string closing before it holds no escape. */
  let backslash = -1;
  /** Steps over a string from its opening quote; whether it holds an escape. */
  const skipString = (): boolean => {
    at++; // the opening quote
    // indexOf runs natively: much faster than a loop here over every byte of every value.
    const close = bytes.indexOf(QUOTE, at);
    if (close === -1) fail("unterminated string");
    if (backslash < at) {
      backslash = bytes.indexOf(BACKSLASH, at);
      if (backslash === -1) backslash = length;
    }
    if (backslash > close) {
      at = close + 1;
      return false;
    }
    // An escape before the quote: the string byte by byte (an escaped quote does not end it).
    for (;;) {
      if (at >= length) fail("unterminated string");
      const code = bytes[at];
      if (code === QUOTE) break;
      at += code === BACKSLASH ? 2 : 1;
    }
    at++; // the closing quote
    return true;
  };

  /** Whether bytes [a, a + n) and [b, b + n) are the same. */
  const sameBytes = (a: number, b: number, n: number): boolean => {
    for (let i = 0; i < n; i++) if (bytes[a + i] !== bytes[b + i]) return false;
    return true;
  };

  /** Slot `slot`'s string value. */
  const readString = (slot: number): string => {
    const start = at;
    const escaped = skipString();
    const from = start + 1;
    const to = at - 1;
    if (escaped) {
      // Escapes are rare in paths and methods: JSON.parse reads them exactly.
      beforeStart[slot] = -1;
      return JSON.parse(decoder.decode(bytes.subarray(start, at))) as string;
    }
    // The same bytes as the line before (a method, mostly) are that string again, not a new one.
    const beforeFrom = beforeStart[slot] as number;
    const before = values[slot];
    if (beforeFrom >= 0 && typeof before === "string" && (beforeEnd[slot] as number) - beforeFrom === to - from) {
      if (sameBytes(beforeFrom, from, to - from)) {
        beforeStart[slot] = from;
        beforeEnd[slot] = to;
        return before;
      }
    }
    beforeStart[slot] = from;
    beforeEnd[slot] = to;
    return decoder.decode(bytes.subarray(from, to));
  };

  const readNumber = (): number => {
    const start = at;
    if (bytes[at] === MINUS) at++;
    let value = 0;
    const digitsFrom = at;
    for (let code = bytes[at] as number; code >= ZERO && code <= NINE; code = bytes[++at] as number) {
      value = value * 10 + (code - ZERO);
    }
    if (at === digitsFrom) fail("expected a value");
    const next = bytes[at];
    if (next === COMMA || next === CLOSE) {
      if (at - digitsFrom <= EXACT_DIGITS) return bytes[start] === MINUS ? -value : value;
    } else {
      // A fraction or an exponent: to its end, then as JSON reads it.
      while (at < length && NUMBER_BYTES.has(bytes[at] as number)) at++;
    }
    const parsed = Number(decoder.decode(bytes.subarray(start, at)));
    if (Number.isNaN(parsed)) fail("not a number");
    return parsed;
  };

  const readValue = (slot: number): LineValue => {
    const code = bytes[at];
    if (code === QUOTE) return readString(slot);
    if (slot >= 0) beforeStart[slot] = -1;
    if (code === N) {
      if (bytes[at + 1] !== U || bytes[at + 2] !== L || bytes[at + 3] !== L) fail("expected a value");
      at += 4;
      return null;
    }
    return readNumber();
  };

  while (at < length) {
    expect(OPEN, "{");
    for (let position = 0; ; position++) {
      if (position >= columnCount) fail(`more than ${columnCount} values in a line`);
      if (bytes[at] !== QUOTE) fail("expected a key");
      skipString();
      expect(COLON, ":");
      const slot = slotOf[position] as number;
      if (slot >= 0) values[slot] = readValue(slot);
      else if (bytes[at] === QUOTE) skipString();
      else readValue(-1);
      const code = bytes[at++];
      if (code === CLOSE) {
        if (position !== columnCount - 1) fail(`${position + 1} values in a line of ${columnCount} columns`);
        break;
      }
      if (code !== COMMA) {
        at--;
        fail("expected , or }");
      }
    }
    onRow(values);
    lines++;
    if (at === length) break;
    expect(NEWLINE, "a newline");
  }
  return lines;
}
