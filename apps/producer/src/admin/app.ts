import {
  addDays,
  ConfigError,
  errorMessage,
  InvalidDateError,
  isCalendarDate,
  logEvent,
  parseClosedDate,
  readConfig,
  TableChoiceError,
  tableOf,
  utcDate,
} from "@path-stats/shared";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { methodNotAllowed } from "hono/method-not-allowed";
import { z } from "zod";
import { listDeadLetters, replayDeadLetters } from "../dead-letters.ts";
import { evaluateHealth } from "../monitoring/health.ts";
import { metricsText } from "../monitoring/metrics.ts";
import { overview } from "../monitoring/overview.ts";
import { operatorPage, PUBLIC_PAGE_PATH } from "../operator-page/routes.tsx";
import { planArchive, UnarchivableDayError } from "../plan-archive.ts";
import { CleanupRefusedError, planCleanup } from "../plan-cleanup.ts";
import { planRestore, RestoreRefusedError } from "../restore/plan-restore.ts";
import { failRunByOperator, RunNotFailableError } from "../runs.ts";
import { planScrub, ScrubRefusedError } from "../scrub/plan-scrub.ts";
import { pathStats, StatsRequestError } from "../stats/path-stats.ts";
import { planRecount, RecountRefusedError } from "../stats/plan-recount.ts";
import { dayStatus } from "../status.ts";
import { requireAdminToken } from "./auth.ts";
import { ApiError, errorResponse } from "./errors.ts";

/** Bodies are small JSON: anything larger is refused before it is read. */
const MAX_BODY_BYTES = 16 * 1024;

/** Which archived table: may be left out when one table is archived (tableOf). */
const table = z.string().max(200).optional();
const DateQuery = z.object({ table, date: z.string() }).strict();
const StatusQuery = z.object({ table, date: z.string(), count: z.literal("live").optional() }).strict();
const DeadLetterQuery = z
  .object({
    queue: z.enum(["archive-chunks", "cleanup-ranges"]).optional(),
    date: z.string().refine(isCalendarDate, "must be a real calendar date YYYY-MM-DD").optional(),
    replayed: z.enum(["true", "false"]).optional(),
    limit: z.coerce.number().int().min(1).max(500).default(100),
  })
  .strict();
const RestoreQuery = z
  .object({
    table,
    date: z.string(),
    runId: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, "must be a run id")
      .optional(),
  })
  .strict();
const OverviewQuery = z.object({ table, days: z.coerce.number().int().min(1).max(366).default(30) }).strict();
const calendarDate = z.string().refine(isCalendarDate, "must be a real calendar date YYYY-MM-DD");
/** Most days one /admin/stats call covers. */
const MAX_STATS_DAYS = 92;
const StatsQuery = z
  .object({
    table,
    from: calendarDate,
    to: calendarDate,
    path: z.string().max(2000).optional(),
    group: z.enum(["day", "path"]).optional(),
  })
  .strict()
  .refine((q) => q.from <= q.to, { message: "from must not be after to", path: ["from"] })
  .refine((q) => q.to < addDays(q.from, MAX_STATS_DAYS), {
    message: `at most ${MAX_STATS_DAYS} days per call`,
    path: ["to"],
  });
const RunIdParam = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be a run id");
const FailBody = z.object({ reason: z.string().trim().min(1).max(500) }).strict();
const ReplayBody = z.union([
  z.object({ ids: z.array(z.number().int().positive()).min(1).max(100) }).strict(),
  z.object({ pending: z.literal(true) }).strict(),
]);

type AdminEnv = { Bindings: Env; Variables: { caller?: string; date?: string } };

/** The query string as single values, checked against a schema: repeated or unknown parameters are refused. */
function query<T extends z.ZodType>(url: string, schema: T): z.output<T> {
  const params = new URL(url).searchParams;
  const values: Record<string, string> = {};
  for (const key of new Set(params.keys())) {
    const all = params.getAll(key);
    if (all.length > 1) throw new ApiError(400, "invalid_request", `query parameter ${key} is given more than once`);
    values[key] = all[0] ?? "";
  }
  return parse(schema, values, "query");
}

function parse<T extends z.ZodType>(schema: T, value: unknown, where: string): z.output<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const detail = parsed.error.issues.map((i) => `${i.path.join(".") || where}: ${i.message}`).join("; ");
    throw new ApiError(400, "invalid_request", `invalid ${where}: ${detail}`);
  }
  return parsed.data;
}

/** The table and day named by `?table=&date=`; the day must be closed (before today, UTC). */
function closedDay(url: string): { table: string | undefined; date: string } {
  const { table, date } = query(url, DateQuery);
  return { table, date: parseClosedDate(date, new Date()) };
}

const app = new Hono<AdminEnv>();

app
  .get("/healthz", (c) => c.json({ ok: true }))
  .use("/admin/*", async (c, next) => {
    // One structured line per admin request: who (token hash prefix), what, which day, with what result.
    await next();
    logEvent("admin.action", {
      caller: c.get("caller") ?? "unauthenticated",
      action: `${c.req.method} ${c.req.path}`,
      table: c.req.query("table")?.slice(0, 64) ?? null,
      date: c.get("date") ?? c.req.query("date")?.slice(0, 40) ?? null,
      status: c.res.status,
    });
  })
  // Authentication comes before routing: an unauthenticated caller learns nothing of the routes.
  // The operator page's shell is the one exception: it holds no data, and asks for the token.
  .use("/admin/*", (c, next) => (c.req.path === PUBLIC_PAGE_PATH ? next() : requireAdminToken(c, next)))
  .use(
    methodNotAllowed({
      app,
      onMethodNotAllowed: (c, methods) =>
        errorResponse(
          c,
          new ApiError(405, "method_not_allowed", `${c.req.method} is not allowed here; use ${methods.join(", ")}`, {
            Allow: methods.join(", "),
          }),
        ),
    }),
  )
  .use(
    "/admin/*",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) =>
        errorResponse(c, new ApiError(413, "body_too_large", `request bodies are limited to ${MAX_BODY_BYTES} bytes`)),
    }),
  )
  .post("/admin/trigger-archive", async (c) => {
    const { table, date } = closedDay(c.req.url);
    c.set("date", date);
    const result = await planArchive(c.env, date, new Date(), table);
    const status = result.outcome === "planned" || result.outcome === "in_flight" ? 202 : 200;
    return c.json({ ...result, runId: result.run?.run_id ?? null }, status);
  })
  .get("/admin/archive-status", async (c) => {
    const { table, date: input, count } = query(c.req.url, StatusQuery);
    const date = parseClosedDate(input, new Date());
    c.set("date", date);
    const archived = tableOf(readConfig(c.env), table);
    return c.json(await dayStatus(c.env.D1, archived, date, { countLive: count === "live" }));
  })
  .get("/admin/health", async (c) => {
    query(c.req.url, z.object({}).strict());
    const health = await evaluateHealth(c.env, new Date());
    return c.json(health, health.healthy ? 200 : 503);
  })
  .get("/admin/overview", async (c) => {
    const { table, days } = query(c.req.url, OverviewQuery);
    const config = readConfig(c.env);
    return c.json(await overview(c.env.D1, config.tables, tableOf(config, table), new Date(), days));
  })
  .get("/admin/metrics", async (c) => {
    query(c.req.url, z.object({}).strict());
    const now = new Date();
    const text = await metricsText(c.env.D1, readConfig(c.env).tables, now, await evaluateHealth(c.env, now));
    return c.text(text, 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
  })
  .get("/admin/stats", async (c) => {
    const { table, from, to, path, group } = query(c.req.url, StatsQuery);
    const today = utcDate(new Date());
    if (to > today) throw new ApiError(400, "invalid_request", `invalid query: to: must not be after today (${today})`);
    const config = readConfig(c.env);
    return c.json(await pathStats(c.env, config, tableOf(config, table), { from, to, path, group }));
  })
  .post("/admin/stats/recount", async (c) => {
    const { table, date } = closedDay(c.req.url);
    c.set("date", date);
    const result = await planRecount(c.env, date, new Date(), table);
    return c.json(result, 202);
  })
  .post("/admin/trigger-cleanup", async (c) => {
    const { table, date } = closedDay(c.req.url);
    c.set("date", date);
    const result = await planCleanup(c.env, date, new Date(), {}, table);
    return c.json(result, result.outcome === "enqueued" ? 202 : 200);
  })
  .post("/admin/verify", async (c) => {
    const { table, date } = closedDay(c.req.url);
    c.set("date", date);
    return c.json(await planScrub(c.env, date, new Date(), table), 202);
  })
  .post("/admin/restore", async (c) => {
    const { table, date: input, runId } = query(c.req.url, RestoreQuery);
    const date = parseClosedDate(input, new Date());
    c.set("date", date);
    return c.json(await planRestore(c.env, date, runId ?? null, new Date(), table), 202);
  })
  .post("/admin/runs/:runId/fail", async (c) => {
    query(c.req.url, z.object({}).strict());
    const runId = parse(RunIdParam, c.req.param("runId"), "run id");
    const { reason } = parse(FailBody, await c.req.json().catch(() => undefined), "body");
    const run = await failRunByOperator(c.env, runId, reason, new Date());
    c.set("date", run.date);
    return c.json({ runId, table: run.table_name, date: run.date, status: run.status, error: run.error });
  })
  .get("/admin/dead-letters", async (c) => {
    const filter = query(c.req.url, DeadLetterQuery);
    const replayed = filter.replayed === undefined ? undefined : filter.replayed === "true";
    return c.json({ deadLetters: await listDeadLetters(c.env.D1, { ...filter, replayed }) });
  })
  .post("/admin/dead-letters/replay", async (c) => {
    query(c.req.url, z.object({}).strict());
    const body = parse(ReplayBody, await c.req.json().catch(() => undefined), "body");
    const result = await replayDeadLetters(c.env, "ids" in body ? body.ids : "pending", new Date());
    return c.json(result, result.replayed.length > 0 ? 202 : 200);
  })
  .route("/admin/ui", operatorPage)
  .notFound((c) => errorResponse(c, new ApiError(404, "not_found", `no route ${c.req.method} ${c.req.path}`)))
  .onError((error, c) => {
    if (error instanceof ApiError) return errorResponse(c, error);
    if (error instanceof InvalidDateError) return errorResponse(c, new ApiError(400, error.code, error.message));
    if (error instanceof TableChoiceError) return errorResponse(c, new ApiError(400, error.code, error.message));
    if (error instanceof CleanupRefusedError) return errorResponse(c, new ApiError(409, error.code, error.message));
    if (error instanceof UnarchivableDayError)
      return errorResponse(c, new ApiError(409, "unarchivable", error.message));
    if (error instanceof ScrubRefusedError) return errorResponse(c, new ApiError(409, error.code, error.message));
    if (error instanceof RestoreRefusedError)
      return errorResponse(c, new ApiError(error.code === "run_not_found" ? 404 : 409, error.code, error.message));
    if (error instanceof RecountRefusedError)
      return errorResponse(c, new ApiError(error.code === "no_stats" ? 400 : 409, error.code, error.message));
    if (error instanceof StatsRequestError)
      return errorResponse(c, new ApiError(error.code === "no_stats" ? 400 : 422, error.code, error.message));
    if (error instanceof RunNotFailableError)
      return errorResponse(c, new ApiError(error.status, error.code, error.message));
    // Only server faults are logged as errors; refusals are the caller's.
    logEvent("admin.error", { action: `${c.req.method} ${c.req.path}`, error: errorMessage(error) });
    const code = error instanceof ConfigError ? "misconfigured" : "internal";
    return errorResponse(
      c,
      new ApiError(500, code, error instanceof ConfigError ? error.message : "internal error; see the Worker's logs"),
    );
  });

export { app as adminApp };
