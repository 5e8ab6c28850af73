/**
 * Reads chosen columns' values out of a text page's JSON Lines, a row at a
 * time, into one reused array: the path statistics of a text page are
 * counted from the very lines it archives, and nothing else is built.
 *
 * A text page's lines are written by SQLite (jsonLineSql: json_object(), or
 * json_quote() pieces for a wide table, the same text): one object per line,
 * its keys the table's columns in order, its values strings, integers and
 * null (a page with a REAL or a BLOB is a row page), no whitespace. So a line's k-th value is
 * column k's, and only the chosen ones are made into values; the others are
 * stepped over. Anything else is refused with the offset where it was met.
 *
 * Why not JSON.parse: it builds every row of a page as an object with all its
 * strings, and a second copy of the chosen values (a json_array per row in
 * the page query) cost SQLite 14% more per page and the Worker a second
 * string per page. Measured in the archive consumer (`pnpm bench -- --only
 * stats`, old space held to 16 MiB), that garbage made V8 enlarge its young
 * generation until the used heap peaked at 29 MiB, over the 24 MiB target.
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
/** What a number's fraction and exponent are written with. */
const NUMBER_CHARS = "0123456789.eE+-";
/** Integers of up to this many digits add up exactly digit by digit (below 2^53); longer ones are parsed by Number. */
const EXACT_DIGITS = 15;

export class LineScanError extends Error {
  override name = "LineScanError";
}

/**
 * Calls `onRow` for each line of `text` (lines joined by newlines), with
 * the values of the columns at positions `picked` (values[i] is the value of
 * column picked[i]; a position of -1 gives null). The array passed is reused
 * for the next line: read it, do not keep it. Each line must have
 * `columnCount` values. Returns the number of lines.
 */
export function forEachLine(
  text: string,
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
  let at = 0;
  let lines = 0;

  const fail = (what: string): never => {
    throw new LineScanError(`page lines: ${what} at offset ${at} of ${text.length}`);
  };
  const expect = (code: number, what: string) => {
    if (text.charCodeAt(at) !== code) fail(`expected ${what}`);
    at++;
  };

  /** Where the next backslash is (text.length if none), looked up again once `at` passes it: a string closing before it holds no escape. */
  let backslash = -1;
  /** Steps over a string from its opening quote; whether it holds an escape. */
  const skipString = (): boolean => {
    at++; // the opening quote
    // indexOf runs natively: twice as fast as a loop here over every character of every value.
    const close = text.indexOf('"', at);
    if (close === -1) fail("unterminated string");
    if (backslash < at) {
      backslash = text.indexOf("\\", at);
      if (backslash === -1) backslash = text.length;
    }
    if (backslash > close) {
      at = close + 1;
      return false;
    }
    // An escape before the quote: the string character by character (an escaped quote does not end it).
    for (;;) {
      const code = text.charCodeAt(at);
      if (code === QUOTE) break;
      if (Number.isNaN(code)) fail("unterminated string");
      at += code === BACKSLASH ? 2 : 1;
    }
    at++; // the closing quote
    return true;
  };

  /** A string value; `before` is this slot's value in the line before, returned again if the text is the same. */
  const readString = (before: LineValue): string => {
    const start = at;
    // Escapes are rare in paths and methods: JSON.parse reads them exactly.
    if (skipString()) return JSON.parse(text.slice(start, at)) as string;
    // The same text as the line before (a method, mostly) is that string again, not a new one.
    if (typeof before === "string" && before.length === at - start - 2 && text.startsWith(before, start + 1)) {
      return before;
    }
    return text.slice(start + 1, at - 1);
  };

  const readNumber = (): number => {
    const start = at;
    if (text.charCodeAt(at) === MINUS) at++;
    let value = 0;
    const digitsFrom = at;
    for (let code = text.charCodeAt(at); code >= ZERO && code <= NINE; code = text.charCodeAt(++at)) {
      value = value * 10 + (code - ZERO);
    }
    if (at === digitsFrom) fail("expected a value");
    const next = text.charCodeAt(at);
    if (next === COMMA || next === CLOSE) {
      if (at - digitsFrom <= EXACT_DIGITS) return text.charCodeAt(start) === MINUS ? -value : value;
    } else {
      // A fraction or an exponent: to its end, then as JSON reads it.
      while (at < text.length && NUMBER_CHARS.includes(text.charAt(at))) at++;
    }
    const parsed = Number(text.slice(start, at));
    if (Number.isNaN(parsed)) fail("not a number");
    return parsed;
  };

  const readValue = (before: LineValue): LineValue => {
    const code = text.charCodeAt(at);
    if (code === QUOTE) return readString(before);
    if (code === N) {
      if (!text.startsWith("null", at)) fail("expected a value");
      at += 4;
      return null;
    }
    return readNumber();
  };

  if (text.length === 0) return 0;
  for (;;) {
    expect(OPEN, "{");
    for (let position = 0; ; position++) {
      if (position >= columnCount) fail(`more than ${columnCount} values in a line`);
      if (text.charCodeAt(at) !== QUOTE) fail("expected a key");
      skipString();
      expect(COLON, ":");
      const slot = slotOf[position] as number;
      if (slot >= 0) values[slot] = readValue(values[slot] as LineValue);
      else if (text.charCodeAt(at) === QUOTE) skipString();
      else readValue(null);
      const code = text.charCodeAt(at++);
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
    if (at === text.length) return lines;
    expect(NEWLINE, "a newline");
  }
}
