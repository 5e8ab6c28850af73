/** @jsxImportSource hono/jsx */
import { addDays, parseClosedDate, readConfig, tableOf, utcDate } from "@path-stats/shared";
import { Hono } from "hono";
import { z } from "zod";
import { ApiError } from "../admin/errors.ts";
import { listDeadLetters } from "../dead-letters.ts";
import { evaluateHealth } from "../monitoring/health.ts";
import { overview } from "../monitoring/overview.ts";
import { dayTopPaths, requestsPerDay } from "../stats/path-stats.ts";
import { dayStatus } from "../status.ts";
import {
  DayFragment,
  type DeadLetterRow,
  DeadLettersFragment,
  HealthFragment,
  OverviewFragment,
} from "./fragments.tsx";
import { Shell } from "./page.tsx";
import { RequestsChart, TopPaths } from "./stats-fragments.tsx";

/** Days the overview and its chart cover, and a day's paths the page lists. */
const OVERVIEW_DAYS = 30;
const TOP_PATHS = 20;

/**
 * Only this origin's files may run or style the page; nothing may frame it.
 * The page's script and stylesheet are static assets (apps/producer/public,
 * headers in public/_headers); the shell and the fragments come from here.
 */
export const PAGE_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

/** The shell is public (it holds no data); everything else needs the token, like the rest of /admin. */
export const PUBLIC_PAGE_PATH = "/admin/ui";

const DeadLetterQuery = z
  .object({
    queue: z.enum(["archive-chunks", "cleanup-ranges"]).optional(),
    replayed: z.enum(["true", "false"]).optional(),
  })
  .strict();

/** Routes under /admin/ui: the shell and the HTML fragments its script loads with the token. */
export const operatorPage = new Hono<{ Bindings: Env }>()
  .use(async (c, next) => {
    await next();
    for (const [name, value] of Object.entries(PAGE_HEADERS)) c.header(name, value);
  })
  .get("/", (c) => c.html(`<!doctype html>${(<Shell />).toString()}`))
  .get("/fragments/health", async (c) => c.html(<HealthFragment health={await evaluateHealth(c.env, new Date())} />))
  .get("/fragments/overview", async (c) => {
    const config = readConfig(c.env);
    const table = tableOf(config, c.req.query("table") ?? config.tables[0]?.name);
    const now = new Date();
    const data = await overview(c.env.D1, config.tables, table, now, OVERVIEW_DAYS);
    const today = utcDate(now);
    const chart = table.stats ? (
      <RequestsChart
        table={table.name}
        days={await requestsPerDay(c.env.D1, table, addDays(today, -OVERVIEW_DAYS), addDays(today, -1))}
      />
    ) : null;
    return c.html(<OverviewFragment data={data} chart={chart} />);
  })
  .get("/fragments/day", async (c) => {
    const date = parseClosedDate(c.req.query("date") ?? "", new Date());
    const table = tableOf(readConfig(c.env), c.req.query("table"));
    const topPaths = table.stats ? (
      <TopPaths date={date} top={await dayTopPaths(c.env.D1, table, date, TOP_PATHS)} />
    ) : null;
    return c.html(<DayFragment status={await dayStatus(c.env.D1, table, date)} topPaths={topPaths} />);
  })
  .get("/fragments/dead-letters", async (c) => {
    const parsed = DeadLetterQuery.safeParse(c.req.query());
    if (!parsed.success) throw new ApiError(400, "invalid_request", "queue and replayed are the only filters");
    const filter = parsed.data;
    const letters = await listDeadLetters(c.env.D1, {
      queue: filter.queue,
      replayed: filter.replayed === undefined ? undefined : filter.replayed === "true",
      limit: 100,
    });
    return c.html(
      <DeadLettersFragment
        letters={letters as unknown as DeadLetterRow[]}
        queue={filter.queue}
        replayed={filter.replayed}
      />,
    );
  });
