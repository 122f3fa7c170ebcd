/**
 * The subject matrix (issue 18) in Chromium against a PostgreSQL-backed demo portal, on a desktop (1366x900) and a
 * phone (390x844): the admin approves a version of VITALS that makes "Symptoms" required (the demo's VITALS records
 * left it empty, so they become incomplete); the coordinator opens the matrix from the study's navigation, filters
 * to incomplete, walks to an incomplete form and sees the empty required field flagged on the record page. On the
 * phone the page never scrolls sideways: the matrix, the participants page, the subject's casebook, the record page
 * and the audit trail. Screenshots in test-results/screenshots.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { Page } from "playwright-core";
import { ROOT } from "../helpers/portal.ts";
import { demoPortalInBrowser } from "../helpers/demo-browser.ts";
import { shot } from "../helpers/browser.ts";

const DESKTOP = { width: 1366, height: 900 };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: "en-US" };
const COORDINATOR = "coordinator@demo.trialseal.test";

const demo = demoPortalInBrowser();
const { page } = demo;

const scrollWidth = (p: Page) => p.evaluate(() => document.documentElement.scrollWidth);

describe("subject matrix in the browser (Chromium, PostgreSQL portal)", () => {
  let incompleteRecord = "";

  it("the coordinator walks the matrix to an incomplete form and sees the empty required field flagged", async () => {
    // The admin approves VITALS with Symptoms required: the demo's VITALS records left it empty.
    const admin = await page({ viewport: DESKTOP }, "admin@demo.trialseal.test");
    const def = JSON.parse(readFileSync(path.join(ROOT, "app", "studies", "demo", "vitals-v2.form.json"), "utf8"));
    def.version = 3;
    def.fields = def.fields.map((f: { name: string }) => (f.name === "symptoms" ? { ...f, required: true } : f));
    await admin.goto(`${demo.portal.url}/studies/DEMO-001/forms`);
    await admin.getByLabel("Definition (JSON)").fill(JSON.stringify(def, null, 2));
    await expect.poll(() => admin.locator("#definition-check").textContent()).toBe("Valid definition.");
    await admin.getByRole("button", { name: "Save version" }).click();
    const row = admin.locator('tr[data-form="VITALS-3"]');
    await expect.poll(() => row.count()).toBe(1);
    await row.getByRole("button", { name: "Approve" }).click();
    await expect.poll(() => row.textContent()).toContain("approved");

    const coord = await page({ viewport: DESKTOP }, COORDINATOR);
    await coord.goto(`${demo.portal.url}/studies/DEMO-001`);
    await coord.getByRole("link", { name: "Subject matrix" }).click();
    await coord.waitForURL(/\/matrix/);
    await expect.poll(() => coord.locator("[data-cell]").count()).toBeGreaterThan(0);
    await expect.poll(() => coord.locator("[data-no-schedule]").count()).toBeLessThanOrEqual(1);
    // Every state of the legend carries a text, not only a colour.
    expect(await coord.locator(".matrix-legend li").allTextContents()).toEqual(
      expect.arrayContaining([expect.stringContaining("Incomplete"), expect.stringContaining("Not started")]),
    );
    await shot(coord, "subject-matrix-desktop");
    await coord.getByLabel("State").selectOption("incomplete");
    await coord.getByRole("button", { name: "Show" }).click();
    await coord.waitForURL(/state=incomplete/);
    const cell = coord.locator('[data-cell][data-state="incomplete"]').first();
    await expect.poll(() => cell.count()).toBe(1);
    const name = (await cell.getAttribute("aria-label"))!;
    expect(name).toMatch(/^S\S+, visit SCREENING, form VITALS: Incomplete$/);
    expect(await cell.getAttribute("title")).toBe(name);
    await shot(coord, "subject-matrix-incomplete-desktop");
    await cell.click();
    await coord.waitForURL(/\/records\//);
    incompleteRecord = coord.url();
    await expect.poll(() => coord.locator("[data-required-empty]").textContent()).toContain("Symptoms");
    await shot(coord, "subject-matrix-record-flagged-desktop");
    // A not-started cell opens the entry form of that form and visit.
    await coord.goto(`${demo.portal.url}/studies/DEMO-001/matrix?state=not_started`);
    const start = coord.locator('[data-cell][data-state="not_started"]').first();
    expect(await start.getAttribute("href")).toMatch(/\/participants\/[^/?]+\?form=[A-Z]+&visit=[A-Z0-9]+$/);
  });

  it("on a phone the matrix scrolls inside its container and no page scrolls sideways", async () => {
    const coord = await page(PHONE, COORDINATOR);
    await coord.goto(`${demo.portal.url}/studies/DEMO-001/matrix`);
    await expect.poll(() => coord.locator("[data-cell]").count()).toBeGreaterThan(0);
    expect(await scrollWidth(coord)).toBeLessThanOrEqual(390);
    expect(await coord.locator(".table-scroll").evaluate((el) => getComputedStyle(el).overflowX)).toBe("auto");
    expect(await coord.locator(".table-scroll-hint").isVisible()).toBe(true);
    await shot(coord, "subject-matrix-phone");
    const subject = (await coord.locator("[data-subject]").first().getAttribute("data-subject"))!;
    const widths: Record<string, number> = {};
    for (const [label, url] of [
      ["participants", "/studies/DEMO-001/participants"],
      ["casebook", `/studies/DEMO-001/participants/${subject}`],
      ["record", new URL(incompleteRecord).pathname],
      ["home", "/studies/DEMO-001"],
    ]) {
      await coord.goto(`${demo.portal.url}${url}`);
      widths[label] = await scrollWidth(coord);
      await shot(coord, `subject-matrix-phone-${label}`);
    }
    const monitor = await page(PHONE, "monitor@demo.trialseal.test");
    await monitor.goto(`${demo.portal.url}/studies/DEMO-001/audit`);
    widths.audit = await scrollWidth(monitor);
    await shot(monitor, "subject-matrix-phone-audit");
    // Every page fits the phone: the list of pages wider than 390 px is empty.
    expect(Object.entries(widths).filter(([, w]) => w > 390)).toEqual([]);
  });
});
