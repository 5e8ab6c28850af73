/**
 * The operator page in a real browser (Debian's Chromium, headless, driven
 * by playwright-core) against a local stack of its own: a seeded day is
 * archived and cleaned from the page, a dead letter is listed and replayed by
 * clicks, a wrong token shows the API's error, and the page works under its
 * Content-Security-Policy. Screenshots go to .artifacts/operator-page/.
 */
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type BackgroundStack, startBackgroundStack } from "../dev.ts";
import { adminToken, archiveStatus, BASE_URL, localD1File, ROOT } from "../lib.ts";
import { seedInWorker } from "../seed.ts";
import { chromiumPath } from "./chromium.ts";

const ARTIFACTS = join(ROOT, ".artifacts", "operator-page");
const STATE = join(ROOT, ".wrangler", "browser-test-state");
const DATE = new Date(Date.now() - 2 * 86_400_000).toISOString().slice(0, 10);
/** Enough rows that the archive runs for several of the page's 2 s refreshes. */
const ROWS = 600_000;
const PAGE_URL = `${BASE_URL}/admin/ui`;

let stack: BackgroundStack;
let browser: Browser;
let page: Page;
const cspViolations: string[] = [];

beforeAll(async () => {
  const executablePath = chromiumPath();
  mkdirSync(ARTIFACTS, { recursive: true });
  rmSync(STATE, { recursive: true, force: true });
  stack = await startBackgroundStack(STATE);
  await seedInWorker(DATE, ROWS, localD1File(STATE));
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
  // Which table the page is about (ARCHIVE_TABLE).
  expect(await page.locator("#overview h2").textContent()).toMatch(/^traffic_events: last days/);
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
  const status = await archiveStatus<{ status: string; d1Remaining: number }>(DATE, { live: true });
  expect(status).toMatchObject({ status: "cleaned", d1Remaining: 0 });
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
