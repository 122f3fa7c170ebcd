/**
 * The query workflow in the browser (issue 18, ADR 0034), Chromium against a PostgreSQL-backed portal: the demo's
 * automatic query (a systolic pressure above its soft limit) shows on the record page with its field as
 * "Systolic BP (sbp)" and who raised it and when; the coordinator, on a phone (390x844), answers it from the
 * study-wide list (an empty answer is refused, naming the field) without the page scrolling sideways; the monitor,
 * on a desktop (1366x900), closes it and re-opens it with a reason; the record page shows the full history (raise,
 * answer, close, re-open: who and when) and highlights the field with the words "Open query". Screenshots are kept
 * in test-results/screenshots.
 */
import { describe, expect, it } from "vitest";
import type { Page } from "playwright-core";
import { demoPortalInBrowser } from "../helpers/demo-browser.ts";
import { shot } from "../helpers/browser.ts";

const DESKTOP = { viewport: { width: 1366, height: 900 } };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: "en-US" };

const demo = demoPortalInBrowser();
const { page } = demo;

/** How far the page itself scrolls sideways (0 when it fits the viewport). */
const sideways = (p: Page) => p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);

describe("query list in the browser (Chromium, PostgreSQL portal)", () => {
  it("answer from the list on a phone, close and re-open as the monitor, history on the record page", async () => {
    const list = `${demo.portal.url}/studies/DEMO-001/queries`;
    const mon = await page(DESKTOP, "monitor@demo.trialseal.test");
    await mon.goto(list);
    const row = (p: Page) => p.locator('tr[data-status] td[data-field="sbp"]').locator("xpath=..");
    await expect.poll(() => row(mon).count()).toBe(1);
    await expect.poll(() => row(mon).getAttribute("data-status")).toBe("open");
    expect(await row(mon).locator("td[data-field]").textContent()).toBe("Systolic BP (sbp)");
    expect(await row(mon).textContent()).toContain("Cora Coordinator");
    expect(await row(mon).locator("td[data-waiting]").getAttribute("data-waiting")).toBe("site");

    // The record page (the bug of the issue: the field code "sbp" alone, no raiser, no time).
    await row(mon).getByRole("link").click();
    await mon.waitForURL(/\/records\/[0-9a-f-]{36}#field-sbp$/);
    const q = mon.locator("tr[data-query]").first();
    await expect.poll(() => q.locator('[data-label="Field"]').textContent()).toBe("Systolic BP (sbp)");
    await expect.poll(() => q.textContent()).toMatch(/Raised by Cora Coordinator, \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
    const recordUrl = mon.url();

    // The coordinator on a phone: answers from the list; an empty answer names the field.
    const coord = await page(PHONE, "coordinator@demo.trialseal.test");
    await coord.goto(`${list}?mine=1`);
    await expect.poll(() => row(coord).count()).toBe(1);
    expect(await sideways(coord)).toBeLessThanOrEqual(0);
    await shot(coord, "queries-01-phone-list");
    await row(coord).getByRole("button", { name: "Answer", exact: true }).click();
    await expect.poll(() => row(coord).locator('[role="alert"]').getAttribute("data-error-field")).toBe("answer");
    expect(await row(coord).locator('[role="alert"]').textContent()).toMatch(/^answer: write the answer/);
    await row(coord).getByLabel("Answer").fill("Repeated after 10 minutes: 158 mmHg; chart confirms.");
    await row(coord).getByRole("button", { name: "Answer", exact: true }).click();
    await expect.poll(() => coord.locator('td[data-field="sbp"]').count()).toBe(0); // no longer waiting for me
    await coord.goto(list);
    await expect.poll(() => row(coord).getAttribute("data-status")).toBe("answered");
    expect(await sideways(coord)).toBeLessThanOrEqual(0);
    await shot(coord, "queries-02-phone-answered");

    // The monitor on a desktop: closes it, then re-opens it with a reason (an empty one is refused).
    await mon.goto(`${list}?mine=1`);
    await expect.poll(() => row(mon).getAttribute("data-status")).toBe("answered");
    expect(await row(mon).textContent()).toContain("Cora Coordinator");
    await row(mon).getByRole("button", { name: "Close", exact: true }).click();
    await expect.poll(() => row(mon).count()).toBe(0); // closed: no longer waiting for the monitor
    await mon.goto(list);
    await expect.poll(() => row(mon).getAttribute("data-status")).toBe("closed");
    await row(mon).getByRole("button", { name: "Re-open" }).click();
    await expect.poll(() => row(mon).locator('[role="alert"]').getAttribute("data-error-field")).toBe("reason");
    await row(mon).getByLabel("Reason to re-open").fill("The chart shows 172 at the screening visit.");
    await row(mon).getByRole("button", { name: "Re-open" }).click();
    await expect.poll(() => row(mon).getAttribute("data-status")).toBe("open");
    await shot(mon, "queries-03-desktop-reopened");

    // The record page: the whole history, and the field highlighted in words.
    await mon.goto(recordUrl);
    const history = mon.locator("tr[data-query] ol.query-history li");
    await expect
      .poll(() => history.allTextContents())
      .toEqual([
        expect.stringMatching(/^Raised by Cora Coordinator, .* UTC/),
        expect.stringMatching(/^Answered by Cora Coordinator, .* UTC: Repeated after 10 minutes/),
        expect.stringMatching(/^Closed by Mona Monitor, .* UTC/),
        expect.stringMatching(/^Re-opened by Mona Monitor, .* UTC: The chart shows 172/),
      ]);
    await expect.poll(() => mon.locator("#field-sbp").textContent()).toContain("Open query");
    await shot(mon, "queries-04-desktop-record-history");
    const coordRecord = await page(PHONE, "coordinator@demo.trialseal.test");
    await coordRecord.goto(recordUrl);
    await expect.poll(() => coordRecord.locator("#field-sbp").textContent()).toContain("Open query");
    await shot(coordRecord, "queries-05-phone-record");
  });
});
