import { functionCalls } from "./function-calls.ts";

/**
 * A D1 binding that refuses what production D1 refuses and the local runtime
 * lets through, with D1's error text, so that no test passes on SQL the first
 * deploy would fail. Every Workers test runs on it (test/apply-migrations.ts
 * and test/worker.ts wrap the binding).
 *
 * D1's limits (developers.cloudflare.com/d1/platform/limits, checked
 * 2026-12), and who enforces them in tests:
 * - 32 arguments per SQL function: here (the local runtime allows 127).
 * - 1000 queries per Worker invocation (Workers Paid): here, per invocation
 *   of the test Worker, a batch counting as one query (one subrequest; the
 *   limit is documented as a subrequest limit).
 * - 2 MB per string or BLOB: here for values D1 answers and for bound values
 *   (the local runtime allows 2.2 MB, workerd's SQLITE_LIMIT_LENGTH).
 * - 50 MB per answer: here.
 * - 100 bound parameters, 100 KB per statement, 50-byte LIKE/GLOB patterns,
 *   expression depth 100, the function list: the local runtime, which is
 *   built from the same workerd code as production D1 and refuses these with
 *   the same text (strict-d1.test.ts checks that they are refused here).
 */
export const D1_LIMITS = {
  functionArguments: 32,
  queriesPerInvocation: 1000,
  valueBytes: 2_000_000,
  answerBytes: 50_000_000,
} as const;

/** The queries one Worker invocation has made: shared by every binding handed to that invocation. */
export class QueryBudget {
  used = 0;
  constructor(readonly limit: number = D1_LIMITS.queriesPerInvocation) {}

  take(): void {
    this.used++;
    if (this.used > this.limit) {
      // Production's answer to the 1001st query of an invocation.
      throw new Error("D1_ERROR: Too many API requests by single worker invocation.");
    }
  }
}

const NATIVE = Symbol("native D1 statement");
const NATIVE_DB = Symbol("native D1 binding");
const SQL = Symbol("SQL text");
type Strict = D1PreparedStatement & { [NATIVE]: D1PreparedStatement; [SQL]: string };

const encoder = new TextEncoder();

/** UTF-8 bytes of a string, computed only when it could be over `limit`. */
function bytesOver(text: string, limit: number): boolean {
  return text.length * 3 > limit && encoder.encode(text).byteLength > limit;
}

function valueTooBig(value: unknown): boolean {
  if (typeof value === "string") return bytesOver(value, D1_LIMITS.valueBytes);
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return value.byteLength > D1_LIMITS.valueBytes;
  if (Array.isArray(value)) return value.length > D1_LIMITS.valueBytes;
  return false;
}

const TOO_BIG = "D1_ERROR: string or blob too big: SQLITE_TOOBIG";

/** Refuses a statement D1 would not compile. */
function checkStatement(sql: string): void {
  for (const call of functionCalls(sql)) {
    if (call.args > D1_LIMITS.functionArguments) {
      throw new Error(`D1_ERROR: too many arguments on function ${call.name} at offset ${call.offset}: SQLITE_ERROR`);
    }
  }
}

/** Refuses an answer D1 would not give: a value over 2 MB, or over 50 MB in all. */
function checkAnswer(rows: readonly unknown[]): void {
  let bytes = 0;
  for (const row of rows) {
    const values = Array.isArray(row) ? row : Object.values(row as object);
    for (const value of values) {
      if (valueTooBig(value)) throw new Error(TOO_BIG);
      bytes += typeof value === "string" ? value.length : 8;
    }
  }
  if (bytes > D1_LIMITS.answerBytes) throw new Error("D1_ERROR: query result is larger than 50 MB");
}

const strictBindings = new WeakSet<object>();

/**
 * `db` with D1's limits, counting its queries in `budget` (none: the queries
 * are not counted, as for a test's own setup outside any invocation). A
 * strict binding is not wrapped again but replaced; any other binding (a
 * test's faulty or counting one) is wrapped as it is.
 */
export function strictD1(db: D1Database, budget?: QueryBudget): D1Database {
  const native = strictBindings.has(db) ? nativeOf(db) : db;
  const checked = new Set<string>();
  const compile = (sql: string) => {
    if (checked.has(sql)) return;
    checkStatement(sql);
    checked.add(sql);
  };

  const statement = (sql: string, inner: D1PreparedStatement): Strict => {
    const run = async <T>(call: () => Promise<T>, answer: (result: T) => readonly unknown[]): Promise<T> => {
      compile(sql);
      budget?.take();
      const result = await call();
      checkAnswer(answer(result));
      return result;
    };
    const strict = {
      [NATIVE]: inner,
      [SQL]: sql,
      bind(...values: unknown[]) {
        if (values.some(valueTooBig)) throw new Error(TOO_BIG);
        return statement(sql, inner.bind(...values));
      },
      first(column?: string) {
        return run(
          () => (column === undefined ? inner.first() : inner.first(column)),
          (row) => (row === null ? [] : [column === undefined ? row : { [column]: row }]),
        );
      },
      run() {
        return run(
          () => inner.run(),
          (r) => r.results ?? [],
        );
      },
      all() {
        return run(
          () => inner.all(),
          (r) => r.results,
        );
      },
      raw(options?: { columnNames?: boolean }) {
        return run(
          () => (options?.columnNames ? inner.raw({ columnNames: true }) : inner.raw()),
          (rows) => rows as unknown[],
        );
      },
    };
    return strict as unknown as Strict;
  };

  const strictDb = {
    [NATIVE_DB]: native,
    prepare(sql: string) {
      return statement(sql, native.prepare(sql));
    },
    async batch(statements: D1PreparedStatement[]) {
      const inner = statements.map((s) => {
        const strict = s as Strict;
        if (!strict[NATIVE]) throw new Error("a statement of another binding in a strict D1 batch");
        compile(strict[SQL]);
        return strict[NATIVE];
      });
      budget?.take();
      const results = await native.batch(inner);
      for (const result of results) checkAnswer(result.results ?? []);
      return results;
    },
    exec(sql: string) {
      budget?.take();
      return native.exec(sql);
    },
    withSession(): never {
      throw new Error("withSession is not used by the archiver; the strict D1 binding does not offer it");
    },
    dump(): never {
      throw new Error("dump is deprecated; the strict D1 binding does not offer it");
    },
  };
  strictBindings.add(strictDb);
  return strictDb as unknown as D1Database;
}

/** The native binding under a strict one (or under a proxy of one: faults.ts wraps it). */
export function nativeOf(db: D1Database): D1Database {
  return (db as unknown as { [NATIVE_DB]?: D1Database })[NATIVE_DB] ?? db;
}
