import { describe, expect, it } from "vitest";
import { seededRandom } from "../seeded-random.ts";
import { forEachLine, type LineValue } from "./line-scanner.ts";

const COLUMNS = ["id", "path", "note", "method", "status", "ts"];

/** The picked values of each line as the scanner gives them, each copied (it reuses one array). */
function scanned(text: string, picked: readonly number[], columnCount = COLUMNS.length): LineValue[][] {
  const rows: LineValue[][] = [];
  const count = forEachLine(text, columnCount, picked, (values) => rows.push([...values]));
  expect(count).toBe(rows.length);
  return rows;
}

/** The same, the plain way: each line parsed whole. */
function parsed(text: string, picked: readonly number[]): LineValue[][] {
  return text.split("\n").map((line) => {
    const row = Object.values(JSON.parse(line) as Record<string, LineValue>);
    return picked.map((position) => (position < 0 ? null : (row[position] as LineValue)));
  });
}

const linesOf = (rows: LineValue[][], columns = COLUMNS) =>
  rows.map((row) => JSON.stringify(Object.fromEntries(columns.map((c, i) => [c, row[i]])))).join("\n");

const awkwardStrings = [
  "",
  "/api/v1/users/123?page=2",
  'a "quoted" path',
  "back\\slash",
  "line\nbreak\ttab\r",
  "\u0000\u001f control",
  "é ünï 路径 😀",
  "\u2028\u2029",
  "null",
  '{"a":1}',
  "x".repeat(500),
];
const awkwardNumbers = [
  0,
  -0,
  7,
  -7,
  200,
  1747440000123,
  999_999_999_999_999,
  9_007_199_254_740_991,
  -9_007_199_254_740_991,
  2 ** 53,
  1.5,
  -0.25,
  1e21,
  1.7976931348623157e308,
  5e-324,
];

describe("forEachLine", () => {
  it("reads the picked columns as JSON.parse reads them, value for value and type for type", () => {
    const rows: LineValue[][] = [
      [1, ...awkwardStrings.slice(0, 5)],
      [2, ...awkwardStrings.slice(5, 10)],
      [3, awkwardStrings[10] as string, null, "GET", 404, "2026-05-17T00:00:00Z"],
      ...Array.from({ length: 3 }, (_, i) => awkwardNumbers.slice(5 * i, 5 * i + 5).concat(i)),
    ];
    const text = linesOf(rows);
    for (const picked of [[1, 3, 4, -1, -1, 5], [0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], []]) {
      expect(scanned(text, picked)).toStrictEqual(parsed(text, picked));
    }
    // Integers beyond 2^53 as SQLite writes them, every digit: added up digit by digit they would round wrong.
    const long = '{"a":12345678901234567890,"b":9007199254740993123,"c":-12345678901234567890}';
    expect(scanned(long, [0, 1, 2], 3)).toStrictEqual([Object.values(JSON.parse(long))]);
  });

  it("agrees with JSON.parse on random pages", () => {
    const random = seededRandom(23);
    const value = (): LineValue => {
      const r = random();
      if (r < 0.1) return null;
      if (r < 0.5) return awkwardStrings[Math.floor(random() * awkwardStrings.length)] as string;
      if (r < 0.8) return Math.floor(random() * 2 ** 53) * (random() < 0.5 ? -1 : 1);
      return awkwardNumbers[Math.floor(random() * awkwardNumbers.length)] as number;
    };
    for (let page = 0; page < 20; page++) {
      const rows = Array.from({ length: 1 + Math.floor(random() * 200) }, () => COLUMNS.map(value));
      const text = linesOf(rows);
      expect(scanned(text, [1, 3, 4, 2, -1, 5])).toStrictEqual(parsed(text, [1, 3, 4, 2, -1, 5]));
    }
  });

  it("gives the line before's string again only for the same text", () => {
    // Same length as the line before, differing in one character: first, middle, last; then the same again.
    const values = ["GET", "SET", "GOT", "GEX", "GEX", "é", "è", "è", '"', "'"];
    const text = values.map((v) => JSON.stringify({ m: v })).join("\n");
    expect(scanned(text, [0], 1).map(([v]) => v)).toStrictEqual(values);
  });

  it("reads keys that need escaping, and an empty page", () => {
    const text = linesOf([["x", 1]], ['a "key"', "b\\c"]);
    expect(scanned(text, [1, 0], 2)).toStrictEqual([[1, "x"]]);
    expect(scanned("", [0])).toEqual([]);
  });

  it("refuses what json_object() never writes, saying where", () => {
    for (const bad of [
      "{",
      '{"a":1',
      '{"a":1,}',
      '{"a":1}\n',
      '{"a":1}{"a":2}',
      '{"a":true}',
      '{"a":"x}',
      '{"a":1 }',
      '{"a":1.2.3}',
      '{"a":[1]}',
      "{a:1}",
      '{"a":1,"b":2}',
      "[1]",
    ]) {
      expect(() => forEachLine(bad, 1, [0], () => {}), bad).toThrow(/^page lines: .* at offset \d+ of \d+$/);
    }
  });
});
