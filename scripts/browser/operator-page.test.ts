/**
 * The operator page in a real browser (Debian's Chromium, headless, driven
 * by playwright-core) against a local stack of its own that archives two
 * tables (ARCHIVE_TABLES): a seeded day is archived and cleaned from the
 * page, another table is chosen and its day archived, a dead letter is
 * listed and replayed by clicks, a wrong token shows the API's error, and
 * the page works under its Content-Security-Policy. Screenshots go to
 * .artifacts/operator-page/.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { parseArchivedTables } from "../../packages/shared/src/archived-table/archived-table.ts";
import { installStatements } from "../../packages/shared/src/archived-table/install-sql.ts";
import { TRAFFIC_EVENTS_STATS } from "../../packages/shared/src/stats/stats-columns.ts";
import { type BackgroundStack, startBackgroundStack } from "../dev.ts";
import { adminToken, archiveStatus, BASE_URL, CONFIGS, localD1File, ROOT } from "../lib.ts";
import { seedInWorker } from "../seed.ts";
import { chromiumPath } from "./chromium.ts";

const ARTIFACTS = join(ROOT, ".artifacts", "operator-page");
const STATE = join(ROOT, ".wrangler", "browser-test-state");
const DATE = new Date(Date.now() - 2 * 86_400_000).toISOString().slice(0, 10);
/** Enough rows that the archive runs for several of the page's 2 s refreshes. */
const ROWS = 600_000;
const PAGE_URL = `${BASE_URL}/admin/ui`;
/** The second table: a few hundred visits of DATE, its day in epoch seconds. */
const VISITS = { table: "page_visits", idColumn: "visit_id", dayColumn: "at", dayForm: "epoch_s" };
const VISIT_ROWS = 400;

/**
 * The three Workers' configs archiving two tables: each app's own with
 * ARCHIVE_TABLES (a JSON var) in place of its one-table vars, written beside
 * it so relative paths still hold (as deploy.ts does), removed afterwards.
 */
const TWO_TABLE_CONFIGS = CONFIGS.map((config) => join(dirname(config), ".wrangler.browser-test.jsonc"));
function writeTwoTableConfigs(): void {
  const tables = [
    { table: "traffic_events", idColumn: "id", dayColumn: "event_date", stats: TRAFFIC_EVENTS_STATS },
    VISITS,
  ];
  CONFIGS.forEach((source, i) => {
    // The configs carry only whole-line comments.
    const json = readFileSync(source, "utf8")
      .split("\n")
      .filter((line) => !line.trim().startsWith("//"))
      .join("\n");
    const config = JSON.parse(json) as { vars: Record<string, unknown> };
    for (const name of [
      "ARCHIVE_TABLE",
      "ARCHIVE_ID_COLUMN",
      "ARCHIVE_DAY_COLUMN",
      "ARCHIVE_DAY_FORM",
      "ARCHIVE_KEY_PREFIX",
      "ARCHIVE_STATS",
    ]) {
      delete config.vars[name];
    }
    config.vars.ARCHIVE_TABLES = tables;
    writeFileSync(TWO_TABLE_CONFIGS[i] as string, JSON.stringify(config, null, 2));
  });
}

/** page_visits, installed like an operator's table, with rows of DATE. */
function createVisits(): void {
  const [table] = parseArchivedTables({ ARCHIVE_TABLES: [VISITS] }, 3);
  if (typeof table !== "object") throw new Error(String(table));
  const db = new DatabaseSync(localD1File(STATE));
  db.exec("CREATE TABLE page_visits (visit_id INTEGER PRIMARY KEY, at INTEGER NOT NULL, path TEXT NOT NULL)");
  for (const sql of installStatements(table)) db.exec(sql);
  const insert = db.prepare("INSERT INTO page_visits (at, path) VALUES (?1, ?2)");
  const midnight = Date.parse(`${DATE}T00:00:00Z`) / 1000;
  for (let i = 0; i < VISIT_ROWS; i++) insert.run(midnight + i * 200, `/visit/${i % 7}`);
  db.close();
}

let stack: BackgroundStack;
let browser: Browser;
let page: Page;
const cspViolations: string[] = [];

beforeAll(async () => {
  const executablePath = chromiumPath();
  mkdirSync(ARTIFACTS, { recursive: true });
  rmSync(STATE, { recursive: true, force: true });
  writeTwoTableConfigs();
  stack = await startBackgroundStack(STATE, [], TWO_TABLE_CONFIGS);
  await seedInWorker(DATE, ROWS, localD1File(STATE));
  createVisits();
  browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("console", (message) => {
    if (/Content.Security.Policy|Refused to/i.test(message.text())) cspViolations.push(message.text());
  });
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
  rmSync(STATE, { recursive: true, force: true });
  for (const config of TWO_TABLE_CONFIGS) rmSync(config, { force: true });
});

/** Clicks an action button, checks the confirmation names what will happen, confirms. */
async function confirmAction(button: string, expected: RegExp): Promise<void> {
  await page.getByRole("button", { name: button }).click();
  const dialog = page.locator("dialog#confirm");
  await expect.poll(() => dialog.isVisible()).toBe(true);
  expect(await page.locator("#confirm-text").textContent()).toMatch(expected);
  await page.getByRole("button", { name: "Confirm" }).click();
}

async function dayBadge(): Promise<string> {
  return (
    (await page
      .locator("#day .badge")
      .textContent({ timeout: 1000 })
      .catch(() => "")) ?? ""
  );
}

it("serves the page under a strict CSP, and a wrong token shows the API's error", async () => {
  const response = await page.goto(PAGE_URL);
  const csp = response?.headers()["content-security-policy"] ?? "";
  expect(csp).toContain("script-src 'self'");
  expect(csp).toContain("frame-ancestors 'none'");
  expect(response?.headers()["x-frame-options"]).toBe("DENY");

  await page.getByLabel("Admin token").fill("not-the-token");
  await page.getByRole("button", { name: "Use token" }).click();
  await expect.poll(() => page.locator("#error").textContent()).toMatch(/401 unauthorized/);
  expect(await page.locator("#token-form").isVisible()).toBe(true);
});

it("archives a day from the page and watches it reach archived, then cleaned", async () => {
  await page.goto(PAGE_URL);
  await page.getByLabel("Admin token").fill(adminToken());
  await page.getByRole("button", { name: "Use token" }).click();
  const day = page.locator(`button[data-day="${DATE}"]`);
  await expect.poll(() => day.textContent()).toContain("not archived");
  await expect.poll(() => page.locator("#health h2").textContent()).toMatch(/Health/);
  // Which table the page is about: the first of ARCHIVE_TABLES, until another is chosen.
  expect(await page.locator("#overview h2").textContent()).toMatch(/^traffic_events: last days/);
  expect(await page.getByLabel("Table").inputValue()).toBe("traffic_events");
  await page.screenshot({ path: join(ARTIFACTS, "overview.png"), fullPage: true });

  // With the keyboard alone: focus the day, press Enter.
  await day.focus();
  await page.keyboard.press("Enter");
  await expect.poll(() => page.locator("#day h2").textContent()).toContain(`traffic_events ${DATE}`);

  await confirmAction(`Archive ${DATE}`, new RegExp(`Archive ${DATE}: plan a run`));
  await expect.poll(dayBadge, { timeout: 30_000, interval: 50 }).toBe("archiving");
  expect(await page.locator("#day output.result").first().textContent()).toMatch(/Done \(202\): planned run/);
  await page.screenshot({ path: join(ARTIFACTS, "day-in-progress.png"), fullPage: true });
  await expect.poll(dayBadge, { timeout: 5 * 60_000, interval: 1000 }).toBe("archived");
  const chunks = page.locator("#day progress").first();
  expect(await chunks.getAttribute("value")).toBe(await chunks.getAttribute("max"));

  await confirmAction(`Clean up ${DATE}`, new RegExp(`Clean up ${DATE}: delete from D1`));
  await expect.poll(dayBadge, { timeout: 5 * 60_000, interval: 1000 }).toBe("cleaned");
  await page.screenshot({ path: join(ARTIFACTS, "day-cleaned.png"), fullPage: true });
  const status = await archiveStatus<{ status: string; d1Remaining: number }>(DATE, {
    live: true,
    table: "traffic_events",
  });
  expect(status).toMatchObject({ status: "cleaned", d1Remaining: 0 });

  // The day's statistics outlive its rows: its top paths and its bar in the chart come from the rollups.
  const topPaths = page.locator("#day .top-paths");
  await expect
    .poll(() => topPaths.locator("h3").textContent())
    .toMatch(`Top paths: ${ROWS.toLocaleString("en-US")} requests`);
  expect(await topPaths.locator("tbody tr").count()).toBeGreaterThan(5);
  const p99 = Number(await topPaths.locator("tbody tr").first().locator("td").nth(8).textContent());
  expect(p99).toBeGreaterThan(0);
  const bar = page.locator(`#overview svg rect[data-date="${DATE}"]`);
  await expect.poll(() => bar.locator("title").textContent()).toBe(`${DATE}: ${ROWS.toLocaleString("en-US")} requests`);
  expect(Number(await bar.getAttribute("height"))).toBeGreaterThan(50);
  // The other days of the window have no statistics: short grey marks.
  expect(await page.locator("#overview svg rect.bar-none").count()).toBe(29);
  await page.screenshot({ path: join(ARTIFACTS, "statistics.png"), fullPage: true });
});

it("shows another table when chosen, and archives its day there, not the first table's", async () => {
  await page.getByLabel("Table").selectOption("page_visits");
  await expect.poll(() => page.locator("#overview h2").textContent()).toMatch(/^page_visits: last days/);
  expect(await page.locator("#day").innerHTML()).toBe("");
  const day = page.locator(`button[data-day="${DATE}"]`);
  await expect.poll(() => day.textContent()).toContain("not archived");
  await day.click();
  await expect.poll(() => page.locator("#day h2").textContent()).toContain(`page_visits ${DATE}`);
  await confirmAction(`Archive ${DATE}`, new RegExp(`Archive ${DATE}: plan a run`));
  await expect.poll(dayBadge, { timeout: 60_000, interval: 500 }).toBe("archived");
  expect(await page.locator("#day dd code").first().textContent()).toMatch(new RegExp(`^page_visits/at=${DATE}/`));
  await expect.poll(() => day.textContent()).toContain(`${VISIT_ROWS} rows`);
  await page.screenshot({ path: join(ARTIFACTS, "second-table.png"), fullPage: true });
  const visits = await fetch(`${BASE_URL}/admin/archive-status?table=page_visits&date=${DATE}`, {
    headers: { authorization: `Bearer ${adminToken()}` },
  });
  expect(await visits.json()).toMatchObject({ table: "page_visits", status: "archived" });

  // Back to the first table: its day is still the cleaned one.
  await page.getByLabel("Table").selectOption("traffic_events");
  await expect.poll(() => page.locator(`button[data-day="${DATE}"]`).textContent()).toContain("cleaned");
});

it("lists a dead letter from an injected failure and replays it with clicks", async () => {
  // The injected failure: a letter whose chunk belongs to no run. Replayed, the
  // archive consumer cannot deliver it and dead-letters it again, through the queues.
  const db = new DatabaseSync(localD1File(STATE));
  db.prepare(
    `INSERT INTO dead_letters (queue, message_id, body, attempts, date, run_id, last_error, received_at)
     VALUES ('archive-chunks', 'injected-1', ?, 5, ?, 'no-such-run', 'injected: a chunk of a run that does not exist', ?)`,
  ).run(
    JSON.stringify({ version: 1, runId: "no-such-run", date: DATE, chunkIndex: 0 }),
    DATE,
    new Date().toISOString(),
  );
  db.close();

  await page.reload();
  const rows = page.locator("#dead-letters tbody tr");
  await expect.poll(() => rows.count()).toBe(1);
  const injectedId = (await page.getByLabel(/select dead letter/).getAttribute("value")) ?? "";
  await page.getByLabel(/select dead letter/).check();
  await confirmAction("Replay selected", /Replay dead letter\(s\) \d+/);
  await expect
    .poll(() => page.locator("#dead-letters output.result").textContent(), { timeout: 30_000 })
    .toMatch(/Done \(202\): replayed 1 letter\(s\)/);

  // The replayed letter failed again and came back as a new letter: listed as pending once the list reloads.
  const pendingIds = async () => {
    await page.locator("#dead-letters select[name=replayed]").selectOption("all");
    await page.locator("#dead-letters select[name=replayed]").selectOption("false");
    await page.waitForLoadState("networkidle");
    return page
      .locator("#dead-letters input[name=letter]")
      .evaluateAll((boxes) => boxes.map((b) => b.getAttribute("value")));
  };
  await expect
    .poll(pendingIds, { timeout: 60_000, interval: 1000 })
    .toEqual([expect.not.stringMatching(`^${injectedId}$`)]);
  expect(await rows.first().textContent()).toMatch(/run no-such-run has no chunk 0 in D1/);
  await page.screenshot({ path: join(ARTIFACTS, "dead-letters.png"), fullPage: true });
  await confirmAction("Replay all pending", /Replay every dead letter not replayed yet/);
  await expect
    .poll(() => page.locator("#dead-letters output.result").textContent(), { timeout: 30_000 })
    .toMatch(/Done \(202\)/);
});

it("fits a phone-sized screen, forgets the token, and broke no CSP rule", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.locator(`button[data-day="${DATE}"]`).click();
  await expect.poll(() => page.locator("#day h2").textContent()).toContain(DATE);
  await page.screenshot({ path: join(ARTIFACTS, "phone.png"), fullPage: true });
  const overflow = await page.evaluate<number>("document.documentElement.scrollWidth - window.innerWidth");
  expect(overflow).toBeLessThanOrEqual(0);

  await page.getByRole("button", { name: "Forget token" }).click();
  expect(await page.locator("#token-form").isVisible()).toBe(true);
  expect(await page.evaluate<number>("sessionStorage.length")).toBe(0);
  expect(cspViolations).toEqual([]);
});
