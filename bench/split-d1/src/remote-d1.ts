/**
 * A D1 binding whose statements run in another `wrangler dev` (host.ts), and
 * the archiver's handlers given it as their `env.D1`: the bench's production
 * layout, where the archiver's CPU runs apart from the database the API
 * writes to. The archiver's code is the same; only its D1 is elsewhere.
 */
import type { Database, StatementCall } from "./host.ts";

/** What the wrapped Workers bind: the host's Database entrypoint. */
export interface RemoteD1Env {
  D1_HOST: Service<Database>;
}

class RemoteStatement {
  constructor(
    private readonly host: Service<Database>,
    readonly call: StatementCall,
  ) {}
  bind(...params: unknown[]): RemoteStatement {
    return new RemoteStatement(this.host, { sql: this.call.sql, params });
  }
  all() {
    return this.host.statement(this.call, "all");
  }
  run() {
    return this.host.statement(this.call, "run");
  }
  first(column?: string) {
    return this.host.statement(this.call, "first", column);
  }
  raw(): never {
    throw new Error("raw() is not offered by the bench's remote D1");
  }
}

/** A D1Database, by shape, running everything on `host`. */
export function remoteD1(host: Service<Database>): D1Database {
  const db = {
    prepare: (sql: string) => new RemoteStatement(host, { sql, params: [] }),
    batch: (statements: RemoteStatement[]) => host.batch(statements.map((s) => s.call)),
    exec: (sql: string) => host.exec(sql),
    withSession(): never {
      throw new Error("sessions are not offered by the bench's remote D1");
    },
    dump(): never {
      throw new Error("dump is not offered by the bench's remote D1");
    },
  };
  return db as unknown as D1Database;
}

/** Handlers of one Worker, by the shape the archiver's three export. */
interface Handlers {
  fetch?(request: Request, env: never, ctx: ExecutionContext): Response | Promise<Response>;
  queue?(batch: MessageBatch, env: never, ctx: ExecutionContext): void | Promise<void>;
  scheduled?(controller: ScheduledController, env: never, ctx: ExecutionContext): void | Promise<void>;
}

/** `app`'s handlers with `env.D1` a remote D1 on `env.D1_HOST`. */
export function withRemoteD1(app: Handlers): ExportedHandler<RemoteD1Env> {
  const withD1 = (env: RemoteD1Env) => ({ ...env, D1: remoteD1(env.D1_HOST) }) as never;
  const handlers: ExportedHandler<RemoteD1Env> = {};
  if (app.fetch) {
    const fetch = app.fetch.bind(app);
    handlers.fetch = (request, env, ctx) => fetch(request as unknown as Request, withD1(env), ctx);
  }
  if (app.queue) {
    const queue = app.queue.bind(app);
    handlers.queue = (batch, env, ctx) => queue(batch, withD1(env), ctx);
  }
  if (app.scheduled) {
    const scheduled = app.scheduled.bind(app);
    handlers.scheduled = (controller, env, ctx) => scheduled(controller, withD1(env), ctx);
  }
  return handlers;
}
