/**
 * Every environment's configuration, read as wrangler reads it: the three
 * Workers of one environment name the same queues, each consumer's dead
 * letters go to a queue the producer consumes and records (by the names its
 * ARCHIVE_DLQ_NAME and CLEANUP_DLQ_NAME vars give), and no environment
 * borrows another's queues; all three archive the same table, and both
 * consumers pace their D1 time alike.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { unstable_readConfig } from "wrangler";
import { parseArchivedTables } from "../packages/shared/src/archived-table/archived-table.ts";
import { readConfig } from "../packages/shared/src/config.ts";
import { PACING_OFF } from "../packages/shared/src/pacing/d1-pacer.ts";
import { TRAFFIC_EVENTS_STATS } from "../packages/shared/src/stats/stats-columns.ts";
import { ROOT } from "./lib.ts";

const ENVIRONMENTS = [undefined, "staging", "production"] as const;

function read(app: string, env: string | undefined) {
  const config = unstable_readConfig({ config: join(ROOT, "apps", app, "wrangler.jsonc"), env });
  const producers = Object.fromEntries(
    (config.queues.producers ?? []).map((p: { binding: string; queue: string }) => [p.binding, p.queue]),
  );
  const consumers = config.queues.consumers ?? [];
  return {
    producers,
    consumers,
    vars: config.vars as Record<string, string>,
    workersDev: config.workers_dev,
    migrationsTable: config.d1_databases[0]?.migrations_table,
  };
}

describe.each(ENVIRONMENTS)("environment %s", (env) => {
  const producer = read("producer", env);
  const archive = read("archive-consumer", env);
  const cleanup = read("cleanup-consumer", env);
  const archiveQueue = archive.consumers[0];
  const cleanupQueue = cleanup.consumers[0];

  it("sends to the queues its consumers consume", () => {
    expect(archive.consumers).toHaveLength(1);
    expect(cleanup.consumers).toHaveLength(1);
    expect(producer.producers.ARCHIVE_QUEUE).toBe(archiveQueue?.queue);
    expect(producer.producers.CLEANUP_QUEUE).toBe(cleanupQueue?.queue);
    // The archive consumer sends chunks again (a part overwritten by a late writer) to its own queue.
    expect(archive.producers.ARCHIVE_QUEUE).toBe(archiveQueue?.queue);
    // The cleanup consumer goes on with a range too big for one invocation in a message to its own queue.
    expect(cleanup.producers.CLEANUP_QUEUE).toBe(cleanupQueue?.queue);
  });

  it("records the dead letters of both consumers: the producer consumes their queues under the names it maps", () => {
    const consumed = producer.consumers.map((c: { queue: string }) => c.queue).sort();
    expect(consumed).toEqual([producer.vars.ARCHIVE_DLQ_NAME, producer.vars.CLEANUP_DLQ_NAME].sort());
    expect(archiveQueue?.dead_letter_queue).toBe(producer.vars.ARCHIVE_DLQ_NAME);
    expect(cleanupQueue?.dead_letter_queue).toBe(producer.vars.CLEANUP_DLQ_NAME);
    expect(archive.producers.ARCHIVE_DLQ).toBe(producer.vars.ARCHIVE_DLQ_NAME);
    expect(cleanup.producers.CLEANUP_DLQ).toBe(producer.vars.CLEANUP_DLQ_NAME);
  });

  it("bounds both consumers' concurrency on the one D1 primary, and serves the admin API only where chosen", () => {
    expect(archiveQueue?.max_concurrency).toBe(4);
    expect(cleanupQueue?.max_concurrency).toBe(2);
    // Production's admin API is reached on a route of the operator's zone (behind Access), not *.workers.dev.
    expect(read("producer", env).workersDev).toBe(env !== "production");
    expect(read("archive-consumer", env).workersDev).toBe(false);
    expect(read("cleanup-consumer", env).workersDev).toBe(false);
  });

  it("archives the same valid tables, named alike in all three Workers", () => {
    // Hot days are the producer's alone (the cron's); every other part of a table must agree.
    const tables = (vars: Record<string, unknown>) => {
      const parsed = parseArchivedTables(vars, 0);
      if (parsed.some((t) => typeof t === "string")) throw new Error(parsed.join("; "));
      return parsed;
    };
    expect(tables(producer.vars).length).toBeGreaterThan(0);
    expect(tables(archive.vars)).toEqual(tables(producer.vars));
    expect(tables(cleanup.vars)).toEqual(tables(producer.vars));
    // The example's path statistics, as the browser test configures them too.
    expect(producer.vars.ARCHIVE_STATS).toEqual(TRAFFIC_EVENTS_STATS);
  });

  it("plans chunks for the D1 query budget cleanup works within", () => {
    expect(producer.vars.D1_QUERIES_PER_INVOCATION).toBeDefined();
    expect(producer.vars.D1_QUERIES_PER_INVOCATION).toBe(cleanup.vars.D1_QUERIES_PER_INVOCATION);
  });

  it("paces both consumers' D1 time to the same budget, one the configuration accepts", () => {
    const budget = archive.vars.D1_MS_PER_SECOND;
    expect(budget).toBeDefined();
    expect(cleanup.vars.D1_MS_PER_SECOND).toBe(budget);
    expect(readConfig(archive.vars).D1_MS_PER_SECOND).toBe(Number(budget));
    // Deployed, pacing is on: the API's writes wait behind the archiver's statements on D1's one primary.
    if (env !== undefined) expect(Number(budget)).toBeLessThan(PACING_OFF);
  });

  it("records the archiver's migrations in a table of their own, never the operator's d1_migrations", () => {
    for (const app of [producer, archive, cleanup]) expect(app.migrationsTable).toBe("archiver_migrations");
  });

  it("uses queues of its own: staging's are not production's", () => {
    const names = [
      archiveQueue?.queue,
      cleanupQueue?.queue,
      producer.vars.ARCHIVE_DLQ_NAME,
      producer.vars.CLEANUP_DLQ_NAME,
    ];
    for (const name of names) expect(name?.endsWith("-staging")).toBe(env === "staging");
  });
});
