/**
 * Participant disposition and the visit schedule (issue 18, ADRs 0032 and 0033) in Chromium against a
 * PostgreSQL-backed demo portal, on a desktop (1366x900) and a phone (390x844). The demo seeds a schedule (screening
 * up to 14 days before enrolment, week 4 at day 28 +/- 3, dates from VITALS.visit_date) and dispositions (the enrolled,
 * consented participants randomized by the demo's randomization list). The coordinator discontinues a randomized
 * participant: without a reason the error is said next to the reason field and nothing
 * changes; with one, the change is in the history and in the database. The participant page shows each visit's
 * window and state in words; on the phone neither it nor the schedule page scrolls sideways.
 */
import { describe, expect, it } from "vitest";
import type { Page } from "playwright-core";
import { demoPortalInBrowser } from "../helpers/demo-browser.ts";
import { shot } from "../helpers/browser.ts";

const DESKTOP = { width: 1366, height: 900 };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: "en-US" };
const COORDINATOR = "coordinator@demo.trialseal.test";
const REASON = "Moved abroad, will not attend the follow-up visits";

const demo = demoPortalInBrowser();
const { page } = demo;

const scrollWidth = (p: Page) => p.evaluate(() => document.documentElement.scrollWidth);
const dispositionOf = async (subject: string) =>
  (await demo.sql`SELECT disposition FROM participants WHERE subject_code = ${subject}`)[0]?.disposition;

/** The visit-window table's rows: visit code -> [planned, window, actual, state]. */
async function windows(p: Page) {
  const out: Record<string, string[]> = {};
  for (const row of await p.locator("tr[data-visit-window]").all()) {
    const cells = (await row.locator("td").allTextContents()).map((t) => t.trim());
    out[(await row.getAttribute("data-visit-window"))!] = cells.slice(1);
  }
  return out;
}

describe("disposition and visit schedule in the browser (Chromium, PostgreSQL portal)", () => {
  it("the demo seeds its schedule and dispositions", async () => {
    const rows = await demo.sql`SELECT p.subject_code, p.disposition, d.reason FROM participants p
      LEFT JOIN participant_dispositions d ON d.participant_id = p.id AND d.status = p.disposition
      JOIN studies s ON s.id = p.study_id WHERE s.code = 'DEMO-001' ORDER BY p.subject_code`;
    expect(rows.map((r) => [r.subject_code, r.disposition, r.reason])).toEqual([
      ["SITE-01-001", "randomized", null],
      ["SITE-01-002", "randomized", null],
      ["SITE-01-003", "randomized", null],
      ["SITE-01-004", "randomized", null],
      ["SITE-01-005", "screening", null],
      ["SITE-01-006", "screen_failed", expect.stringMatching(/inclusion limit/)],
      // Issue 22's demo participants: consented, one said no to future research, one is in a data-use delivery.
      ["SITE-01-007", "enrolled", null],
      ["SITE-01-008", "enrolled", null],
      ["SITE-01-009", "enrolled", null],
    ]);
    // Each "randomized" comes with its allocation (issue 20): none set by hand.
    const allocated = await demo.sql`SELECT p.subject_code FROM randomization_allocations a
      JOIN participants p ON p.id = a.participant_id ORDER BY p.subject_code`;
    expect(allocated.map((r) => r.subject_code)).toEqual(["SITE-01-001", "SITE-01-002", "SITE-01-003", "SITE-01-004"]);
    const [s] = await demo.sql`SELECT version FROM visit_schedules`;
    expect(s.version).toBe(1);
  });

  it("a discontinuation needs a reason, said next to its field; with one it is in the history", async () => {
    const coord = await page({ viewport: DESKTOP }, COORDINATOR);
    await coord.goto(`${demo.portal.url}/studies/DEMO-001/participants/SITE-01-002`);
    await expect.poll(() => coord.locator("#disposition-title").textContent()).toBe("Disposition: Randomized");
    // Without a reason: refused, the error said next to the reason field, the field marked invalid.
    await coord.getByLabel("New disposition").selectOption("discontinued");
    await coord.getByRole("button", { name: "Change disposition" }).click();
    const error = coord.locator("#disp-reason-error");
    await expect.poll(() => error.textContent()).toBe("reason: give the reason for the discontinuation");
    const reason = coord.locator("#disp-reason");
    expect(await reason.getAttribute("aria-invalid")).toBe("true");
    expect(await reason.getAttribute("aria-describedby")).toBe("disp-reason-error");
    // Next to the field: between its label and the input, nowhere else in the form.
    expect(await error.evaluate((el) => el.previousElementSibling?.getAttribute("for") === "disp-reason")).toBe(true);
    expect(await coord.locator("[data-disposition] .error").count()).toBe(1);
    await shot(coord, "disposition-reason-missing-desktop");
    expect(await dispositionOf("SITE-01-002")).toBe("randomized");

    // With a reason: saved, sealed and listed in the history with who made it.
    await coord.getByLabel("New disposition").selectOption("discontinued");
    await coord.getByLabel(/^Reason/).fill(REASON);
    await coord.getByRole("button", { name: "Change disposition" }).click();
    await expect.poll(() => coord.locator("#disposition-title").textContent()).toBe("Disposition: Discontinued");
    const history = coord.locator("[data-disposition-history] tbody tr");
    // The demo's randomization first, then this change.
    await expect.poll(() => history.count()).toBe(2);
    expect((await history.first().locator("td").first().textContent())?.trim()).toBe("Enrolled → Randomized");
    const cells = (await history.last().locator("td").allTextContents()).map((t) => t.trim());
    expect(cells[0]).toBe("Randomized → Discontinued");
    expect(cells[2]).toBe(REASON);
    expect(cells[3]).toBe("Cora Coordinator");
    expect(await coord.locator("[data-disposition]").textContent()).toContain("This disposition is final.");
    await shot(coord, "disposition-history-desktop");
    expect(await dispositionOf("SITE-01-002")).toBe("discontinued");
    const [row] = await demo.sql`SELECT d.reason, e.kind FROM participant_dispositions d
      JOIN participants p ON p.id = d.participant_id JOIN ledger_entries e ON e.id = d.entry_id
      WHERE p.subject_code = 'SITE-01-002' AND d.status = 'discontinued'`;
    expect(row).toEqual({ reason: REASON, kind: "participant.disposition_set" });
  });

  it("the participant page shows each visit's window and state in words", async () => {
    const coord = await page({ viewport: DESKTOP }, COORDINATOR);
    await coord.goto(`${demo.portal.url}/studies/DEMO-001/participants/SITE-01-003`);
    await expect.poll(() => coord.locator("tr[data-visit-window]").count()).toBe(2);
    const [enrolled] =
      await demo.sql`SELECT to_char(enrolled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS d FROM participants
      WHERE subject_code = 'SITE-01-003'`;
    const [vitals] = await demo.sql`SELECT v.data_text FROM records r JOIN record_versions v ON v.record_id = r.id
      AND v.version = r.current_version JOIN participants p ON p.id = r.participant_id
      WHERE p.subject_code = 'SITE-01-003' AND r.form_code = 'VITALS' AND r.visit = 'SCREENING'`;
    const visitDate = JSON.parse(vitals.data_text).visit_date as string;
    const day = (n: number) =>
      new Date(Date.parse(`${enrolled.d}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);
    const w = await windows(coord);
    // Screening: day 0 (enrolment), -14/+0; its date, the day before the seed, is in the window.
    expect(w.SCREENING).toEqual([day(0), `${day(-14)} to ${day(0)}`, visitDate, "✓ In window"]);
    // Week 4: day 28 +/- 3, not yet due and not entered.
    expect(w.WEEK4).toEqual([day(28), `${day(25)} to ${day(31)}`, "not entered", "○ Not due"]);
    expect(await coord.locator('tr[data-visit-window="SCREENING"]').getAttribute("data-state")).toBe("in_window");
    await shot(coord, "visit-windows-desktop");
    // A participant without a visit date yet: screening is due today (state in words, not colour alone).
    await coord.goto(`${demo.portal.url}/studies/DEMO-001/participants/SITE-01-005`);
    await expect.poll(async () => (await windows(coord)).SCREENING?.[3]).toBe("● Due");
  });

  it("on a phone the participant page and the schedule page do not scroll sideways", async () => {
    const coord = await page(PHONE, COORDINATOR);
    await coord.goto(`${demo.portal.url}/studies/DEMO-001/participants/SITE-01-004`);
    await expect.poll(() => coord.locator("tr[data-visit-window]").count()).toBe(2);
    expect(await coord.locator("#disposition-title").textContent()).toBe("Disposition: Randomized");
    expect(await scrollWidth(coord)).toBeLessThanOrEqual(390);
    await coord.locator("[data-visit-windows]").scrollIntoViewIfNeeded();
    await shot(coord, "visit-windows-phone");
    await coord.goto(`${demo.portal.url}/studies/DEMO-001/schedule`);
    await expect.poll(() => coord.locator("tr[data-visit]").count()).toBe(2);
    expect(await coord.locator('tr[data-visit="WEEK4"]').textContent()).toContain("-3/+3 days");
    expect(await scrollWidth(coord)).toBeLessThanOrEqual(390);
    await shot(coord, "visit-schedule-phone");
  });
});
