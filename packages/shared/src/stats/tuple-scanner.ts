/**
 * Reads a text page's stats tuples — one JSON array per row (statsTupleSql),
 * gathered by the page query into one array of arrays — one tuple at a
 * time, into one reused array, without building the page as objects.
 *
 * JSON.parse of a page builds an array, its strings and its numbers for each
 * of the page's thousands of rows at once. Measured in the archive consumer
 * (`pnpm bench -- --only stats`, old space held to 16 MiB) that allocation,
 * about 250 bytes a row, made V8 enlarge its young generation until the used
 * heap peaked at 29 MiB, over the consumers' 24 MiB target. Scanned here, a
 * row costs its strings and little else.
 *
 * The grammar is what SQLite's json_array() writes for the values of a
 * row: strings, numbers and null, no whitespace. Anything else is refused
 * with the offset where it was met.
 */

export type TupleValue = string | number | null;

const QUOTE = 34; // "
const BACKSLASH = 92;
const COMMA = 44;
const OPEN = 91; // [
const CLOSE = 93; // ]
const MINUS = 45;
const ZERO = 48;
const NINE = 57;
const N = 110; // the n of null
/** What a number's fraction and exponent are written with. */
const NUMBER_CHARS = "0123456789.eE+-";
/** Integers of up to this many digits add up exactly digit by digit (below 2^53); longer ones are parsed by Number. */
const EXACT_DIGITS = 15;

export class TupleScanError extends Error {
  override name = "TupleScanError";
}

/**
 * Calls `onTuple` with each tuple of `json` in order (`[[…],[…],…]`, or
 * `[]`). The array passed is reused for the next tuple: read it, do not keep
 * it. Returns the number of tuples.
 */
export function forEachTuple(json: string, onTuple: (tuple: readonly TupleValue[]) => void): number {
  const tuple: TupleValue[] = [];
  /** Values of the tuple being read so far; the rest of `tuple` still holds the tuple before. */
  let width = 0;
  let at = 0;
  let count = 0;

  const fail = (what: string): never => {
    throw new TupleScanError(`stats tuples: ${what} at offset ${at} of ${json.length}`);
  };
  const expect = (code: number) => {
    if (json.charCodeAt(at) !== code) fail(`expected ${String.fromCharCode(code)}`);
    at++;
  };

  const readString = (): string => {
    const start = at;
    at++; // the opening quote
    let escaped = false;
    for (;;) {
      const code = json.charCodeAt(at);
      if (code === QUOTE) break;
      if (Number.isNaN(code)) fail("unterminated string");
      if (code === BACKSLASH) {
        escaped = true;
        at += 2;
      } else {
        at++;
      }
    }
    at++; // the closing quote
    // Escapes are rare in paths and methods: JSON.parse reads them exactly.
    if (escaped) return JSON.parse(json.slice(start, at)) as string;
    // The same text as this value of the tuple before (a method, mostly) is that string again, not a new one.
    const before = tuple[width];
    if (typeof before === "string" && before.length === at - start - 2 && json.startsWith(before, start + 1)) {
      return before;
    }
    return json.slice(start + 1, at - 1);
  };

  const readNumber = (): number => {
    const start = at;
    if (json.charCodeAt(at) === MINUS) at++;
    let value = 0;
    const digitsFrom = at;
    for (let code = json.charCodeAt(at); code >= ZERO && code <= NINE; code = json.charCodeAt(++at)) {
      value = value * 10 + (code - ZERO);
    }
    if (at === digitsFrom) fail("expected a value");
    const next = json.charCodeAt(at);
    if (next === COMMA || next === CLOSE) {
      if (at - digitsFrom <= EXACT_DIGITS) return json.charCodeAt(start) === MINUS ? -value : value;
    } else {
      // A fraction or an exponent: to its end, then as JSON reads it.
      while (at < json.length && NUMBER_CHARS.includes(json.charAt(at))) at++;
    }
    const parsed = Number(json.slice(start, at));
    if (Number.isNaN(parsed)) fail("not a number");
    return parsed;
  };

  const readValue = (): TupleValue => {
    const code = json.charCodeAt(at);
    if (code === QUOTE) return readString();
    if (code === N) {
      if (!json.startsWith("null", at)) fail("expected a value");
      at += 4;
      return null;
    }
    return readNumber();
  };

  expect(OPEN);
  if (json.charCodeAt(at) === CLOSE) {
    at++;
  } else {
    for (;;) {
      expect(OPEN);
      // Written in place: emptying the array (length = 0) would drop its storage, and each tuple grow it again.
      width = 0;
      for (;;) {
        // Read before it is written over: readString compares with the value it replaces.
        const value = readValue();
        tuple[width] = value;
        width++;
        const code = json.charCodeAt(at++);
        if (code === CLOSE) break;
        if (code !== COMMA) {
          at--;
          fail("expected , or ]");
        }
      }
      if (width < tuple.length) tuple.length = width;
      onTuple(tuple);
      count++;
      const code = json.charCodeAt(at++);
      if (code === CLOSE) break;
      if (code !== COMMA) {
        at--;
        fail("expected , or ]");
      }
    }
  }
  if (at !== json.length) fail("text after the tuples");
  return count;
}
