/**
 * D1 for Workers in another `wrangler dev` (the bench's production layout):
 * each call runs one statement or batch on this process's local D1 and
 * answers D1's own result, meta included, so the archiver's pacing and
 * timings read the same numbers as with a binding of its own.
 */
import { WorkerEntrypoint } from "cloudflare:workers";

interface Env {
  D1: D1Database;
}

/** A statement as it crosses the binding: its SQL and bound values. */
export interface StatementCall {
  sql: string;
  params: unknown[];
}

/** How the statement is run, as D1's own methods; raw() is not offered: the archiver does not use it. */
export type StatementMode = "all" | "run" | "first";

export class Database extends WorkerEntrypoint<Env> {
  async statement(call: StatementCall, mode: StatementMode, column?: string): Promise<unknown> {
    const statement = this.env.D1.prepare(call.sql).bind(...call.params);
    switch (mode) {
      case "all":
        return statement.all();
      case "run":
        return statement.run();
      case "first":
        return typeof column === "string" ? statement.first(column) : statement.first();
    }
  }

  async batch(calls: StatementCall[]): Promise<D1Result[]> {
    return this.env.D1.batch(calls.map((c) => this.env.D1.prepare(c.sql).bind(...c.params)));
  }

  async exec(sql: string): Promise<D1ExecResult> {
    return this.env.D1.exec(sql);
  }
}

export default {
  fetch: () => new Response("D1 for the bench's archiver Workers, over the Database entrypoint", { status: 404 }),
} satisfies ExportedHandler<Env>;
