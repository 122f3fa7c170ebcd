/**
 * The database lock page (ADR 0054) in Chromium against a PostgreSQL-backed demo portal, on a desktop (1366x900) and
 * a phone (390x844): without a reason the lock is refused in words; with one the page shows since when, by whom,
 * why, and the analysis data set's name, size and sealed SHA-256 (which the database holds); on the phone the page
 * does not scroll sideways, the 64-character hash included.
 */
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { shot } from "../helpers/browser.ts";
import { demoPortalInBrowser } from "../helpers/demo-browser.ts";

const DESKTOP = { width: 1366, height: 900 };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: "en-US" };
const DM = "datamanager@demo.trialseal.test";

const demo = demoPortalInBrowser();
const scrollWidth = (p: Page) => p.evaluate(() => document.documentElement.scrollWidth);

describe("database lock page in the browser (Chromium, PostgreSQL portal)", () => {
  it("locks with a reason and shows the sealed analysis data set; readable on a phone", async () => {
    const dm = await demo.page({ viewport: DESKTOP }, DM);
    await dm.goto(`${demo.portal.url}/studies/DEMO-001/lock`);
    await expect.poll(() => dm.locator("[data-lock-state]").getAttribute("data-lock-state")).toBe("open");
    await dm.getByRole("button", { name: "Lock the database" }).click();
    await expect.poll(() => dm.getByRole("alert").textContent()).toMatch(/reason: give a reason/);
    await dm.getByLabel("Reason for the database lock").fill("Final database lock after the last query closed");
    await dm.getByRole("button", { name: "Lock the database" }).click();
    await expect.poll(() => dm.locator("[data-lock-state]").getAttribute("data-lock-state")).toBe("locked");
    const sha = await dm.locator("[data-analysis-sha256]").textContent();
    const [row] = await demo.sql`SELECT encode(analysis_sha256, 'hex') AS sha FROM database_locks`;
    expect(sha).toBe(row.sha);
    await expect.poll(() => dm.getByText("Final database lock after the last query closed").count()).toBe(1);
    await shot(dm, "database-lock-desktop");

    const phone = await demo.page(PHONE, DM);
    await phone.goto(`${demo.portal.url}/studies/DEMO-001/lock`);
    await expect.poll(() => phone.locator("[data-analysis-sha256]").textContent()).toBe(row.sha);
    expect(await scrollWidth(phone)).toBeLessThanOrEqual(390);
    await phone.getByText("Unlock with a reason").click();
    expect(await scrollWidth(phone)).toBeLessThanOrEqual(390);
    await shot(phone, "database-lock-phone");
  }, 180_000);
});
