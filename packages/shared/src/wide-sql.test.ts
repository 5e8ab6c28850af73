import { describe, expect, it } from "vitest";
import { balanced, concatSql, MAX_FUNCTION_ARGUMENTS } from "./wide-sql.ts";

/** The deepest parenthesis nesting of an expression: a balanced tree of n terms nests about log2(n). */
function depth(sql: string): number {
  let deepest = 0;
  let now = 0;
  for (const c of sql) {
    if (c === "(") deepest = Math.max(deepest, ++now);
    if (c === ")") now--;
  }
  return deepest;
}

/** The argument count of every concat( call, by its top-level commas. */
function concatArguments(sql: string): number[] {
  const counts: number[] = [];
  for (let at = sql.indexOf("concat("); at !== -1; at = sql.indexOf("concat(", at + 1)) {
    let level = 0;
    let commas = 0;
    for (let i = at + "concat(".length; i < sql.length; i++) {
      const c = sql[i];
      if (c === "(") level++;
      else if (c === ")" && level-- === 0) break;
      else if (c === "," && level === 0) commas++;
    }
    counts.push(commas + 1);
  }
  return counts;
}

describe("SQL over every column within D1's limits", () => {
  it("joins 300 terms as a tree 10 levels deep, keeping their order", () => {
    const terms = Array.from({ length: 300 }, (_, i) => `c${i}`);
    const sql = balanced(terms, "OR", "0");
    expect(depth(sql)).toBeLessThanOrEqual(10);
    expect(sql.match(/c\d+/g)).toEqual(terms);
    expect(balanced([], "AND", "1")).toBe("1");
    expect(balanced(["a"], "+", "0")).toBe("(a)");
  });

  it("concatenates 201 pieces (100 columns) in order, no call taking more than 32 arguments", () => {
    const pieces = Array.from({ length: 201 }, (_, i) => `p${i}`);
    const sql = concatSql(pieces);
    expect(Math.max(...concatArguments(sql))).toBeLessThanOrEqual(MAX_FUNCTION_ARGUMENTS);
    expect(sql.match(/p\d+/g)).toEqual(pieces);
    expect(concatSql(["a", "b"])).toBe("concat(a, b)");
  });
});
