import { describe, expect, it } from "vitest";
import { seededRandom } from "../seeded-random.ts";
import { forEachTuple, type TupleValue } from "./tuple-scanner.ts";

/** The tuples as the scanner gives them, each copied (it reuses one array). */
function scanned(json: string): TupleValue[][] {
  const tuples: TupleValue[][] = [];
  const count = forEachTuple(json, (tuple) => tuples.push([...tuple]));
  expect(count).toBe(tuples.length);
  return tuples;
}

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
  "[1,2]",
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

describe("forEachTuple", () => {
  it("reads what JSON.parse reads, value for value and type for type", () => {
    const tuples: TupleValue[][] = [
      [...awkwardStrings.slice(0, 6)],
      [...awkwardStrings.slice(6), null],
      [...awkwardNumbers],
      [null],
      ["GET", 404, null, 12, "2026-05-17T00:00:00Z"],
    ];
    const json = JSON.stringify(tuples);
    expect(scanned(json)).toStrictEqual(JSON.parse(json));
    // Integers beyond 2^53 as SQLite writes them, every digit: added up digit by digit they would round wrong.
    const long = "[[12345678901234567890,9007199254740993123,-12345678901234567890]]";
    expect(scanned(long)).toStrictEqual(JSON.parse(long));
  });

  it("agrees with JSON.parse on random pages", () => {
    const random = seededRandom(23);
    const value = (): TupleValue => {
      const r = random();
      if (r < 0.1) return null;
      if (r < 0.5) return awkwardStrings[Math.floor(random() * awkwardStrings.length)] as string;
      if (r < 0.8) return Math.floor(random() * 2 ** 53) * (random() < 0.5 ? -1 : 1);
      return awkwardNumbers[Math.floor(random() * awkwardNumbers.length)] as number;
    };
    for (let page = 0; page < 20; page++) {
      const tuples = Array.from({ length: 1 + Math.floor(random() * 200) }, () => Array.from({ length: 6 }, value));
      const json = JSON.stringify(tuples);
      expect(scanned(json)).toStrictEqual(JSON.parse(json));
    }
  });

  it("reads an empty page", () => {
    expect(scanned("[]")).toEqual([]);
  });

  it("refuses what json_array() never writes, saying where", () => {
    for (const bad of [
      "",
      "[",
      "[[1]",
      "[[1],]",
      "[[1,]]",
      "[[true]]",
      '[["a]]',
      "[[1]] ",
      "[[1 ]]",
      "[[1.2.3]]",
      "{}",
    ]) {
      expect(() => forEachTuple(bad, () => {}), bad).toThrow(/^stats tuples: .* at offset \d+ of \d+$/);
    }
  });
});
