import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { functionCalls } from "./function-calls.ts";
import { D1_LIMITS, nativeOf, QueryBudget, strictD1 } from "./strict-d1.ts";

const list = (n: number, item: (i: number) => string = String) =>
  Array.from({ length: n }, (_, i) => item(i)).join(", ");

describe("the strict D1 binding refuses what production D1 refuses, with D1's error text", () => {
  const db = strictD1(env.D1);

  it("more than 32 arguments to one function (the local runtime allows 127)", async () => {
    await expect(db.prepare(`SELECT json_array(${list(32)}) AS a`).first("a")).resolves.toMatch(/^\[0,/);
    await expect(db.prepare(`SELECT json_array(${list(33)})`).all()).rejects.toThrow(
      "D1_ERROR: too many arguments on function json_array at offset 7: SQLITE_ERROR",
    );
    // Nested calls count on their own; json_object takes two arguments per key.
    const pairs = list(17, (i) => `'k${i}', ${i}`);
    await expect(db.prepare(`SELECT json_array(json_object(${pairs}))`).all()).rejects.toThrow(
      "too many arguments on function json_object",
    );
    // The native binding (what the local runtime enforces) takes it: this limit is the strict binding's own.
    await expect(nativeOf(db).prepare(`SELECT json_object(${pairs})`).all()).resolves.toBeTruthy();
  });

  it("a batch holding a refused statement runs none of it", async () => {
    await db.prepare("CREATE TABLE IF NOT EXISTS strict_probe (v INTEGER)").run();
    await expect(
      db.batch([db.prepare("INSERT INTO strict_probe (v) VALUES (1)"), db.prepare(`SELECT coalesce(${list(33)})`)]),
    ).rejects.toThrow("too many arguments on function coalesce");
    await expect(db.prepare("SELECT count(*) AS n FROM strict_probe").first("n")).resolves.toBe(0);
  });

  it("more than 1000 queries in one invocation; a batch is one query", async () => {
    const budget = new QueryBudget();
    const counted = strictD1(env.D1, budget);
    const one = counted.prepare("SELECT 1");
    for (let i = 0; i < D1_LIMITS.queriesPerInvocation - 1; i++) await one.first();
    await counted.batch([one, one, one]);
    expect(budget.used).toBe(1000);
    await expect(one.first()).rejects.toThrow("D1_ERROR: Too many API requests by single worker invocation.");
    // Another invocation has its own budget.
    await expect(strictD1(env.D1, new QueryBudget()).prepare("SELECT 1 AS one").first("one")).resolves.toBe(1);
  });

  it("a string or BLOB over 2 MB, answered or bound (the local runtime computes up to 2.2 MB)", async () => {
    // hex() of a zeroblob: SQLite's printf stops at 100 000 characters.
    const text = (n: number) => `substr(hex(zeroblob(${Math.ceil(n / 2)})), 1, ${n})`;
    const sized = (n: number) => db.prepare(`SELECT ${text(n)} AS s`);
    await expect(sized(D1_LIMITS.valueBytes).first<string>("s")).resolves.toHaveLength(2_000_000);
    await expect(sized(D1_LIMITS.valueBytes + 1).all()).rejects.toThrow(
      "D1_ERROR: string or blob too big: SQLITE_TOOBIG",
    );
    await expect(
      nativeOf(db)
        .prepare(`SELECT ${text(2_100_000)} AS s`)
        .all(),
    ).resolves.toBeTruthy();
    // Counted in UTF-8 bytes: 700 000 three-byte characters are 2.1 MB.
    expect(() => db.prepare("SELECT length(?1)").bind("€".repeat(700_000))).toThrow("SQLITE_TOOBIG");
    expect(() => db.prepare("SELECT length(?1)").bind(new Uint8Array(D1_LIMITS.valueBytes + 1))).toThrow(
      "SQLITE_TOOBIG",
    );
  });

  it("an answer over 50 MB", async () => {
    const rows = (n: number) =>
      db.prepare(
        `WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ${n}) SELECT substr(hex(zeroblob(1000000)), 1, 1999999) AS s FROM k`,
      );
    await expect(rows(25).all()).resolves.toBeTruthy();
    await expect(rows(26).all()).rejects.toThrow("D1_ERROR: query result is larger than 50 MB");
  });

  it("limits the local runtime enforces already, with production's text", async () => {
    const params = (n: number) => db.prepare(`SELECT ${list(n, () => "?")}`).bind(...Array(n).fill(1));
    await expect(params(100).all()).resolves.toBeTruthy();
    await expect(params(101).all()).rejects.toThrow(/D1_ERROR: too many SQL variables at offset \d+: SQLITE_ERROR/);
    await expect(db.prepare(`SELECT 1 /* ${"x".repeat(100_000)} */`).all()).rejects.toThrow(
      "D1_ERROR: statement too long: SQLITE_TOOBIG",
    );
    await expect(db.prepare("SELECT 'a' LIKE ?1").bind("a".repeat(51)).all()).rejects.toThrow(
      "D1_ERROR: LIKE or GLOB pattern too complex: SQLITE_ERROR",
    );
    await expect(db.prepare(`SELECT ${list(101, (i) => `(${i} = 1)`).replaceAll(",", " OR")}`).all()).rejects.toThrow(
      "Expression tree is too large (maximum depth 100)",
    );
    await expect(db.prepare("SELECT json_pretty('{}')").all()).rejects.toThrow(
      "D1_ERROR: not authorized to use function: json_pretty",
    );
  });
});

describe("functionCalls finds calls and counts their arguments", () => {
  it("counts nested calls, and skips strings, comments and quoted names", () => {
    const sql = `SELECT max(a, b), json_object('x,(y', coalesce(c, d, e)), count(*), "sum"(1) -- min(1, 2)
      /* abs(1, 2, 3) */ FROM t WHERE upper( 'it''s, here' ) = 'X'`;
    expect(functionCalls(sql).map((c) => [c.name, c.args])).toEqual([
      ["max", 2],
      ["json_object", 2],
      ["coalesce", 3],
      ["count", 0],
      ["upper", 1],
    ]);
  });

  it("takes no table's column list for a call, even when the table is named like a function", () => {
    const columns = list(40, (i) => `c${i}`);
    expect(functionCalls(`INSERT INTO date (${columns}) VALUES (${list(40, () => "?")})`)).toEqual([]);
    expect(functionCalls(`CREATE TABLE IF NOT EXISTS "t" (${columns})`)).toEqual([]);
    expect(functionCalls(`CREATE INDEX i ON replace (${columns})`)).toEqual([]);
    expect(functionCalls("CREATE TABLE t (a INTEGER REFERENCES max(a))")).toEqual([]);
    expect(functionCalls("SELECT * FROM a JOIN b ON coalesce(a.x, 0) = b.x")).toHaveLength(1);
  });

  it("does not count an aggregate's ORDER BY as arguments", () => {
    expect(functionCalls("SELECT group_concat(line, char(10) ORDER BY id, k) FROM t")).toEqual([
      { name: "group_concat", args: 2, offset: 7 },
      { name: "char", args: 1, offset: 26 },
    ]);
  });
});
