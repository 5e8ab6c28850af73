import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { handleArchiveBatch } from "@path-stats/archive-consumer";
import { handleCleanupBatch } from "@path-stats/cleanup-consumer";
import type { ArchiveChunkMessage, NewPacer } from "@path-stats/shared";
import { invocationEnv } from "./worker.ts";

/** A queue binding that keeps what is sent, so a test decides when (and how often) each message arrives. */
export function capturingQueue(): Queue & { sent: ArchiveChunkMessage[] } {
  const sent: ArchiveChunkMessage[] = [];
  return {
    sent,
    async send(body: unknown) {
      sent.push(body as ArchiveChunkMessage);
    },
    async sendBatch(messages: Iterable<MessageSendRequest>) {
      for (const m of messages as Iterable<{ body: unknown }>) sent.push(m.body as ArchiveChunkMessage);
    },
  } as unknown as Queue & { sent: ArchiveChunkMessage[] };
}

/**
 * A property of a wrapped binding, its methods bound to the binding itself:
 * native bindings (R2) refuse a call whose `this` is the proxy.
 */
function passThrough(target: object, prop: string | symbol): unknown {
  const value = Reflect.get(target, prop);
  return typeof value === "function" ? value.bind(target) : value;
}

let deliveries = 0;

const consumers = { "archive-chunks": handleArchiveBatch, "cleanup-ranges": handleCleanupBatch };

/** Delivers one message to a queue's consumer, as the queue would, and reports ack or retry. */
async function deliverTo(
  queue: keyof typeof consumers,
  body: unknown,
  testEnv: Env,
  attempts: number,
  newPacer?: NewPacer,
): Promise<"ack" | "retry"> {
  const id = `test-${++deliveries}`;
  const batch = createMessageBatch(queue, [{ id, timestamp: new Date(), attempts, body }]);
  const ctx = createExecutionContext();
  await consumers[queue](batch, invocationEnv(testEnv), newPacer);
  const result = await getQueueResult(batch, ctx);
  if (result.explicitAcks.includes(id)) return "ack";
  if (result.retryMessages.some((m: { msgId: string }) => m.msgId === id)) return "retry";
  throw new Error(`message ${id} was neither acked nor retried`);
}

/** Delivers one archive-chunks message. */
export function deliver(body: unknown, testEnv: Env = env, attempts = 1): Promise<"ack" | "retry"> {
  return deliverTo("archive-chunks", body, testEnv, attempts);
}

/** Delivers one cleanup-ranges message. */
export function deliverCleanup(body: unknown, testEnv: Env = env, attempts = 1): Promise<"ack" | "retry"> {
  return deliverTo("cleanup-ranges", body, testEnv, attempts);
}

/**
 * Delivers the messages a plan sends to one queue, and those they send in
 * turn, until none is left; returns how many. `vars` override the env's (a
 * table of the test's own, a smaller query budget); `newPacer` gives each
 * invocation its pacer (a test's, with its own clock). A message retried
 * instead of acked fails the test.
 */
export async function deliverAll(
  plan: (testEnv: Env) => Promise<unknown>,
  vars: Record<string, string> = {},
  queue: keyof typeof consumers = "cleanup-ranges",
  newPacer?: NewPacer,
): Promise<number> {
  const captured = capturingQueue();
  const binding = queue === "archive-chunks" ? "ARCHIVE_QUEUE" : "CLEANUP_QUEUE";
  const testEnv = { ...env, ...vars, [binding]: captured } as Env;
  await plan(testEnv);
  let delivered = 0;
  for (let message = captured.sent.shift(); message; message = captured.sent.shift()) {
    const outcome = await deliverTo(queue, message, testEnv, 1, newPacer);
    if (outcome !== "ack") throw new Error(`a message of ${queue} was retried: ${JSON.stringify(message)}`);
    delivered++;
  }
  return delivered;
}

/** The env with every R2 uploadPart held until `gate` resolves; `onHeld` is called as each one reaches it. */
export function gatedUploadParts(gate: Promise<void>, onHeld: () => void = () => {}): Env {
  const bucket = env.R2_ARCHIVE;
  const wrapped = new Proxy(bucket, {
    get(target, prop) {
      if (prop !== "resumeMultipartUpload") return passThrough(target, prop);
      return (key: string, uploadId: string) => {
        const upload = target.resumeMultipartUpload(key, uploadId);
        return new Proxy(upload, {
          get(u, p) {
            if (p !== "uploadPart") return passThrough(u, p);
            return async (partNumber: number, value: Uint8Array) => {
              onHeld();
              await gate;
              return u.uploadPart(partNumber, value);
            };
          },
        });
      };
    },
  });
  return { ...env, R2_ARCHIVE: wrapped };
}

/**
 * D1 that fails the statements whose SQL matches a rule, `times` times each
 * after letting `skip` of them pass (alone or inside a batch), as a dying
 * Worker or a D1 error would. A rule with `effect: "stall"` holds the
 * statement until `until` resolves, then runs it (a slow D1); with
 * `effect: "commit-then-fail"` the batch commits and then reports an error
 * (D1 can answer an error for work it did).
 */
export function faultyD1(
  rules: {
    match: RegExp;
    times: number;
    skip?: number;
    effect?: "fail" | "stall" | "commit-then-fail";
    until?: () => Promise<void>;
  }[],
  base: D1Database = env.D1,
): D1Database & { failures: number } {
  const left = rules.map((r) => ({ skip: 0, ...r }));
  const sqlOf = new WeakMap<object, string>();
  const state = { failures: 0 };
  /** The rule that hits this statement now, if any. */
  const hit = (sql: string | undefined) => {
    const rule = sql === undefined ? undefined : left.find((r) => r.times > 0 && r.match.test(sql));
    if (!rule) return null;
    if (rule.skip > 0) {
      rule.skip--;
      return null;
    }
    rule.times--;
    state.failures++;
    return rule;
  };
  const wrapStatement = (statement: D1PreparedStatement, sql: string): D1PreparedStatement => {
    const proxy = new Proxy(statement, {
      get(target, prop) {
        if (prop === "bind") return (...values: unknown[]) => wrapStatement(target.bind(...values), sql);
        if (prop === "run" || prop === "all" || prop === "first" || prop === "raw") {
          return async (...args: unknown[]) => {
            const rule = hit(sql);
            const call = () => (target[prop] as (...a: unknown[]) => Promise<unknown>).apply(target, args);
            if (!rule) return call();
            if (rule.effect === "stall") {
              await rule.until?.();
              return call();
            }
            if (rule.effect === "commit-then-fail") await call();
            throw new Error(`injected D1 failure: ${sql.slice(0, 60)}`);
          };
        }
        return passThrough(target, prop);
      },
    });
    sqlOf.set(proxy, sql);
    sqlOf.set(statement, sql);
    return proxy;
  };
  return new Proxy(base, {
    get(target, prop) {
      if (prop === "failures") return state.failures;
      if (prop === "prepare") return (sql: string) => wrapStatement(target.prepare(sql), sql);
      if (prop === "batch") {
        return async (statements: D1PreparedStatement[]) => {
          const rules = statements.map((s) => hit(sqlOf.get(s)));
          const rule = rules.find((r) => r !== null);
          if (!rule) return target.batch(statements);
          const what = `injected D1 batch failure: ${sqlOf.get(statements[rules.indexOf(rule)] as object)?.slice(0, 60)}`;
          if (rule.effect === "stall") {
            await rule.until?.();
            return target.batch(statements);
          }
          if (rule.effect === "commit-then-fail") await target.batch(statements);
          throw new Error(what);
        };
      }
      return passThrough(target, prop);
    },
  }) as D1Database & { failures: number };
}

/** R2 whose put, uploadPart or complete fail the given number of times. */
export function faultyR2(
  times: { put?: number; uploadPart?: number; complete?: number },
  base: R2Bucket = env.R2_ARCHIVE,
): R2Bucket {
  const left = { put: 0, uploadPart: 0, complete: 0, ...times };
  const fail = (what: keyof typeof left) => {
    if (left[what] <= 0) return false;
    left[what]--;
    return true;
  };
  return new Proxy(base, {
    get(target, prop) {
      if (prop === "put") {
        return (...args: Parameters<R2Bucket["put"]>) =>
          fail("put") ? Promise.reject(new Error("injected R2 put failure")) : target.put(...args);
      }
      if (prop === "resumeMultipartUpload") {
        return (key: string, uploadId: string) =>
          new Proxy(target.resumeMultipartUpload(key, uploadId), {
            get(upload, p) {
              if (p === "uploadPart" || p === "complete") {
                return (...args: unknown[]) =>
                  fail(p)
                    ? Promise.reject(new Error(`injected R2 ${p} failure`))
                    : (upload[p] as (...a: unknown[]) => unknown).apply(upload, args);
              }
              return passThrough(upload, p);
            },
          });
      }
      return passThrough(target, prop);
    },
  });
}

/** Cleanup's DELETE statements: a window's rows together (WITH … DELETE) or matched row by row. */
export const DELETE_ROWS = /DELETE FROM "traffic_events" WHERE/;

/** The archiver's text page reads. */
export const PAGE_READ = /WHERE "event_date" = \?1 AND "id" > \?2 AND "id" <= \?3 ORDER BY "id" LIMIT \?4/;

/**
 * D1 that notes the size, as JSON, of the largest answer to a statement
 * matching `match`, the largest string in any such answer (in UTF-8 bytes),
 * and how often D1 refused one as too big (SQLITE_TOOBIG: D1's 2 MB limit on
 * any string, which local D1 enforces too).
 */
export function measuringD1(
  match: RegExp,
  base: D1Database = env.D1,
): D1Database & { largestAnswer: number; largestString: number; refusals: number } {
  const state = { largestAnswer: 0, largestString: 0, refusals: 0 };
  const utf8 = new TextEncoder();
  const wrapStatement = (statement: D1PreparedStatement, sql: string): D1PreparedStatement =>
    new Proxy(statement, {
      get(target, prop) {
        if (prop === "bind") return (...values: unknown[]) => wrapStatement(target.bind(...values), sql);
        if (prop === "all" && match.test(sql)) {
          return async () => {
            const answer = await target.all().catch((error: unknown) => {
              if (String(error).includes("SQLITE_TOOBIG")) state.refusals++;
              throw error;
            });
            for (const row of answer.results as Record<string, unknown>[]) {
              for (const value of Object.values(row)) {
                if (typeof value !== "string") continue;
                state.largestString = Math.max(state.largestString, utf8.encode(value).byteLength);
              }
            }
            state.largestAnswer = Math.max(state.largestAnswer, JSON.stringify(answer.results).length);
            return answer;
          };
        }
        return passThrough(target, prop);
      },
    });
  return new Proxy(base, {
    get(target, prop) {
      if (prop === "largestAnswer" || prop === "largestString" || prop === "refusals") return state[prop];
      if (prop === "prepare") return (sql: string) => wrapStatement(target.prepare(sql), sql);
      return passThrough(target, prop);
    },
  }) as D1Database & { largestAnswer: number; largestString: number; refusals: number };
}

/** D1 that adds up D1's own `rows_read` of every statement run through it, batches included. */
export function countingD1(base: D1Database = env.D1): D1Database & { rowsRead: number } {
  const state = { rowsRead: 0 };
  const count = <T extends { meta: { rows_read?: number } }>(result: T): T => {
    state.rowsRead += result.meta.rows_read ?? 0;
    return result;
  };
  const wrapStatement = (statement: D1PreparedStatement): D1PreparedStatement =>
    new Proxy(statement, {
      get(target, prop) {
        if (prop === "bind") return (...values: unknown[]) => wrapStatement(target.bind(...values));
        if (prop === "all" || prop === "run") return async () => count(await target[prop]());
        if (prop === "first") {
          return async (column?: string) => {
            const { results } = count(await target.all());
            const row = results[0] as Record<string, unknown> | undefined;
            return row === undefined ? null : column === undefined ? row : row[column];
          };
        }
        return passThrough(target, prop);
      },
    });
  return new Proxy(base, {
    get(target, prop) {
      if (prop === "rowsRead") return state.rowsRead;
      if (prop === "prepare") return (sql: string) => wrapStatement(target.prepare(sql));
      if (prop === "batch") {
        return async (statements: D1PreparedStatement[]) => {
          const results = await target.batch(statements);
          for (const r of results) count(r);
          return results;
        };
      }
      return passThrough(target, prop);
    },
  }) as D1Database & { rowsRead: number };
}
